//! Routing stored tasks on PostgreSQL, batched (see `batch`): for every pending task of a
//! batch, the routed update, its delegation and history, the inbound event's routed mark, and
//! the child task of a handover, in one statement.

use std::collections::HashSet;
use std::sync::LazyLock;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;

use super::batch::Batched;
use crate::store::error::StoreResult;
use crate::store::rows::{
    DELEGATION_COLUMNS, Delegation, EventRecord, Handover, INSERT_TASKS_FROM_K, TASK_EVENT_COLUMNS,
    bind_task_arrays, unnest_tasks,
};

/// One routing decision for a pending task.
pub(in crate::store) struct Route {
    pub delegation: Delegation,
    pub reason: String,
    pub event: EventRecord,
    pub handover: Option<Handover>,
    pub inbound: Option<String>,
}

impl Batched for Route {
    fn key(&self) -> &str {
        self.delegation.parent_task_id.as_str()
    }

    fn write<'a>(
        pool: &'a PgPool,
        items: &'a [&'a Self],
    ) -> BoxFuture<'a, StoreResult<HashSet<String>>> {
        route(pool, items).boxed()
    }
}

/// The routes ($1 to $12) and the child tasks of the handovers among them (from $13 on).
/// Returns the ids of the tasks that were still pending, and so were routed.
static ROUTE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], \
         $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[]) AS r(parent_task_id, child_instance_id, reason, at, parent_instance_id, \
         child_task_id, kind, state, ev_kind, ev_actor, ev_detail, inbound)), \
         t AS (UPDATE tasks SET status = 'routed', routed_to = r.child_instance_id, \
         routing_reason = r.reason, updated_at = r.at FROM r \
         WHERE tasks.id = r.parent_task_id AND tasks.status = 'pending' \
         RETURNING tasks.id, tasks.instance_id), \
         d AS (INSERT INTO task_delegations ({DELEGATION_COLUMNS}) SELECT r.parent_instance_id, \
         r.parent_task_id, r.child_instance_id, r.child_task_id, r.kind, r.state, r.at \
         FROM r JOIN t ON t.id = r.parent_task_id), \
         e AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
         SELECT t.id, t.instance_id, r.at, r.ev_kind, r.ev_actor, r.ev_detail \
         FROM r JOIN t ON t.id = r.parent_task_id), \
         m AS (UPDATE inbound_events SET routed_at = r.at FROM r WHERE inbound_events.id = r.inbound), \
         k AS (SELECT * FROM {tasks}), \
         c AS ({insert} FROM k JOIN t ON t.id = k.parent_task_id RETURNING id), \
         ce AS (INSERT INTO task_events ({TASK_EVENT_COLUMNS}) \
         SELECT k.id, k.instance_id, k.created_at, k.ev_kind, k.ev_actor, k.ev_detail \
         FROM k JOIN c ON c.id = k.id) \
         SELECT id FROM t",
        tasks = unnest_tasks(13, &[]),
        insert = INSERT_TASKS_FROM_K.as_str(),
    )
});

async fn route(pool: &PgPool, routes: &[&Route]) -> StoreResult<HashSet<String>> {
    let d = routes.iter().map(|r| &r.delegation);
    let col = |f: fn(&Delegation) -> &str| d.clone().map(f).collect::<Vec<_>>();
    let q = sqlx::query_scalar::<_, String>(ROUTE.as_str())
        .bind(col(|d| d.parent_task_id.as_str()))
        .bind(col(|d| d.child_instance_id.as_str()))
        .bind(routes.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
        .bind(d.clone().map(|d| d.delegated_at).collect::<Vec<_>>())
        .bind(col(|d| d.parent_instance_id.as_str()))
        .bind(col(|d| d.child_task_id.as_str()))
        .bind(col(|d| d.kind_str()))
        .bind(col(|d| d.state_str()))
        .bind(routes.iter().map(|r| r.event.kind).collect::<Vec<_>>())
        .bind(
            routes
                .iter()
                .map(|r| r.event.actor.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            routes
                .iter()
                .map(|r| r.event.detail.as_ref().map(|d| d.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(
            routes
                .iter()
                .map(|r| r.inbound.as_deref())
                .collect::<Vec<_>>(),
        );
    let kids: Vec<_> = routes
        .iter()
        .filter_map(|r| r.handover.as_ref().map(|h| (&h.row, &h.event)))
        .collect();
    let q = bind_task_arrays(q, &kids);
    // On the batcher's own connections, which plan for index lookups (see `open_route`).
    let routed = q.fetch_all(pool).await?;
    Ok(routed.into_iter().collect())
}
