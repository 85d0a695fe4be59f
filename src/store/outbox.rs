//! `task_outbox` (every store) and the fan-out into `deliveries` (the root store).
//!
//! The outbox is filled by triggers on `tasks` (migration 12), so whatever path wrote a task
//! recorded its event in the same transaction. The dispatcher reads it in `seq` order, inserts
//! deliveries with `ON CONFLICT (event_id, executor_id) DO NOTHING` and only then deletes the
//! rows it read: a crash in between re-reads them and inserts nothing twice.

use sqlx::Connection;

use super::rows::json;
use super::{Store, StoreResult, binds, on_reader, on_writer, sqlite};
use crate::domain::Millis;

/// One event recorded by the outbox triggers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEntry {
    pub seq: i64,
    pub id: String,
    pub task_id: String,
    pub instance_id: String,
    pub event: String,
    pub at: Millis,
}

/// A delivery about to be written by the dispatcher.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub executor_id: String,
    pub event_id: String,
    pub event: String,
    pub task_id: String,
    pub instance_id: String,
    pub payload: String,
    pub lease_id: Option<String>,
    pub at: Millis,
}

/// What delivery needs to know of an executor with a webhook, secrets included: read by the
/// dispatcher and the worker only, never shown (its `Debug` leaves the secrets out).
#[derive(Clone)]
pub struct DeliveryTarget {
    pub id: String,
    pub name: String,
    pub project: String,
    pub capabilities: Vec<String>,
    pub webhook_url: String,
    pub events: Vec<String>,
    pub auto_claim: bool,
    pub enabled: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Millis>,
}

impl std::fmt::Debug for DeliveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryTarget")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("project", &self.project)
            .field("webhook_url", &self.webhook_url)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl DeliveryTarget {
    pub fn can_take(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.capabilities.contains(r))
    }

    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }

    /// The secrets that sign at `now`: the current one, and the previous one during its grace.
    pub fn signing_secrets(&self, now: Millis) -> Vec<&str> {
        let mut v = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > now
        {
            v.push(prev.as_str());
        }
        v
    }
}

const DELIVERY_INSERT_COLUMNS: &str = "id, executor_id, event_id, event, task_id, instance_id, \
     payload, lease_id, status, attempts, next_attempt_at, created_at, updated_at";
/// Binds per row: `at` goes into `next_attempt_at`, `created_at` and `updated_at`, bound once
/// for each (each placeholder appears once: see `binds`).
const DELIVERY_INSERT_WIDTH: usize = 11;
/// Rows per multi-row statement: well under both drivers' bind limits.
const CHUNK: usize = 200;

impl Store {
    /// The oldest `limit` outbox entries.
    pub async fn outbox_batch(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        const Q: &str = "SELECT seq, id, task_id, instance_id, event, at FROM task_outbox \
                         ORDER BY seq LIMIT $1";
        Ok(on_reader!(self, p => sqlx::query_as(Q).bind(limit).fetch_all(p).await?))
    }

    /// Lets the outbox triggers record in this database from now on (migration 12's
    /// `outbox_wanted`). Through the durable write path: once it returns, every task write that
    /// follows records its event. Idempotent.
    pub async fn want_outbox(&self) -> StoreResult<()> {
        const Q: &str = "INSERT INTO outbox_wanted (id) VALUES (1) ON CONFLICT DO NOTHING";
        on_writer!(self, c => {
            sqlx::query(Q).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Whether the outbox triggers record in this database.
    pub async fn outbox_wanted(&self) -> StoreResult<bool> {
        const Q: &str = "SELECT 1 FROM outbox_wanted LIMIT 1";
        let row: Option<i32> =
            on_reader!(self, p => sqlx::query_scalar(Q).fetch_optional(p).await?);
        Ok(row.is_some())
    }

    /// Whether an enabled executor with a webhook is registered here (the root store): someone
    /// the outbox can reach.
    pub async fn has_webhook_executor(&self) -> StoreResult<bool> {
        const Q: &str = "SELECT 1 FROM executors WHERE webhook_url IS NOT NULL AND enabled \
                         LIMIT 1";
        let row: Option<i32> =
            on_reader!(self, p => sqlx::query_scalar(Q).fetch_optional(p).await?);
        Ok(row.is_some())
    }

    /// Whether this store may have outbox rows the dispatcher has not seen: on SQLite,
    /// whether it was written since the last call (`SqliteBackend::take_written`); always on
    /// PostgreSQL, which other processes write too.
    pub fn take_written(&self) -> bool {
        match &self.backend {
            super::Backend::Sqlite(b) => b.take_written(),
            super::Backend::Postgres(_) => true,
        }
    }

    /// Whether anything waits in the outbox (an idle project store must not close before).
    pub async fn outbox_pending(&self) -> StoreResult<bool> {
        const Q: &str = "SELECT seq FROM task_outbox LIMIT 1";
        let row: Option<i64> =
            on_reader!(self, p => sqlx::query_scalar(Q).fetch_optional(p).await?);
        Ok(row.is_some())
    }

    /// Drops every outbox event (a store nobody is told about, closing).
    pub async fn outbox_clear(&self) -> StoreResult<()> {
        on_writer!(self, c => {
            sqlx::query("DELETE FROM task_outbox").execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Relaxed on PostgreSQL: a lost delete reads the entries again, and the deliveries they
    /// make are there already (`insert_deliveries` keeps a row for its event and executor).
    pub async fn outbox_delete(&self, seqs: &[i64]) -> StoreResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        if let super::Backend::Sqlite(b) = &self.backend {
            let seqs = seqs.to_vec();
            return b
                .commit_unsynced(move |c, _| delete_outbox_lite(c, &seqs))
                .await;
        }
        on_writer!(relaxed self, c => {
            let mut tx = c.begin().await?;
            delete_outbox!(&mut *tx, seqs);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Inserts `rows` (a row already there for its event and executor is kept) and deletes the
    /// outbox entries `seqs` of this same store, in one transaction.
    ///
    /// Relaxed on PostgreSQL: a crash that loses this commit loses the outbox deletion with it,
    /// so the dispatcher moves the same entries again (PostgreSQL never reorders commits: a
    /// claim or attempt of these rows that survived implies this commit did). Waiting for the
    /// WAL flush here put every fsync stall of the server (58-70 ms on this machine's disk)
    /// between a webhook's 2xx and its delivery: paced p99 55-115 ms.
    ///
    /// On SQLite in the group commit, a statement per row (a function call there), and
    /// durable: the other stores' outbox rows are deleted once this returns, in other files
    /// whose fsyncs do not cover this one's, so a move lost in a power cut after their delete
    /// would lose the events.
    pub async fn insert_deliveries(&self, rows: &[NewDelivery], seqs: &[i64]) -> StoreResult<u64> {
        if rows.is_empty() && seqs.is_empty() {
            return Ok(0);
        }
        if let super::Backend::Sqlite(b) = &self.backend {
            let (rows, seqs) = (rows.to_vec(), seqs.to_vec());
            return b
                .commit(move |c, _| {
                    let mut inserted = 0u64;
                    for r in &rows {
                        inserted += sqlite::query(c, &LITE_INSERT_DELIVERY)?
                            .bind(r.id.as_str())
                            .bind(r.executor_id.as_str())
                            .bind(r.event_id.as_str())
                            .bind(r.event.as_str())
                            .bind(r.task_id.as_str())
                            .bind(r.instance_id.as_str())
                            .bind(r.payload.as_str())
                            .bind(r.lease_id.as_deref())
                            .bind(r.at)
                            .bind(r.at)
                            .bind(r.at)
                            .execute()? as u64;
                    }
                    delete_outbox_lite(c, &seqs)?;
                    Ok(inserted)
                })
                .await;
        }
        on_writer!(relaxed self, c => {
            let mut tx = c.begin().await?;
            let mut inserted = 0;
            for chunk in rows.chunks(CHUNK) {
                let q = insert_deliveries_sql(chunk.len());
                let q = binds::for_conn(&*tx, &q);
                let mut q = sqlx::query(&q);
                for r in chunk {
                    q = q
                        .bind(&r.id)
                        .bind(&r.executor_id)
                        .bind(&r.event_id)
                        .bind(&r.event)
                        .bind(&r.task_id)
                        .bind(&r.instance_id)
                        .bind(&r.payload)
                        .bind(&r.lease_id)
                        .bind(r.at)
                        .bind(r.at)
                        .bind(r.at);
                }
                inserted += q.execute(&mut *tx).await?.rows_affected();
            }
            delete_outbox!(&mut *tx, seqs);
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Every executor with a webhook (enabled or not), secrets included.
    pub async fn delivery_targets(&self) -> StoreResult<Vec<DeliveryTarget>> {
        const Q: &str = "SELECT id, name, project, capabilities, webhook_url, events, auto_claim, \
             enabled, secret, previous_secret, previous_secret_until FROM executors \
             WHERE webhook_url IS NOT NULL";
        let rows: Vec<TargetRow> = on_reader!(self, p => sqlx::query_as(Q).fetch_all(p).await?);
        rows.into_iter()
            .map(|r| {
                Ok(DeliveryTarget {
                    id: r.id,
                    name: r.name,
                    project: r.project,
                    capabilities: json("executors.capabilities", &r.capabilities)?,
                    webhook_url: r.webhook_url,
                    events: json("executors.events", &r.events)?,
                    auto_claim: r.auto_claim,
                    enabled: r.enabled,
                    secret: r.secret,
                    previous_secret: r.previous_secret,
                    previous_secret_until: r.previous_secret_until,
                })
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: String,
    name: String,
    project: String,
    capabilities: String,
    webhook_url: String,
    events: String,
    auto_claim: bool,
    enabled: bool,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<Millis>,
}

/// Deletes the outbox rows `$seqs` inside the caller's transaction.
macro_rules! delete_outbox {
    ($exec:expr, $seqs:expr) => {
        for chunk in $seqs.chunks(CHUNK) {
            let q = format!(
                "DELETE FROM task_outbox WHERE seq IN ({})",
                placeholders(1, chunk.len())
            );
            let q = $crate::store::binds::for_conn(&*$exec, &q);
            let mut q = sqlx::query(&q);
            for s in chunk {
                q = q.bind(*s);
            }
            q.execute($exec).await?;
        }
    };
}
use delete_outbox;

/// `$start, …` for `n` binds.
pub(in crate::store) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outbox rows `seqs` deleted on the SQLite writer.
fn delete_outbox_lite(c: &rusqlite::Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    for s in seqs {
        sqlite::query(c, "DELETE FROM task_outbox WHERE seq = $1")?
            .bind(*s)
            .execute()?;
    }
    Ok(())
}

static LITE_INSERT_DELIVERY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_deliveries_sql(1));

fn insert_deliveries_sql(n: usize) -> String {
    let mut s = format!("INSERT INTO deliveries ({DELIVERY_INSERT_COLUMNS}) VALUES ");
    for i in 0..n {
        let b = i * DELIVERY_INSERT_WIDTH;
        if i > 0 {
            s.push_str(", ");
        }
        // status 'pending', no attempt yet, due at once (the schedule's first delay applies
        // from the worker's side: `next_delay(.., 0, ..)` is asked only after a failure).
        s.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10,
            b + 11
        ));
    }
    s.push_str(" ON CONFLICT (event_id, executor_id) DO NOTHING");
    s
}

/// Direct writes of executor rows, for tests and benchmarks that need executors without the
/// registration API (which checks what these do not).
impl Store {
    #[doc(hidden)]
    pub async fn put_executor(
        &self,
        e: &crate::domain::Executor,
        secret: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const Q: &str = "INSERT INTO executors (id, name, kind, project, capabilities, \
             webhook_url, events, auto_claim, enabled, secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";
        let caps = serde_json::to_string(&e.capabilities).unwrap_or_else(|_| "[]".into());
        let events = serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into());
        on_writer!(self, c => {
            sqlx::query(Q)
                .bind(e.id.as_str())
                .bind(&e.name)
                .bind(e.kind.as_str())
                .bind(e.project.as_str())
                .bind(&caps)
                .bind(&e.webhook_url)
                .bind(&events)
                .bind(e.auto_claim)
                .bind(e.enabled)
                .bind(secret)
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok::<(), super::StoreError>(())
        })?;
        // As registration does, for this store; `Engine::refresh_outbox_wanted` carries it to
        // the engine's other stores.
        if e.webhook_url.is_some() {
            self.want_outbox().await?;
        }
        Ok(())
    }

    /// Sets an executor's secret, the old one signing too until `previous_until`.
    #[doc(hidden)]
    pub async fn put_executor_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: Millis,
    ) -> StoreResult<()> {
        const Q: &str = "UPDATE executors SET previous_secret = secret, secret = $2, \
                         previous_secret_until = $3 WHERE id = $1";
        on_writer!(self, c => {
            sqlx::query(Q).bind(id).bind(secret).bind(previous_until).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// `(enabled, disabled_reason)` of an executor, and its `executor_events` kinds.
    #[doc(hidden)]
    pub async fn executor_state(
        &self,
        id: &str,
    ) -> StoreResult<Option<(bool, Option<String>, Vec<String>)>> {
        const Q: &str = "SELECT enabled, disabled_reason FROM executors WHERE id = $1";
        const EV: &str = "SELECT kind FROM executor_events WHERE executor_id = $1 ORDER BY id";
        let row: Option<(bool, Option<String>)> =
            on_reader!(self, p => sqlx::query_as(Q).bind(id).fetch_optional(p).await?);
        let events: Vec<String> =
            on_reader!(self, p => sqlx::query_scalar(EV).bind(id).fetch_all(p).await?);
        Ok(row.map(|(e, r)| (e, r, events)))
    }
}
