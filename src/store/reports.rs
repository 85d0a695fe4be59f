//! Report rows (`deliveries` whose `executor_id` is `report:<kind>`): the report worker's
//! claim. Everything else (results, listing, retry) is the deliveries' own.

use super::{Store, StoreResult, sqlite};
use crate::domain::Millis;
use crate::store::ClaimedDelivery;

/// Due, unlocked report rows, oldest first. `report;` is the first string after every
/// `report:…` in byte order, so the range reads `ix_deliveries_executor_due` and no executor's
/// rows.
const DUE: &str = "SELECT id FROM deliveries WHERE executor_id >= 'report:' \
    AND executor_id < 'report;' AND status = 'pending' AND next_attempt_at <= $3 \
    AND (locked_until IS NULL OR locked_until < $3) ORDER BY next_attempt_at LIMIT $4";

const RETURNING: &str =
    "RETURNING id, executor_id, event, task_id, payload, lease_id, attempts, created_at";

impl Store {
    /// Claims up to `limit` due report rows for `worker` until `lock_until`.
    pub async fn claim_reports(
        &self,
        worker: &str,
        now: Millis,
        lock_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        match &self.backend {
            super::Backend::Sqlite(b) => {
                let q = format!(
                    "UPDATE deliveries SET locked_by = $1, locked_until = $2 WHERE id IN ({DUE}) {RETURNING}"
                );
                let worker = worker.to_owned();
                // Not durable, on purpose: see `SqliteBackend::commit_unsynced`.
                b.commit_unsynced(move |c, _| {
                    sqlite::query(c, &q)?
                        .bind(worker.as_str())
                        .bind(lock_until)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(ClaimedDelivery::from_lite)
                })
                .await
            }
            // Relaxed, as the delivery worker's claims are: a claim lost in a crash leaves the
            // rows claimable again (at least once), and the attempt's durable write covers it.
            super::Backend::Postgres(b) => {
                let q = format!(
                    "UPDATE deliveries SET locked_by = $1, locked_until = $2 WHERE id IN \
                     ({DUE} FOR UPDATE SKIP LOCKED) {RETURNING}"
                );
                Ok(sqlx::query_as(&q)
                    .bind(worker)
                    .bind(lock_until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(b.relaxed())
                    .await?)
            }
        }
    }
}
