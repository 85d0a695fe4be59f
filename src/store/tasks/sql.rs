//! The task statements' text and how their arguments are bound, shared by the SQLite and
//! PostgreSQL paths of `tasks`, `delegations` and `inbound`.

use std::sync::LazyLock;

use super::NewTaskRow;
use crate::domain::{SourceRef, TaskStatus};
use crate::store::EventRecord;
use crate::store::rows::TASK_COLUMNS;

pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn status_list(statuses: &[TaskStatus]) -> String {
    // Status names are compile-time constants, never caller input, so inlining them is safe and
    // lets the planner match the partial indexes.
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) static INSERT_TASK_RETURNING: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_TASK} RETURNING {TASK_COLUMNS}"));

/// PostgreSQL: SKIP LOCKED lets concurrent workers (even in other processes) pass over a row
/// another transaction is claiming instead of queueing behind it. SQLite serialises writers,
/// so the plain sub-select is already atomic there.
static CLAIM_NEXT_PG: LazyLock<String> = LazyLock::new(|| claim_next_sql("FOR UPDATE SKIP LOCKED"));
pub(super) static CLAIM_NEXT_SQLITE: LazyLock<String> = LazyLock::new(|| claim_next_sql(""));

fn claim_next_sql(lock: &str) -> String {
    format!(
        "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
         lease_expires_at = $4, lease_id = $5, attempts = attempts + 1, updated_at = $3 \
         WHERE status = 'pending' AND id = (SELECT id FROM tasks \
            WHERE instance_id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
            ORDER BY priority DESC, id LIMIT 1 {lock}) \
         RETURNING {TASK_COLUMNS}"
    )
}

/// PostgreSQL: a conditional change and its history event as one statement (a data-modifying
/// CTE), i.e. one round trip in an implicit transaction instead of BEGIN, UPDATE, INSERT,
/// COMMIT. `update` takes `n` parameters; the event's at/kind/actor/detail follow them.
pub(super) fn pg_with_event(update: &str, n: usize) -> String {
    format!(
        "WITH t AS ({update}), e AS (INSERT INTO task_events \
         (task_id, instance_id, at, kind, actor, detail) \
         SELECT id, instance_id, CAST(${a} AS BIGINT), CAST(${k} AS TEXT), CAST(${w} AS TEXT), \
         CAST(${d} AS TEXT) FROM t) SELECT {TASK_COLUMNS} FROM t",
        a = n + 1,
        k = n + 2,
        w = n + 3,
        d = n + 4
    )
}

/// Binds an event's fields after a statement built by [`pg_with_event`].
macro_rules! bind_event {
    ($q:expr, $at:expr, $ev:expr) => {
        $q.bind($at)
            .bind($ev.kind)
            .bind($ev.actor.as_str())
            .bind($ev.detail.as_ref().map(|d| d.to_string()))
    };
}
pub(super) use bind_event;

pub(super) static INSERT_TASK_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&INSERT_TASK_RETURNING, 17));
/// The same, with the delegation that carries the task to a child (parameters 22 to 28).
pub(super) static INSERT_DELEGATING_PG_EV: LazyLock<String> = LazyLock::new(|| {
    INSERT_TASK_PG_EV.replacen(
        "), e AS (",
        "), d AS (INSERT INTO task_delegations (parent_instance_id, parent_task_id, \
         child_instance_id, child_task_id, kind, state, delegated_at) \
         SELECT CAST($22 AS TEXT), CAST($23 AS TEXT), CAST($24 AS TEXT), CAST($25 AS TEXT), \
         CAST($26 AS TEXT), CAST($27 AS TEXT), CAST($28 AS BIGINT) FROM t), e AS (",
        1,
    )
});

pub(super) static CLAIM_NEXT_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&CLAIM_NEXT_PG, 5));
pub(super) static CLAIM_ONE_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&CLAIM_ONE, 5));
pub(super) static HEARTBEAT_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&HEARTBEAT, 5));

/// Claims one task: a pending one, or one whose lease has run out even if the sweeper has
/// not returned it yet (the expired holder's lease no longer counts either way).
pub(super) static CLAIM_ONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
         lease_expires_at = $4, lease_id = $5, attempts = attempts + 1, updated_at = $3 \
         WHERE id = $1 AND (status = 'pending' OR (status = 'claimed' AND lease_expires_at < $3)) \
         AND (executor IS NULL OR executor = $2) \
         RETURNING {TASK_COLUMNS}"
    )
});

/// Extends a lease: only under the current, unexpired lease of its executor.
pub(super) static HEARTBEAT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET lease_expires_at = $4, updated_at = $3 \
         WHERE id = $1 AND status = 'claimed' AND claimed_by = $2 AND lease_id = $5 \
         AND lease_expires_at >= $3 RETURNING {TASK_COLUMNS}"
    )
});

pub(super) static FINISH_DELEGATED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = $2, updated_at = $3, finished_at = $3, \
         feedback = COALESCE($4, feedback), failure_reason = COALESCE($5, failure_reason) \
         WHERE id = $1 AND status = 'routed' RETURNING {TASK_COLUMNS}"
    )
});

pub(in crate::store) const INSERT_TASK: &str = "INSERT INTO tasks (id, instance_id, parent_task_id, title, description, \
    tags, priority, project, needs_orchestration, executor, required_capabilities, requester, \
    source, status, routed_to, routing_reason, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) \
    ON CONFLICT (id) DO NOTHING";

macro_rules! bind_new_task {
    ($q:expr, $r:expr) => {{
        let d = &$r.draft;
        $q.bind($r.id.as_str())
            .bind($r.instance_id.as_str())
            .bind($r.parent_task_id.as_ref().map(|p| p.as_str().to_owned()))
            .bind(d.title.as_str())
            .bind(d.description.as_str())
            .bind(to_json(&d.tags))
            .bind(d.priority.rank())
            .bind(d.project.clone())
            .bind(d.needs_orchestration)
            .bind(d.executor.clone())
            .bind(to_json(&d.required_capabilities))
            .bind(d.requester.clone())
            .bind(d.source.as_ref().map(source_json))
            .bind($r.status.as_str())
            .bind($r.routed_to.as_ref().map(|p| p.as_str().to_owned()))
            .bind($r.routing_reason.clone())
            .bind($r.now)
    }};
}
pub(in crate::store) use bind_new_task;

/// A PostgreSQL batch statement whose answer is a list of ids (see `batch_pg`).
pub(in crate::store) type BatchQuery<'q> = sqlx::query::QueryScalar<
    'q,
    sqlx::Postgres,
    String,
    <sqlx::Postgres as sqlx::Database>::Arguments<'q>,
>;

/// Binds new tasks and their `created` events as the 20 arrays a batch statement `unnest`s:
/// the 17 columns `INSERT_TASK` takes, in its order, then the event's kind, actor, detail.
pub(in crate::store) fn bind_task_arrays<'q>(
    q: BatchQuery<'q>,
    rows: &[(&'q NewTaskRow, &'q EventRecord)],
) -> BatchQuery<'q> {
    let col =
        |f: fn(&NewTaskRow) -> Option<String>| rows.iter().map(|r| f(r.0)).collect::<Vec<_>>();
    q.bind(col(|t| Some(t.id.as_str().to_owned())))
        .bind(col(|t| Some(t.instance_id.as_str().to_owned())))
        .bind(col(|t| {
            t.parent_task_id.as_ref().map(|p| p.as_str().to_owned())
        }))
        .bind(col(|t| Some(t.draft.title.clone())))
        .bind(col(|t| Some(t.draft.description.clone())))
        .bind(col(|t| Some(to_json(&t.draft.tags))))
        .bind(
            rows.iter()
                .map(|r| r.0.draft.priority.rank())
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.draft.project.clone()))
        .bind(
            rows.iter()
                .map(|r| r.0.draft.needs_orchestration)
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.draft.executor.clone()))
        .bind(col(|t| Some(to_json(&t.draft.required_capabilities))))
        .bind(col(|t| t.draft.requester.clone()))
        .bind(col(|t| t.draft.source.as_ref().map(source_json)))
        .bind(col(|t| Some(t.status.as_str().to_owned())))
        .bind(col(|t| t.routed_to.as_ref().map(|r| r.as_str().to_owned())))
        .bind(col(|t| t.routing_reason.clone()))
        .bind(rows.iter().map(|r| r.0.now).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.actor.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.1.detail.as_ref().map(|d| d.to_string()))
                .collect::<Vec<_>>(),
        )
}

pub(in crate::store) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(in crate::store) fn source_json(s: &SourceRef) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "null".into())
}
