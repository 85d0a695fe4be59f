//! Inbound records on PostgreSQL, batched (see `batch_pg`): the events of a batch, their
//! bodies, and the tasks of the new ones, in one statement.

use std::collections::HashSet;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;

use super::NewInboundEvent;
use crate::store::batch_pg::Batched;
use crate::store::tasks::{NewTaskRow, bind_task_arrays};
use crate::store::{EventRecord, StoreResult};

/// One record on its way in.
pub(crate) struct Record {
    pub event: Arc<NewInboundEvent>,
    pub encoding: &'static str,
    pub task_id: Option<String>,
    pub task: Option<(NewTaskRow, EventRecord)>,
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

/// The events ($1 to $14) and the tasks of those that have one ($15 to $35), as arrays; only
/// new events get their body, task and history. Returns the ids of the new events.
const INSERT: &str = "WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
    $4::text[], $5::int8[], $6::text[], $7::bytea[], $8::text[], $9::text[], $10::text[], \
    $11::text[], $12::text[], $13::text[], $14::text[]) AS x(id, source, delivery_id, event_type, \
    received_at, headers, body, status, reason, instance_id, task_id, replay_of, endpoint, \
    encoding)), \
    e AS (INSERT INTO inbound_events (id, source, delivery_id, event_type, received_at, headers, \
    status, reason, instance_id, task_id, replay_of, endpoint) SELECT id, source, delivery_id, \
    event_type, received_at, headers, status, reason, instance_id, task_id, replay_of, endpoint \
    FROM x ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id), \
    b AS (INSERT INTO inbound_bodies (event_id, body, encoding) \
    SELECT x.id, x.body, x.encoding FROM x JOIN e ON e.id = x.id), \
    k AS (SELECT * FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::text[], \
    $20::text[], $21::text[], $22::int8[], $23::text[], $24::bool[], $25::text[], $26::text[], \
    $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::int8[], $33::text[], \
    $34::text[], $35::text[]) AS k(event_id, id, instance_id, parent_task_id, title, description, \
    tags, priority, project, needs_orchestration, executor, required_capabilities, requester, \
    source, status, routed_to, routing_reason, created_at, ev_kind, ev_actor, ev_detail)), \
    t AS (INSERT INTO tasks (id, instance_id, parent_task_id, title, description, tags, priority, \
    project, needs_orchestration, executor, required_capabilities, requester, source, status, \
    routed_to, routing_reason, created_at, updated_at) SELECT k.id, k.instance_id, \
    k.parent_task_id, k.title, k.description, k.tags, k.priority, k.project, \
    k.needs_orchestration, k.executor, k.required_capabilities, k.requester, k.source, k.status, \
    k.routed_to, k.routing_reason, k.created_at, k.created_at FROM k JOIN e ON e.id = k.event_id \
    RETURNING id), \
    h AS (INSERT INTO task_events (task_id, instance_id, at, kind, actor, detail) \
    SELECT k.id, k.instance_id, k.created_at, k.ev_kind, k.ev_actor, k.ev_detail \
    FROM k JOIN t ON t.id = k.id) \
    SELECT id FROM e";

async fn insert(pool: &PgPool, records: &[&Record]) -> StoreResult<HashSet<String>> {
    let events = records.iter().map(|r| r.event.as_ref());
    let col = |f: fn(&NewInboundEvent) -> Option<&str>| events.clone().map(f).collect::<Vec<_>>();
    let q = sqlx::query_scalar::<_, String>(INSERT)
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
        .bind(records.iter().map(|r| r.encoding).collect::<Vec<_>>());
    let tasks: Vec<(&str, &NewTaskRow, &EventRecord)> = records
        .iter()
        .filter_map(|r| r.task.as_ref().map(|(t, e)| (r.event.id.as_str(), t, e)))
        .collect();
    let q = q.bind(tasks.iter().map(|t| t.0).collect::<Vec<_>>());
    let rows: Vec<_> = tasks.iter().map(|t| (t.1, t.2)).collect();
    let q = bind_task_arrays(q, &rows);
    Ok(q.fetch_all(pool).await?.into_iter().collect())
}
