//! What the dashboard (`src/ui`) reads that no other caller needs: an instance's counts at a
//! glance and one page of its queue, filtered, in keyset order.
//!
//! Both stay flat at a million tasks by using only the indexes the claim path already keeps:
//! `ix_tasks_instance_status (instance_id, status, id)` answers every count and every page
//! (one range seek per status, merged), `ix_tasks_finished` the last hour's throughput. Counts
//! stop at [`COUNT_CAP`]: a person reads "10,000+" as well as 987,654, and an exact count of a
//! million finished rows is a full index scan on every refresh. No index is added, so writes
//! pay nothing for the dashboard.

use crate::domain::{InstanceId, Millis, Priority, Task, TaskId, TaskStatus};
use crate::store::rows::{TASK_COLUMNS, TaskRow};
use crate::store::{Store, StoreResult, on_reader};

/// Counts stop here (the dashboard shows `10,000+`).
pub const COUNT_CAP: i64 = 10_000;

/// One instance at a glance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceCounts {
    /// Per status in [`TaskStatus::ALL`] order, each at most `COUNT_CAP + 1`.
    pub by_status: Vec<(TaskStatus, i64)>,
    /// When the oldest pending task was created.
    pub oldest_pending: Option<Millis>,
    /// Tasks finished since the `since` given, at most `COUNT_CAP + 1`.
    pub finished_since: i64,
}

impl InstanceCounts {
    pub fn get(&self, status: TaskStatus) -> i64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}

/// One page of an instance's tasks: every filter is optional; `after` is the last id of the
/// previous page (ids are UUIDv7, so id order is arrival order).
#[derive(Debug, Clone, Default)]
pub struct TaskPage {
    pub status: Option<TaskStatus>,
    pub tag: Option<String>,
    pub priority: Option<Priority>,
    /// Claimed by, or asked for, this executor.
    pub executor: Option<String>,
    pub after: Option<TaskId>,
    pub limit: i64,
}

/// `LIKE` treats `%`, `_` and the escape itself as patterns: a tag is matched literally.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Store {
    /// Counts per status (capped), the oldest pending task's age and the throughput since
    /// `since`, in one round trip.
    pub async fn instance_counts(
        &self,
        instance: &InstanceId,
        since: Millis,
    ) -> StoreResult<InstanceCounts> {
        let capped = |status: &str| {
            format!(
                "(SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE instance_id = $1 \
                 AND status = '{status}' LIMIT {}) c)",
                COUNT_CAP + 1
            )
        };
        // Status names are constants (`TaskStatus::as_str`), never input.
        let counts: Vec<String> = TaskStatus::ALL.iter().map(|s| capped(s.as_str())).collect();
        let q = format!(
            "SELECT {}, \
             (SELECT created_at FROM tasks WHERE instance_id = $1 AND status = 'pending' \
              ORDER BY id LIMIT 1), \
             (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE instance_id = $1 \
              AND finished_at >= $2 LIMIT {}) f)",
            counts.join(", "),
            COUNT_CAP + 1
        );
        type Row = (i64, i64, i64, i64, i64, i64, Option<i64>, i64);
        let r: Row = on_reader!(self, p => {
            sqlx::query_as(&q).bind(instance.as_str()).bind(since).fetch_one(p).await?
        });
        let n = [r.0, r.1, r.2, r.3, r.4, r.5];
        Ok(InstanceCounts {
            by_status: TaskStatus::ALL.into_iter().zip(n).collect(),
            oldest_pending: r.6,
            finished_since: r.7,
        })
    }

    /// One page of `instance`'s tasks in id order. Each status is read by its own range of
    /// `ix_tasks_instance_status`, limited, and the ranges merged: a page costs `limit` rows
    /// per status whatever the table holds (the tag, priority and executor filters are checked
    /// on those rows).
    pub async fn task_page(
        &self,
        instance: &InstanceId,
        page: &TaskPage,
    ) -> StoreResult<Vec<Task>> {
        let limit = page.limit.clamp(1, 500);
        let mut conds = String::new();
        let mut n = 1; // $1 is the instance
        let mut next = || {
            n += 1;
            n
        };
        let after = page
            .after
            .as_ref()
            .map(|_| format!(" AND id > ${}", next()));
        let tag = page
            .tag
            .as_ref()
            .map(|_| format!(" AND lower(tags) LIKE lower(${}) ESCAPE '\\'", next()));
        let priority = page
            .priority
            .map(|_| format!(" AND priority = ${}", next()));
        let executor = page.executor.as_ref().map(|_| {
            let i = next();
            format!(" AND (claimed_by = ${i} OR executor = ${i})")
        });
        for c in [&after, &tag, &priority, &executor].into_iter().flatten() {
            conds.push_str(c);
        }
        let statuses: Vec<TaskStatus> = match page.status {
            Some(s) => vec![s],
            None => TaskStatus::ALL.to_vec(),
        };
        let parts: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(
                    "SELECT * FROM (SELECT {TASK_COLUMNS} FROM tasks WHERE instance_id = $1 \
                     AND status = '{}'{conds} ORDER BY id LIMIT {limit}) s{}",
                    s.as_str(),
                    s.as_str()
                )
            })
            .collect();
        let q = format!(
            "SELECT * FROM ({}) u ORDER BY id LIMIT {limit}",
            parts.join(" UNION ALL ")
        );
        let tag_pattern = page.tag.as_ref().map(|t| {
            format!(
                "%{}%",
                like_literal(&serde_json::Value::from(t.as_str()).to_string())
            )
        });
        let rows: Vec<TaskRow> = on_reader!(self, p => {
            let mut query = sqlx::query_as(&q).bind(instance.as_str());
            if let Some(a) = &page.after {
                query = query.bind(a.as_str());
            }
            if let Some(t) = &tag_pattern {
                query = query.bind(t.as_str());
            }
            if let Some(pr) = page.priority {
                query = query.bind(pr.rank());
            }
            if let Some(e) = &page.executor {
                query = query.bind(e.as_str());
            }
            query.fetch_all(p).await?
        });
        rows.into_iter().map(Task::try_from).collect()
    }
}
