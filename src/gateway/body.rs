//! Reading a webhook body: whole (it is verified and stored as received), within the source's
//! size limit, within the server's deadline, and within the budget of body bytes held in
//! memory (see [`super::budget`]), which it grows as the body arrives.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;

use super::budget::Reservation;
use crate::api::error::{ApiError, ApiResult};

/// What a body must stay within.
pub(super) struct Limits {
    pub max_bytes: usize,
    pub deadline: Option<Duration>,
}

fn announced(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("body exceeds this source's limit of {limit} bytes"),
    )
}

/// The body, with `reserved` grown to cover its buffer (to be held until the request is
/// answered: the body stays in memory until it is committed). 413 before anything is read when
/// the announced length is over the limit.
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &Limits,
    reserved: &mut Reservation,
) -> ApiResult<bytes::Bytes> {
    let limit = limits.max_bytes;
    let ceiling = match announced(headers) {
        Some(n) if n > limit as u64 => return Err(too_large(limit)),
        // The buffer never grows past the announced length: hyper lets no more through, so
        // capacity beyond it would be memory held for nothing.
        Some(n) => usize::try_from(n).unwrap_or(limit),
        None => limit,
    };
    let read = collect(body, limit, ceiling, reserved);
    let bytes = match limits.deadline {
        Some(d) => tokio::time::timeout(d, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the body did not arrive within {} ms", d.as_millis()),
            )
        })??,
        None => read.await?,
    };
    Ok(bytes)
}

/// Reads frame by frame into one buffer. Each frame is copied out and dropped at once: hyper
/// hands out slices of its read buffer, and keeping them would keep those buffers alive with
/// everything else they held (a body sent one byte per chunk arrives as `1\r\nX\r\n`: six
/// bytes of buffer per byte of body, none of it counted). The budget is grown before the buffer
/// is, by the buffer's new capacity, so what is held is what is allocated; growth doubles (a
/// copy per doubling, not per frame) up to the announced length.
async fn collect(
    mut body: Body,
    limit: usize,
    ceiling: usize,
    reserved: &mut Reservation,
) -> ApiResult<bytes::Bytes> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        // Trailers are not part of the body.
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(too_large(limit));
        }
        if len > buf.capacity() {
            let capacity = buf.capacity().saturating_mul(2).min(ceiling).max(len);
            reserved.grow_to(capacity as u64).await?;
            buf.reserve_exact(capacity - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(buf))
}
