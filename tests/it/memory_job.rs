//! The consolidation job on a real local git repository: episodes become committed files, an
//! unchanged memory makes no commit, the watermark moves only after a commit, a failed or
//! killed run is redone without a second commit, and the lease keeps a second runner out.

use std::collections::BTreeMap;
use std::process::Command;

use async_trait::async_trait;
use hopper::Engine;
use hopper::domain::{Actor, Feedback, InstanceId, TaskDraft};
use hopper::error::HopperError;
use hopper::memory::consolidate::{GitRepo, MemoryRepo, RepoError};
use hopper::memory::job::consolidate;

use crate::outbound_support::sark;
use crate::support::{Backend, TestEnv, handle, on_both};

async fn work(engine: &Engine, title: &str) {
    engine
        .add_task(
            &InstanceId::global(),
            TaskDraft::new(title).with_tags(["security"]),
        )
        .await
        .unwrap();
    let t = handle(engine, &sark())
        .get_next("fixer")
        .await
        .unwrap()
        .unwrap();
    let actor = Actor::Executor {
        name: "fixer".into(),
        lease: t.lease_id.clone().unwrap(),
    };
    let fb = Feedback {
        quality_score: Some(4.0),
        notes: Some(format!("{title}: done")),
        ..Default::default()
    };
    engine.complete(&t.id, &actor, Some(fb)).await.unwrap();
}

fn commits(dir: &std::path::Path) -> usize {
    let out = Command::new("git")
        .args(["rev-list", "--count", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Commits through a real repository, then says the answer was lost: the run fails after the
/// commit landed, as a run killed before it moved the watermark would.
struct LostAnswer(GitRepo);

#[async_trait]
impl MemoryRepo for LostAnswer {
    async fn commit(
        &self,
        files: &BTreeMap<String, String>,
        message: &str,
    ) -> Result<Option<String>, RepoError> {
        self.0.commit(files, message).await?;
        Err(RepoError::Retry("the answer was lost".into()))
    }

    async fn read(&self, path: &str) -> Result<Option<String>, RepoError> {
        self.0.read(path).await
    }
}

async fn consolidation_commits_once_and_redoes_what_failed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(dir.path().join("memory"), "main");
    let none = |_: u64, _: u64| {};
    work(&engine, "Patch the MCP gate").await;

    // A dry run renders, commits nothing and moves nothing.
    let dry = consolidate(&engine, &repo, None, true, &none)
        .await
        .unwrap();
    assert!(dry.dry_run && dry.commit.is_none());
    assert_eq!(dry.episodes, 2, "routed and completed");
    let paths: Vec<&str> = dry.files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.contains(&"profile.json") && paths.contains(&"README.md"),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("projects/") && p.contains("sark")),
        "{paths:?}"
    );
    assert!(
        !dir.path().join("memory").exists(),
        "a dry run writes nothing"
    );

    let first = consolidate(&engine, &repo, None, false, &none)
        .await
        .unwrap();
    assert!(first.commit.is_some());
    assert_eq!(commits(&dir.path().join("memory")), 1);
    let page = std::fs::read_to_string(dir.path().join("memory/profile.json")).unwrap();
    assert!(page.contains("sark"), "{page}");
    let state = engine
        .registry_store()
        .memory_state("hopper-global")
        .await
        .unwrap();
    assert_eq!(state.watermark, first.watermark);

    // Nothing new: same files, no commit.
    let again = consolidate(&engine, &repo, None, false, &none)
        .await
        .unwrap();
    assert_eq!((again.episodes, again.commit.as_deref()), (0, None));
    assert_eq!(commits(&dir.path().join("memory")), 1);

    // New work, and a run that fails after its commit landed: the watermark stays...
    work(&engine, "Rotate the gate keys").await;
    let lost = LostAnswer(GitRepo::new(dir.path().join("memory"), "main"));
    let e = consolidate(&engine, &lost, None, false, &none)
        .await
        .unwrap_err();
    assert!(matches!(e, HopperError::Unavailable(_)), "{e:?}");
    let state = engine
        .registry_store()
        .memory_state("hopper-global")
        .await
        .unwrap();
    assert_eq!(
        state.watermark, first.watermark,
        "moved only after a commit it knows of"
    );
    assert_eq!(commits(&dir.path().join("memory")), 2);
    // ...so the next run folds the same episodes in, finds the files committed, and moves it.
    let redo = consolidate(&engine, &repo, None, false, &none)
        .await
        .unwrap();
    assert_eq!(redo.episodes, 2);
    assert!(redo.commit.is_none(), "no second commit of the same files");
    assert_eq!(commits(&dir.path().join("memory")), 2);
    let state = engine
        .registry_store()
        .memory_state("hopper-global")
        .await
        .unwrap();
    assert_eq!(state.watermark, redo.watermark);
    assert!(redo.watermark > first.watermark);

    // A lease another server holds keeps this one out.
    let store = engine.registry_store();
    let now = hopper::domain::now_millis();
    assert!(
        store
            .take_memory_lease("hopper-global", "other", now, now + 60_000)
            .await
            .unwrap()
    );
    let e = consolidate(&engine, &repo, None, false, &none)
        .await
        .unwrap_err();
    assert!(matches!(e, HopperError::Conflict(_)), "{e:?}");
    engine.close().await;
}
on_both!(consolidation_commits_once_and_redoes_what_failed);

#[test]
fn five_field_schedules_parse_and_bad_ones_are_named() {
    let s = hopper::memory::job::schedule("0 2 * * *").unwrap();
    let next = s.upcoming(chrono::Utc).next().unwrap();
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
    let e = hopper::memory::job::schedule("every night").unwrap_err();
    assert!(e.to_string().contains("consolidation_schedule"), "{e}");
}

/// The very first run commits, then dies before it saves the watermark: the database has no
/// profile but the repository has this database's own. The next run carries on from its
/// watermark instead of counting the same episodes again.
async fn a_first_run_lost_before_its_save_counts_nothing_twice(backend: Backend) {
    use hopper::memory::consolidate::RoutingProfile;
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let dir = tempfile::tempdir().unwrap();
    let none = |_: u64, _: u64| {};
    work(&engine, "Patch the MCP gate").await;
    let lost = LostAnswer(GitRepo::new(dir.path().join("memory"), "main"));
    consolidate(&engine, &lost, None, false, &none)
        .await
        .unwrap_err();
    let repo = GitRepo::new(dir.path().join("memory"), "main");
    let redo = consolidate(&engine, &repo, None, false, &none)
        .await
        .unwrap();
    assert_eq!(redo.episodes, 0, "nothing above the committed watermark");
    assert!(redo.commit.is_none(), "the same files: no second commit");
    let json = std::fs::read_to_string(dir.path().join("memory/profile.json")).unwrap();
    let profile: RoutingProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(profile.episodes, 2, "routed and completed, once each");
    engine.close().await;
}
on_both!(a_first_run_lost_before_its_save_counts_nothing_twice);
