//! The delivery worker's figures, against the loopback executors of the ceiling runs.
//!
//! Each run opens a fresh database, registers executors (written straight into the store, as
//! the outbound tests do) serving projects `hopper-p0`, `hopper-p1`, …, each picked by the rules
//! through its own tag, and adds tasks on global that routing puts into those projects: every
//! task is one `task.available` delivery to one executor. The outbound machinery is the one
//! `hopper serve` starts (`hopper::outbound::spawn`: dispatcher, worker, metrics).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hopper::Engine;
use hopper::config::{ConfigSet, ProjectRule};
use hopper::domain::{
    Executor, ExecutorId, ExecutorKind, InstanceId, TaskDraft, events, millis_to_rfc3339,
    now_millis,
};
use hopper::outbound::generate_secret;
use tokio_util::sync::CancellationToken;

use super::common::pct;
use super::{Executors, Health, common, executors, rss_mb};

/// Where each run gets its fresh database.
pub enum Db {
    Sqlite,
    /// An admin URL: each run creates a database beside it and drops it after.
    Postgres(String),
}

impl Db {
    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn fresh(&self, dir: &std::path::Path) -> String {
        match self {
            Db::Sqlite => format!("sqlite:{}", dir.join("outbound.db").display()),
            Db::Postgres(admin) => common::fresh_pg(admin).await,
        }
    }

    async fn done(&self, url: &str) {
        if let Db::Postgres(admin) = self {
            common::drop_pg(admin, url).await;
        }
    }
}

pub struct Scale {
    pub executors: usize,
    /// Tasks queued before the worker starts, for the deliveries/s figure.
    pub burst: usize,
    pub paced_rate: u64,
    pub paced_seconds: u64,
    /// Messages left waiting in the retry schedule for the RSS figure, and how many executors
    /// are down for it.
    pub waiting: usize,
    pub down: usize,
}

fn configs(url: &str, dir: &std::path::Path, projects: usize) -> ConfigSet {
    let mut c = common::configs(url, dir);
    let o = &mut c.root.outbound;
    o.allowlist = vec!["127.0.0.0/8".into()];
    o.timeout_seconds = 1;
    // Down executors keep their messages waiting, not dead-lettered, for the whole run.
    o.retry_schedule_seconds = vec![0, 3_600, 3_600];
    for p in 0..projects {
        c.rules.projects.insert(
            format!("p{p}"),
            ProjectRule {
                tags: vec![format!("p{p}")],
                ..ProjectRule::default()
            },
        );
    }
    c
}

async fn register(engine: &Engine, exs: &Executors) {
    for (i, ex) in exs.iter().enumerate() {
        let now = millis_to_rfc3339(now_millis());
        let e = Executor {
            id: ExecutorId::generate(),
            name: format!("bench-{i}"),
            kind: ExecutorKind::Project,
            project: InstanceId::parse(&format!("hopper-p{i}")).unwrap(),
            capabilities: vec![],
            webhook_url: Some(ex.url.clone()),
            events: events::DEFAULT.iter().map(|s| s.to_string()).collect(),
            auto_claim: false,
            velocity: None,
            sla: None,
            priority_boost: Default::default(),
            config: serde_json::json!({}),
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            created_at: now.clone(),
            updated_at: now,
        };
        engine
            .registry_store()
            .put_executor(&e, &generate_secret(), now_millis())
            .await
            .unwrap();
    }
    // As registration does: every open store records task events from now on.
    engine.refresh_outbox_wanted().await.unwrap();
}

/// Adds task `n` for executor `n % executors`; its title is its key in the arrival log.
async fn add(engine: &Engine, n: usize, executors: usize) {
    let draft = TaskDraft {
        title: format!("bench task {n}"),
        tags: vec![format!("p{}", n % executors)],
        ..Default::default()
    };
    engine.add_task(&InstanceId::global(), draft).await.unwrap();
}

async fn add_many(engine: &Engine, range: std::ops::Range<usize>, executors: usize) {
    let mut handles = Vec::new();
    let workers = 32;
    for w in 0..workers {
        let engine = engine.clone();
        let r = range.clone();
        handles.push(tokio::spawn(async move {
            for n in r.skip(w).step_by(workers) {
                add(&engine, n, executors).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

fn delivered(exs: &Executors, healthy_only: bool) -> u64 {
    exs.iter()
        .filter(|e| !healthy_only || e.health == Health::Up)
        .map(|e| e.received.load(Ordering::Relaxed))
        .sum()
}

/// Waits until the healthy executors got `want` deliveries; the time from `since`.
async fn until_delivered(exs: &Executors, want: u64, since: Instant, label: &str) -> Duration {
    while delivered(exs, true) < want {
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "{label}: {} of {want} delivered after 10 min",
            delivered(exs, true)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    since.elapsed()
}

/// A fresh database and engine with the executors registered; outbound not started yet.
async fn open(db: &Db, dir: &std::path::Path, exs: &Executors) -> (Engine, String) {
    let url = db.fresh(dir).await;
    let engine = Engine::open(configs(&url, dir, exs.len())).await.unwrap();
    register(&engine, exs).await;
    (engine, url)
}

/// Tasks queued first, then the worker started: deliveries/s through dispatch and delivery.
/// With `dead`, executor 0 is down and the figure counts the others.
async fn burst(db: &Db, s: &Scale, dead: Option<Health>) -> f64 {
    let label = db.label();
    let dir = tempfile::tempdir().unwrap();
    let mut health = vec![Health::Up; s.executors];
    if let Some(d) = dead {
        health[0] = d;
    }
    let exs = executors(&health, false).await;
    let (engine, url) = open(db, dir.path(), &exs).await;
    add_many(&engine, 0..s.burst, s.executors).await;
    let want = (0..s.burst)
        .filter(|n| health[n % s.executors] == Health::Up)
        .count() as u64;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let outbound = hopper::outbound::spawn(engine.clone(), stop.clone())
        .await
        .unwrap()
        .unwrap();
    let took = until_delivered(&exs, want, started, label).await;
    stop.cancel();
    outbound.join().await;
    engine.close().await;
    db.done(&url).await;
    want as f64 / took.as_secs_f64()
}

/// Tasks added at `rate`/s with the worker running: from each add's answer (what a webhook's
/// 2xx waits for) to the executor receiving the delivery.
/// Also the adds' own latencies, sorted: a figure above theirs says the adds could not keep up.
async fn paced(db: &Db, s: &Scale) -> (Vec<Duration>, Vec<Duration>) {
    let label = db.label();
    let dir = tempfile::tempdir().unwrap();
    let exs = executors(&vec![Health::Up; s.executors], true).await;
    let (engine, url) = open(db, dir.path(), &exs).await;
    let stop = CancellationToken::new();
    let outbound = hopper::outbound::spawn(engine.clone(), stop.clone())
        .await
        .unwrap()
        .unwrap();
    let total = (s.paced_rate * s.paced_seconds) as usize;
    // Warm-up, not measured: one task per executor's project, so the first paced second
    // does not pay what a server pays once (each store's first statements, PostgreSQL writing
    // back the fresh database's pages: commits of 70 ms in the first second without it).
    add_many(&engine, total..total + s.executors, s.executors).await;
    until_delivered(&exs, s.executors as u64, Instant::now(), label).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gap = Duration::from_secs_f64(1.0 / s.paced_rate as f64);
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until(start + gap * n as u32).await;
        let (engine, executors) = (engine.clone(), s.executors);
        handles.push(tokio::spawn(async move {
            let asked = Instant::now();
            add(&engine, n, executors).await;
            (format!("bench task {n}"), asked, Instant::now())
        }));
    }
    let mut answered = HashMap::with_capacity(total);
    let mut adds = Vec::with_capacity(total);
    for h in handles {
        let (title, asked, at) = h.await.unwrap();
        adds.push(at - asked);
        answered.insert(title, at);
    }
    until_delivered(&exs, (total + s.executors) as u64, Instant::now(), label).await;
    stop.cancel();
    outbound.join().await;
    engine.close().await;
    db.done(&url).await;
    let mut lat: Vec<Duration> = exs
        .iter()
        .flat_map(|e| e.arrivals.lock().unwrap().clone())
        .filter_map(|(title, got)| Some(got.saturating_duration_since(*answered.get(&title)?)))
        .collect();
    lat.sort();
    adds.sort();
    (lat, adds)
}

/// `s.waiting` messages to `s.down` executors answering 500, each attempted once and then
/// waiting in the retry schedule (an hour away): RSS then.
async fn waiting(db: &Db, s: &Scale) -> (Option<f64>, Option<f64>, u64) {
    let label = db.label();
    let dir = tempfile::tempdir().unwrap();
    let mut health = vec![Health::Up; s.executors];
    for h in health.iter_mut().take(s.down) {
        *h = Health::Failing;
    }
    let exs = executors(&health, false).await;
    let (engine, url) = open(db, dir.path(), &exs).await;
    let stop = CancellationToken::new();
    let outbound = hopper::outbound::spawn(engine.clone(), stop.clone())
        .await
        .unwrap()
        .unwrap();
    let before = rss_mb();
    // Only the down executors' projects: every message waits.
    let per = s.waiting.div_ceil(s.down.max(1));
    let ids: Vec<usize> = (0..s.down)
        .flat_map(|d| (0..per).map(move |k| k * s.executors + d))
        .collect();
    let mut handles = Vec::new();
    for chunk in ids.chunks(ids.len().div_ceil(32).max(1)) {
        let (engine, chunk, executors) = (engine.clone(), chunk.to_vec(), s.executors);
        handles.push(tokio::spawn(async move {
            for n in chunk {
                add(&engine, n, executors).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let attempted = || {
        exs.iter()
            .filter(|e| e.health == Health::Failing)
            .map(|e| e.received.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let since = Instant::now();
    while attempted() < ids.len() as u64 {
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "{label}: first attempts stalled at {}",
            attempted()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the worker record the failures and settle before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mb();
    stop.cancel();
    outbound.join().await;
    engine.close().await;
    db.done(&url).await;
    (before, after, ids.len() as u64)
}

/// Whether `HOPPER_BENCH_PARTS` (a comma-separated list of `burst`, `dead`, `paced`, `rss`;
/// all when unset) asks for `part`.
fn wanted(part: &str) -> bool {
    std::env::var("HOPPER_BENCH_PARTS").map_or(true, |p| p.split(',').any(|x| x.trim() == part))
}

pub async fn figures(db: &Db, s: &Scale) {
    if wanted("burst") || wanted("dead") {
        bursts(db, s).await;
    }
    if wanted("paced") {
        paced_figures(db, s).await;
    }
    if wanted("rss") {
        rss(db, s).await;
    }
}

async fn bursts(db: &Db, s: &Scale) {
    let label = db.label();
    let rate = burst(db, s, None).await;
    println!(
        "{label:<9} {:>9.0} deliveries/s, {} executors, {} tasks queued then the worker started",
        rate, s.executors, s.burst
    );
    if !wanted("dead") {
        return;
    }
    for dead in [Health::Hung, Health::Refused] {
        let others = burst(db, s, Some(dead)).await;
        println!(
            "{label:<9} {:>9.0} deliveries/s to the other {} with one executor {dead:?} ({:.1}%)",
            others,
            s.executors - 1,
            100.0 * others / rate
        );
    }
}

async fn paced_figures(db: &Db, s: &Scale) {
    let label = db.label();
    let (lat, adds) = paced(db, s).await;
    println!(
        "{label:<9} paced {}/s for {} s, add answered → delivery received: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} measured); the adds themselves: p50 {:.2} ms  p99 {:.2} ms",
        s.paced_rate,
        s.paced_seconds,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        lat.len(),
        pct(&adds, 0.5),
        pct(&adds, 0.99),
    );
}

async fn rss(db: &Db, s: &Scale) {
    let label = db.label();
    let (before, after, n) = waiting(db, s).await;
    println!(
        "{label:<9} RSS {} MB with the worker idle, {} MB with {n} messages waiting for {} executors down",
        before.map_or("?".into(), |m| format!("{m:.0}")),
        after.map_or("?".into(), |m| format!("{m:.0}")),
        s.down
    );
}
