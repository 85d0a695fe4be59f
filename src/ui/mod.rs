//! The web dashboard at `/ui`: what came in, where it went, what is stuck, what failed to
//! deliver, and the buttons to act on it.
//!
//! Why it is shaped so:
//! - Server-rendered HTML (maud: templates are Rust, checked at compile time and escaped by
//!   default) so every page works with JavaScript off; `assets/app.js` only refreshes the
//!   `data-live` parts of a page in place. Assets are compiled into the binary: no build step,
//!   no CDN.
//! - No policy of its own: a session is a bearer token kept in a cookie (`session`), resolved
//!   by the REST API's `api::auth::caller_for_token`, and every page and action asks
//!   `api::auth::permitted` about the `/v1` route it mirrors, then `check_instance` /
//!   `check_task` about the resource. A read token sees the same pages without buttons, an
//!   executor token only its own instances.
//! - Every form carries a CSRF token derived from the session cookie (HMAC with a per-process
//!   key), and a POST from another origin is refused before it is read.
//! - Errors are [`error::UiError`], rendered as a page in one place.

mod error;
mod layout;
mod pages;
mod redact;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::AppState;

pub use error::UiError;

/// What every dashboard handler gets: the API's state and the CSRF key.
#[derive(Clone)]
pub struct UiState {
    pub app: AppState,
    key: Arc<[u8; 32]>,
}

impl UiState {
    /// The CSRF key is derived from the admin token, a secret every server of one deployment
    /// shares: behind a load balancer a form served by one server is accepted by another, and
    /// forms stay valid across a restart. A random key per process refused about half of all
    /// actions with two servers.
    pub fn new(app: AppState) -> Self {
        use hmac::{Hmac, Mac};
        let key = Hmac::<sha2::Sha256>::new_from_slice(app.admin_token.expose().as_bytes())
            .map(|mut m| {
                m.update(b"hopper-ui-csrf-v1");
                let mut k = [0u8; 32];
                k.copy_from_slice(&m.finalize().into_bytes());
                k
            })
            .unwrap_or_else(|_| {
                use rand::Rng;
                rand::rng().random()
            });
        Self {
            app,
            key: Arc::new(key),
        }
    }

    pub fn engine(&self) -> &crate::engine::Engine {
        &self.app.engine
    }
}

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// `/ui` and everything under it, with its own state (merged into the app by `server::app`).
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route(
            "/ui/assets/app.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async { asset(JS, "text/javascript") }),
        )
        .merge(session::router())
        .merge(pages::router())
        .layer(axum::middleware::map_response(layout::security_headers))
        .with_state(UiState::new(app))
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
        ],
        body,
    )
        .into_response()
}
