//! `inbound_events`: every accepted webhook, email or HTTP event, verbatim, with what became
//! of it. The event row and the task it creates are written in one transaction.

mod body;

use std::sync::LazyLock;

use serde::Serialize;

use super::delegations::{delegate_lite, mark_routed_lite};
use super::events::append_event;
use super::postgres::Record;
use super::rows::{
    EventRecord, INBOUND_COLUMNS, INSERT_INBOUND, INSERT_TASK, NewInboundEvent, NewTask,
    bind_new_task,
};
use super::sqlite::{self, PendingEvent};
use super::{Backend, Store, StoreError, StoreResult, on_reader, on_writer};

use crate::domain::{Millis, Task, TaskId};

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

/// What recording did.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Stored, with the task it created if any.
    New(Option<Box<Task>>),
    /// The sender had delivered this id before: nothing was written.
    Duplicate(Box<InboundEvent>),
}

/// SQLite, after `INSERT_INBOUND` inserted a row (binds by name, so the same 15 arguments).
const INSERT_BODY: &str =
    "INSERT INTO inbound_bodies (event_id, body, encoding) VALUES ($1, $7, $14)";
/// PostgreSQL, for a comment: the event and its body as one statement (every parameter must
/// be used). Tasks are recorded in batches instead (`postgres::Record`).
static RECORD_PG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH e AS ({INSERT_INBOUND} RETURNING id), \
         b AS (INSERT INTO inbound_bodies (event_id, body, encoding) \
         SELECT id, $7, CAST($14 AS TEXT) FROM e) \
         SELECT COUNT(*) FROM e"
    )
});
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
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let event = INBOUND_COLUMNS.split(", ").map(|c| format!("e.{c}"));
    let body = ["b.body".to_owned(), "b.encoding".to_owned()];
    event.chain(body).collect::<Vec<_>>().join(", ")
});
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
        let inserted: bool = match (&self.backend, effect) {
            // A comment: the event row, then the history entry if the event was new.
            (
                Backend::Postgres(pg),
                Effect::Comment {
                    target,
                    instance,
                    event: ev,
                },
            ) => {
                let mut tx = pg.pool().begin().await?;
                let q = sqlx::query_scalar::<_, i64>(RECORD_PG.as_str());
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
            // deliveries (see `postgres::Record`).
            (Backend::Postgres(pg), effect) => {
                let task = match effect {
                    Effect::Task(t) => Some(*t),
                    _ => None,
                };
                let record = Record {
                    event: event.clone(),
                    encoding,
                    task_id: task_id.clone(),
                    task,
                };
                pg.record(record).await?
            }
            (Backend::Sqlite(lite), effect) => {
                let event = event.clone();
                lite.commit(move |c, events| {
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
            "SELECT {cols} FROM {FROM_EVENTS} WHERE e.source = $1 AND e.delivery_id = $2",
            cols = COLUMNS.as_str()
        );
        let row: Option<InboundEvent> = on_reader!(self, p => sqlx::query_as(&q).bind(source).bind(delivery_id).fetch_optional(p).await?);
        row.map(InboundEvent::decoded).transpose()
    }

    pub async fn inbound_event(&self, id: &str) -> StoreResult<Option<InboundEvent>> {
        let q = format!(
            "SELECT {cols} FROM {FROM_EVENTS} WHERE e.id = $1",
            cols = COLUMNS.as_str()
        );
        let row: Option<InboundEvent> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id).fetch_optional(p).await?);
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
            "SELECT {cols} FROM {FROM_EVENTS} \
             WHERE (CAST($1 AS TEXT) IS NULL OR e.source = $1) AND (CAST($2 AS TEXT) IS NULL OR e.status = $2) \
             ORDER BY e.id DESC LIMIT $3",
            cols = COLUMNS.as_str()
        );
        let rows: Vec<InboundEvent> = on_reader!(self, p => sqlx::query_as(&q).bind(source).bind(status).bind(limit).fetch_all(p).await?);
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
            on_reader!(self, p => sqlx::query_as(Q).bind(received_before).fetch_all(p).await?);
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
        on_writer!(self, c => {
            let mut purged = 0;
            loop {
                let n = sqlx::query(Q)
                    .bind(instance)
                    .bind(before)
                    .bind(CHUNK)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                purged += n;
                if n < CHUNK as u64 {
                    break Ok(purged);
                }
            }
        })
    }

    pub async fn mark_inbound_routed(&self, id: &str, at: Millis) -> StoreResult<()> {
        const Q: &str = "UPDATE inbound_events SET routed_at = $2 WHERE id = $1";
        match &self.backend {
            Backend::Postgres(pg) => {
                sqlx::query(Q)
                    .bind(id)
                    .bind(at)
                    .execute(pg.relaxed())
                    .await?;
            }
            Backend::Sqlite(lite) => {
                let id = id.to_owned();
                lite.commit(move |c, _| mark_routed_lite(c, &id, at))
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
        sqlite::query(c, INSERT_INBOUND)?,
        event,
        task_id.as_deref(),
        encoding
    )
    .execute()?;
    if n == 0 {
        return Ok(false);
    }
    bind_event!(
        sqlite::query(c, INSERT_BODY)?,
        event,
        task_id.as_deref(),
        encoding
    )
    .execute()?;
    match effect {
        Effect::Task(t) => {
            let row = &t.row;
            bind_new_task(sqlite::query(c, &INSERT_TASK)?, row).execute()?;
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
