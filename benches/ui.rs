//! The dashboard at a million tasks: server time of the overview and of an instance page
//! (its counts and first page of the queue) on SQLite, p50/p99 over loopback HTTP, beside the
//! REST list of the same 50 tasks as the peer figure, and each page's weight (HTML, and with
//! the CSS and JS it loads). A tag no task has is the worst case of the queue's filters (it
//! reads every row of the instance: tags are JSON text, not indexed) and is not measured.
//!
//! The tasks are written straight into `tasks` in one transaction (as the engine stores them):
//! 70% in `hopper-sark`, 20% in `hopper-other`, 10% on the global instance (in blocks of 100); 90% done, 5%
//! failed, 2% pending, 2% cancelled, 1% claimed; ids in creation order as UUIDv7 keeps them.
//!
//! ```text
//! cargo bench --bench ui
//! ```
//!
//! HOPPER_BENCH_TASKS sets the count (default 1,000,000; 5,000 under `cargo test --benches`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use std::time::Instant;

use hopper::Engine;
use hopper::config::Secret;
use hopper::domain::{InstanceId, now_millis};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-admin-token";

/// `n` tasks in one transaction, 50 rows per statement.
async fn fill(url: &str, n: usize) {
    let now = now_millis();
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(50) {
        let mut q = String::from(
            "INSERT INTO tasks (id, instance_id, title, tags, priority, status, claimed_by, \
             created_at, updated_at, finished_at) VALUES ",
        );
        for (k, _) in chunk.iter().enumerate() {
            let b = k * 10;
            q.push_str(&format!(
                "{}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                if k == 0 { "" } else { ", " },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
        }
        let mut query = sqlx::query(&q);
        for &i in chunk {
            // Blocks of 100 per instance, so every instance gets every status.
            let instance = match (i / 100) % 10 {
                0 => "hopper-global",
                1 | 2 => "hopper-other",
                _ => "hopper-sark",
            };
            let status = match i % 100 {
                0..=1 => "pending",
                2 => "claimed",
                3..=7 => "failed",
                8..=9 => "cancelled",
                _ => "done",
            };
            // Spread over the last 30 days, oldest first.
            let created = now - 30 * 86_400_000 + (i as i64 * 30 * 86_400_000 / n as i64);
            let finished =
                matches!(status, "done" | "failed" | "cancelled").then_some(created + 60_000);
            query = query
                .bind(format!(
                    "task_{:032x}",
                    0x0190_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
                ))
                .bind(instance)
                .bind(format!("bench task {i}"))
                .bind(if i % 7 == 0 {
                    "[\"security\"]"
                } else {
                    "[\"ops\"]"
                })
                .bind((i % 4) as i64)
                .bind(status)
                .bind((status == "claimed").then_some("runner"))
                .bind(created)
                .bind(created)
                .bind(finished);
        }
        query.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

/// `rounds` sequential GETs of `path`: p50, p99 (ms) and the body's size.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    rounds: usize,
) -> (f64, f64, usize) {
    let mut lat = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = client.get(url).header(auth.0, auth.1).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        bytes = r.bytes().await.unwrap().len();
        lat.push(t.elapsed());
    }
    lat.sort();
    (common::pct(&lat, 0.5), common::pct(&lat, 0.99), bytes)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("HOPPER_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 5_000 });
    let rounds = if full { 300 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("ui.db").display());
        // Opened once first: the migrations, and the two projects' instances.
        let engine = Engine::open(common::configs(&url, dir.path()))
            .await
            .unwrap();
        for p in ["sark", "other"] {
            engine.child(&InstanceId::global(), p, None).await.unwrap();
        }
        engine.close().await;
        let t = Instant::now();
        fill(&url, n).await;
        println!("loaded {n} tasks in {:.1} s", t.elapsed().as_secs_f64());

        let engine = Engine::open(common::configs(&url, dir.path()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(hopper::server::run(
            engine,
            Secret::new(TOKEN),
            listener,
            stop.clone(),
        ));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = client
            .post(format!("{base}/ui/login"))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let assets = {
            let mut total = 0;
            for a in ["/ui/assets/app.css", "/ui/assets/app.js"] {
                total += client
                    .get(format!("{base}{a}"))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .len();
            }
            total
        };
        let bearer = format!("Bearer {TOKEN}");
        let rows = [
            (
                "overview  GET /ui",
                format!("{base}/ui"),
                ("cookie", cookie.as_str()),
                true,
            ),
            (
                "instance  GET /ui/instances/hopper-sark",
                format!("{base}/ui/instances/hopper-sark"),
                ("cookie", cookie.as_str()),
                true,
            ),
            (
                "filtered  GET /ui/instances/hopper-sark?status=failed&tag=security",
                format!("{base}/ui/instances/hopper-sark?status=failed&tag=security"),
                ("cookie", cookie.as_str()),
                true,
            ),
            (
                "page 2    GET /ui/instances/hopper-sark?after=<a mid-table id>",
                format!(
                    "{base}/ui/instances/hopper-sark?after=task_{:032x}",
                    0x0190_0000_0000_0000_0000_0000_0000_0000u128 + n as u128 / 2
                ),
                ("cookie", cookie.as_str()),
                true,
            ),
            (
                "peer      GET /v1/instances/hopper-sark/tasks?limit=50",
                format!("{base}/v1/instances/hopper-sark/tasks?limit=50"),
                ("authorization", bearer.as_str()),
                false,
            ),
        ];
        println!("{n} tasks on SQLite, {rounds} sequential requests each (loopback HTTP)");
        println!(
            "{:<72} {:>9} {:>9} {:>10} {:>12}",
            "page", "p50 ms", "p99 ms", "bytes", "+css+js"
        );
        for (label, url, auth, page) in rows {
            measure(&client, &url, auth, 3).await; // warm
            let (p50, p99, bytes) = measure(&client, &url, auth, rounds).await;
            let with = if page {
                (bytes + assets).to_string()
            } else {
                "-".into()
            };
            println!("{label:<72} {p50:>9.2} {p99:>9.2} {bytes:>10} {with:>12}");
        }
        stop.cancel();
        let _ = server.await;
    });
}
