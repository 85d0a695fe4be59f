//! `deliveries` and `delivery_attempts` (the root store): the worker's claims and results, the
//! executor bookkeeping that follows from them, and the reads and repairs of the API.
//!
//! **Claims.** One statement marks a batch of due rows with the worker's id and a lock
//! deadline (`UPDATE … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED]) RETURNING`), so several
//! processes on one PostgreSQL never send the same attempt twice, and rows of a process killed
//! mid-delivery are claimed again once `locked_until` has passed. At most `per_executor` rows
//! per executor per batch, and none of executors already saturated or disabled: one slow
//! endpoint cannot fill the batch.
//!
//! **Results** are written many per transaction, in multi-row statements (`UPDATE … FROM
//! (VALUES …)`, which SQLite ≥ 3.33 and PostgreSQL both take; `VALUES` columns are called
//! `column1…` in both): one statement per 200 attempts instead of two per attempt. On SQLite
//! claims and results run in the group commit instead (`SqliteBackend::commit_unsynced` and
//! `commit`), a statement per row: there a statement is a function call, and sharing the task
//! writes' transactions spares the writer a turn of its own per write.

use sqlx::Connection;

use super::outbox::placeholders;
use super::{Store, StoreResult, binds, on_reader, on_writer, sqlite};
use crate::domain::{
    Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStatus, Millis, millis_to_rfc3339,
};
use crate::store::StoreError;

const CHUNK: usize = 200;

/// A delivery a worker has claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: String,
    pub executor_id: String,
    pub event: String,
    pub task_id: String,
    pub payload: String,
    pub lease_id: Option<String>,
    pub attempts: i64,
    pub created_at: Millis,
}

/// The outcome of one attempt, and what it does to the delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub at: Millis,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response: Option<String>,
    pub error: Option<String>,
    pub new_status: DeliveryStatus,
    pub next_attempt_at: Millis,
}

const DELIVERY_COLUMNS: &str = "id, executor_id, event_id, event, task_id, instance_id, lease_id, \
     status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, \
     delivered_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    executor_id: String,
    event_id: String,
    event: String,
    task_id: String,
    instance_id: String,
    lease_id: Option<String>,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> StoreResult<Delivery> {
        Ok(Delivery {
            id: r.id,
            executor_id: r.executor_id,
            event_id: r.event_id,
            event: r.event,
            task_id: r.task_id,
            instance_id: r.instance_id,
            lease_id: r.lease_id,
            status: r
                .status
                .parse()
                .map_err(|e: String| StoreError::Corrupt(format!("deliveries.status: {e}")))?,
            attempts: r.attempts,
            next_attempt_at: millis_to_rfc3339(r.next_attempt_at),
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: millis_to_rfc3339(r.created_at),
            updated_at: millis_to_rfc3339(r.updated_at),
            delivered_at: r.delivered_at.map(millis_to_rfc3339),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    at: i64,
    status_code: Option<i64>,
    latency_ms: i64,
    response: Option<String>,
    error: Option<String>,
}

impl Store {
    /// Claims up to `limit` due deliveries for `worker` until `lock_until`, oldest first,
    /// taking at most `room` of each executor of `executors` (`(id, room)`: an executor at
    /// its limit is left out by the caller, a disabled one too).
    ///
    /// One index probe per executor (`ix_deliveries_executor_due`), not one scan of every
    /// due row: with 100,000 messages due to executors at their concurrency limit, the single
    /// scan read them all on every claim, and a claim follows every freed slot (the RSS run of
    /// `benches/outbound` did not finish in ten minutes).
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        now: Millis,
        lock_until: Millis,
        limit: i64,
        executors: &[(String, i64)],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if executors.is_empty() || limit <= 0 {
            return Ok(Vec::new());
        }
        match &self.backend {
            // Not durable, on purpose: see `SqliteBackend::commit_unsynced`.
            super::Backend::Sqlite(b) => {
                let list = serde_json::Value::from(
                    executors
                        .iter()
                        .map(|(id, room)| serde_json::json!([id, room]))
                        .collect::<Vec<_>>(),
                )
                .to_string();
                let most = executors.iter().map(|(_, r)| *r).max().unwrap_or(0);
                let worker = worker.to_owned();
                b.commit_unsynced(move |c, _| {
                    sqlite::query(c, &SQLITE_CLAIM)?
                        .bind(worker.as_str())
                        .bind(lock_until)
                        .bind(list.as_str())
                        .bind(now)
                        .bind(most)
                        .bind(limit)
                        .fetch_all(ClaimedDelivery::from_lite)
                })
                .await
            }
            // One statement whatever the number of executors, so it is prepared once. Relaxed,
            // as SQLite's is unsynced, and for the same reason.
            super::Backend::Postgres(b) => {
                let (ids, rooms): (Vec<&str>, Vec<i64>) =
                    executors.iter().map(|(id, r)| (id.as_str(), *r)).unzip();
                Ok(sqlx::query_as(PG_CLAIM.as_str())
                    .bind(worker)
                    .bind(lock_until)
                    .bind(&ids)
                    .bind(&rooms)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(b.relaxed())
                    .await?)
            }
        }
    }

    /// Writes attempts and their deliveries' new state, many per transaction. A row this
    /// worker no longer holds (its lock ran out and another took it) keeps the other's state;
    /// the attempt is recorded all the same, once.
    pub async fn record_attempts(&self, worker: &str, rows: &[AttemptRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // In the group commit on SQLite, a statement per row: there a statement is a function
        // call, and the batch shares its transaction (and fsync) with the task writes.
        if let super::Backend::Sqlite(b) = &self.backend {
            let (worker, rows) = (worker.to_owned(), rows.to_vec());
            return b
                .commit(move |c, _| {
                    for r in &rows {
                        record_attempt_lite(c, &worker, r)?;
                    }
                    Ok(())
                })
                .await;
        }
        on_writer!(self, c => {
            let mut tx = c.begin().await?;
            for chunk in rows.chunks(CHUNK) {
                let q = insert_attempts_sql(chunk.len());
                let q = binds::for_conn(&*tx, &q);
                let mut q = sqlx::query(&q);
                for r in chunk {
                    q = q
                        .bind(&r.delivery_id)
                        .bind(r.attempt)
                        .bind(r.at)
                        .bind(r.status_code)
                        .bind(r.latency_ms)
                        .bind(&r.response)
                        .bind(&r.error);
                }
                q.execute(&mut *tx).await?;
                let q = update_deliveries_sql(chunk.len());
                let q = binds::for_conn(&*tx, &q);
                let mut q = sqlx::query(&q);
                for r in chunk {
                    let delivered = (r.new_status == DeliveryStatus::Delivered).then_some(r.at);
                    q = q
                        .bind(&r.delivery_id)
                        .bind(r.new_status.as_str())
                        .bind(r.attempt)
                        .bind(r.next_attempt_at)
                        .bind(r.status_code)
                        .bind(&r.error)
                        .bind(delivered)
                        .bind(r.at);
                }
                q.bind(worker).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Gives claimed rows back without an attempt (the worker is stopping, or the executor was
    /// disabled meanwhile).
    pub async fn unlock_deliveries(&self, worker: &str, ids: &[String]) -> StoreResult<()> {
        for chunk in ids.chunks(CHUNK) {
            let q = format!(
                "UPDATE deliveries SET locked_by = NULL, locked_until = NULL \
                 WHERE locked_by = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            on_writer!(self, c => {
                let mut q = sqlx::query(&q).bind(worker);
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(&mut *c).await?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Ends a delivery without an attempt (an auto-claim delivery whose lease is gone).
    pub async fn end_delivery(
        &self,
        id: &str,
        status: DeliveryStatus,
        reason: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const Q: &str = "UPDATE deliveries SET status = $2, last_error = $3, updated_at = $4, \
                         locked_by = NULL, locked_until = NULL WHERE id = $1";
        on_writer!(self, c => {
            sqlx::query(Q).bind(id).bind(status.as_str()).bind(reason).bind(now)
                .execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Executors that just delivered: their run of failures is over.
    pub async fn executors_succeeded(&self, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let q = format!(
            "UPDATE executors SET failing_since = NULL WHERE failing_since IS NOT NULL \
             AND id IN ({})",
            placeholders(1, ids.len())
        );
        on_writer!(self, c => {
            let mut q = sqlx::query(&q);
            for id in ids {
                q = q.bind(id);
            }
            q.execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Executors whose attempt just failed: starts their run of failures at `now`, and
    /// disables those failing since before `disable_before`; returns the ids disabled.
    pub async fn executors_failed(
        &self,
        ids: &[String],
        now: Millis,
        disable_before: Millis,
    ) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = placeholders(2, ids.len());
        let start = format!(
            "UPDATE executors SET failing_since = $1 WHERE failing_since IS NULL \
             AND id IN ({list})"
        );
        let stale = format!(
            "SELECT id FROM executors WHERE enabled AND failing_since < $1 AND id IN ({list})"
        );
        let stale: Vec<String> = on_writer!(self, c => {
            let mut q = sqlx::query(&start).bind(now);
            for id in ids {
                q = q.bind(id);
            }
            q.execute(&mut *c).await?;
            let mut q = sqlx::query_scalar(&stale).bind(disable_before);
            for id in ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&mut *c).await?)
        })?;
        let mut disabled = Vec::new();
        for id in stale {
            let reason = "every delivery failed for longer than \
                          outbound.disable_after_failing_seconds";
            if self
                .set_executor_enabled(&id, false, Some(reason), now)
                .await?
            {
                disabled.push(id);
            }
        }
        Ok(disabled)
    }

    pub async fn list_deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let q = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE ($1 IS NULL OR executor_id = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR task_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        let rows: Vec<DeliveryRow> = on_reader!(self, p => sqlx::query_as(&q)
            .bind(f.executor.as_deref())
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.task.as_deref())
            .bind(limit)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(Delivery::try_from).collect()
    }

    /// A delivery and the body it signs.
    pub async fn get_delivery(&self, id: &str) -> StoreResult<Option<(Delivery, String)>> {
        let q = format!("SELECT {DELIVERY_COLUMNS}, payload FROM deliveries WHERE id = $1");
        let row: Option<(String, DeliveryRow)> = on_reader!(self, p => {
            use sqlx::Row;
            match sqlx::query(&q).bind(id).fetch_optional(p).await? {
                Some(r) => {
                    let payload: String = r.try_get("payload")?;
                    Some((payload, <DeliveryRow as sqlx::FromRow<_>>::from_row(&r)?))
                }
                None => None,
            }
        });
        row.map(|(p, r)| Ok((Delivery::try_from(r)?, p)))
            .transpose()
    }

    pub async fn delivery_attempts(&self, id: &str) -> StoreResult<Vec<DeliveryAttempt>> {
        const Q: &str = "SELECT attempt, at, status_code, latency_ms, response, error \
                         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt";
        let rows: Vec<AttemptRow> =
            on_reader!(self, p => sqlx::query_as(Q).bind(id).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| DeliveryAttempt {
                attempt: r.attempt,
                at: millis_to_rfc3339(r.at),
                status_code: r.status_code,
                latency_ms: r.latency_ms,
                response: r.response,
                error: r.error,
            })
            .collect())
    }

    /// A dead or pending delivery becomes due now (a delivered or cancelled one is left
    /// alone); false if it was neither.
    pub async fn retry_delivery(&self, id: &str, now: Millis) -> StoreResult<bool> {
        const Q: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, \
                         updated_at = $2, locked_by = NULL, locked_until = NULL \
                         WHERE id = $1 AND status IN ('pending', 'dead')";
        let n = on_writer!(self, c => Ok(sqlx::query(Q).bind(id).bind(now)
            .execute(&mut *c).await?.rows_affected()))?;
        Ok(n > 0)
    }

    /// Every dead delivery of `executor` created since `since` becomes due now.
    pub async fn recover_deliveries(
        &self,
        executor: &str,
        since: Millis,
        now: Millis,
    ) -> StoreResult<u64> {
        const Q: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, \
                         updated_at = $3, locked_by = NULL, locked_until = NULL \
                         WHERE executor_id = $1 AND status = 'dead' AND created_at >= $2";
        on_writer!(self, c => Ok(sqlx::query(Q).bind(executor).bind(since).bind(now)
            .execute(&mut *c).await?.rows_affected()))
    }

    /// Executors whose delivery of `task` died or was cancelled: auto-claim does not hand them
    /// the same task again (a released claim would otherwise come straight back to them).
    pub async fn executors_failed_on(&self, task: &str) -> StoreResult<Vec<String>> {
        const Q: &str = "SELECT DISTINCT executor_id FROM deliveries WHERE task_id = $1 \
                         AND status IN ('dead', 'cancelled')";
        Ok(on_reader!(self, p => sqlx::query_scalar(Q).bind(task).fetch_all(p).await?))
    }

    /// Undelivered (pending) messages per executor, and the creation time of the oldest.
    pub async fn delivery_backlog(&self) -> StoreResult<(Vec<(String, i64)>, Option<Millis>)> {
        // One pass for both: the oldest is the least of each executor's (the covering scan of
        // ix_deliveries_executor that the counts took anyway).
        const Q: &str = "SELECT executor_id, COUNT(*), MIN(created_at) FROM deliveries \
                         WHERE status = 'pending' GROUP BY executor_id";
        let rows: Vec<(String, i64, i64)> =
            on_reader!(self, p => sqlx::query_as(Q).fetch_all(p).await?);
        let oldest = rows.iter().map(|r| r.2).min();
        Ok((rows.into_iter().map(|(e, n, _)| (e, n)).collect(), oldest))
    }
}

fn insert_attempts_sql(n: usize) -> String {
    let mut s = String::from(
        "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, \
         response, error) VALUES ",
    );
    for i in 0..n {
        let b = i * 7;
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("({})", placeholders(b + 1, 7)));
    }
    s.push_str(" ON CONFLICT (delivery_id, attempt) DO NOTHING");
    s
}

fn update_deliveries_sql(n: usize) -> String {
    let mut s = String::from(
        "UPDATE deliveries SET status = v.column2, attempts = v.column3, \
         next_attempt_at = v.column4, last_status = v.column5, last_error = v.column6, \
         delivered_at = v.column7, updated_at = v.column8, locked_by = NULL, \
         locked_until = NULL FROM (VALUES ",
    );
    for i in 0..n {
        let b = 1 + i * 8;
        if i > 0 {
            s.push_str(", ");
        }
        // PostgreSQL types a VALUES list from its binds, which are untyped: say each.
        s.push_str(&format!(
            "(CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT), \
             CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
            b,
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    // The worker's id comes last: placeholders appear in bind order (see `binds`).
    s.push_str(&format!(
        ") AS v WHERE deliveries.id = v.column1 AND deliveries.locked_by = ${}",
        n * 8 + 1
    ));
    s
}

/// The claim on SQLite: per executor of the JSON list `[[id, room], ...]` its oldest due rows
/// (at most the largest room, then ranked down to its own), then the oldest `limit` of those.
/// One statement whatever the number of executors, so it is prepared once (a UNION ALL
/// branch per executor was a new statement for every count: SQLite burst 4,200-4,800/s).
/// One attempt and its delivery's new state, on the SQLite writer (`record_attempts`).
fn record_attempt_lite(
    c: &rusqlite::Connection,
    worker: &str,
    r: &AttemptRecord,
) -> rusqlite::Result<()> {
    sqlite::query(c, LITE_INSERT_ATTEMPT)?
        .bind(r.delivery_id.as_str())
        .bind(r.attempt)
        .bind(r.at)
        .bind(r.status_code)
        .bind(r.latency_ms)
        .bind(r.response.as_deref())
        .bind(r.error.as_deref())
        .execute()?;
    let delivered = (r.new_status == DeliveryStatus::Delivered).then_some(r.at);
    sqlite::query(c, LITE_UPDATE_DELIVERY)?
        .bind(r.delivery_id.as_str())
        .bind(r.new_status.as_str())
        .bind(r.attempt)
        .bind(r.next_attempt_at)
        .bind(r.status_code)
        .bind(r.error.as_deref())
        .bind(delivered)
        .bind(r.at)
        .bind(worker)
        .execute()?;
    Ok(())
}

const LITE_INSERT_ATTEMPT: &str = "INSERT INTO delivery_attempts (delivery_id, attempt, at, \
    status_code, latency_ms, response, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (delivery_id, attempt) DO NOTHING";

const LITE_UPDATE_DELIVERY: &str = "UPDATE deliveries SET status = $2, attempts = $3, \
    next_attempt_at = $4, last_status = $5, last_error = $6, delivered_at = $7, updated_at = $8, \
    locked_by = NULL, locked_until = NULL WHERE id = $1 AND locked_by = $9";

impl ClaimedDelivery {
    /// A row of [`CLAIMED_COLUMNS`] read on the SQLite writer.
    pub(in crate::store) fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            executor_id: r.get(1)?,
            event: r.get(2)?,
            task_id: r.get(3)?,
            payload: r.get(4)?,
            lease_id: r.get(5)?,
            attempts: r.get(6)?,
            created_at: r.get(7)?,
        })
    }
}

static SQLITE_CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE deliveries SET locked_by = $1, locked_until = $2 WHERE id IN (\
         SELECT id FROM (SELECT d.id, d.next_attempt_at, e.value ->> 1 AS room, \
         ROW_NUMBER() OVER (PARTITION BY d.executor_id ORDER BY d.next_attempt_at, d.id) AS rn \
         FROM json_each($3) AS e, deliveries AS d WHERE d.id IN (\
         SELECT x.id FROM deliveries AS x WHERE x.executor_id = e.value ->> 0 \
         AND x.status = 'pending' AND x.next_attempt_at <= $4 \
         AND (x.locked_until IS NULL OR x.locked_until < $4) \
         ORDER BY x.next_attempt_at LIMIT $5) \
         AND d.executor_id IN ({ENABLED})) AS due \
         WHERE rn <= room ORDER BY next_attempt_at LIMIT $6) RETURNING {CLAIMED_COLUMNS}"
    )
});

/// The claim on PostgreSQL: the same, executor by executor through `LATERAL`, each row
/// locked with `SKIP LOCKED` so processes sharing the database never claim the same one.
static PG_CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE deliveries SET locked_by = $1, locked_until = $2 WHERE id IN (\
         SELECT d.id FROM unnest($3::text[], $4::bigint[]) AS e(id, room) \
         JOIN ({ENABLED}) AS x ON x.id = e.id CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM deliveries \
         WHERE executor_id = e.id AND status = 'pending' AND next_attempt_at <= $5 \
         AND (locked_until IS NULL OR locked_until < $5) \
         ORDER BY next_attempt_at LIMIT e.room FOR UPDATE SKIP LOCKED) AS d \
         ORDER BY d.next_attempt_at LIMIT $6) RETURNING {CLAIMED_COLUMNS}"
    )
});

/// Whom a claim may send to, checked in the claim itself: the caller's list of executors may
/// be older than a disable (410 Gone, failing too long, an admin) that came in between.
const ENABLED: &str = "SELECT id FROM executors WHERE enabled AND webhook_url IS NOT NULL";

/// What a claim returns: a `ClaimedDelivery`.
const CLAIMED_COLUMNS: &str =
    "id, executor_id, event, task_id, payload, lease_id, attempts, created_at";
