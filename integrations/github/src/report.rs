//! Reporting back to GitHub: a comment on the issue or pull request the task came from, plus
//! labels and closing when the report asks, with octocrab's client (a personal access token,
//! or a GitHub App answering as the installation that delivered the webhook).
//!
//! One attempt per call; the core's outbox retries. The idempotent steps (labels, close) go
//! first and the comment last, so a retried report never posts its comment twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hopper_integration_api::{
    Delivered, IssueDraft, OpenedIssue, Report, ReportError, Reporter, ReporterResult, Secret,
    SourceSettings,
};
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{Value, json};

mod outcome;

use outcome::{brief, check, encode_segment, permanent, retry};

/// `reports.github` in the config. Every key has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubReportConfig {
    /// REST API root; else `HOPPER_GITHUB_API_URL`, else `https://api.github.com`
    /// (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: Option<String>,
    /// A personal access token; else `HOPPER_GITHUB_TOKEN`.
    pub token: Option<Secret>,
    /// A GitHub App's id; else `HOPPER_GITHUB_APP_ID`. With `private_key`, reports on tasks
    /// that carry an `installation_id` are made as that installation.
    pub app_id: Option<u64>,
    /// The App's RSA private key (PEM); else `HOPPER_GITHUB_APP_PRIVATE_KEY`.
    pub private_key: Option<Secret>,
}

const DEFAULT_API_URL: &str = "https://api.github.com";

/// Builds the GitHub reporter from `reports.github`: `None` without a token or an App.
pub fn reporter(s: &SourceSettings<'_>) -> ReporterResult {
    // octocrab's client asks rustls for the process-wide provider. In a build where another
    // crate turns on rustls's aws-lc-rs feature too (the gitlab crate's reqwest does), rustls
    // cannot pick one by itself and the first request panics; ring is the one Hopper uses
    // everywhere else. `Err` only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config: GithubReportConfig = s.parse()?;
    let api_url = config
        .api_url
        .filter(|u| !u.trim().is_empty())
        .or_else(|| (s.env)("HOPPER_GITHUB_API_URL").filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_API_URL.into());
    let api_url = api_url.trim().trim_end_matches('/').to_string();
    if !(api_url.starts_with("https://") || api_url.starts_with("http://"))
        || api_url.parse::<http::Uri>().is_err()
    {
        return Err(format!("api_url: not an http(s) URL: {api_url}"));
    }
    let token = s.secret(config.token, "HOPPER_GITHUB_TOKEN");
    if let Some(t) = &token
        && http::HeaderValue::from_str(&format!("Bearer {}", t.expose())).is_err()
    {
        return Err("token: contains characters not allowed in an HTTP header".into());
    }
    let app_id = match config.app_id {
        Some(id) => Some(id),
        None => match (s.env)("HOPPER_GITHUB_APP_ID").filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| "HOPPER_GITHUB_APP_ID: not a number".to_string())?,
            ),
            None => None,
        },
    };
    let key = s.secret(config.private_key, "HOPPER_GITHUB_APP_PRIVATE_KEY");
    let app = match (app_id, key) {
        (Some(id), Some(key)) => {
            // A key passed through an environment variable often has its newlines escaped.
            let pem = if key.expose().contains('\n') {
                key.expose().to_string()
            } else {
                key.expose().replace("\\n", "\n")
            };
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|_| "private_key: not an RSA private key in PEM".to_string())?;
            Some((id, key))
        }
        (Some(_), None) => {
            return Err("app_id is set but private_key is not \
                        (or HOPPER_GITHUB_APP_PRIVATE_KEY)"
                .into());
        }
        (None, Some(_)) => {
            return Err("private_key is set but app_id is not (or HOPPER_GITHUB_APP_ID)".into());
        }
        (None, None) => None,
    };
    if token.is_none() && app.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(GithubReporter {
        api_url,
        token,
        app,
        clients: Mutex::new(Clients::default()),
    })))
}

pub struct GithubReporter {
    api_url: String,
    token: Option<Secret>,
    app: Option<(u64, jsonwebtoken::EncodingKey)>,
    /// Built on first use (octocrab's client needs the runtime): the token's, and one per
    /// installation so each keeps its installation token (shared, not cloned: a cloned
    /// `Octocrab` caches its token apart).
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    token: Option<Arc<Octocrab>>,
    installations: HashMap<u64, Arc<Octocrab>>,
}

/// Where to answer: from the reply handle the inbound side put on the task.
struct Target {
    repository: String,
    number: u64,
    installation: Option<u64>,
}

impl GithubReporter {
    fn target(report: &Report) -> Result<Target, ReportError> {
        let handle = report.source.reply_handle.as_ref();
        let field = |k: &str| handle.and_then(|h| h.get(k)).filter(|v| !v.is_null());
        let repository = field("repository").and_then(Value::as_str).unwrap_or("");
        let valid = valid_repository(repository);
        let number = field("issue_number").and_then(Value::as_u64);
        match (valid, number) {
            (true, Some(number)) => Ok(Target {
                repository: repository.to_string(),
                number,
                installation: field("installation_id").and_then(Value::as_u64),
            }),
            _ => Err(permanent(
                None,
                "the task's reply handle has no GitHub repository and issue number".into(),
            )),
        }
    }

    fn client(&self, installation: Option<u64>) -> Result<Arc<Octocrab>, ReportError> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| retry(None, None, "GitHub client cache poisoned".into()))?;
        let build = || {
            Octocrab::builder()
                .set_connect_timeout(Some(Duration::from_secs(10)))
                .set_read_timeout(Some(Duration::from_secs(30)))
                .set_write_timeout(Some(Duration::from_secs(30)))
                .base_uri(self.api_url.as_str())
        };
        let failed = |e: octocrab::Error| permanent(None, format!("GitHub client: {}", brief(&e)));
        if let (Some((app_id, key)), Some(id)) = (&self.app, installation) {
            if let Some(c) = clients.installations.get(&id) {
                return Ok(c.clone());
            }
            let app = build()
                .map_err(failed)?
                .app((*app_id).into(), key.clone())
                .build()
                .map_err(failed)?;
            let c = Arc::new(app.installation(id.into()).map_err(failed)?);
            clients.installations.insert(id, c.clone());
            return Ok(c);
        }
        let Some(token) = &self.token else {
            return Err(permanent(
                None,
                "no installation_id on the task for the GitHub App, and no token".into(),
            ));
        };
        if let Some(c) = &clients.token {
            return Ok(c.clone());
        }
        let c = Arc::new(
            build()
                .map_err(failed)?
                .personal_token(token.expose().to_string())
                .build()
                .map_err(failed)?,
        );
        clients.token = Some(c.clone());
        Ok(c)
    }
}

/// `owner/name`, each part a plain path segment (it goes into request paths as is).
pub fn valid_repository(repository: &str) -> bool {
    repository.split('/').count() == 2
        && repository.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

impl GithubReporter {
    /// An issue of `repository` whose body carries `marker`, among the 100 newest: what a
    /// retried draft looks for before opening another.
    async fn find_marked(
        &self,
        gh: &Octocrab,
        draft: &IssueDraft,
        marker: &str,
    ) -> Result<Option<OpenedIssue>, ReportError> {
        let mut uri = format!(
            "/repos/{}/issues?state=all&sort=created&direction=desc&per_page=100",
            draft.repository
        );
        if let Some(first) = draft.labels.first() {
            uri.push_str(&format!("&labels={}", encode_segment(first)));
        }
        let r = gh._get(uri).await;
        let (_, text) = check(gh, "looking for an issue opened before", r, false).await?;
        let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        Ok(list.iter().find_map(|i| {
            let body = i.get("body")?.as_str()?;
            if !body.contains(marker) {
                return None;
            }
            let number = i.get("number")?.as_u64()?;
            Some(OpenedIssue {
                number: number.to_string(),
                url: i.get("html_url")?.as_str()?.to_string(),
                handle: json!({ "repository": draft.repository, "issue_number": number }),
            })
        }))
    }
}

#[async_trait]
impl Reporter for GithubReporter {
    fn kind(&self) -> &'static str {
        "github"
    }

    async fn report(&self, report: &Report) -> Result<Delivered, ReportError> {
        let target = Self::target(report)?;
        let gh = self.client(target.installation)?;
        let issue = format!("/repos/{}/issues/{}", target.repository, target.number);
        if !report.add_labels.is_empty() {
            let body = json!({ "labels": report.add_labels });
            let r = gh._post(format!("{issue}/labels"), Some(&body)).await;
            check(&gh, "adding labels", r, false).await?;
        }
        for label in &report.remove_labels {
            let uri = format!("{issue}/labels/{}", encode_segment(label));
            let r = gh._delete(uri, None::<&()>).await;
            check(&gh, "removing a label", r, true).await?;
        }
        if report.close {
            let body = json!({ "state": "closed", "state_reason": "completed" });
            let r = gh._patch(issue.as_str(), Some(&body)).await;
            check(&gh, "closing the issue", r, false).await?;
        }
        let body = json!({ "body": report.text });
        let r = gh._post(format!("{issue}/comments"), Some(&body)).await;
        let (status, text) = check(&gh, "commenting", r, false).await?;
        let url = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("html_url")?.as_str().map(String::from))
            .unwrap_or_else(|| format!("{}#{}", target.repository, target.number));
        Ok(Delivered {
            status,
            detail: url,
        })
    }

    async fn open_issue(&self, draft: &IssueDraft) -> Result<OpenedIssue, ReportError> {
        if !valid_repository(&draft.repository) {
            return Err(permanent(
                None,
                format!("not a GitHub repository (owner/name): {}", draft.repository),
            ));
        }
        let gh = self.client(None)?;
        let marker = hopper_integration_api::sync::marker(&draft.task_id);
        if draft.retried
            && let Some(found) = self.find_marked(&gh, draft, &marker).await?
        {
            return Ok(found);
        }
        let body = json!({ "title": draft.title, "body": draft.body, "labels": draft.labels });
        let uri = format!("/repos/{}/issues", draft.repository);
        let r = gh._post(uri, Some(&body)).await;
        let (_, text) = check(&gh, "opening an issue", r, false).await?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| retry(None, None, format!("GitHub's new issue did not parse: {e}")))?;
        match (
            v.get("number").and_then(Value::as_u64),
            v.get("html_url").and_then(Value::as_str),
        ) {
            (Some(n), Some(url)) => Ok(OpenedIssue {
                number: n.to_string(),
                url: url.to_string(),
                handle: json!({ "repository": draft.repository, "issue_number": n }),
            }),
            _ => Err(retry(
                None,
                None,
                "GitHub's new issue has no number or html_url".into(),
            )),
        }
    }
}
