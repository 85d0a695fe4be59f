//! The page shell (navigation, who is signed in, the sign-out form) and the small formatting
//! helpers every page shares.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use crate::domain::{Millis, TaskStatus, now_millis};
use crate::store::COUNT_CAP;

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Events,
    Executors,
    Memory,
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Hopper" }
        link rel="stylesheet" href="/ui/assets/app.css";
        script src="/ui/assets/app.js" defer {}
    }
}

/// A page outside a session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation, `body`, and the sign-out form.
pub fn page(title: &str, nav: Nav, session: &Session, body: Markup) -> Response {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    nav aria-label="Main" {
                        ul {
                            li class="brand" { a href="/ui" { "Hopper" } }
                            (item(Nav::Overview, "/ui", "Overview"))
                            (item(Nav::Events, "/ui/events", "Inbound events"))
                            (item(Nav::Executors, "/ui/executors", "Executors"))
                            (item(Nav::Memory, "/ui/memory", "Memory"))
                        }
                    }
                    form method="post" action="/ui/logout" class="signout" {
                        span class="muted" { "Signed in: " (session.role()) }
                        (csrf(session))
                        button type="submit" id="signout" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                p class="muted live-status" aria-live="polite" id="live-status" {}
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf); }
}

/// A one-button form posting to `action`.
pub fn action(session: &Session, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf(session))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A count that stopped at the cap reads `10,000+`.
pub fn count(n: i64) -> String {
    if n > COUNT_CAP {
        format!("{}+", thousands(COUNT_CAP))
    } else {
        thousands(n)
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `3 min`, `2 h 5 min`: how long ago `at` was.
pub fn age(at: Millis) -> String {
    duration((now_millis() - at).max(0))
}

pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// An epoch-millisecond time as RFC 3339.
pub fn time(ms: Millis) -> String {
    crate::domain::millis_to_rfc3339(ms)
}

pub fn status(s: TaskStatus) -> Markup {
    badge(s.as_str())
}

pub fn badge(s: &str) -> Markup {
    html! { span class={ "badge b-" (s) } { (s) } }
}

/// A short form of an id, with the whole id as its title.
pub fn short(id: &str) -> Markup {
    let cut = id.len().saturating_sub(8);
    html! { span title=(id) { "…" (id.get(cut..).unwrap_or(id)) } }
}

/// A notice after an action (`?done=...`), announced to screen readers.
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p class="notice" role="status" { (t) }
        }
    }
}

/// JSON pretty-printed, or the text as it is when it is not JSON.
pub fn pretty(text: &str) -> Markup {
    let shown = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned());
    html! { pre tabindex="0" { (shown) } }
}

/// Headers on every `/ui` response: nothing from elsewhere may load, nothing is cached, no
/// framing.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}
