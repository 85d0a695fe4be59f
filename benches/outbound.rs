//! Outbound delivery against loopback executors, beside the ceiling of a plain client.
//!
//! The ceiling: signed Standard Webhooks POSTs (the body a `task.available` delivery carries,
//! signed per message with two secrets, as during a rotation) from one process through the
//! client `UrlPolicy::client` builds (allowlist `127.0.0.0/8`), 256 in flight spread over 100
//! executors, to loopback receivers answering 204 at once. Each executor gets its own lanes,
//! so the figure with one executor dead (never answering, or refusing connections) is what
//! isolation between executors can keep at best.
//!
//! Beside it, the delivery worker (`delivery/`): deliveries/s with 100 executors (SQLite, and
//! PostgreSQL with HOPPER_BENCH_PG_URL), the same with one executor dead, p99 from a task's
//! accepted write to the executor receiving it at 1,000 events/s, and RSS with 100,000
//! messages waiting in the retry schedule and 10 executors down.
//!
//! Full run (a quiet machine; HOPPER_BENCH_PG_URL adds PostgreSQL, HOPPER_BENCH_ONLY=ceiling
//! or =sqlite/=postgres picks one part, HOPPER_BENCH_PARTS=burst,dead,paced,rss some figures,
//! HOPPER_BENCH_RATE the paced rate and HOPPER_BENCH_PACED_SECONDS its length (10 s, after one
//! task per executor's project, unmeasured), HOPPER_BENCH_WAITING the messages of the RSS
//! figure, HOPPER_BENCH_SECONDS each ceiling run's length):
//!
//! ```text
//! HOPPER_BENCH_PG_URL=postgres://hopper:hopper@127.0.0.1:5432/hopper cargo bench --bench outbound
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs a short smoke pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod delivery;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use hopper::outbound::{UrlPolicy, generate_secret, signature_header};

struct Scale {
    executors: usize,
    in_flight: usize,
    run: Duration,
    /// One attempt's deadline: what a dead executor that accepts and never answers costs.
    timeout: Duration,
}

/// How a loopback executor behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Health {
    /// Answers 204 at once.
    Up,
    /// Accepts and never answers: every attempt runs into the timeout.
    Hung,
    /// Nothing listens on its port: connections are refused.
    Refused,
    /// Answers 500 at once (down behind a proxy that still answers).
    Failing,
}

struct Executor {
    url: String,
    health: Health,
    /// Sender's view (the ceiling's lanes): 2xx answers and failures.
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Receiver's view: requests that arrived, whatever was answered.
    received: AtomicU64,
    /// With tracking on, each delivery's task title and when it arrived.
    arrivals: Mutex<Vec<(String, Instant)>>,
}

type Executors = Vec<Arc<Executor>>;

async fn receive(ex: Arc<Executor>, track: bool, body: bytes::Bytes) -> StatusCode {
    ex.received.fetch_add(1, Ordering::Relaxed);
    if track {
        let at = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(title) = v["data"]["task"]["title"].as_str() {
            ex.arrivals.lock().unwrap().push((title.to_owned(), at));
        }
    }
    match ex.health {
        Health::Hung => std::future::pending().await,
        Health::Failing => StatusCode::INTERNAL_SERVER_ERROR,
        Health::Up | Health::Refused => StatusCode::NO_CONTENT,
    }
}

/// Starts one loopback receiver per entry of `health`; with `track`, arrivals are logged.
async fn executors(health: &[Health], track: bool) -> Executors {
    let mut out = Vec::with_capacity(health.len());
    for &h in health {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ex = Arc::new(Executor {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            health: h,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
        });
        if h == Health::Refused {
            // The port was just free; closing it leaves nothing listening there.
            drop(listener);
        } else {
            let state = ex.clone();
            let app = Router::new().route(
                "/hook",
                post(move |body: bytes::Bytes| receive(state.clone(), track, body)),
            );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        out.push(ex);
    }
    out
}

/// A `task.available` delivery as the worker sends it (an id, a type, the task's content).
fn body(n: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "task.available",
        "timestamp": "2026-12-01T12:00:00Z",
        "data": {
            "task": {
                "id": format!("task_0193a1b2-c3d4-7e5f-8a9b-{n:012x}"),
                "instance": "hopper-sark",
                "title": "Fix the flaky login test on the release branch",
                "description": "Seen in 3 of the last 20 runs; the retry hides it locally.",
                "priority": "high",
                "tags": ["ci", "flaky"],
                "required_capabilities": ["rust"],
                "source": {"kind": "github", "ref": "octo/sark#1234"}
            }
        }
    }))
    .unwrap()
}

/// One lane: sends signed deliveries to one executor back to back until `until`; returns when
/// its last attempt ended.
async fn lane(
    client: reqwest::Client,
    ex: Arc<Executor>,
    secrets: Arc<[String; 2]>,
    until: Instant,
    timeout: Duration,
) -> Instant {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let body = body(n);
        let id = format!("msg_{n}");
        let ts = hopper_integration_api::verify::unix_now();
        let sig = signature_header(&[&secrets[0], &secrets[1]], &id, ts, &body).unwrap();
        let sent = client
            .post(&ex.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                ex.delivered.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                ex.failed.fetch_add(1, Ordering::Relaxed);
                // A refused connection fails in microseconds; a real worker backs off on its
                // schedule, so the lane waits as long as a hung attempt would have taken.
                if ex.health == Health::Refused {
                    tokio::time::sleep(timeout).await;
                }
            }
        }
    }
    Instant::now()
}

/// Delivered per second to all healthy executors and to "the others" (every executor but the
/// first, the one the isolation runs take down), with `health` deciding who is up.
async fn ceiling(s: &Scale, health: &[Health]) -> (f64, f64, u64) {
    let client = UrlPolicy::new(&["127.0.0.0/8".to_string()])
        .unwrap()
        .client(s.timeout, vec![])
        .expect("a client without extra roots builds");
    let exs = executors(health, false).await;
    let secrets = Arc::new([generate_secret(), generate_secret()]);
    let lanes = s.in_flight.div_ceil(exs.len()).max(1);
    let started = Instant::now();
    let until = started + s.run;
    let mut handles = Vec::new();
    for ex in &exs {
        for _ in 0..lanes {
            let lane = lane(
                client.clone(),
                ex.clone(),
                secrets.clone(),
                until,
                s.timeout,
            );
            handles.push((ex.health, tokio::spawn(lane)));
        }
    }
    // The healthy executors' window: a dead one's last attempt may run past `until` by up to
    // the timeout, and that wait is not the others' time.
    let mut ended = started;
    for (health, h) in handles {
        let end = h.await.unwrap();
        if health == Health::Up {
            ended = ended.max(end);
        }
    }
    let elapsed = (ended - started).as_secs_f64();
    let up = |e: &&Arc<Executor>| e.health == Health::Up;
    let delivered = |e: &Arc<Executor>| e.delivered.load(Ordering::Relaxed);
    let all: u64 = exs.iter().filter(up).map(delivered).sum();
    let others: u64 = exs.iter().skip(1).filter(up).map(delivered).sum();
    let errors: u64 = exs
        .iter()
        .filter(up)
        .map(|e| e.failed.load(Ordering::Relaxed))
        .sum();
    (all as f64 / elapsed, others as f64 / elapsed, errors)
}

/// Resident memory of this process (Linux), MB.
fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Signatures per second on one thread: the per-delivery cost signing adds (two secrets).
fn signing_rate(n: u64) -> f64 {
    let secrets = [generate_secret(), generate_secret()];
    let body = body(1);
    let started = Instant::now();
    let mut len = 0;
    for i in 0..n {
        len += signature_header(&[&secrets[0], &secrets[1]], "msg_1", i as i64, &body)
            .unwrap()
            .len();
    }
    assert!(len > 0);
    n as f64 / started.elapsed().as_secs_f64()
}

/// The check each send makes first, for an IP-literal URL (no DNS): checks per second.
async fn check_rate(n: u64) -> f64 {
    let policy = UrlPolicy::new(&["127.0.0.0/8".to_string()]).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        policy.check("http://127.0.0.1:9/hook").await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn ceilings(s: &Scale) {
    println!(
        "signing   {:>9.0} signature headers/s (2 secrets, {} B body, one thread)",
        signing_rate(20_000),
        body(1).len()
    );
    println!(
        "url check {:>9.0} checks/s (IP literal, no DNS)",
        check_rate(20_000).await
    );
    let up = vec![Health::Up; s.executors];
    let (all, others_up, e0) = ceiling(s, &up).await;
    println!(
        "ceiling   {:>9.0} signed POSTs/s, {} executors, {} in flight, {:.1} s ({e0} errors)",
        all,
        s.executors,
        s.in_flight,
        s.run.as_secs_f64()
    );
    for dead in [Health::Hung, Health::Refused] {
        let mut health = up.clone();
        health[0] = dead;
        let (_, others, e) = ceiling(s, &health).await;
        println!(
            "ceiling   {:>9.0} signed POSTs/s to the other {} with one executor {:?} \
             ({:.1}% of what they got with all up; {e} errors)",
            others,
            s.executors - 1,
            dead,
            100.0 * others / others_up
        );
    }
    if let Some(rss) = rss_mb() {
        println!("ceiling   RSS {rss:.0} MB after the ceiling runs (receivers included)");
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = std::env::var("HOPPER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5.0 } else { 0.5 });
    let s = Scale {
        executors: if full { 100 } else { 10 },
        in_flight: if full { 256 } else { 20 },
        run: Duration::from_secs_f64(seconds),
        timeout: Duration::from_secs(1),
    };
    let w = if full {
        delivery::Scale {
            executors: 100,
            burst: 20_000,
            paced_rate: std::env::var("HOPPER_BENCH_RATE")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(1_000),
            paced_seconds: std::env::var("HOPPER_BENCH_PACED_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(10),
            waiting: std::env::var("HOPPER_BENCH_WAITING")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(100_000),
            down: 10,
        }
    } else {
        delivery::Scale {
            executors: 10,
            burst: 200,
            paced_rate: 100,
            paced_seconds: 1,
            waiting: 200,
            down: 2,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let only = std::env::var("HOPPER_BENCH_ONLY").ok();
        if only.as_deref().is_none_or(|o| o == "ceiling") {
            ceilings(&s).await;
        }
        if only.as_deref().is_none_or(|o| o == "sqlite") {
            delivery::figures(&delivery::Db::Sqlite, &w).await;
        }
        if only.as_deref().is_none_or(|o| o == "postgres") {
            match std::env::var("HOPPER_BENCH_PG_URL") {
                Ok(admin) => delivery::figures(&delivery::Db::Postgres(admin), &w).await,
                Err(_) => println!("postgres  skipped (set HOPPER_BENCH_PG_URL)"),
            }
        }
    });
}
