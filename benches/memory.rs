//! Memory at 100,000 episodes: consolidation into a local git repository beside the ceiling of
//! only reading the episodes in the same run, and full-text search latency (the query the
//! `memory` routing provider and `hopper memory search` make).
//!
//! The episodes are written straight into `episodes` (as the triggers write them): 100 projects,
//! titles from a small vocabulary, half of them outcomes with quality and notes.
//!
//! ```text
//! HOPPER_BENCH_PG_URL=postgres://hopper:hopper@127.0.0.1:5432/hopper cargo bench --bench memory
//! ```
//!
//! HOPPER_BENCH_EPISODES sets the count (default 100,000; 2,000 under `cargo test --benches`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use hopper::Engine;
use hopper::domain::MemoryQuery;
use hopper::memory::consolidate::GitRepo;
use hopper::memory::job::consolidate;

const WORDS: &[&str] = &[
    "patch", "gate", "auth", "bypass", "rotate", "keys", "docs", "typo", "readme", "deploy",
    "pipeline", "flaky", "test", "login", "cache", "index", "query", "slow", "memory", "leak",
    "upgrade", "crate", "release", "notes", "printer", "jammed", "vpn", "access", "billing",
    "invoice",
];

/// `n` episodes, inserted in batches of 500 rows per statement.
async fn fill(url: &str, n: usize) {
    let row = |i: usize| {
        let w = |k: usize| WORDS[(i * 7 + k * 13) % WORDS.len()];
        let kind = ["routed", "completed", "routed", "failed"][i % 4];
        let outcome = kind != "routed";
        (
            format!("tsk_{i:012}"),
            kind,
            i as i64,
            format!("p{}", i % 100),
            format!("{} the {} {}", w(0), w(1), w(2)),
            format!("{} {} {} {}", w(3), w(4), w(5), w(6)),
            format!("[\"{}\"]", w(7)),
            outcome.then_some(((i % 5) as f64) + 0.5),
            outcome.then(|| format!("{} done", w(8))),
        )
    };
    macro_rules! insert {
        ($conn:expr, $chunk:expr) => {{
            let mut q = String::from(
                "INSERT INTO episodes (instance_id, task_id, kind, at, project, title, text, tags, \
                 quality, notes) VALUES ",
            );
            let mut k = 0;
            for (j, _) in $chunk.iter().enumerate() {
                if j > 0 {
                    q.push(',');
                }
                q.push_str(&format!(
                    "('hopper-global', ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    k + 1,
                    k + 2,
                    k + 3,
                    k + 4,
                    k + 5,
                    k + 6,
                    k + 7,
                    k + 8,
                    k + 9
                ));
                k += 9;
            }
            let mut query = sqlx::query(&q);
            for r in $chunk {
                query = query
                    .bind(&r.0)
                    .bind(r.1)
                    .bind(r.2)
                    .bind(&r.3)
                    .bind(&r.4)
                    .bind(&r.5)
                    .bind(&r.6)
                    .bind(r.7)
                    .bind(&r.8);
            }
            query.execute($conn).await.unwrap();
        }};
    }
    let rows: Vec<_> = (0..n).map(row).collect();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for chunk in rows.chunks(500) {
            insert!(&pool, chunk);
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for chunk in rows.chunks(500) {
            insert!(&pool, chunk);
        }
        pool.close().await;
    }
}

async fn backend(label: &str, url: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    // Opened once first so the migrations (and the episodes table) exist.
    Engine::open(common::configs(url, dir.path()))
        .await
        .unwrap()
        .close()
        .await;
    fill(url, n).await;
    let engine = Engine::open(common::configs(url, dir.path()))
        .await
        .unwrap();

    // The indexer's work after the commits (`engine/indexer.rs`), in its batch size.
    let started = Instant::now();
    while engine.registry_store().index_episodes(500).await.unwrap() {}
    let indexed = started.elapsed();
    println!(
        "{label:<9} full-text indexing of {n} episodes after their commits: {:.2} s ({:.0}/s)",
        indexed.as_secs_f64(),
        n as f64 / indexed.as_secs_f64()
    );
    if !url.starts_with("sqlite:") {
        // What autovacuum does after a bulk load: without statistics the planner guesses.
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("ANALYZE episodes")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    let started = Instant::now();
    let mut read = 0;
    let mut after = 0;
    loop {
        let page = engine
            .registry_store()
            .episodes_after(after, 10_000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read += page.len();
    }
    let ceiling = started.elapsed();
    assert_eq!(read, n);

    let repo = GitRepo::new(dir.path().join("memory"), "main");
    let started = Instant::now();
    let done = consolidate(&engine, &repo, None, false, &|_, _| {})
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(done.episodes as usize, n);
    assert!(done.commit.is_some());
    println!(
        "{label:<9} consolidation of {n} episodes: {:.2} s ({} files, committed); reading them alone {:.2} s",
        took.as_secs_f64(),
        done.files.len(),
        ceiling.as_secs_f64()
    );

    let mut lat = Vec::new();
    for i in 0..500 {
        let q = MemoryQuery {
            q: format!(
                "{} {} {}",
                WORDS[i % WORDS.len()],
                WORDS[(i * 3) % WORDS.len()],
                WORDS[(i * 11) % WORDS.len()]
            ),
            instance: None,
            limit: Some(50),
        };
        let t = Instant::now();
        let hits = engine.search_memory(&q).await.unwrap();
        lat.push(t.elapsed());
        assert!(!hits.is_empty());
    }
    lat.sort();
    println!(
        "{label:<9} search of {n} episodes (3 words, top 50): p50 {:.2} ms  p99 {:.2} ms",
        common::pct(&lat, 0.5),
        common::pct(&lat, 0.99)
    );
    engine.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("HOPPER_BENCH_EPISODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("memory.db").display());
        backend("sqlite", &url, n).await;
        match std::env::var("HOPPER_BENCH_PG_URL") {
            Ok(admin) => {
                let url = common::fresh_pg(&admin).await;
                backend("postgres", &url, n).await;
                common::drop_pg(&admin, &url).await;
            }
            Err(_) => println!("postgres  skipped (set HOPPER_BENCH_PG_URL)"),
        }
    });
}
