//! The text of the task statements, shared by the SQLite and PostgreSQL paths of `tasks`.

use std::sync::LazyLock;

use crate::domain::TaskStatus;
use crate::store::rows::{
    DELEGATION_COLUMNS, INSERT_TASK, TASK_COLUMNS, TASK_EVENT_COLUMNS, TASK_INSERT,
};

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
    LazyLock::new(|| format!("{} RETURNING {TASK_COLUMNS}", INSERT_TASK.as_str()));

/// PostgreSQL: SKIP LOCKED lets concurrent workers (even in other processes) pass over a row
/// another transaction is claiming instead of queueing behind it. SQLite serialises writers,
/// so the plain sub-select is already atomic there.
static CLAIM_NEXT_PG: LazyLock<String> =
    LazyLock::new(|| claim_next_sql("FOR UPDATE SKIP LOCKED", ""));
pub(super) static CLAIM_NEXT_SQLITE: LazyLock<String> = LazyLock::new(|| claim_next_sql("", ""));

/// The claim for a registered executor: only tasks whose `required_capabilities` are all
/// among the executor's (`$6`, a JSON array). A separate statement, so the claims of
/// unregistered workers keep the plain plan.
static CLAIM_NEXT_CAPS_PG: LazyLock<String> = LazyLock::new(|| {
    claim_next_sql(
        "FOR UPDATE SKIP LOCKED",
        "AND CAST(required_capabilities AS jsonb) <@ CAST($6 AS jsonb)",
    )
});
pub(super) static CLAIM_NEXT_CAPS_SQLITE: LazyLock<String> = LazyLock::new(|| {
    claim_next_sql(
        "",
        // `'[]'` (most tasks) has no element, so the NOT EXISTS costs one empty scan.
        "AND NOT EXISTS (SELECT 1 FROM json_each(required_capabilities) r \
         WHERE r.value NOT IN (SELECT value FROM json_each($6)))",
    )
});

fn claim_next_sql(lock: &str, capable: &str) -> String {
    format!(
        "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
         lease_expires_at = $4, lease_id = $5, attempts = attempts + 1, updated_at = $3 \
         WHERE status = 'pending' AND id = (SELECT id FROM tasks \
            WHERE instance_id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
            {capable} ORDER BY priority DESC, id LIMIT 1 {lock}) \
         RETURNING {TASK_COLUMNS}"
    )
}

/// PostgreSQL: a conditional change and its history event as one statement (a data-modifying
/// CTE), i.e. one round trip in an implicit transaction instead of BEGIN, UPDATE, INSERT,
/// COMMIT. `update` takes `n` parameters; the event's at/kind/actor/detail follow them.
pub(super) fn pg_with_event(update: &str, n: usize) -> String {
    format!(
        "WITH t AS ({update}), e AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
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
            .bind($ev.detail_text())
    };
}
pub(super) use bind_event;

pub(super) static INSERT_TASK_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&INSERT_TASK_RETURNING, TASK_INSERT.len()));
/// The same, with the delegation that carries the task to a child: its seven parameters follow
/// the task's and the event's.
pub(super) static INSERT_DELEGATING_PG_EV: LazyLock<String> = LazyLock::new(|| {
    let d = TASK_INSERT.len() + 4;
    INSERT_TASK_PG_EV.replacen(
        "), e AS (",
        &format!(
            "), d AS (INSERT INTO task_delegations ({DELEGATION_COLUMNS}) \
             SELECT CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS TEXT), \
             CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT) FROM t), e AS (",
            d + 1,
            d + 2,
            d + 3,
            d + 4,
            d + 5,
            d + 6,
            d + 7
        ),
        1,
    )
});

pub(super) static CLAIM_NEXT_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&CLAIM_NEXT_PG, 5));
pub(super) static CLAIM_NEXT_CAPS_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&CLAIM_NEXT_CAPS_PG, 6));
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
