mod route_pg;

pub(super) use route_pg::Route;

use super::commit::PendingEvent;
use super::tasks::{NewTaskRow, bind_new_task, source_json, to_json};
use super::{EventRecord, Store, StoreError, StoreResult, on_db};
use crate::domain::{InstanceId, Millis, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationKind {
    /// Finishes with one child task (global -> project).
    Task,
    /// Finishes when a whole orchestration run has no open task (project -> run).
    Run,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationState {
    /// Recorded; the child insert may not have happened yet.
    Pending,
    /// The child holds the work.
    Delegated,
    Finished,
    /// The child was lost (an in-memory run across a restart); the parent task was re-queued.
    Abandoned,
}

impl DelegationKind {
    fn as_str(self) -> &'static str {
        match self {
            DelegationKind::Task => "task",
            DelegationKind::Run => "run",
        }
    }
}

impl DelegationState {
    fn as_str(self) -> &'static str {
        match self {
            DelegationState::Pending => "pending",
            DelegationState::Delegated => "delegated",
            DelegationState::Finished => "finished",
            DelegationState::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Delegation {
    pub parent_instance_id: InstanceId,
    pub parent_task_id: TaskId,
    pub child_instance_id: InstanceId,
    pub child_task_id: TaskId,
    pub kind: DelegationKind,
    pub state: DelegationState,
    pub delegated_at: Millis,
}

#[derive(sqlx::FromRow)]
struct DelegationRow {
    parent_instance_id: String,
    parent_task_id: String,
    child_instance_id: String,
    child_task_id: String,
    kind: String,
    state: String,
    delegated_at: i64,
}

impl TryFrom<DelegationRow> for Delegation {
    type Error = StoreError;
    fn try_from(r: DelegationRow) -> StoreResult<Self> {
        let bad = |e: String| StoreError::Corrupt(format!("task_delegations: {e}"));
        Ok(Delegation {
            parent_instance_id: InstanceId::parse(&r.parent_instance_id).map_err(bad)?,
            parent_task_id: TaskId::parse(&r.parent_task_id).map_err(bad)?,
            child_instance_id: InstanceId::parse(&r.child_instance_id).map_err(bad)?,
            child_task_id: TaskId::parse(&r.child_task_id).map_err(bad)?,
            kind: match r.kind.as_str() {
                "task" => DelegationKind::Task,
                "run" => DelegationKind::Run,
                other => return Err(bad(format!("kind `{other}`"))),
            },
            state: match r.state.as_str() {
                "pending" => DelegationState::Pending,
                "delegated" => DelegationState::Delegated,
                "finished" => DelegationState::Finished,
                "abandoned" => DelegationState::Abandoned,
                other => return Err(bad(format!("state `{other}`"))),
            },
            delegated_at: r.delegated_at,
        })
    }
}

pub(crate) const INSERT_DELEGATION: &str = "INSERT INTO task_delegations (parent_instance_id, \
    parent_task_id, child_instance_id, child_task_id, kind, state, delegated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Inserts a delegation on the SQLite writer (see `lite`).
pub(crate) fn insert_delegation_lite(
    c: &rusqlite::Connection,
    d: &Delegation,
) -> rusqlite::Result<usize> {
    super::lite::query(c, INSERT_DELEGATION)?
        .bind(d.parent_instance_id.as_str())
        .bind(d.parent_task_id.as_str())
        .bind(d.child_instance_id.as_str())
        .bind(d.child_task_id.as_str())
        .bind(d.kind_str())
        .bind(d.state_str())
        .bind(d.delegated_at)
        .execute()
}

impl Delegation {
    pub(crate) fn kind_str(&self) -> &'static str {
        self.kind.as_str()
    }

    pub(crate) fn state_str(&self) -> &'static str {
        self.state.as_str()
    }
}

/// Pending -> routed (SQLite; the delegation is inserted after it if it changed the row).
const ROUTE_PENDING_SQLITE_TASK: &str = "UPDATE tasks SET status = 'routed', routed_to = $2, \
    routing_reason = $3, updated_at = $4 WHERE id = $1 AND status = 'pending'";

/// SQLite: the inbound event's routed mark.
const MARK_ROUTED: &str = "UPDATE inbound_events SET routed_at = $2 WHERE id = $1";

/// A child task that goes into its parent's routing transaction: the child shares the parent's
/// database and keeps the task, so the whole hand-off is one commit with nothing to re-drive.
#[derive(Debug, Clone)]
pub struct Handover {
    pub row: NewTaskRow,
    pub event: EventRecord,
}

/// Routing decided before an inbound task was recorded, written with it: the delegation to a
/// child in the same database (born `delegated`), the parent's `routed` event, and the child's
/// task.
#[derive(Debug, Clone)]
pub struct RoutedNow {
    pub delegation: Delegation,
    pub event: EventRecord,
    pub handover: Handover,
}

const COLUMNS: &str = "parent_instance_id, parent_task_id, child_instance_id, child_task_id, kind, state, delegated_at";

impl Store {
    pub async fn delegation_of(&self, parent_task: &TaskId) -> StoreResult<Option<Delegation>> {
        let q = format!("SELECT {COLUMNS} FROM task_delegations WHERE parent_task_id = $1");
        let row: Option<DelegationRow> = on_db!(&self.reader, p => sqlx::query_as(&q).bind(parent_task.as_str()).fetch_optional(p).await?);
        row.map(Delegation::try_from).transpose()
    }

    /// Delegations not yet finished: what start-up re-drives.
    pub async fn open_delegations(&self) -> StoreResult<Vec<Delegation>> {
        let q = format!(
            "SELECT {COLUMNS} FROM task_delegations WHERE state IN ('pending', 'delegated') ORDER BY delegated_at"
        );
        let rows: Vec<DelegationRow> =
            on_db!(&self.reader, p => sqlx::query_as(&q).fetch_all(p).await?);
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
        let n = match &self.db {
            super::Db::Postgres(p) => sqlx::query(Q)
                .bind(parent_task.as_str())
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(self.relaxed_or(p))
                .await?
                .rows_affected() as usize,
            super::Db::Sqlite(_) => {
                let parent_task = parent_task.clone();
                self.lite_write(move |c, _| {
                    super::lite::query(c, Q)?
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
        if let super::Db::Postgres(_) = &self.db {
            // Batched with other routes, on the relaxed pool: an unrouted inbound event is
            // routed again at start-up.
            let batcher = self.pg_routes.as_ref().ok_or_else(|| {
                StoreError::Open("PostgreSQL store without its route batcher".into())
            })?;
            let route = route_pg::Route {
                delegation: delegation.clone(),
                reason: reason.to_owned(),
                event: event.clone(),
                handover: handover.cloned(),
                inbound: inbound.map(str::to_owned),
            };
            return batcher.write(route).await;
        }
        let (d, reason, ev) = (delegation.clone(), reason.to_owned(), event.clone());
        let (handover, inbound) = (handover.cloned(), inbound.map(str::to_owned));
        let routed = self
            .lite_write(move |c, events| {
                let n = super::lite::query(c, ROUTE_PENDING_SQLITE_TASK)?
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
    /// executor, or left for triage with the reason).
    /// `inbound` as for [`Store::route_pending`].
    pub async fn annotate_pending(
        &self,
        task: &TaskId,
        executor: Option<&str>,
        reason: &str,
        at: Millis,
        inbound: Option<&str>,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE tasks SET executor = COALESCE($2, executor), routing_reason = $3, \
                         updated_at = $4 WHERE id = $1 AND status = 'pending'";
        const Q_PG: &str = "WITH m AS (UPDATE inbound_events SET routed_at = $4 \
            WHERE id = CAST($5 AS TEXT)), t AS (UPDATE tasks SET executor = COALESCE($2, executor), \
            routing_reason = $3, updated_at = $4 WHERE id = $1 AND status = 'pending' RETURNING id) \
            SELECT COUNT(*) FROM t";
        let n = match &self.db {
            super::Db::Postgres(p) => {
                sqlx::query_scalar::<_, i64>(Q_PG)
                    .bind(task.as_str())
                    .bind(executor)
                    .bind(reason)
                    .bind(at)
                    .bind(inbound)
                    .fetch_one(self.relaxed_or(p))
                    .await? as usize
            }
            super::Db::Sqlite(_) => {
                let (task, executor) = (task.clone(), executor.map(str::to_owned));
                let (reason, inbound) = (reason.to_owned(), inbound.map(str::to_owned));
                self.lite_write(move |c, _| {
                    let n = super::lite::query(c, Q)?
                        .bind(task.as_str())
                        .bind(executor.as_deref())
                        .bind(reason.as_str())
                        .bind(at)
                        .execute()?;
                    if let Some(id) = &inbound {
                        mark_routed_lite(c, id, at)?;
                    }
                    Ok(n)
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
    bind_new_task!(super::lite::query(c, super::tasks::INSERT_TASK)?, h.row).execute()?;
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
    super::lite::query(c, MARK_ROUTED)?
        .bind(event_id)
        .bind(at)
        .execute()
}
