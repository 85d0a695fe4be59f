//! The consolidation job: `hopper consolidate` by hand, and on `memory.consolidated.
//! consolidation_schedule` inside `hopper serve`.
//!
//! One run: take the instance's lease (`memory_state`: of several servers on one database only
//! one runs it), read the episodes above the watermark in pages, fold them into the profile the
//! last run committed, render the files, commit them, and only then move the watermark with the
//! new profile (one write that also gives the lease back). A run that fails or is killed before
//! that last write leaves the watermark where it was: the next run renders the same files, the
//! repository has them already if the commit landed (no second commit), and nothing is lost or
//! half-committed.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::consolidate::{GitRepo, GitlabRepo, MemoryRepo, PROFILE_FILE, RoutingProfile, files};
use crate::config::HopperConfig;
use crate::domain::{InstanceId, now_millis};
use crate::engine::Engine;
use crate::error::{HopperError, Result};
use crate::store::MemoryState;

/// Episodes read per statement.
const PAGE: i64 = 10_000;
/// How long a run may hold the lease before another server may take it over.
const LEASE_MS: i64 = 30 * 60 * 1000;
/// `memory.consolidated.consolidation_schedule` when none is set: 02:00 every night.
pub const DEFAULT_SCHEDULE: &str = "0 2 * * *";

/// What a run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Consolidated {
    pub instance: String,
    /// Episodes folded in by this run.
    pub episodes: u64,
    pub watermark: i64,
    /// The commit made; `None` when nothing changed (or a dry run).
    pub commit: Option<String>,
    /// The files as rendered (path → bytes).
    pub files: Vec<(String, usize)>,
    pub dry_run: bool,
}

/// Where consolidated memory goes: `memory.consolidated` (`git` with a `path`, or `gitlab`
/// with `url`, `repository` and the token in `HOPPER_MEMORY_GITLAB_TOKEN` or
/// `HOPPER_GITLAB_TOKEN`); by default a local repository `memory/` in the data directory.
pub fn repo(config: &HopperConfig) -> Result<Box<dyn MemoryRepo>> {
    let data_dir = PathBuf::from(&config.server.data_dir);
    let Some(b) = &config.memory.consolidated else {
        return Ok(Box::new(GitRepo::new(data_dir.join("memory"), "main")));
    };
    let branch = b.branch.clone().unwrap_or_else(|| "main".into());
    match b.backend.as_str() {
        "git" => {
            let path = b
                .path
                .as_deref()
                .map(|p| p.replace("{data_dir}", &config.server.data_dir))
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("memory"));
            Ok(Box::new(GitRepo::new(path, branch)))
        }
        "gitlab" => {
            let invalid = |k: &str| {
                HopperError::Invalid(format!("memory.consolidated.{k}: needed for gitlab"))
            };
            let url = b.url.clone().ok_or_else(|| invalid("url"))?;
            let project = b.repository.clone().ok_or_else(|| invalid("repository"))?;
            let token = ["HOPPER_MEMORY_GITLAB_TOKEN", "HOPPER_GITLAB_TOKEN"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
                .ok_or_else(|| {
                    HopperError::Invalid(
                        "memory.consolidated: gitlab needs HOPPER_MEMORY_GITLAB_TOKEN (or HOPPER_GITLAB_TOKEN)".into(),
                    )
                })?;
            Ok(Box::new(GitlabRepo::new(url, project, branch, token)))
        }
        other => Err(HopperError::Invalid(format!(
            "memory.consolidated.backend: `{other}`: expected git or gitlab"
        ))),
    }
}

/// The schedule: a standard five-field cron expression (`0 2 * * *`), or the `cron` crate's
/// six or seven fields with seconds.
pub fn schedule(expr: &str) -> Result<cron::Schedule> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_owned()
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        HopperError::Invalid(format!(
            "memory.consolidated.consolidation_schedule `{expr}`: {e}"
        ))
    })
}

/// One run for `instance` (the global one by default) into `repo`. `progress` hears the
/// number of episodes read so far and how many there are to read.
pub async fn consolidate(
    engine: &Engine,
    repo: &dyn MemoryRepo,
    instance: Option<&InstanceId>,
    dry_run: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Consolidated> {
    let id = instance.cloned().unwrap_or_else(|| engine.root().clone());
    let store = engine.node(&id).await?.store.clone();
    let owner = format!("csl_{}", uuid::Uuid::now_v7().simple());
    let key = id.as_str();
    if !dry_run
        && !store
            .take_memory_lease(key, &owner, now_millis(), now_millis() + LEASE_MS)
            .await?
    {
        return Err(HopperError::Conflict(format!(
            "consolidation of {id} is running elsewhere (its lease has not run out)"
        )));
    }
    // Which database this is (the instance's creation time changes with a reset): what lets a
    // run tell the repository's profile of a reset database from its own, committed by a run
    // that died before it saved the watermark. Only the root's profile is in the repository.
    let origin = match id == *engine.root() {
        true => Some(format!(
            "{id}@{}",
            engine.get_instance(&id).await?.created_at
        )),
        false => None,
    };
    let result = run(&store, repo, key, &owner, origin, dry_run, progress).await;
    if (result.is_err() || dry_run)
        && let Err(e) = store.release_memory_lease(key, &owner).await
    {
        tracing::warn!(error = %e, "could not give the consolidation lease back");
    }
    let (done, profile) = result?;
    // Routing learns from what was just committed; a dry run changes nothing.
    if !dry_run && id == *engine.root() {
        engine.learned_profile().set(profile);
    }
    Ok(done)
}

/// The profile routing starts with: the database's last consolidation, or, when the database
/// has none (new, or reset), the one committed in the memory repository. Never fails start-up:
/// without a profile the `memory` provider still has the episodes.
pub async fn load_learned(engine: &Engine, repo: &dyn MemoryRepo) {
    let key = engine.root().as_str().to_owned();
    let loaded = match engine.registry_store().memory_state(&key).await {
        Ok(state) => match state.profile {
            Some(json) => parse_profile(&json, "the database").map(Some),
            None => repo_profile(repo).await,
        },
        Err(e) => Err(e.into()),
    };
    match loaded {
        Ok(Some(profile)) => {
            tracing::info!(
                episodes = profile.episodes,
                projects = profile.projects.len(),
                "routing profile loaded"
            );
            engine.learned_profile().set(profile);
        }
        Ok(None) => tracing::debug!("no routing profile yet"),
        Err(e) => {
            tracing::warn!(error = %e, "routing profile not loaded; memory routes on episodes alone")
        }
    }
}

/// `profile.json` as the repository has it committed.
async fn repo_profile(repo: &dyn MemoryRepo) -> Result<Option<RoutingProfile>> {
    let Some(json) = repo
        .read(PROFILE_FILE)
        .await
        .map_err(|e| HopperError::Unavailable(e.to_string()))?
    else {
        return Ok(None);
    };
    parse_profile(&json, "the memory repository").map(Some)
}

fn parse_profile(json: &str, from: &str) -> Result<RoutingProfile> {
    serde_json::from_str(json)
        .map_err(|e| HopperError::Invalid(format!("{PROFILE_FILE} in {from}: {e}")))
}

async fn run(
    store: &crate::store::Store,
    repo: &dyn MemoryRepo,
    key: &str,
    owner: &str,
    origin: Option<String>,
    dry_run: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Consolidated, RoutingProfile)> {
    let state = store.memory_state(key).await?;
    let mut profile = match &state.profile {
        Some(p) => serde_json::from_str::<RoutingProfile>(p)
            .map_err(|e| HopperError::Internal(format!("the stored routing profile: {e}")))?,
        // No profile saved here, one in the repository: either this database's own, committed
        // by a run that died before it saved the watermark (same origin: carry on from its
        // watermark), or another database's (reset, or new beside an old repository: carry on
        // from what it learned, all of this database's episodes being new to it).
        None if origin.is_some() => match repo_profile(repo).await? {
            Some(mut p) => {
                if p.origin != origin {
                    tracing::info!(
                        episodes = p.episodes,
                        "consolidation continues from another database's profile"
                    );
                    p.watermark = 0;
                }
                p
            }
            None => RoutingProfile::new(),
        },
        None => RoutingProfile::new(),
    };
    if origin.is_some() {
        profile.origin = origin;
    }
    let mut read = 0u64;
    let mut after = state.watermark.max(profile.watermark);
    let total = u64::try_from(store.count_episodes_after(after).await?).unwrap_or(0);
    progress(0, total);
    loop {
        let page = store.episodes_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            profile.add(e);
        }
        read += page.len() as u64;
        progress(read, total.max(read));
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let files = files(&profile);
    let listed = files.iter().map(|(p, c)| (p.clone(), c.len())).collect();
    let mut done = Consolidated {
        instance: key.to_owned(),
        episodes: read,
        watermark: profile.watermark,
        commit: None,
        files: listed,
        dry_run,
    };
    if dry_run {
        return Ok((done, profile));
    }
    let message = format!(
        "Hopper memory of {key}: {read} new episodes, up to #{}",
        profile.watermark
    );
    done.commit = repo
        .commit(&files, &message)
        .await
        .map_err(|e| HopperError::Unavailable(e.to_string()))?;
    let saved = MemoryState {
        profile: Some(
            serde_json::to_string(&profile).map_err(|e| HopperError::Internal(e.to_string()))?,
        ),
        watermark: profile.watermark,
        last_commit: done.commit.clone().or(state.last_commit),
        last_run_at: Some(now_millis()),
    };
    if !store.save_memory_state(key, owner, &saved).await? {
        tracing::warn!(
            instance = key,
            "consolidation lease lost before the watermark moved; the next run redoes it"
        );
    }
    Ok((done, profile))
}

/// Runs consolidation of the global instance on its schedule until `shutdown`. A failed run is
/// logged and retried at the next time.
pub fn spawn(
    engine: Engine,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let config = &engine.configs().root;
    if !config.memory.episodic_enabled() {
        return Ok(None);
    }
    let expr = config
        .memory
        .consolidated
        .as_ref()
        .and_then(|b| b.consolidation_schedule.clone())
        .unwrap_or_else(|| DEFAULT_SCHEDULE.into());
    let schedule = schedule(&expr)?;
    let repo = repo(config)?;
    Ok(Some(tokio::spawn(async move {
        load_learned(&engine, repo.as_ref()).await;
        loop {
            let Some(next) = schedule.upcoming(chrono::Utc).next() else {
                return;
            };
            let wait = (next - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match consolidate(&engine, repo.as_ref(), None, false, &|_, _| {}).await {
                Ok(c) => {
                    tracing::info!(episodes = c.episodes, commit = ?c.commit, "memory consolidated")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "memory consolidation failed; the next run redoes it")
                }
            }
        }
    })))
}
