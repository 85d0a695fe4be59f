//! `hopper events replay` and `POST /v1/events/{id}/replay`: a stored event read again with
//! today's configuration (after a mapping was fixed, say), recorded as a new event that points
//! back at the first.
//!
//! The event's source reads it, with
//! [`reinterpret`](hopper_integration_api::InboundSource::reinterpret): the signature that
//! admitted it was never stored, so only the source can say what else still holds and vouch
//! for the rest on the strength of the stored record. The core does not vouch for anything.

use hopper_email::smtp::ENDPOINT as SMTP_ENDPOINT;
use hopper_integration_api::{Action, InboundRequest, StoredRequest};

use super::{Sources, instance_of};
use crate::domain::IngestReceipt;
use crate::engine::{Engine, Ingest};
use crate::error::{HopperError, Result};

/// Replays the stored event `id` with the sources in `sources`. A source that is not
/// configured any more is a conflict (409): the event is fine, the configuration has changed
/// under it. A source that will not read it is `Invalid` (422), with the source's reason.
pub async fn replay(engine: &Engine, sources: &Sources, id: &str) -> Result<IngestReceipt> {
    let mut original = engine.get_event(id).await?;
    // The SMTP door has no webhook path: its messages belong to the email source, which also
    // takes mail over HTTP at `email`.
    let path = if original.endpoint == SMTP_ENDPOINT {
        "email"
    } else {
        original.endpoint.as_str()
    };
    let source = sources.source(path).ok_or_else(|| {
        HopperError::Conflict(format!(
            "the source `{path}` of event {id} is not configured any more"
        ))
    })?;
    let headers: serde_json::Value =
        serde_json::from_str(&original.headers).unwrap_or(serde_json::Value::Null);
    let pairs = header_pairs(&headers);
    let stored = StoredRequest {
        event_id: &original.id,
        source: &original.source,
        endpoint: &original.endpoint,
        received_at: original.received_at,
        request: InboundRequest {
            headers: &pairs,
            body: &original.body,
        },
    };
    let mut interpretation = source
        .reinterpret(stored)
        .map_err(|e| HopperError::Invalid(format!("cannot replay {id}: {e}")))?;
    if matches!(interpretation.action, Action::Reply { .. }) {
        return Err(HopperError::Invalid(format!(
            "event {id} is not one that makes tasks"
        )));
    }
    // A replay is a new delivery, not a duplicate of the original.
    interpretation.delivery_id = None;
    let receipt = engine
        .ingest(Ingest {
            source: original.source.clone(),
            endpoint: original.endpoint.clone(),
            instance: instance_of(source.as_ref()).map_err(HopperError::Invalid)?,
            // As stored: credentials were left out on arrival, and an SMTP envelope keeps its
            // shape, so a replay can itself be replayed.
            headers,
            body: bytes::Bytes::from(std::mem::take(&mut original.body)),
            interpretation,
            replay_of: Some(original.id.clone()),
        })
        .await?;
    Ok(IngestReceipt {
        event_id: receipt.event_id,
        status: receipt.status.to_owned(),
        task_id: receipt.task_id,
    })
}

/// The stored headers (a JSON object) as the (name, value) pairs a source reads: a list (the
/// SMTP envelope's recipients) gives one pair per entry, as a repeated header would; any
/// other value that is not text is given as JSON.
fn header_pairs(headers: &serde_json::Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (name, value) in headers.as_object().into_iter().flatten() {
        match value {
            serde_json::Value::String(s) => pairs.push((name.clone(), s.clone())),
            serde_json::Value::Array(items) => pairs.extend(items.iter().map(|item| {
                let text = item
                    .as_str()
                    .map_or_else(|| item.to_string(), str::to_owned);
                (name.clone(), text)
            })),
            other => pairs.push((name.clone(), other.to_string())),
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_headers_become_pairs_with_one_per_list_entry() {
        let stored = serde_json::json!({
            "content-type": "message/rfc822",
            "smtp-rcpt-to": ["a@example.com", "b@example.com"],
            "x-count": 2,
        });
        let mut pairs = header_pairs(&stored);
        pairs.sort();
        let want = [
            ("content-type", "message/rfc822"),
            ("smtp-rcpt-to", "a@example.com"),
            ("smtp-rcpt-to", "b@example.com"),
            ("x-count", "2"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(pairs, want);
        assert!(header_pairs(&serde_json::Value::Null).is_empty());
    }
}
