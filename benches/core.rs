//! Core throughput and latency. `cargo bench --bench core` prints the figures; under
//! `cargo test` (no `--bench` argument) it runs a tiny smoke pass so CI keeps it working.
//!
//! Set HOPPER_BENCH_PG_URL (an admin URL; a fresh database is created) to include PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hopper::Engine;
use hopper::config::ConfigSet;
use hopper::domain::{Actor, InstanceId, TaskDraft};
use sqlx::Connection;

struct Scale {
    adds: usize,
    cycles: usize,
    stored: i64,
    probes: usize,
}

fn configs(url: &str, dir: &std::path::Path) -> ConfigSet {
    let mut c = common::configs(url, dir);
    // HOPPER_BENCH_SQLITE_SYNC=normal measures the crash-safe (not power-loss-safe) setting.
    if std::env::var("HOPPER_BENCH_SQLITE_SYNC").is_ok_and(|v| v == "normal") {
        c.root.persistence.sqlite_synchronous = hopper::config::SqliteSync::Normal;
    }
    c
}

async fn queue(engine: &Engine, name: &str) -> InstanceId {
    engine
        .child(engine.root(), name, None)
        .await
        .unwrap()
        .id()
        .clone()
}

/// `workers` tasks each add `n / workers` tasks.
async fn adds(engine: &Engine, q: &InstanceId, n: usize, workers: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (engine, q) = (engine.clone(), q.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..n / workers {
                engine
                    .add_task(
                        &q,
                        TaskDraft::new(format!("bench task {i}")).with_tags(["bench"]),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (n / workers * workers) as f64 / start.elapsed().as_secs_f64()
}

/// `workers` executors loop get_next + complete until the queue is empty.
async fn cycles(engine: &Engine, q: &InstanceId, workers: usize) -> (f64, usize) {
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let (engine, q) = (engine.clone(), q.clone());
        handles.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let mut n = 0usize;
            while let Some(t) = engine.get_next(&q, &name).await.unwrap() {
                let me = Actor::holder(&t).unwrap();
                engine.complete(&t.id, &me, None).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

/// Bulk-loads `n` tasks (90% finished, 10% pending) straight into the table.
async fn preload(url: &str, instance: &InstanceId, n: i64) {
    let now = hopper::domain::now_millis();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < $2) \
             INSERT INTO tasks (id, instance_id, title, priority, status, created_at, updated_at, finished_at) \
             SELECT printf('task_0000%028x', x), $1, 'preloaded', x % 4, \
                    CASE WHEN x % 10 = 0 THEN 'pending' ELSE 'done' END, $3, $3, \
                    CASE WHEN x % 10 = 0 THEN NULL ELSE $3 END FROM s",
        )
        .bind(instance.as_str()).bind(n).bind(now).execute(&mut c).await.unwrap();
        // Fold the bulk load into the database file, as a server would soon after: otherwise
        // the first measured commits pay for checkpointing a million rows.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(
            "INSERT INTO tasks (id, instance_id, title, priority, status, created_at, updated_at, finished_at) \
             SELECT 'task_0000' || lpad(to_hex(x), 28, '0'), $1, 'preloaded', x % 4, \
                    CASE WHEN x % 10 = 0 THEN 'pending' ELSE 'done' END, $3, $3, \
                    CASE WHEN x % 10 = 0 THEN NULL ELSE $3 END FROM generate_series(1, $2) AS x",
        )
        .bind(instance.as_str()).bind(n).bind(now).execute(&mut c).await.unwrap();
        sqlx::query("ANALYZE tasks").execute(&mut c).await.unwrap();
    }
}

async fn backend(label: &str, url: &str, scale: &Scale) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(configs(url, dir.path())).await.unwrap();

    let q = queue(&engine, "adds-1").await;
    let rate1 = adds(&engine, &q, scale.adds, 1).await;
    let q = queue(&engine, "adds-16").await;
    let rate16 = adds(&engine, &q, scale.adds, 16).await;
    println!("{label:<10} add_task            1 writer : {rate1:>9.0} tasks/s");
    println!("{label:<10} add_task           16 writers: {rate16:>9.0} tasks/s");

    for workers in [1usize, 16] {
        let q = queue(&engine, &format!("cycles-{workers}")).await;
        adds(&engine, &q, scale.cycles, 16).await;
        let (rate, n) = cycles(&engine, &q, workers).await;
        assert_eq!(n, scale.cycles / 16 * 16);
        println!(
            "{label:<10} get_next+complete  {workers:>2} worker{}: {rate:>9.0} cycles/s",
            if workers == 1 { " " } else { "s" }
        );
    }

    let q = queue(&engine, "big").await;
    let t = Instant::now();
    preload(url, &q, scale.stored).await;
    let load = t.elapsed();
    let mut lat = Vec::with_capacity(scale.probes);
    let mut lat_cycle = Vec::with_capacity(scale.probes);
    for _ in 0..scale.probes {
        let t = Instant::now();
        let task = engine.get_next(&q, "probe").await.unwrap().unwrap();
        lat.push(t.elapsed());
        let me = Actor::holder(&task).unwrap();
        engine.complete(&task.id, &me, None).await.unwrap();
        lat_cycle.push(t.elapsed());
    }
    lat.sort();
    lat_cycle.sort();
    println!(
        "{label:<10} get_next @ {} stored (loaded in {:.1}s): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms; with complete p99 {:.3} ms",
        scale.stored,
        load.as_secs_f64(),
        common::pct(&lat, 0.5),
        common::pct(&lat, 0.99),
        common::pct(&lat, 1.0),
        common::pct(&lat_cycle, 0.99)
    );
    engine.close().await;
}

/// RSS of an idle `hopper serve` (the real binary) after start-up.
fn idle_rss() -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("HOPPER_DATA_DIR", dir.path())
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok();
    let _ = child.kill();
    let _ = child.wait();
    let line = status?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .to_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full {
        Scale {
            adds: 20_000,
            cycles: 20_000,
            stored: 1_000_000,
            probes: 5_000,
        }
    } else {
        Scale {
            adds: 320,
            cycles: 320,
            stored: 2_000,
            probes: 50,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
        backend("sqlite", &sqlite, &scale).await;
        if let Ok(admin) = std::env::var("HOPPER_BENCH_PG_URL") {
            let url = common::fresh_pg(&admin).await;
            backend("postgres", &url, &scale).await;
            common::drop_pg(&admin, &url).await;
        } else {
            println!("postgres   skipped (set HOPPER_BENCH_PG_URL)");
        }
    });
    if let Some(kb) = idle_rss() {
        println!("idle `hopper serve` RSS: {:.1} MB", kb as f64 / 1024.0);
    }
    let _ = Arc::new(());
}
