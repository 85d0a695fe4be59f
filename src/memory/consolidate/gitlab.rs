//! A GitLab project as the memory repository, through the `gitlab` crate's async client (the
//! same client the GitLab reporter uses): every changed file lands in ONE commit through the
//! commits API, so a reader never sees half a consolidation and a failed run leaves nothing.
//!
//! Each file is read first (`GET .../repository/files/:path?ref=branch`) to choose create,
//! update or skip; unchanged files make no action and no actions make no commit. A missing
//! branch is created from the project's default branch by that same commit (`start_branch`),
//! so creating the branch and writing the files cannot be split by a failure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use gitlab::api::projects::Project;
use gitlab::api::projects::repository::branches::Branch;
use gitlab::api::projects::repository::commits::{CommitAction, CommitActionType, CreateCommit};
use gitlab::api::projects::repository::files::{Encoding, File};
use gitlab::api::{ApiError, AsyncQuery};
use gitlab::{AsyncGitlab, GitlabBuilder, GitlabError, RestError};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::repo::{MemoryRepo, RepoError, check_path};

/// The crate's client has no timeout of its own.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct GitlabRepo {
    /// `https://gitlab.example.com` (a path prefix is kept); `http://` for tests and private
    /// networks.
    pub url: String,
    /// The project's path (`group/memory`) or numeric id.
    pub project: String,
    pub branch: String,
    /// Sent as `PRIVATE-TOKEN`; never printed.
    pub token: String,
    client: OnceCell<AsyncGitlab>,
}

impl fmt::Debug for GitlabRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitlabRepo")
            .field("url", &shown(&self.url))
            .field("project", &self.project)
            .field("branch", &self.branch)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct FileContent {
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct ProjectInfo {
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct CommitInfo {
    id: String,
}

impl GitlabRepo {
    pub fn new(
        url: impl Into<String>,
        project: impl Into<String>,
        branch: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        GitlabRepo {
            url: url.into(),
            project: project.into(),
            branch: branch.into(),
            token: token.into(),
            client: OnceCell::new(),
        }
    }

    /// Built on first use (building checks the token against `GET /api/v4/user`).
    async fn client(&self) -> Result<&AsyncGitlab, RepoError> {
        self.client
            .get_or_try_init(|| async {
                let url = self.url.trim().trim_end_matches('/');
                let (insecure, host) = if let Some(rest) = url.strip_prefix("https://") {
                    (false, rest)
                } else if let Some(rest) = url.strip_prefix("http://") {
                    (true, rest)
                } else {
                    return Err(RepoError::Permanent(format!(
                        "GitLab url is not an http(s) URL: {}",
                        shown(url)
                    )));
                };
                if host.is_empty() || host.contains(['?', '#', '@', ' ']) {
                    return Err(RepoError::Permanent(format!(
                        "GitLab url is not an http(s) URL: {}",
                        shown(url)
                    )));
                }
                let mut builder = GitlabBuilder::new(host, self.token.as_str());
                if insecure {
                    builder.insecure();
                }
                match tokio::time::timeout(TIMEOUT, builder.build_async()).await {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(GitlabError::Api { source })) => {
                        Err(classify("checking the token", source))
                    }
                    Ok(Err(GitlabError::Communication { source })) => Err(RepoError::Retry(
                        format!("GitLab unreachable checking the token: {source}"),
                    )),
                    Ok(Err(e)) => Err(RepoError::Permanent(format!("GitLab client: {e}"))),
                    Err(_) => Err(timed_out("checking the token")),
                }
            })
            .await
    }

    /// The file's content on `git_ref`, `None` when it does not exist there.
    async fn read_at(
        &self,
        gl: &AsyncGitlab,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let step = format!("reading {path}");
        let e = File::builder()
            .project(self.project.as_str())
            .file_path(path)
            .ref_(git_ref)
            .build()
            .map_err(|e| RepoError::Permanent(format!("GitLab request {step}: {e}")))?;
        let got: Result<FileContent, _> = tokio::time::timeout(TIMEOUT, e.query_async(gl))
            .await
            .map_err(|_| timed_out(&step))?;
        match got {
            Ok(f) => decode(&f).map(Some).map_err(|e| {
                RepoError::Permanent(format!("GitLab answered {step} with bad content: {e}"))
            }),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify(&step, e)),
        }
    }

    /// Whether `branch` exists.
    async fn branch_exists(&self, gl: &AsyncGitlab) -> Result<bool, RepoError> {
        let step = format!("looking up branch {}", self.branch);
        let e = Branch::builder()
            .project(self.project.as_str())
            .branch(self.branch.as_str())
            .build()
            .map_err(|e| RepoError::Permanent(format!("GitLab request {step}: {e}")))?;
        let got = tokio::time::timeout(TIMEOUT, gitlab::api::ignore(e).query_async(gl))
            .await
            .map_err(|_| timed_out(&step))?;
        match got {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(classify(&step, e)),
        }
    }

    /// The project's default branch; `None` for an empty project (no commits yet).
    async fn default_branch(&self, gl: &AsyncGitlab) -> Result<Option<String>, RepoError> {
        let step = "reading the project";
        let e = Project::builder()
            .project(self.project.as_str())
            .build()
            .map_err(|e| RepoError::Permanent(format!("GitLab request {step}: {e}")))?;
        let info: ProjectInfo = tokio::time::timeout(TIMEOUT, e.query_async(gl))
            .await
            .map_err(|_| timed_out(step))?
            .map_err(|e| classify(step, e))?;
        Ok(info.default_branch.filter(|b| !b.is_empty()))
    }
}

#[async_trait]
impl MemoryRepo for GitlabRepo {
    async fn commit(
        &self,
        files: &BTreeMap<String, String>,
        message: &str,
    ) -> Result<Option<String>, RepoError> {
        for path in files.keys() {
            check_path(path)?;
        }
        let gl = self.client().await?;
        // A missing branch starts from the default branch: files are compared with what the
        // new branch will contain, and the commit creates it.
        let start = if self.branch_exists(gl).await? {
            None
        } else {
            self.default_branch(gl).await?.filter(|b| *b != self.branch)
        };
        let base = start.as_deref().unwrap_or(self.branch.as_str());
        let mut actions = Vec::new();
        for (path, content) in files {
            let kind = match self.read_at(gl, path, base).await? {
                Some(old) if old == content.as_bytes() => continue,
                Some(_) => CommitActionType::Update,
                None => CommitActionType::Create,
            };
            let action = CommitAction::builder()
                .action(kind)
                .file_path(path.as_str())
                .content(content.as_bytes())
                .encoding(Encoding::Text)
                .build()
                .map_err(|e| RepoError::Permanent(format!("GitLab commit action {path}: {e}")))?;
            actions.push(action);
        }
        if actions.is_empty() {
            return Ok(None);
        }
        let step = "committing";
        let mut b = CreateCommit::builder();
        b.project(self.project.as_str())
            .branch(self.branch.as_str())
            .commit_message(message)
            .author_name("Hopper")
            .author_email("hopper@localhost")
            .actions(actions);
        if let Some(start) = start.as_deref() {
            b.start_branch(start);
        }
        let e = b
            .build()
            .map_err(|e| RepoError::Permanent(format!("GitLab request {step}: {e}")))?;
        let commit: CommitInfo = tokio::time::timeout(TIMEOUT, e.query_async(gl))
            .await
            .map_err(|_| timed_out(step))?
            .map_err(|e| classify(step, e))?;
        Ok(Some(commit.id))
    }

    async fn read(&self, path: &str) -> Result<Option<String>, RepoError> {
        check_path(path)?;
        let gl = self.client().await?;
        match self.read_at(gl, path, &self.branch).await? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| RepoError::Permanent(format!("{path} in GitLab is not UTF-8"))),
            None => Ok(None),
        }
    }
}

/// `url` fit for a log or an error: credentials someone put in it (`https://user:pw@host`)
/// are replaced, since the token belongs in the environment and the URL may be printed.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        // `user:pw@host` parses as scheme `user` with an opaque path: not shown either.
        Ok(u) if u.host().is_none() => "<not a URL>".to_owned(),
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// The file API answers base64 (GitLab's default) or text.
fn decode(f: &FileContent) -> Result<Vec<u8>, base64::DecodeError> {
    match f.encoding.as_deref() {
        Some("text") => Ok(f.content.clone().into_bytes()),
        // GitLab wraps nothing, but tolerate line breaks other servers put in base64.
        _ => base64::engine::general_purpose::STANDARD
            .decode(f.content.split_whitespace().collect::<String>()),
    }
}

fn status_of(e: &ApiError<RestError>) -> Option<u16> {
    match e {
        ApiError::GitlabService { status, .. }
        | ApiError::GitlabWithStatus { status, .. }
        | ApiError::GitlabObjectWithStatus { status, .. }
        | ApiError::GitlabUnrecognizedWithStatus { status, .. } => Some(status.as_u16()),
        ApiError::GitlabRateLimited { .. } => Some(429),
        _ => None,
    }
}

/// 5xx and 429 are worth another run; any other 4xx is not (bad token, no such project).
fn classify(step: &str, e: ApiError<RestError>) -> RepoError {
    match (status_of(&e), e) {
        (Some(s), e) if s == 429 || s >= 500 => {
            RepoError::Retry(format!("GitLab answered {s} {step}: {}", clip(&e)))
        }
        (Some(s), e) => RepoError::Permanent(format!("GitLab answered {s} {step}: {}", clip(&e))),
        (
            None,
            ApiError::Client {
                source: RestError::Communication { source },
            },
        ) => RepoError::Retry(format!("GitLab unreachable {step}: {source}")),
        (None, e) => RepoError::Permanent(format!("GitLab request failed {step}: {e}")),
    }
}

fn timed_out(step: &str) -> RepoError {
    RepoError::Retry(format!("GitLab timed out {step}"))
}

fn clip(e: &ApiError<RestError>) -> String {
    e.to_string().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_the_url_are_never_shown() {
        let s = super::shown("https://oauth2:s3cr3t@gitlab.example.com/group/memory.git");
        assert_eq!(s, "https://gitlab.example.com/group/memory.git");
        assert_eq!(
            super::shown("http://gl.local:8080"),
            "http://gl.local:8080/"
        );
        assert!(!super::shown("https://u:p/w@host/x").contains("p/w"));
        assert!(!super::shown("user:pw@host/x").contains("pw"));
    }
}
