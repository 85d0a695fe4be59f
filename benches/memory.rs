//! Memory at 100,000 episodes: consolidation into a local git repository beside the ceiling of
//! only reading the episodes in the same run, and full-text search latency (the query the
//! `memory` routing provider and `hopper memory search` make).
//!
//! And what recording episodes adds to ingest's commits (`recording`): routed tasks inserted
//! 20 to a transaction, one statement each, as the group committer writes a burst's, with
//! episodes on and off in turns on one database; the median of 5 rounds of each: on SQLite the
//! CPU time of the connection's thread, on PostgreSQL the wall time. Steadier than the inbound
//! bench's on/off throughput, which moves ±10% from run to run on this machine.
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

/// Routed tasks inserted, 20 to a transaction, `rows` to a statement (SQLite's
/// group committer runs one per task; PostgreSQL's batches insert many in one statement), `n`
/// in all; ids from `round`.
macro_rules! insert_tasks {
    ($conn:expr, $n:expr, $rows:expr, $round:expr) => {{
        let tuples: Vec<String> = (0..$rows)
            .map(|j| {
                let p = j * 5;
                format!(
                    "(${}, 'hopper-global', ${}, ${}, '[\"bug\"]', 2, 'routed', ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO tasks (id, instance_id, title, description, tags, priority, status, \
             routed_to, created_at, updated_at) VALUES {}",
            tuples.join(", ")
        );
        for batch in 0..$n / 20 {
            let mut tx = sqlx::Connection::begin(&mut *$conn).await.unwrap();
            for statement in 0..20 / $rows {
                let mut q = sqlx::query(&sql);
                for j in 0..$rows {
                    let k = batch * 20 + statement * $rows + j;
                    q = q
                        .bind(format!("tsk_r{}_{k:08}", $round))
                        .bind(format!("Spelling error in the README file {}", k % 97))
                        .bind(format!(
                            "The word is misspelled in section {} of the docs",
                            k % 31
                        ))
                        .bind(format!("hopper-p{}", k % 10))
                        .bind(k as i64);
                }
                q.execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    }};
}

/// CPU time so far of sqlx's SQLite connection threads, where the statements run. Their wall
/// time also counts the hand-over to that thread for each statement, tens of us that vary
/// more than an episode costs.
fn sqlite_cpu_ns() -> u64 {
    common::threads_cpu_ns(|name| name.starts_with("sqlx-sqlite"))
}

/// A fresh database at `url` with the migrations run (the tables the bench writes into).
async fn migrated(url: &str, dir: &std::path::Path) {
    Engine::open(common::configs(url, dir))
        .await
        .unwrap()
        .close()
        .await;
}

/// Episodes on and off in turns (`memory_wanted` is what the triggers look at).
/// `n` tasks a round (10,000; 1,000 under `cargo test --benches`).
async fn recording(label: &str, url: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    migrated(url, dir.path()).await;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    // Commits that do not wait for the disk: the flush is the same with episodes or without
    // (they add bytes to it, not a flush) and its ms would bury the trigger's us.
    macro_rules! rounds {
        ($conn:expr, $no_flush:expr, $rows:expr) => {
            sqlx::query($no_flush).execute(&mut *$conn).await.unwrap();
            for round in 0..10 {
                let wanted = round % 2 == 0;
                let toggle = match wanted {
                    true => "INSERT INTO memory_wanted (id) VALUES (1) ON CONFLICT DO NOTHING",
                    false => "DELETE FROM memory_wanted",
                };
                sqlx::query(toggle).execute(&mut *$conn).await.unwrap();
                let (wall, cpu) = (Instant::now(), sqlite_cpu_ns());
                insert_tasks!($conn, n, $rows, round);
                let us = match url.starts_with("sqlite:") {
                    true => (sqlite_cpu_ns() - cpu) as f64 / 1e3 / n as f64,
                    false => wall.elapsed().as_secs_f64() * 1e6 / n as f64,
                };
                if wanted { on.push(us) } else { off.push(us) }
            }
            let episodes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM episodes")
                .fetch_one(&mut *$conn)
                .await
                .unwrap();
            assert_eq!(
                episodes as usize,
                5 * n,
                "an episode per task recorded while on"
            );
        };
    }
    if url.starts_with("sqlite:") {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        rounds!(&mut c, "PRAGMA synchronous = OFF", 1);
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        rounds!(&mut c, "SET synchronous_commit = off", 20);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut on), median(&mut off));
    println!(
        "{label:<9} recording episodes: a routed task's insert {on:.2} us with, {off:.2} us \
         without ({:+.2} us, {:+.0}%; 20 to a commit, median of 5 x {n})",
        on - off,
        (on / off - 1.0) * 100.0
    );
}

async fn backend(label: &str, url: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    migrated(url, dir.path()).await;
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
        let rec = format!("sqlite:{}", dir.path().join("recording.db").display());
        recording("sqlite", &rec, if full { 10_000 } else { 1_000 }).await;
        backend("sqlite", &url, n).await;
        match std::env::var("HOPPER_BENCH_PG_URL") {
            Ok(admin) => {
                let rec = common::fresh_pg(&admin).await;
                recording("postgres", &rec, if full { 10_000 } else { 1_000 }).await;
                common::drop_pg(&admin, &rec).await;
                let url = common::fresh_pg(&admin).await;
                backend("postgres", &url, n).await;
                common::drop_pg(&admin, &url).await;
            }
            Err(_) => println!("postgres  skipped (set HOPPER_BENCH_PG_URL)"),
        }
    });
}
