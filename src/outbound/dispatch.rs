//! The dispatcher: outbox events → deliveries.
//!
//! Every open store's `task_outbox` is read in `seq` order, in batches (all stores at once).
//! The tasks of a batch are read in one statement, and each event is matched against the
//! executors with a webhook: enabled, serving the task's project (`Engine::project_of`), able
//! to take it (`can_take`), reserved for them if the task names an executor, and subscribed to
//! the event. The round's deliveries are inserted into the root store in one transaction with
//! `ON CONFLICT (event_id, executor_id) DO NOTHING`, then the outbox rows are deleted (in that
//! same transaction for the root store's own). A crash in between reads the same rows again
//! and inserts nothing twice: no event is lost or duplicated.
//!
//! **auto_claim.** On `task.available` one eligible auto-claim executor (picked by the task
//! id's hash, so a re-run picks the same one) gets the task claimed under its name and a
//! `task.assigned` delivery carrying the `lease_id`. If the task is already claimed by one of
//! them (a crash between the claim and the insert), its lease is reused. An executor whose
//! delivery of the task died (and whose claim was therefore released) is not picked again. The
//! claim's own `task.assigned` outbox event is not sent to that claimer again. A `task.available` whose task
//! is no longer pending when dispatched is not sent: the later events say what happened.
//!
//! **Waking.** The engine pokes `Engine::outbox_signal` after its task writes; a short poll
//! covers the rest (the background routing of other paths, other processes on PostgreSQL).
//! Once it has inserted deliveries the dispatcher pokes the worker (`Engine::deliveries_due`).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::domain::{InstanceId, Task, TaskId, TaskStatus, events, millis_to_rfc3339, now_millis};
use crate::engine::{Engine, MAX_HOLD};
use crate::error::{HopperError, Result};
use crate::store::{DeliveryTarget, NewDelivery, OutboxEntry, Store};

/// Outbox rows read per statement at most.
const BATCH: i64 = 256;
/// Outbox rows a round aims to read over all stores.
const ROUND: i64 = 2_048;

/// Runs until `shutdown`: a pass whenever the engine says it wrote, or every `poll`.
pub async fn run(engine: Engine, poll: Duration, shutdown: CancellationToken) {
    let signal = engine.outbox_signal();
    let mut look = Look::All;
    let mut executors = Executors::default();
    loop {
        hold_for_reports(&engine, &mut executors, &shutdown).await;
        match dispatch(&engine, look).await {
            // More may be waiting behind a full batch: go again at once.
            Ok(n) if n > 0 => {
                look = Look::Written;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbound dispatch failed; retrying"),
        }
        // A failed pass may have cleared flags of stores it did not finish: the poll's full
        // look covers them.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = signal.notified() => look = Look::Written,
            _ = tokio::time::sleep(poll) => {
                look = Look::All;
                // Idle: another process may have registered an executor, which this
                // process's own in-memory runs cannot see in the shared database. One read of
                // a small table per poll, and none once the flag is set.
                if let Err(e) = engine.refresh_outbox_wanted().await {
                    tracing::warn!(error = %e, "could not read the executors; retrying");
                }
            }
        }
    }
}

/// Whether an enabled executor has a webhook, as read at most once a second (a burst with
/// executors would otherwise read them before every pass).
#[derive(Default)]
struct Executors(Option<(std::time::Instant, bool)>);

impl Executors {
    async fn any(&mut self, engine: &Engine) -> bool {
        if let Some((at, any)) = self.0
            && at.elapsed() < Duration::from_secs(1)
        {
            return any;
        }
        // Unknown: nobody is held back on a guess.
        let any = match engine.registry_store().delivery_targets().await {
            Ok(t) => t.iter().any(|t| t.enabled),
            Err(_) => true,
        };
        self.0 = Some((std::time::Instant::now(), any));
        any
    }
}

/// With nobody to deliver to but the sources' reporters, a pass waits out a burst of ingest
/// first (`engine/pace.rs`); deliveries to executors never wait.
async fn hold_for_reports(
    engine: &Engine,
    executors: &mut Executors,
    shutdown: &CancellationToken,
) {
    if !engine.ingest_pace().busy() || executors.any(engine).await {
        return;
    }
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = engine.ingest_pace().wait_out(MAX_HOLD) => {}
    }
}

/// One pass over every open store; returns how many outbox events it handled. Public so tests
/// and benchmarks can drive it without a server.
pub async fn dispatch_all(engine: &Engine) -> Result<usize> {
    dispatch(engine, Look::All).await
}

/// Which stores a pass reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Every open store (the idle poll: another process may have written).
    All,
    /// The root and the stores written since the last look (`Store::take_written`).
    Written,
}

///
/// A round reads every store's outbox (concurrently), writes all the deliveries in one root
/// transaction (which also deletes the root's own outbox rows), wakes the worker, and only then
/// deletes the other stores' rows, concurrently. A write per store with events, one after the
/// other, each waiting for its own fsync, was what made the first delivery wait: with tasks
/// spread over 100 projects at 1,000/s that was up to 100 fsyncs in a row per round.
async fn dispatch(engine: &Engine, look: Look) -> Result<usize> {
    let root = engine.registry_store().clone();
    let mut stores = vec![root.clone()];
    for s in engine.stores().all().await {
        if s.key() != root.key() && (s.take_written() || look == Look::All) {
            stores.push(s);
        }
    }
    let mut targets: Option<Vec<DeliveryTarget>> = None;
    let mut handled = 0;
    // A round takes about `ROUND` events over all stores, so a deep backlog goes out in
    // slices the worker can send while the next one is planned (one round of 100 × 256 held
    // every first delivery back until 25,600 rows were written).
    let per_store = (ROUND / stores.len() as i64).clamp(16, BATCH);
    loop {
        let reads = join_all(stores.iter().map(|s| s.outbox_batch(per_store))).await;
        let mut rows = Vec::new();
        let mut root_seqs = Vec::new();
        let mut others: Vec<(&Store, Vec<i64>)> = Vec::new();
        let mut more = Vec::new();
        for (store, batch) in stores.iter().zip(reads) {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            let targets = match &targets {
                Some(t) => t,
                None => targets.insert(root.delivery_targets().await?),
            };
            if batch.len() == per_store as usize {
                more.push(store.clone());
            }
            handled += batch.len();
            rows.extend(plan(engine, store, &batch, targets).await?);
            rows.extend(crate::reports::plan(engine, store, &batch).await?);
            let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
            if store.key() == root.key() {
                root_seqs = seqs;
            } else {
                others.push((store, seqs));
            }
        }
        if root_seqs.is_empty() && others.is_empty() {
            break;
        }
        let inserted = root.insert_deliveries(&rows, &root_seqs).await?;
        if inserted > 0 {
            engine.deliveries_due();
            metrics::counter!("hopper_deliveries_created_total").increment(inserted);
        }
        // A crash before these deletes reads the rows again and inserts nothing twice.
        for deleted in join_all(others.iter().map(|(s, seqs)| s.outbox_delete(seqs))).await {
            deleted?;
        }
        // More may be waiting behind a full slice: go again at once, for those stores.
        if more.is_empty() {
            break;
        }
        stores = more;
    }
    Ok(handled)
}

/// The deliveries a batch of `store`'s outbox makes (claiming for auto-claim executors on
/// the way), without writing them: the first half of a `dispatch_all` round, public so a test can
/// stop between it and the outbox delete, as a crash would.
pub async fn plan(
    engine: &Engine,
    store: &Store,
    batch: &[OutboxEntry],
    targets: &[DeliveryTarget],
) -> Result<Vec<NewDelivery>> {
    let mut rows = Vec::new();
    if !targets.iter().any(|t| t.enabled) {
        return Ok(rows);
    }
    // First the events somebody serves, then their tasks in one read: a read per event was
    // a round trip to a reader connection's thread each, 256 in a row per batch. With the
    // worker's unsynced claims and its own wake-up, the SQLite burst of `benches/outbound`
    // went from 1,445 to 2,640 deliveries/s (same machine, load ~8).
    let mut wanted: Vec<(&OutboxEntry, TaskId, Vec<&DeliveryTarget>)> = Vec::new();
    for entry in batch {
        if let Some((task_id, serving)) = serving(engine, entry, targets).await? {
            wanted.push((entry, task_id, serving));
        }
    }
    if wanted.is_empty() {
        return Ok(rows);
    }
    let mut ids: Vec<&str> = wanted.iter().map(|(_, id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tasks = store.get_tasks(&ids).await?;
    for (entry, task_id, serving) in wanted {
        // A task gone since has nothing to tell.
        let Some(task) = tasks.get_mut(task_id.as_str()) else {
            continue;
        };
        fan_out(engine, entry, task, serving, &mut rows).await?;
    }
    Ok(rows)
}

/// The task of `entry` and the enabled targets serving its project; `None` when nobody does.
async fn serving<'t>(
    engine: &Engine,
    entry: &OutboxEntry,
    targets: &'t [DeliveryTarget],
) -> Result<Option<(TaskId, Vec<&'t DeliveryTarget>)>> {
    let (Ok(instance), Ok(task_id)) = (
        InstanceId::parse(&entry.instance_id),
        TaskId::parse(&entry.task_id),
    ) else {
        return Ok(None);
    };
    let project = match engine.project_of(&instance).await {
        Ok(Some(p)) => p,
        // The root (no project serves it) or an instance gone since: nobody to tell.
        Ok(None) | Err(HopperError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let serving: Vec<&DeliveryTarget> = targets
        .iter()
        .filter(|t| t.enabled && t.project == project.as_str())
        .collect();
    Ok((!serving.is_empty()).then_some((task_id, serving)))
}

/// The deliveries of one event, given its task as read for the batch. An auto-claim updates
/// `task` in place, so a later event of the same batch sees the claim as a fresh read would.
async fn fan_out(
    engine: &Engine,
    entry: &OutboxEntry,
    task: &mut Task,
    mut serving: Vec<&DeliveryTarget>,
    rows: &mut Vec<NewDelivery>,
) -> Result<()> {
    serving.retain(|t| {
        t.can_take(&task.required_capabilities)
            && task.executor.as_deref().is_none_or(|e| e == t.name)
    });
    let event = entry.event.as_str();
    if event == events::TASK_AVAILABLE {
        let mut autos: Vec<&DeliveryTarget> =
            serving.iter().copied().filter(|t| t.auto_claim).collect();
        if !autos.is_empty() && task.status == TaskStatus::Pending {
            let failed = engine
                .registry_store()
                .executors_failed_on(task.id.as_str())
                .await?;
            autos.retain(|t| !failed.contains(&t.id));
        }
        if let Some((t, claimed)) = auto_claim(engine, task, &autos).await? {
            rows.push(delivery(t, entry, events::TASK_ASSIGNED, &claimed));
            *task = claimed;
        }
        if task.status != TaskStatus::Pending {
            return Ok(());
        }
        serving.retain(|t| !t.auto_claim);
    }
    for t in serving {
        let own_claim = event == events::TASK_ASSIGNED
            && t.auto_claim
            && task.claimed_by.as_deref() == Some(t.name.as_str());
        if t.wants(event) && !own_claim {
            rows.push(delivery(t, entry, event, task));
        }
    }
    Ok(())
}

/// Claims `task` for one of `autos`, or finds the claim one of them already holds.
async fn auto_claim<'t>(
    engine: &Engine,
    task: &Task,
    autos: &[&'t DeliveryTarget],
) -> Result<Option<(&'t DeliveryTarget, Task)>> {
    if autos.is_empty() {
        return Ok(None);
    }
    if task.status == TaskStatus::Claimed {
        let holder = autos
            .iter()
            .find(|t| task.claimed_by.as_deref() == Some(t.name.as_str()));
        return Ok(holder.map(|t| (*t, task.clone())));
    }
    if task.status != TaskStatus::Pending {
        return Ok(None);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task.id.as_str().hash(&mut h);
    let pick = autos[(h.finish() % autos.len() as u64) as usize];
    match engine.claim(&task.id, &pick.name).await {
        Ok(claimed) => Ok(Some((pick, claimed))),
        // Someone else was quicker, or the task changed: the later events tell.
        Err(
            HopperError::Conflict(_)
            | HopperError::Forbidden(_)
            | HopperError::LeaseLost(_)
            | HopperError::NotFound(_)
            | HopperError::Invalid(_),
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The Standard Webhooks body for `t`: `{type, timestamp, data: {task, instance_id, executor,
/// lease_id?, lease_expires_at?}}`.
fn delivery(t: &DeliveryTarget, entry: &OutboxEntry, event: &str, task: &Task) -> NewDelivery {
    let mut data = json!({
        "task": task,
        "instance_id": task.instance_id,
        "executor": t.name,
    });
    let lease = (event == events::TASK_ASSIGNED && t.auto_claim)
        .then(|| task.lease_id.clone())
        .flatten();
    if let Some(l) = &lease {
        data["lease_id"] = json!(l);
        data["lease_expires_at"] = json!(task.lease_expires_at);
    }
    let payload = json!({
        "type": event,
        "timestamp": millis_to_rfc3339(entry.at),
        "data": data,
    });
    NewDelivery {
        id: new_message_id(),
        executor_id: t.id.clone(),
        event_id: entry.id.clone(),
        event: event.to_owned(),
        task_id: task.id.as_str().to_owned(),
        instance_id: task.instance_id.as_str().to_owned(),
        payload: payload.to_string(),
        lease_id: lease,
        at: now_millis(),
    }
}

/// A Standard Webhooks message id: `msg_<uuidv7>`.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}
