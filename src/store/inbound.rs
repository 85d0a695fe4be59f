//! `inbound_events`: every accepted webhook, email or HTTP event, verbatim, with what became
//! of it. The event row and the task it creates are written in one transaction.

mod body;
mod record_pg;

use serde::Serialize;

use super::commit::PendingEvent;
use super::delegations::{RoutedNow, delegate_lite};
use super::events::append_event;
use super::tasks::{INSERT_TASK, NewTaskRow, bind_new_task, source_json, to_json};
use super::{Db, EventRecord, Store, StoreError, StoreResult, lite, on_db};

use crate::domain::{Millis, Task, TaskId};
pub(super) use record_pg::Record;

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewInboundEvent {
    pub id: String,
    pub source: String,
    /// Where it came in (`github`, `slack/commands`, `smtp`): what a replay re-reads it with.
    pub endpoint: String,
    pub delivery_id: Option<String>,
    pub event_type: String,
    pub received_at: Millis,
    /// The headers that matter (signatures removed), as a JSON object.
    pub headers: serde_json::Value,
    pub body: bytes::Bytes,
    /// `accepted`, `ignored` or `commented`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub instance_id: String,
    /// For `commented`: the task the comment went to.
    pub task_id: Option<String>,
    pub replay_of: Option<String>,
    /// Set when the event's task was routed in the same commit that records it.
    pub routed_at: Option<Millis>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InboundEvent {
    pub id: String,
    pub source: String,
    pub endpoint: String,
    pub delivery_id: Option<String>,
    pub event_type: String,
    pub received_at: i64,
    #[schema(value_type = Object)]
    pub headers: String,
    /// The body as received (decoded on read, whatever `encoding` it is stored in).
    #[serde(skip)]
    pub body: Vec<u8>,
    #[serde(skip)]
    pub encoding: String,
    pub status: String,
    pub reason: Option<String>,
    pub instance_id: String,
    pub task_id: Option<String>,
    pub replay_of: Option<String>,
    pub routed_at: Option<i64>,
}

/// What an inbound event does besides being recorded.
#[derive(Debug)]
pub enum Effect {
    Nothing,
    /// A new task.
    Task(Box<NewTask>),
    /// A comment on an existing task, kept in that task's history.
    Comment {
        target: TaskId,
        instance: String,
        event: EventRecord,
    },
}

/// The task an inbound event creates.
#[derive(Debug)]
pub struct NewTask {
    pub row: NewTaskRow,
    /// Its `created` history entry.
    pub created: EventRecord,
    /// Its delegation to a child, when routing was decided before recording (the row is then
    /// already `routed`).
    pub routed: Option<RoutedNow>,
}

/// What recording did.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Stored, with the task it created if any.
    New(Option<Box<Task>>),
    /// The sender had delivered this id before: nothing was written.
    Duplicate(Box<InboundEvent>),
}

/// The event's 15 parameters (`bind_event!`); `$7` and `$14`, the body and its encoding, go to
/// `inbound_bodies`.
const INSERT_EVENT: &str = "INSERT INTO inbound_events (id, source, delivery_id, event_type, \
    received_at, headers, status, reason, instance_id, task_id, replay_of, endpoint, routed_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12, $13, $15) \
    ON CONFLICT (source, delivery_id) DO NOTHING";
/// SQLite, after `INSERT_EVENT` inserted a row (binds by name, so the same 15 arguments).
const INSERT_BODY: &str =
    "INSERT INTO inbound_bodies (event_id, body, encoding) VALUES ($1, $7, $14)";
/// PostgreSQL, for a comment: the event and its body as one statement (every parameter must
/// be used). Tasks are recorded in batches instead (`record_pg`).
const RECORD_PG: &str = "WITH e AS (INSERT INTO inbound_events (id, source, delivery_id, \
    event_type, received_at, headers, status, reason, instance_id, task_id, replay_of, endpoint, \
    routed_at) VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12, $13, $15) \
    ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id), \
    b AS (INSERT INTO inbound_bodies (event_id, body, encoding) \
    SELECT id, $7, CAST($14 AS TEXT) FROM e) \
    SELECT COUNT(*) FROM e";
/// Binds an event's 15 parameters; `$task_id` is the task it made or commented on, `$encoding`
/// how its body is stored.
macro_rules! bind_event {
    ($q:expr, $event:expr, $task_id:expr, $encoding:expr) => {{
        $q.bind($event.id.as_str())
            .bind($event.source.as_str())
            .bind($event.delivery_id.as_deref())
            .bind($event.event_type.as_str())
            .bind($event.received_at)
            .bind($event.headers.to_string())
            .bind(&$event.body[..])
            .bind($event.status)
            .bind($event.reason.as_deref())
            .bind($event.instance_id.as_str())
            .bind($task_id)
            .bind($event.replay_of.as_deref())
            .bind($event.endpoint.as_str())
            .bind($encoding)
            .bind($event.routed_at)
    }};
}

/// An event with its body (written together, so the join always finds it).
const COLUMNS: &str = "e.id, e.source, e.endpoint, e.delivery_id, e.event_type, e.received_at, \
    e.headers, b.body, b.encoding, e.status, e.reason, e.instance_id, e.task_id, e.replay_of, \
    e.routed_at";
const FROM_EVENTS: &str = "inbound_events e JOIN inbound_bodies b ON b.event_id = e.id";

impl Store {
    /// Records an event and, in the same transaction, what it does: a new task, a comment
    /// on an existing task, or nothing. A redelivery writes nothing.
    pub async fn record_inbound(
        &self,
        event: NewInboundEvent,
        effect: Effect,
    ) -> StoreResult<Recorded> {
        let created = match &effect {
            Effect::Task(t) => Some(t.row.to_task()),
            _ => None,
        };
        let task_id = match &effect {
            Effect::Task(t) => Some(t.row.id.as_str().to_owned()),
            _ => event.task_id.clone(),
        };
        let mut event = event;
        let encoding = body::encode(&mut event.body);
        // Shared with the SQLite write (which may run twice) without copying headers or body.
        let event = std::sync::Arc::new(event);
        let inserted: bool = match (&self.db, effect) {
            // A comment: the event row, then the history entry if the event was new.
            (
                Db::Postgres(p),
                Effect::Comment {
                    target,
                    instance,
                    event: ev,
                },
            ) => {
                let mut tx = p.begin().await?;
                let q = sqlx::query_scalar::<_, i64>(RECORD_PG);
                let n = bind_event!(q, event, task_id.as_deref(), encoding)
                    .fetch_one(&mut *tx)
                    .await?;
                if n > 0 {
                    append_event!(&mut *tx, target, instance, event.received_at, ev)?;
                }
                tx.commit().await?;
                n > 0
            }
            // The event, its body, and its task only if the event was new: batched with other
            // deliveries (see `batch_pg`, `record_pg`).
            (Db::Postgres(_), effect) => {
                let batcher = self.pg_records.as_ref().ok_or_else(|| {
                    StoreError::Open("PostgreSQL store without its record batcher".into())
                })?;
                let task = match effect {
                    Effect::Task(t) => Some(*t),
                    _ => None,
                };
                let record = record_pg::Record {
                    event: event.clone(),
                    encoding,
                    task_id: task_id.clone(),
                    task,
                };
                batcher.write(record).await?
            }
            (Db::Sqlite(_), effect) => {
                let event = event.clone();
                self.lite_write(move |c, events| {
                    record_lite(c, events, &event, encoding, &effect, &task_id)
                })
                .await?
            }
        };
        if inserted {
            return Ok(Recorded::New(created.map(Box::new)));
        }
        let delivery = event.delivery_id.as_deref().unwrap_or_default();
        let existing = self
            .inbound_by_delivery(&event.source, delivery)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "inbound event {} conflicted but is not there",
                    event.id
                ))
            })?;
        Ok(Recorded::Duplicate(Box::new(existing)))
    }

    pub async fn inbound_by_delivery(
        &self,
        source: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<InboundEvent>> {
        let q = format!(
            "SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE e.source = $1 AND e.delivery_id = $2"
        );
        let row: Option<InboundEvent> = on_db!(&self.reader, p => sqlx::query_as(&q).bind(source).bind(delivery_id).fetch_optional(p).await?);
        row.map(InboundEvent::decoded).transpose()
    }

    pub async fn inbound_event(&self, id: &str) -> StoreResult<Option<InboundEvent>> {
        let q = format!("SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE e.id = $1");
        let row: Option<InboundEvent> =
            on_db!(&self.reader, p => sqlx::query_as(&q).bind(id).fetch_optional(p).await?);
        row.map(InboundEvent::decoded).transpose()
    }

    /// Newest first, optionally of one source and/or status.
    pub async fn list_inbound(
        &self,
        source: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<InboundEvent>> {
        let q = format!(
            "SELECT {COLUMNS} FROM {FROM_EVENTS} \
             WHERE (CAST($1 AS TEXT) IS NULL OR e.source = $1) AND (CAST($2 AS TEXT) IS NULL OR e.status = $2) \
             ORDER BY e.id DESC LIMIT $3"
        );
        let rows: Vec<InboundEvent> = on_db!(&self.reader, p => sqlx::query_as(&q).bind(source).bind(status).bind(limit).fetch_all(p).await?);
        rows.into_iter().map(InboundEvent::decoded).collect()
    }

    /// Accepted events whose task has not been through routing yet: what start-up re-drives.
    pub async fn unrouted_inbound(
        &self,
        received_before: Millis,
    ) -> StoreResult<Vec<(String, String)>> {
        const Q: &str = "SELECT id, task_id FROM inbound_events \
            WHERE status = 'accepted' AND routed_at IS NULL AND task_id IS NOT NULL \
            AND received_at <= $1 ORDER BY received_at LIMIT 1000";
        let rows: Vec<(String, String)> =
            on_db!(&self.reader, p => sqlx::query_as(Q).bind(received_before).fetch_all(p).await?);
        Ok(rows)
    }

    /// Retention: removes `instance`'s events (and, by cascade, their bodies) received before
    /// `before`, except accepted ones still waiting to be routed. In chunks, so no single
    /// transaction holds the SQLite writer for long.
    pub async fn purge_inbound(&self, instance: &str, before: Millis) -> StoreResult<u64> {
        const CHUNK: i64 = 1000;
        const Q: &str = "DELETE FROM inbound_events WHERE id IN (SELECT id FROM inbound_events \
            WHERE instance_id = $1 AND received_at < $2 \
            AND NOT (status = 'accepted' AND routed_at IS NULL) LIMIT $3)";
        let mut purged = 0;
        loop {
            let n = on_db!(&self.db, p => sqlx::query(Q).bind(instance).bind(before).bind(CHUNK).execute(p).await?.rows_affected());
            purged += n;
            if n < CHUNK as u64 {
                return Ok(purged);
            }
        }
    }

    pub async fn mark_inbound_routed(&self, id: &str, at: Millis) -> StoreResult<()> {
        const Q: &str = "UPDATE inbound_events SET routed_at = $2 WHERE id = $1";
        match &self.db {
            Db::Postgres(p) => {
                let p = self.relaxed_or(p);
                sqlx::query(Q).bind(id).bind(at).execute(p).await?;
            }
            Db::Sqlite(_) => {
                let id = id.to_owned();
                self.lite_write(move |c, _| super::delegations::mark_routed_lite(c, &id, at))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The SQLite side of `record_inbound`, on the writer inside a group commit batch.
fn record_lite(
    c: &rusqlite::Connection,
    events: &mut Vec<PendingEvent>,
    event: &NewInboundEvent,
    encoding: &str,
    effect: &Effect,
    task_id: &Option<String>,
) -> rusqlite::Result<bool> {
    let n = bind_event!(
        lite::query(c, INSERT_EVENT)?,
        event,
        task_id.as_deref(),
        encoding
    )
    .execute()?;
    if n == 0 {
        return Ok(false);
    }
    bind_event!(
        lite::query(c, INSERT_BODY)?,
        event,
        task_id.as_deref(),
        encoding
    )
    .execute()?;
    match effect {
        Effect::Task(t) => {
            let row = &t.row;
            bind_new_task!(lite::query(c, INSERT_TASK)?, row).execute()?;
            events.push(PendingEvent::new(
                row.id.as_str(),
                row.instance_id.as_str(),
                row.now,
                &t.created,
            ));
            if let Some(r) = &t.routed {
                delegate_lite(c, events, &r.delegation, &r.event, Some(&r.handover))?;
            }
        }
        Effect::Comment {
            target,
            instance,
            event: ev,
        } => events.push(PendingEvent::new(
            target.as_str(),
            instance,
            event.received_at,
            ev,
        )),
        Effect::Nothing => {}
    }
    Ok(true)
}

impl InboundEvent {
    /// With the body as received.
    fn decoded(mut self) -> StoreResult<Self> {
        let raw = body::decode(&self.encoding, std::mem::take(&mut self.body))
            .map_err(|e| StoreError::Corrupt(format!("inbound event {}: body: {e}", self.id)))?;
        self.body = raw;
        self.encoding = body::IDENTITY.to_owned();
        Ok(self)
    }

    /// The API's view; `with_body` for detail views.
    pub fn view(&self, with_body: bool) -> crate::domain::InboundEventView {
        crate::domain::InboundEventView {
            id: self.id.clone(),
            source: self.source.clone(),
            endpoint: self.endpoint.clone(),
            delivery_id: self.delivery_id.clone(),
            event_type: self.event_type.clone(),
            received_at: self.received_at,
            status: self.status.clone(),
            reason: self.reason.clone(),
            instance_id: self.instance_id.clone(),
            task_id: self.task_id.clone(),
            replay_of: self.replay_of.clone(),
            routed_at: self.routed_at,
            headers: serde_json::from_str(&self.headers).unwrap_or(serde_json::Value::Null),
            body_bytes: self.body.len(),
            body: with_body.then(|| String::from_utf8_lossy(&self.body).into_owned()),
        }
    }

    /// The SMTP envelope recipients kept with a message that came in over SMTP.
    pub fn smtp_recipients(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&self.headers).unwrap_or_default();
        v["smtp-rcpt-to"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    }

    /// The stored headers as (name, value) pairs, for re-reading the event.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&self.headers).unwrap_or_default();
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}
