//! A local git repository through the `git` CLI: the default backend (`./.hopper/memory` with
//! no config), created on first use. The CLI rather than a library because every machine that
//! runs git has it and its behaviour (hooks aside) is what people expect when they look.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use async_trait::async_trait;
use tokio::process::Command;

use super::repo::{MemoryRepo, RepoError, check_path};

const AUTHOR_NAME: &str = "Hopper";
const AUTHOR_EMAIL: &str = "hopper@localhost";

#[derive(Debug, Clone)]
pub struct GitRepo {
    pub path: PathBuf,
    pub branch: String,
}

impl GitRepo {
    pub fn new(path: impl Into<PathBuf>, branch: impl Into<String>) -> Self {
        GitRepo {
            path: path.into(),
            branch: branch.into(),
        }
    }

    /// Runs `git args` in the repository. The identity comes from the environment so no global
    /// config is needed; signing and prompts are off because nobody is there to answer.
    async fn git(&self, args: &[&str]) -> Result<Output, RepoError> {
        Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"])
            .args(args)
            .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
            .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
            .env("GIT_TERMINAL_PROMPT", "0")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    RepoError::Permanent("the git command is not installed".into())
                }
                _ => RepoError::Retry(format!("running git {}: {e}", args.join(" "))),
            })
    }

    /// `git args`, failing unless it exits 0. A failed git command (a stale `index.lock`, a
    /// full disk) is retried on the next run.
    async fn run(&self, args: &[&str]) -> Result<String, RepoError> {
        let out = self.git(args).await?;
        if !out.status.success() {
            return Err(RepoError::Retry(format!(
                "git {} in {}: {}",
                args.join(" "),
                self.path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates the repository on first use and makes sure `branch` is checked out.
    async fn prepare(&self) -> Result<(), RepoError> {
        if self.branch.is_empty() || self.branch.starts_with('-') {
            return Err(RepoError::Permanent(format!(
                "bad branch name {:?}",
                self.branch
            )));
        }
        tokio::fs::create_dir_all(&self.path)
            .await
            .map_err(|e| RepoError::Retry(format!("creating {}: {e}", self.path.display())))?;
        if !tokio::fs::try_exists(self.path.join(".git"))
            .await
            .unwrap_or(false)
        {
            self.run(&["init", "-q", "-b", &self.branch]).await?;
            return Ok(());
        }
        let current = self.git(&["symbolic-ref", "--short", "HEAD"]).await?;
        if String::from_utf8_lossy(&current.stdout).trim() == self.branch {
            return Ok(());
        }
        let exists = self
            .git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{}", self.branch),
            ])
            .await?
            .status
            .success();
        if exists {
            self.run(&["checkout", "-q", &self.branch]).await?;
        } else {
            self.run(&["checkout", "-q", "-b", &self.branch]).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl MemoryRepo for GitRepo {
    async fn commit(
        &self,
        files: &BTreeMap<String, String>,
        message: &str,
    ) -> Result<Option<String>, RepoError> {
        for path in files.keys() {
            check_path(path)?;
        }
        self.prepare().await?;
        for (path, content) in files {
            let full = self.path.join(path);
            if let Some(dir) = full.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| RepoError::Retry(format!("creating {}: {e}", dir.display())))?;
            }
            tokio::fs::write(&full, content)
                .await
                .map_err(|e| RepoError::Retry(format!("writing {}: {e}", full.display())))?;
        }
        self.run(&["add", "-A"]).await?;
        // Exit 0: the index equals HEAD (or the empty tree on an unborn branch): nothing to
        // commit. 1: changes. Anything else is an error.
        let diff = self.git(&["diff", "--cached", "--quiet"]).await?;
        match diff.status.code() {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => {
                return Err(RepoError::Retry(format!(
                    "git diff --cached in {}: {}",
                    self.path.display(),
                    String::from_utf8_lossy(&diff.stderr).trim()
                )));
            }
        }
        self.run(&["commit", "-q", "--no-verify", "-m", message])
            .await?;
        self.run(&["rev-parse", "HEAD"]).await.map(Some)
    }

    /// From the branch's last commit, not the work tree: an edit nobody committed is not memory.
    async fn read(&self, path: &str) -> Result<Option<String>, RepoError> {
        check_path(path)?;
        if !tokio::fs::try_exists(self.path.join(".git"))
            .await
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let spec = format!("refs/heads/{}:{path}", self.branch);
        // `cat-file -e` exits non-zero for a missing branch or file alike: both mean "none yet".
        if !self.git(&["cat-file", "-e", &spec]).await?.status.success() {
            return Ok(None);
        }
        let out = self.git(&["cat-file", "blob", &spec]).await?;
        if !out.status.success() {
            return Err(RepoError::Retry(format!(
                "git cat-file {spec} in {}: {}",
                self.path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        String::from_utf8(out.stdout)
            .map(Some)
            .map_err(|_| RepoError::Permanent(format!("{path} is not UTF-8")))
    }
}
