//! Episodic memory: what happened to tasks is recorded by the database as it happens (routing,
//! corrections, outcomes with feedback), searchable by text through the engine, the REST API
//! and the CLI; `null` turns it off and a backend this build lacks refuses to start.

use hopper::domain::{Actor, Feedback, InstanceId, MemoryQuery, TaskDraft};
use hopper::memory::EpisodeKind;
use serde_json::Value;

use crate::outbound_support::sark;
use crate::support::{Backend, TestEnv, TestServer, handle, on_both};

fn draft(title: &str, description: &str) -> TaskDraft {
    let mut d = TaskDraft::new(title).with_tags(["security"]);
    d.description = description.into();
    d
}

async fn episodes(engine: &hopper::Engine) -> Vec<hopper::memory::Episode> {
    engine
        .registry_store()
        .episodes_after(0, 100)
        .await
        .unwrap()
}

/// Routed, completed with feedback, and a correction: each an episode with what learning
/// needs; the search finds them by the words of the task and of the feedback.
async fn decisions_outcomes_and_corrections_are_episodes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let global = InstanceId::global();
    let patched = engine
        .add_task(
            &global,
            draft("Patch the MCP gate bypass", "The gate lets anyone in."),
        )
        .await
        .unwrap();
    let claimed = handle(&engine, &sark())
        .get_next("fixer")
        .await
        .unwrap()
        .unwrap();
    let actor = Actor::Executor {
        name: "fixer".into(),
        lease: claimed.lease_id.clone().unwrap(),
    };
    let fb = Feedback {
        notes: Some("Closed the bypass with a signed token check".into()),
        quality_score: Some(4.5),
        was_good_match: Some(true),
        ..Default::default()
    };
    engine
        .complete(&claimed.id, &actor, Some(fb))
        .await
        .unwrap();

    let moved = engine
        .add_task(
            &global,
            draft("Rotate the signing keys", "Quarterly rotation."),
        )
        .await
        .unwrap();
    let req = hopper::engine::RerouteRequest {
        project: "vault".into(),
        reason: Some("keys belong to vault".into()),
    };
    engine
        .reroute(&moved.id, &req, &Actor::Admin)
        .await
        .unwrap();
    // And back: a correction from where the last one sent it.
    let back = hopper::engine::RerouteRequest {
        project: "sark".into(),
        reason: None,
    };
    engine
        .reroute(&moved.id, &back, &Actor::Admin)
        .await
        .unwrap();

    let all = episodes(&engine).await;
    let kinds: Vec<(EpisodeKind, Option<&str>)> =
        all.iter().map(|e| (e.kind, e.project.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            (EpisodeKind::Routed, Some("sark")),
            (EpisodeKind::Completed, Some("sark")),
            (EpisodeKind::Routed, Some("sark")),
            (EpisodeKind::Corrected, Some("vault")),
            (EpisodeKind::Corrected, Some("sark")),
        ],
        "{all:#?}"
    );
    let done = &all[1];
    assert_eq!(done.quality, Some(4.5));
    assert_eq!(done.routing_correct, Some(true));
    assert_eq!(
        done.notes.as_deref(),
        Some("Closed the bypass with a signed token check")
    );
    assert!(done.duration_ms.is_some_and(|d| d >= 0));
    assert_eq!(all[0].task_id, patched.id.to_string());
    assert_eq!(all[3].from_project.as_deref(), Some("sark"));
    assert_eq!(all[3].decided_by.as_deref(), Some("correction"));
    assert_eq!(all[4].from_project.as_deref(), Some("vault"));
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "ordered by seq"
    );

    // Search: by the task's words and the feedback's, best first, with a snippet.
    let q = |q: &str| MemoryQuery {
        q: q.into(),
        ..Default::default()
    };
    let hits = engine
        .search_memory(&q("signed token bypass"))
        .await
        .unwrap();
    assert_eq!(hits[0].episode.kind, EpisodeKind::Completed, "{hits:#?}");
    assert!(hits[0].snippet.contains('['), "{}", hits[0].snippet);
    let hits = engine.search_memory(&q("rotate")).await.unwrap();
    assert!(
        hits.iter()
            .all(|h| h.episode.task_id == moved.id.to_string())
    );
    assert!(!hits.is_empty());
    assert!(
        engine
            .search_memory(&q("nothing-like-this"))
            .await
            .unwrap()
            .is_empty()
    );
    let weird = engine.search_memory(&q("\"gate\" OR (* -")).await.unwrap();
    assert!(!weird.is_empty(), "operators are words, not syntax");
    assert!(engine.search_memory(&q("  ")).await.is_err());
    engine.close().await;
}
on_both!(decisions_outcomes_and_corrections_are_episodes);

/// `GET /v1/memory/search` answers ranked hits; a missing query is a 422 with a JSON body.
async fn the_api_searches_memory(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    server
        .engine
        .add_task(&InstanceId::global(), draft("Audit the MCP gate", ""))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let get = |path: String| {
        client
            .get(format!("{}{path}", server.base))
            .bearer_auth(&server.token)
            .send()
    };
    let r = get("/v1/memory/search?q=audit%20gate&limit=5".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hits: Value = r.json().await.unwrap();
    assert_eq!(hits[0]["episode"]["kind"], "routed");
    assert_eq!(hits[0]["episode"]["project"], "sark");
    let r = get("/v1/memory/search?q=".into()).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].is_object() || body["error"].is_string(),
        "{body}"
    );
}
on_both!(the_api_searches_memory);

/// `memory.episodic.backend: null` records nothing.
async fn null_memory_records_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut c = env.configs();
    c.root.memory.episodic = Some(hopper::config::BackendConfig::named("null"));
    let engine = hopper::Engine::open(c).await.unwrap();
    engine
        .add_task(&InstanceId::global(), draft("Patch it", ""))
        .await
        .unwrap();
    assert!(episodes(&engine).await.is_empty());
    engine.close().await;
}
on_both!(null_memory_records_nothing);

/// A backend this build does not have stops start-up with the key and the choices.
#[test]
fn opensearch_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.yaml");
    std::fs::write(
        &path,
        "scope: global\nmemory:\n  episodic:\n    backend: opensearch\n    url: http://localhost:9200\n",
    )
    .unwrap();
    let e = hopper::config::ConfigSet::load(Some(&path), &Default::default()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("memory.episodic.backend"), "{text}");
    assert!(
        text.contains("opensearch") && text.contains("null"),
        "{text}"
    );
}

/// The full-text index is filled after the commit (the indexer, or a search first): episodes
/// just recorded are pending, one batch at a time indexes them, a search finds all of them
/// whatever is pending, and nothing is indexed twice.
async fn episodes_are_indexed_after_the_commit_and_searches_miss_none(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let global = InstanceId::global();
    for n in 0..5 {
        engine
            .add_task(
                &global,
                draft(&format!("Rotate the quokka keys {n}"), "Quokka vault."),
            )
            .await
            .unwrap();
    }
    let store = engine.registry_store();
    assert_eq!(store.unindexed_episodes().await.unwrap(), 5);
    assert!(store.index_episodes(2).await.unwrap(), "pending");
    assert_eq!(
        store.unindexed_episodes().await.unwrap(),
        3,
        "one batch of two"
    );
    let hits = store.search_episodes("quokka", 50).await.unwrap();
    assert_eq!(hits.len(), 5, "every episode found: {hits:?}");
    let mut seqs: Vec<i64> = hits.iter().map(|h| h.episode.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 5, "each once");
    assert!(!store.index_episodes(100).await.unwrap(), "nothing left");
    assert_eq!(store.unindexed_episodes().await.unwrap(), 0);

    // The indexer's round indexes new ones without a search.
    engine
        .add_task(&global, draft("Feed the quokka", "Quokka snacks."))
        .await
        .unwrap();
    engine.index_episodes().await.unwrap();
    assert!(!store.index_episodes(100).await.unwrap());
    assert_eq!(store.search_episodes("quokka", 50).await.unwrap().len(), 6);
    engine.close().await;
}
on_both!(episodes_are_indexed_after_the_commit_and_searches_miss_none);
