//! Delegations: routing a stored task to a child instance, and the bookkeeping that lets a
//! hand-off always be completed or re-driven.

use super::postgres::Route;
use super::rows::{
    DELEGATION_COLUMNS, Delegation, DelegationRow, DelegationState, EventRecord, Handover,
    INSERT_DELEGATION, INSERT_TASK, bind_delegation, bind_new_task,
};
use super::sqlite::{self, PendingEvent};
use super::{Backend, Store, StoreResult, on_reader};
use crate::domain::{Millis, TaskId};

/// Inserts a delegation on the SQLite writer (see `sqlite::query`).
pub(super) fn insert_delegation_lite(
    c: &rusqlite::Connection,
    d: &Delegation,
) -> rusqlite::Result<usize> {
    bind_delegation(sqlite::query(c, INSERT_DELEGATION)?, d).execute()
}

/// Pending -> routed (SQLite; the delegation is inserted after it if it changed the row).
const ROUTE_PENDING_SQLITE_TASK: &str = "UPDATE tasks SET status = 'routed', routed_to = $2, \
    routing_reason = $3, updated_at = $4 WHERE id = $1 AND status = 'pending'";

/// SQLite: the inbound event's routed mark.
const MARK_ROUTED: &str = "UPDATE inbound_events SET routed_at = $2 WHERE id = $1";

impl Store {
    pub async fn delegation_of(&self, parent_task: &TaskId) -> StoreResult<Option<Delegation>> {
        let q =
            format!("SELECT {DELEGATION_COLUMNS} FROM task_delegations WHERE parent_task_id = $1");
        let row: Option<DelegationRow> = on_reader!(self, p => sqlx::query_as(&q).bind(parent_task.as_str()).fetch_optional(p).await?);
        row.map(Delegation::try_from).transpose()
    }

    /// Delegations not yet finished: what start-up re-drives.
    pub async fn open_delegations(&self) -> StoreResult<Vec<Delegation>> {
        let q = format!(
            "SELECT {DELEGATION_COLUMNS} FROM task_delegations WHERE state IN ('pending', 'delegated') ORDER BY delegated_at"
        );
        let rows: Vec<DelegationRow> =
            on_reader!(self, p => sqlx::query_as(&q).fetch_all(p).await?);
        rows.into_iter().map(Delegation::try_from).collect()
    }

    /// Moves a delegation from one state to another; false if it was not in `from`.
    pub async fn set_delegation_state(
        &self,
        parent_task: &TaskId,
        from: DelegationState,
        to: DelegationState,
    ) -> StoreResult<bool> {
        const Q: &str =
            "UPDATE task_delegations SET state = $3 WHERE parent_task_id = $1 AND state = $2";
        // Re-drivable bookkeeping: PostgreSQL's relaxed pool, or SQLite's group commit.
        let n = match &self.backend {
            Backend::Postgres(pg) => sqlx::query(Q)
                .bind(parent_task.as_str())
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(pg.relaxed())
                .await?
                .rows_affected() as usize,
            Backend::Sqlite(lite) => {
                let parent_task = parent_task.clone();
                lite.commit(move |c, _| {
                    sqlite::query(c, Q)?
                        .bind(parent_task.as_str())
                        .bind(from.as_str())
                        .bind(to.as_str())
                        .execute()
                })
                .await?
            }
        };
        Ok(n == 1)
    }
}

/// Routing a task that is already stored (an inbound event's task, committed before routing).
impl Store {
    /// Turns a pending task into a routed one and records the delegation that carries it to a
    /// child, in one transaction; with a `handover`, the child's task too (the delegation is
    /// then already `delegated`). `inbound` names the event whose task this is, marked routed in
    /// the same write. False if the task was no longer pending (claimed meanwhile).
    pub async fn route_pending(
        &self,
        delegation: &Delegation,
        reason: &str,
        event: &EventRecord,
        handover: Option<&Handover>,
        inbound: Option<&str>,
    ) -> StoreResult<bool> {
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                // Batched with other routes, on relaxed connections: an unrouted inbound event
                // is routed again at start-up.
                let route = Route {
                    delegation: delegation.clone(),
                    reason: reason.to_owned(),
                    event: event.clone(),
                    handover: handover.cloned(),
                    inbound: inbound.map(str::to_owned),
                };
                return pg.route(route).await;
            }
        };
        let (d, reason, ev) = (delegation.clone(), reason.to_owned(), event.clone());
        let (handover, inbound) = (handover.cloned(), inbound.map(str::to_owned));
        let routed = lite
            .commit(move |c, events| {
                let n = sqlite::query(c, ROUTE_PENDING_SQLITE_TASK)?
                    .bind(d.parent_task_id.as_str())
                    .bind(d.child_instance_id.as_str())
                    .bind(reason.as_str())
                    .bind(d.delegated_at)
                    .execute()?;
                if n > 0 {
                    delegate_lite(c, events, &d, &ev, handover.as_ref())?;
                }
                if let Some(id) = &inbound {
                    mark_routed_lite(c, id, d.delegated_at)?;
                }
                Ok(n > 0)
            })
            .await?;
        Ok(routed)
    }

    /// Records a routing decision that keeps a pending task where it is (assigned to an
    /// executor, or left for triage with the reason), with its history `event` on `instance`
    /// when given. `inbound` as for [`Store::route_pending`].
    #[allow(clippy::too_many_arguments)]
    pub async fn annotate_pending(
        &self,
        task: &TaskId,
        executor: Option<&str>,
        reason: &str,
        at: Millis,
        inbound: Option<&str>,
        event: Option<&EventRecord>,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE tasks SET executor = COALESCE($2, executor), routing_reason = $3, \
                         updated_at = $4 WHERE id = $1 AND status = 'pending' RETURNING instance_id";
        const Q_PG: &str = "WITH m AS (UPDATE inbound_events SET routed_at = $4 \
            WHERE id = CAST($5 AS TEXT)), t AS (UPDATE tasks SET executor = COALESCE($2, executor), \
            routing_reason = $3, updated_at = $4 WHERE id = $1 AND status = 'pending' \
            RETURNING id, instance_id), e AS (INSERT INTO task_events (task_id, instance_id, at, \
            kind, actor, detail) SELECT id, instance_id, $4, CAST($6 AS TEXT), CAST($7 AS TEXT), \
            CAST($8 AS TEXT) FROM t WHERE CAST($6 AS TEXT) IS NOT NULL) SELECT COUNT(*) FROM t";
        let n = match &self.backend {
            Backend::Postgres(pg) => {
                sqlx::query_scalar::<_, i64>(Q_PG)
                    .bind(task.as_str())
                    .bind(executor)
                    .bind(reason)
                    .bind(at)
                    .bind(inbound)
                    .bind(event.map(|e| e.kind))
                    .bind(event.map(|e| e.actor.as_str()))
                    .bind(event.and_then(|e| e.detail_text()))
                    .fetch_one(pg.relaxed())
                    .await? as usize
            }
            Backend::Sqlite(lite) => {
                let (task, executor) = (task.clone(), executor.map(str::to_owned));
                let (reason, inbound) = (reason.to_owned(), inbound.map(str::to_owned));
                let event = event.cloned();
                lite.commit(move |c, events| {
                    let instance: Option<String> = sqlite::query(c, Q)?
                        .bind(task.as_str())
                        .bind(executor.as_deref())
                        .bind(reason.as_str())
                        .bind(at)
                        .fetch_optional(|r| r.get(0))?;
                    if let (Some(instance), Some(ev)) = (&instance, &event) {
                        events.push(PendingEvent::new(task.as_str(), instance, at, ev));
                    }
                    if let Some(id) = &inbound {
                        mark_routed_lite(c, id, at)?;
                    }
                    Ok(usize::from(instance.is_some()))
                })
                .await?
            }
        };
        Ok(n == 1)
    }
}

/// A routed task's delegation and `routed` event, and with a handover the child's task, on the
/// SQLite writer.
pub(super) fn delegate_lite(
    c: &rusqlite::Connection,
    events: &mut Vec<PendingEvent>,
    d: &Delegation,
    routed: &EventRecord,
    handover: Option<&Handover>,
) -> rusqlite::Result<()> {
    insert_delegation_lite(c, d)?;
    events.push(PendingEvent::new(
        d.parent_task_id.as_str(),
        d.parent_instance_id.as_str(),
        d.delegated_at,
        routed,
    ));
    if let Some(h) = handover {
        insert_child_lite(c, events, h)?;
    }
    Ok(())
}

/// The child task of a [`Handover`] and its `created` event, on the SQLite writer.
fn insert_child_lite(
    c: &rusqlite::Connection,
    events: &mut Vec<PendingEvent>,
    h: &Handover,
) -> rusqlite::Result<()> {
    bind_new_task(sqlite::query(c, &INSERT_TASK)?, &h.row).execute()?;
    events.push(PendingEvent::new(
        h.row.id.as_str(),
        h.row.instance_id.as_str(),
        h.row.now,
        &h.event,
    ));
    Ok(())
}

pub(super) fn mark_routed_lite(
    c: &rusqlite::Connection,
    event_id: &str,
    at: Millis,
) -> rusqlite::Result<usize> {
    sqlite::query(c, MARK_ROUTED)?
        .bind(event_id)
        .bind(at)
        .execute()
}

/// Re-routing: taking a routed task back before it goes elsewhere.
impl Store {
    /// Turns a routed task back into a pending one and forgets its delegation, with `event`
    /// in its history, in one transaction. False if it was not routed (any more).
    pub async fn unroute(
        &self,
        task: &TaskId,
        instance: &crate::domain::InstanceId,
        event: &EventRecord,
        at: Millis,
    ) -> StoreResult<bool> {
        const TASK: &str = "UPDATE tasks SET status = 'pending', routed_to = NULL, updated_at = $2 \
                            WHERE id = $1 AND status = 'routed'";
        const DELEGATION: &str = "DELETE FROM task_delegations WHERE parent_task_id = $1";
        match &self.backend {
            Backend::Postgres(pg) => {
                let mut tx = pg.pool().begin().await?;
                let n = sqlx::query(TASK)
                    .bind(task.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                sqlx::query(DELEGATION)
                    .bind(task.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(super::rows::INSERT_TASK_EVENT)
                    .bind(task.as_str())
                    .bind(instance.as_str())
                    .bind(at)
                    .bind(event.kind)
                    .bind(event.actor.as_str())
                    .bind(event.detail_text())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
            Backend::Sqlite(lite) => {
                let (task, instance, ev) = (task.clone(), instance.clone(), event.clone());
                lite.commit(move |c, events| {
                    let n = sqlite::query(c, TASK)?
                        .bind(task.as_str())
                        .bind(at)
                        .execute()?;
                    if n == 0 {
                        return Ok(false);
                    }
                    sqlite::query(c, DELEGATION)?
                        .bind(task.as_str())
                        .execute()?;
                    events.push(PendingEvent::new(task.as_str(), instance.as_str(), at, &ev));
                    Ok(true)
                })
                .await
            }
        }
    }
}
