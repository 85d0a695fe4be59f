//! Reports back to GitHub through the outbound pipeline, against a loopback GitHub-shaped
//! server, beside the ceiling of a plain client in the same run.
//!
//! The server: `POST /repos/{owner}/{repo}/issues/{n}/comments` answers 201 with a comment as
//! GitHub shapes it (id, node_id, url, html_url, issue_url, body, user, timestamps, …) and 502
//! to every 10th request it gets (a deterministic 10%, retries included). It counts the 201s
//! per (repository, issue): every task has its own issue, so an issue with none is a lost
//! report and one with two a duplicate (at least once: a 502 then a retry is one comment).
//!
//! Measured, each with `HOPPER_BENCH_REPORTS` reports (default 5,000; 64 in flight, the report
//! worker's batch):
//! - `ceiling`: the comments POSTed straight at the server with reqwest (a 502 retried at once);
//! - `reporter`: the same through the GitHub reporter alone (octocrab, `hopper_github`), no
//!   store;
//! - `sqlite` / `postgres`: an engine with `reports.github = {api_url: <loopback>, token,
//!   on: [completed]}`, the outbound retry schedule `[0, 1, 1, 1, 1, 1, 1, 1]` s without
//!   jitter (eight attempts: see `configs`), and
//!   `hopper::outbound::spawn` as `hopper serve` starts it. N tasks from GitHub issues
//!   (`acme/repo-K#n`) are added on global with no rule matching (they stay in triage) and
//!   claimed; then all are completed, 16 at a time, and the figure is reports/s from the first
//!   completion to the last first comment, with when 90% were in (a 502'd report waits out its
//!   1 s retry, so a burst ends on that tail), the completions' own rate, lost and duplicates.
//!   `sqlite backlog` / `postgres backlog`: the same, with the outbound workers started only
//!   once every task is completed, timed from their start: the pipeline's own pace, where the
//!   live figure can be no faster than the completions that feed it (PostgreSQL's were).
//!   The 90% figure is the sustained rate: every 10th request fails, retries included, so the
//!   last tenth waits out rounds of 1 s retries (10% of each round fails again) whatever the
//!   worker's speed; with 20,000 (`HOPPER_BENCH_REPORTS=20000`) that tail weighs less in the
//!   "to the last comment" figure than with the default 5,000.
//!
//! Full run (HOPPER_BENCH_PG_URL adds PostgreSQL; HOPPER_BENCH_ONLY=ceiling, =sqlite or
//! =postgres picks one part):
//!
//! ```text
//! HOPPER_BENCH_PG_URL=postgres://hopper:hopper@127.0.0.1:5432/hopper cargo bench --bench reports
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs a short smoke pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use futures::StreamExt;
use hopper::Engine;
use hopper::config::ConfigSet;
use hopper::domain::{
    Actor, DeliveryFilter, DeliveryStatus, InstanceId, SourceRef, TaskDraft, TaskId,
};
use hopper_integration_api::{Moment, Report, ReportError, SourceSettings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// In flight at once: the report worker claims 64 rows at a time.
const IN_FLIGHT: usize = 64;
/// Repositories the issues are spread over.
const REPOS: usize = 50;

/// The loopback GitHub's books.
#[derive(Default)]
struct Gh {
    /// Every comment request, answered or refused; every 10th is refused with a 502.
    requests: AtomicU64,
    refused: AtomicU64,
    /// 201s per (repository, issue).
    comments: Mutex<HashMap<(String, u64), u32>>,
    /// When each issue got its first comment.
    firsts: Mutex<Vec<Instant>>,
}

impl Gh {
    fn distinct(&self) -> usize {
        self.comments.lock().unwrap().len()
    }

    /// (issues with a comment, comments beyond the first on an issue).
    fn tally(&self) -> (usize, u64) {
        let c = self.comments.lock().unwrap();
        let dup = c.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
        (c.len(), dup)
    }
}

async fn comment(
    State(gh): State<Arc<Gh>>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let seq = gh.requests.fetch_add(1, Ordering::Relaxed);
    if seq % 10 == 9 {
        gh.refused.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({"message": "Server Error"})),
        )
            .into_response();
    }
    let repository = format!("{owner}/{repo}");
    let first = {
        let mut c = gh.comments.lock().unwrap();
        let n = c.entry((repository.clone(), number)).or_insert(0);
        *n += 1;
        *n == 1
    };
    if first {
        gh.firsts.lock().unwrap().push(Instant::now());
    }
    let id = 1_000_000_000 + seq;
    let now = "2026-12-06T09:00:00Z";
    let comment = json!({
        "id": id,
        "node_id": format!("IC_kwDOBench{id}"),
        "url": format!("https://api.github.com/repos/{repository}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{repository}/issues/{number}#issuecomment-{id}"),
        "issue_url": format!("https://api.github.com/repos/{repository}/issues/{number}"),
        "body": body.get("body").cloned().unwrap_or(Value::Null),
        "user": {
            "login": "hopper-bot",
            "id": 4242,
            "node_id": "MDQ6VXNlcjQyNDI=",
            "avatar_url": "https://avatars.githubusercontent.com/u/4242?v=4",
            "html_url": "https://github.com/hopper-bot",
            "type": "Bot",
            "site_admin": false
        },
        "created_at": now,
        "updated_at": now,
        "author_association": "NONE",
        "reactions": {"url": format!("https://api.github.com/repos/{repository}/issues/comments/{id}/reactions"),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0,
            "heart": 0, "rocket": 0, "eyes": 0},
        "performed_via_github_app": null
    });
    (StatusCode::CREATED, Json(comment)).into_response()
}

/// A loopback GitHub REST API; its root URL and books.
async fn github() -> (String, Arc<Gh>) {
    let gh = Arc::new(Gh::default());
    let app = Router::new()
        .route("/repos/{owner}/{repo}/issues/{n}/comments", post(comment))
        .with_state(gh.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, gh)
}

/// Task `n`'s issue: `acme/repo-K#n+1`.
fn repository(n: usize) -> String {
    format!("acme/repo-{}", n % REPOS)
}

fn source(n: usize) -> SourceRef {
    let repo = repository(n);
    let issue = n + 1;
    SourceRef {
        kind: "github".into(),
        container: Some(repo.clone()),
        external_id: Some(format!("{repo}#{issue}")),
        url: Some(format!("https://github.com/{repo}/issues/{issue}")),
        reply_handle: Some(json!({"repository": repo, "issue_number": issue})),
    }
}

const TEXT: &str = "Completed by **fixer**: closed the bypass in the MCP gate (quality 4.0/5).";

/// Waits until every one of `n` issues has a comment, or `limit` passes; the time from `since`.
async fn until_commented(gh: &Gh, n: usize, since: Instant, limit: Duration) -> Duration {
    while gh.distinct() < n && since.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let firsts = gh.firsts.lock().unwrap();
    firsts.last().map_or(since.elapsed(), |t| *t - since)
}

/// The comments POSTed with reqwest, `IN_FLIGHT` at once, a 502 retried at once.
async fn ceiling(n: usize) -> (f64, Arc<Gh>) {
    let (url, gh) = github().await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let uri = format!("{url}/repos/{}/issues/{}/comments", repository(i), i + 1);
                loop {
                    let r = client
                        .post(&uri)
                        .header("authorization", "Bearer bench")
                        .header("accept", "application/vnd.github+json")
                        .header("user-agent", "hopper-bench")
                        .json(&json!({ "body": TEXT }))
                        .send()
                        .await
                        .unwrap();
                    let ok = r.status() == reqwest::StatusCode::CREATED;
                    let _ = r.bytes().await;
                    if ok {
                        break;
                    }
                }
            }
        })
        .await;
    let took = until_commented(&gh, n, started, Duration::from_secs(60)).await;
    (n as f64 / took.as_secs_f64(), gh)
}

/// The same through the GitHub reporter alone (octocrab), no store: a `Retry` again at once.
async fn reporter_alone(n: usize) -> (f64, Arc<Gh>) {
    let (url, gh) = github().await;
    let section = json!({"api_url": url, "token": "bench"});
    let env = |_: &str| None;
    let settings = SourceSettings {
        section: &section,
        env: &env,
    };
    let reporter: Arc<dyn hopper_integration_api::Reporter> =
        Arc::from(hopper_github::report::reporter(&settings).unwrap().unwrap());
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let reporter = reporter.clone();
            async move {
                let report = Report {
                    moment: Moment::Completed,
                    source: source(i),
                    task_id: format!("task_{i}"),
                    title: format!("bench task {i}"),
                    text: TEXT.into(),
                    add_labels: vec![],
                    remove_labels: vec![],
                    close: false,
                };
                loop {
                    match reporter.report(&report).await {
                        Ok(_) => break,
                        Err(ReportError::Retry { .. }) => continue,
                        Err(e) => panic!("reporter: {e}"),
                    }
                }
            }
        })
        .await;
    let took = until_commented(&gh, n, started, Duration::from_secs(60)).await;
    (n as f64 / took.as_secs_f64(), gh)
}

/// Where each run gets its fresh database.
enum Db {
    Sqlite,
    /// An admin URL: the run creates a database beside it and drops it after.
    Postgres(String),
}

impl Db {
    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

fn configs(url: &str, dir: &std::path::Path, api: &str) -> ConfigSet {
    let mut c = common::configs(url, dir);
    let o = &mut c.root.outbound;
    // Eight attempts: with every 10th request refused, a report is refused on all of them with
    // a chance of about 10^-8. With five (`[0, 1, 1, 1, 1]`, used before) it was 10^-5: 0.2
    // expected dead rows per 20,000 reports, and one PostgreSQL run had one. Checked with every
    // 3rd request refused and five attempts: 77, 83 (SQLite), 88, 88 (PostgreSQL) dead rows
    // per 20,000 where (1/3)^5 predicts 82, each one five 502s, no duplicates.
    o.retry_schedule_seconds = vec![0, 1, 1, 1, 1, 1, 1, 1];
    o.jitter = 0.0;
    o.timeout_seconds = 5;
    c.root.reports = serde_json::from_value(json!({
        "github": {"api_url": api, "token": "bench", "on": ["completed"]}
    }))
    .unwrap();
    c
}

/// Runs `f` over `0..n`, `workers` at once, collecting the results in order.
async fn each<T, F, Fut>(n: usize, workers: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut handles = Vec::new();
    for w in 0..workers {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (0..n).skip(w).step_by(workers) {
                out.push((i, f(i).await));
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

struct Figures {
    rate: f64,
    t90: Duration,
    took: Duration,
    completions: f64,
    lost: usize,
    duplicates: u64,
    refused: u64,
    dead: usize,
}

/// With `backlog`, the outbound workers start only once every task is completed: the figure is
/// then the pipeline's own pace through a queue of `n` reports (outbox → dispatcher → worker →
/// GitHub), whatever the pace of the completions that feed it.
async fn pipeline(db: &Db, n: usize, backlog: bool) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => format!("sqlite:{}", dir.path().join("reports.db").display()),
        Db::Postgres(admin) => common::fresh_pg(admin).await,
    };
    let (api, gh) = github().await;
    let engine = Engine::open(configs(&url, dir.path(), &api)).await.unwrap();
    let stop = CancellationToken::new();
    let spawn = || async {
        hopper::outbound::spawn(engine.clone(), stop.clone())
            .await
            .unwrap()
            .unwrap()
    };
    let live = if backlog {
        // Task events are recorded for the reporters from now on, with nobody sending yet.
        let reporters = hopper::reports::Reporters::build(&engine.configs().root.reports);
        engine
            .set_reporters(Arc::new(reporters.unwrap()))
            .await
            .unwrap();
        None
    } else {
        Some(spawn().await)
    };

    let e = engine.clone();
    let ids: Vec<TaskId> = each(n, 16, move |i| {
        let e = e.clone();
        async move {
            let mut d = TaskDraft::new(format!("bench task {i}"));
            d.source = Some(source(i));
            e.add_task(&InstanceId::global(), d).await.unwrap().id
        }
    })
    .await;
    let e = engine.clone();
    let ids = Arc::new(ids);
    let ids2 = ids.clone();
    let leases: Vec<String> = each(n, 16, move |i| {
        let (e, ids) = (e.clone(), ids2.clone());
        async move { e.claim(&ids[i], "fixer").await.unwrap().lease_id.unwrap() }
    })
    .await;
    let leases = Arc::new(leases);

    let mut started = Instant::now();
    let e = engine.clone();
    each(n, 16, move |i| {
        let (e, ids, leases) = (e.clone(), ids.clone(), leases.clone());
        async move {
            let actor = Actor::Executor {
                name: "fixer".into(),
                lease: leases[i].clone(),
            };
            e.complete(&ids[i], &actor, None).await.unwrap();
        }
    })
    .await;
    let completed = started.elapsed();
    let outbound = match live {
        Some(o) => o,
        None => {
            started = Instant::now();
            spawn().await
        }
    };
    let took = until_commented(&gh, n, started, Duration::from_secs(120)).await;
    // Late duplicates (a retry of a comment that did land) would come within a retry step.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let t90 = {
        let f = gh.firsts.lock().unwrap();
        f.get((n * 9 / 10).saturating_sub(1))
            .map_or(took, |t| *t - started)
    };
    let (distinct, duplicates) = gh.tally();
    let dead = hopper::outbound::deliveries::list(
        &engine,
        &DeliveryFilter {
            executor: Some("report:github".into()),
            status: Some(DeliveryStatus::Dead),
            limit: Some(1_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Each dead row's attempts: what made it dead (the first few; the count is in the figures).
    for d in dead.iter().take(5) {
        let detail = hopper::outbound::deliveries::show(&engine, &d.id)
            .await
            .unwrap();
        let codes: Vec<String> = detail
            .history
            .iter()
            .map(|a| {
                a.status_code
                    .map_or_else(|| a.error.clone().unwrap_or_default(), |c| c.to_string())
            })
            .collect();
        eprintln!("  dead {}: attempts {}", d.id, codes.join(", "));
    }
    let dead = dead.len();
    stop.cancel();
    outbound.join().await;
    engine.close().await;
    if let Db::Postgres(admin) = db {
        common::drop_pg(admin, &url).await;
    }
    Figures {
        rate: distinct as f64 / took.as_secs_f64(),
        t90,
        took,
        completions: n as f64 / completed.as_secs_f64(),
        lost: n - distinct,
        duplicates,
        refused: gh.refused.load(Ordering::Relaxed),
        dead,
    }
}

async fn figures(db: &Db, n: usize, backlog: bool) {
    let label = format!("{}{}", db.label(), if backlog { " backlog" } else { "" });
    let f = pipeline(db, n, backlog).await;
    println!(
        "{label:<16} {:>9.0} reports/s, {n} completions → last first comment in {:.2} s \
         (90% in {:.2} s = {:.0}/s); completions {:.0}/s; lost {} duplicates {} \
         ({} 502s served, {} dead rows)",
        f.rate,
        f.took.as_secs_f64(),
        f.t90.as_secs_f64(),
        0.9 * n as f64 / f.t90.as_secs_f64(),
        f.completions,
        f.lost,
        f.duplicates,
        f.refused,
        f.dead,
    );
    assert_eq!(f.lost, 0, "{label}: reports lost");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("HOPPER_BENCH_REPORTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5_000 } else { 200 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let only = std::env::var("HOPPER_BENCH_ONLY").ok();
        if only.as_deref().is_none_or(|o| o == "ceiling") {
            let (rate, gh) = ceiling(n).await;
            let (_, dup) = gh.tally();
            println!(
                "ceiling   {rate:>9.0} comments/s, reqwest straight at the loopback GitHub, \
                 {IN_FLIGHT} in flight, {n} comments ({} 502s retried at once; duplicates {dup})",
                gh.refused.load(Ordering::Relaxed)
            );
            let (rate, gh) = reporter_alone(n).await;
            let (_, dup) = gh.tally();
            println!(
                "reporter  {rate:>9.0} comments/s, the GitHub reporter (octocrab) alone, \
                 {IN_FLIGHT} in flight, {n} reports ({} 502s retried at once; duplicates {dup})",
                gh.refused.load(Ordering::Relaxed)
            );
        }
        if only.as_deref().is_none_or(|o| o == "sqlite") {
            figures(&Db::Sqlite, n, false).await;
            figures(&Db::Sqlite, n, true).await;
        }
        if only.as_deref().is_none_or(|o| o == "postgres") {
            match std::env::var("HOPPER_BENCH_PG_URL") {
                Ok(admin) => {
                    let db = Db::Postgres(admin);
                    figures(&db, n, false).await;
                    figures(&db, n, true).await;
                }
                Err(_) => println!("postgres  skipped (set HOPPER_BENCH_PG_URL)"),
            }
        }
    });
}
