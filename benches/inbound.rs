//! Inbound gateway throughput: signed GitHub `issues.opened` deliveries (GitHub's documented
//! payload, ~9 KB compact) over loopback HTTP against the real app, each verified, stored with
//! its task and answered, compared in the same run with a no-op route on the same server.
//!
//! `cargo bench --bench inbound` prints the figures (set HOPPER_BENCH_PG_URL to include
//! PostgreSQL); under `cargo test` it runs a small smoke pass.
//!
//! `HOPPER_BENCH_SLOW_LLM_MS=2000` adds, after each backend's run, the same run with the
//! routing chain `[llm, rules]` asking a loopback chat-completions server that answers after
//! that long (`sqlite+llm`): routing can then no longer go into the recording commit, so this
//! is what a slow model costs ingest (the tasks carry no project, in both runs, so the chain
//! is what decides).
//!
//! Episodes are recorded (the default); `HOPPER_BENCH_NO_MEMORY=1` turns them off to compare.
//!
//! `HOPPER_BENCH_REPORTING=1` adds, after each backend's run, the same run with reports flowing
//! (`sqlite+rep`, `pg+rep`): `reports.github.on: [routed]` to a loopback GitHub, and the
//! outbound workers running, so every routed task is commented on while ingest goes on.
//! `HOPPER_BENCH_REPORTING=outbox` starts no worker: the outbox rows are written and left, to
//! tell their cost from the workers'.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use hopper::api::AppState;
use hopper::config::Secret;
use hopper::gateway::Gateway;
use hopper::server::app;
use hopper_integration_api::verify::sign_hex;

const SECRET: &str = "bench-secret";

struct Scale {
    requests: usize,
    /// One saturation run per entry: how many deliveries are in flight at once.
    clients: Vec<usize>,
    paced_seconds: u64,
    paced_rate: u64,
}

fn payload() -> String {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/github/issues_opened.json")).unwrap();
    serde_json::to_string(&v).unwrap()
}

/// A loopback chat-completions server answering `waypoint` after `delay`.
async fn slow_llm(delay: Duration) -> String {
    let answer = move || async move {
        tokio::time::sleep(delay).await;
        axum::Json(serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "model": "bench",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                "content": "{\"project\": \"waypoint\", \"confidence\": 0.9, \"reason\": \"bench\"}"}}],
        }))
    };
    let app = axum::Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Comments the loopback GitHub has taken.
static COMMENTS: AtomicUsize = AtomicUsize::new(0);

/// A loopback GitHub taking issue comments (201, as GitHub shapes the answer's URL).
async fn comment_sink() -> String {
    let app = axum::Router::new().route(
        "/repos/{owner}/{repo}/issues/{n}/comments",
        post(|| async {
            let n = COMMENTS.fetch_add(1, Ordering::Relaxed);
            (
                axum::http::StatusCode::CREATED,
                axum::Json(serde_json::json!({
                    "id": n, "html_url": format!("https://github.example/c/{n}")
                })),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// What a run adds to plain ingest: a slow LLM in the routing chain, or reports flowing to a
/// loopback GitHub (every routed task commented on, as `reports.github.on: [routed]` does).
#[derive(Clone, Copy, Default)]
struct Extra<'a> {
    llm: Option<&'a str>,
    github: Option<&'a str>,
}

async fn start(url: &str, dir: &std::path::Path, extra: Extra<'_>) -> (String, hopper::Engine) {
    let llm = extra.llm;
    let mut c = common::configs(url, dir);
    // HOPPER_BENCH_NO_MEMORY=1: episodes off (`memory.episodic.backend: null`), to compare
    // ingest with and without them.
    if std::env::var("HOPPER_BENCH_NO_MEMORY").is_ok() {
        c.root.memory.episodic = Some(hopper::config::BackendConfig::named("null"));
    }
    if let Some(api) = extra.github {
        c.root.reports = serde_json::from_value(serde_json::json!({
            "github": { "api_url": api, "token": "ghp_bench", "on": ["routed"] }
        }))
        .unwrap();
    }
    if let Some(llm) = llm {
        use hopper::config::ProviderKind;
        let i = &mut c.root.intelligence;
        i.providers = Some(vec![ProviderKind::Llm, ProviderKind::Rules]);
        i.llm.base_url = Some(llm.to_owned());
        i.model = Some("bench".into());
    }
    c.root
        .inbound
        .insert("github".into(), serde_json::json!({ "secret": SECRET, "mapping": {"project_from_container": std::env::var("HOPPER_BENCH_NO_PROJECTS").is_err() && std::env::var("HOPPER_BENCH_SLOW_LLM_MS").is_err()} }));
    let gateway = Arc::new(Gateway::from_configs(&c).unwrap());
    let engine = hopper::Engine::open(c).await.unwrap();
    // The episode indexer runs as in `hopper serve`: it fills SQLite's episode index after the
    // commits, so that work is in the figures too.
    std::mem::forget(hopper::engine::spawn_indexer(
        engine.clone(),
        tokio_util::sync::CancellationToken::new(),
    ));
    if extra.github.is_some() {
        if std::env::var("HOPPER_BENCH_REPORTING").is_ok_and(|v| v == "outbox") {
            let reporters = hopper::reports::Reporters::build(&engine.configs().root.reports);
            engine
                .set_reporters(Arc::new(reporters.unwrap()))
                .await
                .unwrap();
        } else {
            // As `hopper serve` starts it; lives as long as the process.
            let stop = tokio_util::sync::CancellationToken::new();
            std::mem::forget(hopper::outbound::spawn(engine.clone(), stop).await.unwrap());
        }
    }
    let state = AppState {
        engine: engine.clone(),
        admin_token: Secret::new("bench"),
        metrics: None,
        sources: gateway.sources().clone(),
    };
    // The ceiling: a route that reads the same body and answers, on the same server.
    let router = app(state, gateway).route(
        "/noop",
        post(|body: bytes::Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The server's own accept loop (header-read timeout, TCP_NODELAY), as `hopper serve` runs it.
    let timeout = Some(Duration::from_secs(30));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hopper::server::serve_router(
        listener, router, timeout, stop,
    ));
    (base, engine)
}

fn request(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &Arc<String>,
    sig: &str,
    n: usize,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header(
            "x-github-delivery",
            format!("bench-{}-{n}", std::process::id()),
        )
        .header("x-hub-signature-256", sig)
        .body(body.as_bytes().to_vec())
}

/// Delivery ids are unique across runs: a repeated one would be answered as a redelivery.
static DELIVERY: AtomicUsize = AtomicUsize::new(0);

/// Closed loop: `clients` clients send `s.requests` requests as fast as answers come.
/// Waits until the loopback GitHub has taken `n` comments since the last count (a minute at
/// most).
async fn comments_reach(n: usize) {
    let started = Instant::now();
    while COMMENTS.load(Ordering::Relaxed) < n {
        if started.elapsed() > Duration::from_secs(60) {
            println!(
                "(only {} of {n} comments after 60 s)",
                COMMENTS.load(Ordering::Relaxed)
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn saturate(
    base: &str,
    path: &str,
    body: &Arc<String>,
    sig: &str,
    s: &Scale,
    clients: usize,
) -> (f64, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (client, next, errors, body) =
            (client.clone(), next.clone(), errors.clone(), body.clone());
        let (base, path, sig) = (base.to_owned(), path.to_owned(), sig.to_owned());
        let total = s.requests;
        handles.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let id = DELIVERY.fetch_add(1, Ordering::Relaxed);
                let ok = request(&client, &base, &path, &body, &sig, id)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (
        s.requests as f64 / started.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

/// Open loop: requests start on a fixed schedule whatever the answers do; latency per request.
async fn paced(
    client: &reqwest::Client,
    base: &str,
    body: &Arc<String>,
    sig: &str,
    rate: u64,
    seconds: u64,
) -> (Vec<Duration>, usize) {
    let total = (rate * seconds) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until(start + gap * n as u32).await;
        let id = DELIVERY.fetch_add(1, Ordering::Relaxed);
        let req = request(client, base, "/webhooks/github", body, sig, id);
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    for h in handles {
        let (d, ok) = h.await.unwrap();
        lat.push(d);
        errors += usize::from(!ok);
    }
    lat.sort();
    (lat, errors)
}

/// Bytes this process has sent to storage (`write_bytes`: WAL, database; the PostgreSQL
/// server's writes are its own) and passed to any write call (`wchar`: that plus sockets, the
/// load generator's requests included), to see how much each delivery costs in I/O. Linux.
fn bytes_written() -> Option<[u64; 2]> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some([field("write_bytes:")?, field("wchar:")?])
}

/// CPU time so far (ns) of this process's SQLite threads: `[group committer, sqlx's
/// connection workers]`. The load generator shares the process and the tokio workers, so the
/// whole server's CPU cannot be told apart; the database work can, and it is what episodes add
/// to (their triggers run in the committer's transactions, their full-text indexing on a sqlx
/// connection). A far steadier figure than throughput, which on this 2-core machine moves
/// ±10% from run to run.
fn sqlite_cpu_ns() -> [u64; 2] {
    [
        common::threads_cpu_ns(|name| name == "hopper-commit"),
        common::threads_cpu_ns(|name| name.starts_with("sqlx-sqlite")),
    ]
}

/// A scratch directory; with HOPPER_BENCH_KEEP set it is left behind to look at.
fn workdir() -> tempfile::TempDir {
    let keep = std::env::var_os("HOPPER_BENCH_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        println!("keeping {}", dir.path().display());
    }
    dir
}

async fn backend(label: &str, url: &str, s: &Scale, extra: Extra<'_>) {
    let dir = workdir();
    let (base, engine) = start(url, dir.path(), extra).await;
    let body = Arc::new(payload());
    let sig = format!(
        "sha256={}",
        sign_hex(
            &hopper_integration_api::Secret::new(SECRET),
            &[body.as_bytes()]
        )
    );
    // Latency at a steady rate first: after the saturation passes the figure would measure
    // the database's recovery from them (PostgreSQL checkpoints the gigabyte of WAL they wrote).
    // One unmeasured second before it opens the connections (client's and database pool's)
    // and gets the statements planned: the figure is the steady state's.
    let client = reqwest::Client::new();
    let _ = paced(&client, &base, &body, &sig, s.paced_rate, 1).await;
    let (lat, e2) = paced(&client, &base, &body, &sig, s.paced_rate, s.paced_seconds).await;
    // With reports: one comment per webhook accepted so far.
    let mut reported = s.paced_rate as usize * (1 + s.paced_seconds as usize);
    for (i, &clients) in s.clients.iter().enumerate() {
        let (ceiling, e0) = saturate(&base, "/noop", &body, &sig, s, clients).await;
        if extra.github.is_some() {
            // The paced run's reports (held while it ran at a busy rate) go out first, so that
            // the figure is a burst's with its own reports, not with an earlier backlog's.
            comments_reach(reported).await;
            reported += s.requests;
        }
        let before = bytes_written();
        let cpu_before = sqlite_cpu_ns();
        let (rate, e1) = saturate(&base, "/webhooks/github", &body, &sig, s, clients).await;
        if extra.github.is_some() {
            let burst_end = Instant::now();
            comments_reach(reported).await;
            println!(
                "{label:<9} the burst's {} reports were all out {:.2} s after its last webhook",
                s.requests,
                burst_end.elapsed().as_secs_f64()
            );
        }
        // Saturating: a connection thread that ended in between takes its time with it.
        let cpu = sqlite_cpu_ns();
        let cpu = [0, 1].map(|k| cpu[k].saturating_sub(cpu_before[k]));
        let written = bytes_written()
            .zip(before)
            .map(|(after, before)| [after[0] - before[0], after[1] - before[1]]);
        if let (0, Some([storage, all])) = (i, written) {
            let per = |b: u64| b as f64 / s.requests as f64 / 1024.0;
            println!(
                "{label:<9} written per delivery: {:.1} KB to storage (WAL, database), {:.1} KB in all (sockets too)",
                per(storage),
                per(all)
            );
        }
        if let (0, [commit, sqlx]) = (i, cpu) {
            let us = |ns: u64| ns as f64 / 1e3 / s.requests as f64;
            println!(
                "{label:<9} SQLite threads' CPU per delivery: {:.1} us group committer, {:.1} us \
                 sqlx connections (PostgreSQL's work is the server's own)",
                us(commit),
                us(sqlx)
            );
        }
        println!(
            "{label:<9} {} B deliveries, {clients:>3} clients: {rate:>7.0}/s verified+committed ({e1} errors); \
             no-op route {ceiling:>7.0}/s ({e0} errors); ratio {:.2}",
            body.len(),
            rate / ceiling
        );
    }
    if extra.github.is_some() {
        println!(
            "{label:<9} reports: {} comments taken by the loopback GitHub during the runs",
            COMMENTS.swap(0, Ordering::Relaxed)
        );
    }
    println!(
        "{label:<9} paced {}/s for {} s: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({e2} errors)",
        s.paced_rate,
        s.paced_seconds,
        common::pct(&lat, 0.5),
        common::pct(&lat, 0.99),
        common::pct(&lat, 1.0)
    );
    // Routing runs after the answer: it must keep up, not fail quietly behind the figures.
    let drained = Instant::now();
    loop {
        let latest = engine.list_events(Some("github"), None, 200).await.unwrap();
        assert!(!latest.is_empty());
        if latest.iter().all(|e| e.routed_at.is_some()) {
            break;
        }
        assert!(
            drained.elapsed() < Duration::from_secs(60),
            "{label}: inbound tasks are not being routed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{label:<9} routing backlog drained {:.2} s after the last answer",
        drained.elapsed().as_secs_f64()
    );
    engine.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let s = if full {
        Scale {
            // HOPPER_BENCH_REQUESTS: deliveries per saturation run (longer runs for a profiler).
            requests: std::env::var("HOPPER_BENCH_REQUESTS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(30_000),
            // HOPPER_BENCH_CLIENTS=64,256: one run per figure, that many deliveries in flight.
            clients: std::env::var("HOPPER_BENCH_CLIENTS")
                .ok()
                .map(|c| c.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .filter(|c: &Vec<usize>| !c.is_empty())
                .unwrap_or_else(|| vec![64, 256]),
            paced_seconds: 5,
            paced_rate: 2_000,
        }
    } else {
        Scale {
            requests: 200,
            clients: vec![8],
            paced_seconds: 1,
            paced_rate: 100,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // HOPPER_BENCH_ONLY=postgres (or sqlite) runs one backend.
        let only = std::env::var("HOPPER_BENCH_ONLY").ok();
        let llm = match std::env::var("HOPPER_BENCH_SLOW_LLM_MS")
            .ok()
            .and_then(|m| m.parse().ok())
        {
            Some(ms) => Some(slow_llm(Duration::from_millis(ms)).await),
            None => None,
        };
        let github = match std::env::var("HOPPER_BENCH_REPORTING") {
            Ok(_) => Some(comment_sink().await),
            Err(_) => None,
        };
        let reporting = Extra {
            llm: None,
            github: github.as_deref(),
        };
        if only.as_deref().is_none_or(|o| o == "sqlite") {
            let dir = workdir();
            let sqlite = format!("sqlite:{}", dir.path().join("inbound.db").display());
            backend("sqlite", &sqlite, &s, Extra::default()).await;
            if github.is_some() {
                let dir = workdir();
                let sqlite = format!("sqlite:{}", dir.path().join("inbound-rep.db").display());
                backend("sqlite+rep", &sqlite, &s, reporting).await;
            }
            if let Some(llm) = &llm {
                let dir = workdir();
                let sqlite = format!("sqlite:{}", dir.path().join("inbound-llm.db").display());
                backend(
                    "sqlite+llm",
                    &sqlite,
                    &s,
                    Extra {
                        llm: Some(llm),
                        github: None,
                    },
                )
                .await;
            }
            // The SQLite run leaves hundreds of MB dirty in the page cache: removed (unless
            // kept) and the rest flushed, so that its writeback does not land in the middle
            // of PostgreSQL's figures (it put 50 ms stalls in PostgreSQL's paced latency).
            drop(dir);
            let _ = std::process::Command::new("sync").status();
        }
        if only.as_deref() == Some("sqlite") {
            return;
        }
        match std::env::var("HOPPER_BENCH_PG_URL") {
            Ok(admin) => {
                let url = common::fresh_pg(&admin).await;
                backend("postgres", &url, &s, Extra::default()).await;
                common::drop_pg(&admin, &url).await;
                if github.is_some() {
                    let url = common::fresh_pg(&admin).await;
                    backend("pg+rep", &url, &s, reporting).await;
                    common::drop_pg(&admin, &url).await;
                }
                if let Some(llm) = &llm {
                    let url = common::fresh_pg(&admin).await;
                    backend(
                        "pg+llm",
                        &url,
                        &s,
                        Extra {
                            llm: Some(llm),
                            github: None,
                        },
                    )
                    .await;
                    common::drop_pg(&admin, &url).await;
                }
            }
            Err(_) => println!("postgres  skipped (set HOPPER_BENCH_PG_URL)"),
        }
    });
}
