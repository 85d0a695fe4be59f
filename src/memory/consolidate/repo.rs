//! Where consolidated memory is committed: one trait, so the nightly job does not care whether
//! the files land in a local repository or in GitLab.

use std::collections::BTreeMap;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Worth trying again on the next run (the server was down, busy or rate limiting, a lock
    /// file was in the way); the watermark does not move, so no episode is lost.
    #[error("memory repository unavailable: {0}")]
    Retry(String),
    /// Trying again will not help until someone changes something (bad token, no such project,
    /// no git binary, an unsafe file path).
    #[error("memory repository refused: {0}")]
    Permanent(String),
}

impl RepoError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, RepoError::Retry(_))
    }
}

#[async_trait]
pub trait MemoryRepo: Send + Sync {
    /// Writes `files` (path relative to the repository root → content) and commits them with
    /// `message`: the new commit's id, or `None` when every file already had that content (no
    /// commit made). Files the repository has but `files` does not name are left alone.
    async fn commit(
        &self,
        files: &BTreeMap<String, String>,
        message: &str,
    ) -> Result<Option<String>, RepoError>;

    /// The committed content of `path` on the branch, `None` when the repository, the branch
    /// or the file does not exist (yet).
    async fn read(&self, path: &str) -> Result<Option<String>, RepoError>;
}

/// A path the backends accept: relative, `/`-separated, no empty, `.` or `..` parts, nothing
/// under `.git`. The files come from our own renderer, but a page is named after a project and
/// a repository write must never leave its directory.
pub fn check_path(path: &str) -> Result<(), RepoError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path.split('/').next() != Some(".git");
    if ok {
        Ok(())
    } else {
        Err(RepoError::Permanent(format!("unsafe file path {path:?}")))
    }
}
