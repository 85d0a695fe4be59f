//! Inbound records on PostgreSQL, batched (see `batch`): the events of a batch, their
//! bodies, and the tasks of the new ones, in one statement; then, in the same transaction, the
//! delegations of the tasks routed before recording.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;

use super::batch::Batched;
use crate::store::error::StoreResult;
use crate::store::rows::{
    BatchQuery, DELEGATION_COLUMNS, Delegation, INBOUND_COLUMNS, INSERT_TASKS_FROM_K,
    NewInboundEvent, NewTask, RoutedNow, TASK_EVENT_COLUMNS, bind_task_arrays, unnest_tasks,
};

/// One record on its way in.
pub(in crate::store) struct Record {
    pub event: Arc<NewInboundEvent>,
    pub encoding: &'static str,
    pub task_id: Option<String>,
    pub task: Option<NewTask>,
}

impl Batched for Record {
    fn key(&self) -> &str {
        &self.event.id
    }

    fn write<'a>(
        pool: &'a PgPool,
        items: &'a [&'a Self],
    ) -> BoxFuture<'a, StoreResult<HashSet<String>>> {
        insert(pool, items).boxed()
    }
}

/// The events ($1 to $15) and the tasks of those that have one (from $16 on), as arrays; only
/// new events get their body, task and history. Returns the ids of the new events.
static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::int8[], $6::text[], $7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::text[], $14::text[], $15::int8[]) AS x(id, source, delivery_id, \
         event_type, received_at, headers, body, status, reason, instance_id, task_id, \
         replay_of, endpoint, encoding, routed_at)), \
         e AS (INSERT INTO inbound_events ({INBOUND_COLUMNS}) SELECT {INBOUND_COLUMNS} FROM x \
         ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id), \
         b AS (INSERT INTO inbound_bodies (event_id, body, encoding) \
         SELECT x.id, x.body, x.encoding FROM x JOIN e ON e.id = x.id), \
         k AS (SELECT * FROM {tasks}), \
         t AS ({insert} FROM k JOIN e ON e.id = k.event_id RETURNING id), \
         h AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
         SELECT k.id, k.instance_id, k.created_at, k.ev_kind, k.ev_actor, k.ev_detail \
         FROM k JOIN t ON t.id = k.id) \
         SELECT id FROM e",
        tasks = unnest_tasks(16, &["event_id"]),
        insert = INSERT_TASKS_FROM_K.as_str(),
    )
});

/// The delegations of tasks routed before recording ($1 to $10) and their children (from $11
/// on), for the records of a batch that were new.
static DELEGATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[]) \
         AS r(parent_instance_id, parent_task_id, child_instance_id, child_task_id, kind, state, \
         at, ev_kind, ev_actor, ev_detail)), \
         d AS (INSERT INTO task_delegations ({DELEGATION_COLUMNS}) SELECT parent_instance_id, \
         parent_task_id, child_instance_id, child_task_id, kind, state, at FROM r), \
         e AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
         SELECT parent_task_id, parent_instance_id, at, ev_kind, ev_actor, ev_detail FROM r), \
         k AS (SELECT * FROM {tasks}), \
         c AS ({insert} FROM k RETURNING id), \
         ce AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
         SELECT k.id, k.instance_id, k.created_at, k.ev_kind, k.ev_actor, k.ev_detail FROM k) \
         SELECT id FROM c",
        tasks = unnest_tasks(11, &[]),
        insert = INSERT_TASKS_FROM_K.as_str(),
    )
});

/// Records a batch; with tasks routed before recording, their delegations go into the same
/// transaction.
async fn insert(pool: &PgPool, records: &[&Record]) -> StoreResult<HashSet<String>> {
    let routes = records
        .iter()
        .any(|r| r.task.as_ref().is_some_and(|t| t.routed.is_some()));
    if !routes {
        return Ok(record(records).fetch_all(pool).await?.into_iter().collect());
    }
    let mut tx = pool.begin().await?;
    let new: HashSet<String> = record(records)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let routed: Vec<&RoutedNow> = records
        .iter()
        .filter(|r| new.contains(&r.event.id))
        .filter_map(|r| r.task.as_ref()?.routed.as_ref())
        .collect();
    if !routed.is_empty() {
        delegate(&routed).fetch_all(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(new)
}

fn record<'q>(records: &'q [&'q Record]) -> BatchQuery<'q> {
    let events = records.iter().map(|r| r.event.as_ref());
    let col = |f: fn(&NewInboundEvent) -> Option<&str>| events.clone().map(f).collect::<Vec<_>>();
    let q = sqlx::query_scalar::<_, String>(INSERT.as_str())
        .bind(col(|e| Some(e.id.as_str())))
        .bind(col(|e| Some(e.source.as_str())))
        .bind(col(|e| e.delivery_id.as_deref()))
        .bind(col(|e| Some(e.event_type.as_str())))
        .bind(events.clone().map(|e| e.received_at).collect::<Vec<_>>())
        .bind(
            events
                .clone()
                .map(|e| e.headers.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(events.clone().map(|e| &e.body[..]).collect::<Vec<_>>())
        .bind(col(|e| Some(e.status)))
        .bind(col(|e| e.reason.as_deref()))
        .bind(col(|e| Some(e.instance_id.as_str())))
        .bind(
            records
                .iter()
                .map(|r| r.task_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(col(|e| e.replay_of.as_deref()))
        .bind(col(|e| Some(e.endpoint.as_str())))
        .bind(records.iter().map(|r| r.encoding).collect::<Vec<_>>())
        .bind(events.clone().map(|e| e.routed_at).collect::<Vec<_>>());
    let tasks: Vec<(&str, &NewTask)> = records
        .iter()
        .filter_map(|r| r.task.as_ref().map(|t| (r.event.id.as_str(), t)))
        .collect();
    let q = q.bind(tasks.iter().map(|t| t.0).collect::<Vec<_>>());
    let rows: Vec<_> = tasks.iter().map(|t| (&t.1.row, &t.1.created)).collect();
    bind_task_arrays(q, &rows)
}

fn delegate<'q>(routed: &[&'q RoutedNow]) -> BatchQuery<'q> {
    let d = routed.iter().map(|r| &r.delegation);
    let col = |f: fn(&'q Delegation) -> &'q str| d.clone().map(f).collect::<Vec<_>>();
    let q = sqlx::query_scalar::<_, String>(DELEGATE.as_str())
        .bind(col(|d| d.parent_instance_id.as_str()))
        .bind(col(|d| d.parent_task_id.as_str()))
        .bind(col(|d| d.child_instance_id.as_str()))
        .bind(col(|d| d.child_task_id.as_str()))
        .bind(col(|d| d.kind_str()))
        .bind(col(|d| d.state_str()))
        .bind(d.clone().map(|d| d.delegated_at).collect::<Vec<_>>())
        .bind(routed.iter().map(|r| r.event.kind).collect::<Vec<_>>())
        .bind(
            routed
                .iter()
                .map(|r| r.event.actor.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            routed
                .iter()
                .map(|r| r.event.detail.as_ref().map(|d| d.to_string()))
                .collect::<Vec<_>>(),
        );
    let kids: Vec<_> = routed
        .iter()
        .map(|r| (&r.handover.row, &r.handover.event))
        .collect();
    bind_task_arrays(q, &kids)
}
