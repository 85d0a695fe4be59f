//! Signing in and out, the session extractor, and CSRF.
//!
//! The session is the API token itself, kept in an `HttpOnly; SameSite=Strict; Path=/ui`
//! cookie (`Secure` when the request came over TLS), base64 so any token fits a cookie. It is
//! resolved on every request by `api::auth::caller_for_token`, so a revoked token ends its
//! sessions at once and the dashboard has no session table to keep.
//!
//! CSRF: each form carries `_csrf`, an HMAC of the cookie value under a per-process random
//! key; [`Form`] checks it on every POST, after refusing a request whose `Origin` (or
//! `Sec-Fetch-Site`) says it came from another site. A restart changes the key, so an old
//! page's form is refused once (reload it) while the session itself survives.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::UiState;
use super::error::{UiError, UiResult};
use super::pages::Nothing;
use crate::api::auth::{self, Caller};

const COOKIE_NAME: &str = "hopper_ui";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
}

/// A signed-in request.
#[derive(Clone)]
pub struct Session {
    pub caller: Caller,
    /// The CSRF token this session's forms carry.
    pub csrf: String,
}

impl Session {
    /// Whether the caller may call `method route` (a `/v1` route as the API matches it):
    /// the API's own policy, not a copy.
    pub fn may(&self, method: &Method, route: &str) -> bool {
        auth::permitted(&self.caller, method, route).is_ok()
    }

    /// [`Self::may`] as a 403.
    pub fn must(&self, method: &Method, route: &str) -> UiResult<()> {
        auth::permitted(&self.caller, method, route).map_err(|e| UiError::Forbidden(e.message))
    }

    pub fn role(&self) -> String {
        match &self.caller {
            Caller::Admin => "admin".into(),
            Caller::Read => "read-only".into(),
            Caller::Executor(e) => format!("executor {}", e.name),
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_owned())
}

fn csrf_for(key: &[u8; 32], cookie: &str) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(b"hopper-ui-csrf\0");
    mac.update(cookie.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

impl FromRequestParts<UiState> for Session {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> UiResult<Self> {
        let cookie = cookie_value(&parts.headers).ok_or(UiError::SignIn)?;
        let token = B64
            .decode(cookie.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(UiError::SignIn)?;
        let caller = auth::caller_for_token(&state.app, &token)
            .await?
            .ok_or(UiError::SignIn)?;
        Ok(Session {
            caller,
            csrf: csrf_for(&state.key, &cookie),
        })
    }
}

/// Whether a state-changing request came from this site. Browsers send `Sec-Fetch-Site` and
/// `Origin` with every POST; a client sending neither is not a browser someone was lured
/// into, and still needs the CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin = origin.to_str().ok();
    match (origin, host) {
        (Some(o), Some(h)) => {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(h)
        }
        _ => false,
    }
}

/// A POSTed form from this site, carrying this session's CSRF token: the only way a handler
/// gets a form body. Anything else is a 403 before the handler runs.
pub struct Form<T>(pub Session, pub T);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<UiState> for Form<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &UiState) -> UiResult<Self> {
        let (mut parts, body) = req.into_parts();
        if !same_origin(&parts.headers) {
            return Err(UiError::Forbidden("cross-origin form refused".into()));
        }
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| UiError::BadRequest(e.body_text()))?;
        let given: CsrfField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| UiError::BadRequest(format!("the form: {e}")))?;
        if given.csrf.is_empty()
            || !bool::from(given.csrf.as_bytes().ct_eq(session.csrf.as_bytes()))
        {
            return Err(UiError::Forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again".into(),
            ));
        }
        let form: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| UiError::BadRequest(format!("the form: {e}")))?;
        Ok(Form(session, form))
    }
}

/// Whether the request came over TLS (directly, or through a proxy that says so).
fn over_tls(parts_headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    uri.scheme_str() == Some("https")
        || parts_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: Option<u64>, secure: bool) -> UiResult<HeaderValue> {
    let mut c = format!("{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/ui");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).map_err(|_| UiError::BadRequest("unusable token".into()))
}

async fn login_form() -> Html<String> {
    Html(login_page(None).into_string())
}

fn login_page(error: Option<&str>) -> maud::Markup {
    super::layout::bare(
        "Sign in",
        html! {
            main class="login" {
                h1 { "Hopper" }
                form method="post" action="/ui/login" {
                    @if let Some(e) = error {
                        p class="error" role="alert" id="login-error" { (e) }
                    }
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" autocomplete="current-password"
                        required autofocus aria-describedby="token-help";
                    p id="token-help" class="muted" {
                        "The admin token, or a token minted with " code { "hopper tokens mint" } "."
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(State(state): State<UiState>, req: Request) -> UiResult<Response> {
    let (parts, body) = req.into_parts();
    if !same_origin(&parts.headers) {
        return Err(UiError::Forbidden("cross-origin sign-in refused".into()));
    }
    let secure = over_tls(&parts.headers, &parts.uri);
    let bytes = Bytes::from_request(Request::from_parts(parts, body), &state)
        .await
        .map_err(|e| UiError::BadRequest(e.body_text()))?;
    let form: LoginForm = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| UiError::BadRequest(format!("the form: {e}")))?;
    let token = form.token.trim();
    let caller = if token.is_empty() {
        None
    } else {
        auth::caller_for_token(&state.app, token).await?
    };
    if caller.is_none() {
        metrics::counter!("hopper_auth_failures_total").increment(1);
        let page = login_page(Some("That token is not valid."));
        return Ok((StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response());
    }
    let cookie = set_cookie(&B64.encode(token.as_bytes()), None, secure)?;
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/ui")).into_response())
}

/// Signing out is a form too (CSRF-checked): the cookie is dropped.
async fn logout(
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(_, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    let cookie = set_cookie("", Some(0), over_tls(&headers, &uri))?;
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response())
}
