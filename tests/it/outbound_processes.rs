//! Two `hopper serve` processes on one PostgreSQL deliver one executor's messages together; one
//! of them is killed with SIGKILL in the middle of its deliveries, and nothing is lost: every
//! task reaches the executor at least once, every delivery ends `delivered` and unlocked, and
//! a message is only ever sent twice for one attempt when the first sender died before it
//! could record the answer (the survivor sends it again once the dead one's lock ran out,
//! never while the first send was in flight).
//!
//! PostgreSQL only (SQLite is one process's file): skipped, with a message, when
//! `HOPPER_TEST_DATABASE_URL` is unset (`scripts/test.sh` sets it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::outbound_support::{header, signed_with};
use crate::support::{Backend, TestEnv};

const TOKEN: &str = "two-processes-admin-token";
const TASKS: usize = 300;
/// How long the executor takes to answer: deliveries are in flight when the kill lands.
const ANSWER_DELAY: Duration = Duration::from_millis(40);

/// Retries a second apart; `timeout_seconds: 1` and `claim_margin_seconds: 3` make a claim's
/// lock short: it is `2 × timeout + margin` (worker.rs), so a dead process's rows are claimed
/// again about 5 s after it claimed them. Four in flight per executor per process keeps a
/// backlog going.
const GLOBAL_YAML: &str = r#"
scope: global
instance_id: hopper-global
intelligence:
  provider: rules
child_instances:
  auto_create: true
outbound:
  allowlist: ["127.0.0.0/8"]
  retry_schedule_seconds: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
  jitter: 0
  timeout_seconds: 1
  claim_margin_seconds: 3
  per_executor_concurrency: 4
"#;

/// One request as the executor received it.
#[derive(Debug, Clone)]
struct Receipt {
    webhook_id: String,
    task_id: String,
    event: String,
    /// The signature checked out with the executor's secret.
    verified: bool,
    arrived: Instant,
    /// When the answer was handed back (`None`: the handler never finished).
    answered: Option<Instant>,
}

#[derive(Default)]
struct ExecutorState {
    secret: Option<String>,
    receipts: Vec<Receipt>,
}

type Shared = Arc<Mutex<ExecutorState>>;

/// id, task_id, event, status, attempts, locked_by, locked_until.
type DeliveryRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

async fn receive(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let index = {
        let mut s = state.lock().unwrap();
        let verified = s
            .secret
            .as_deref()
            .is_some_and(|k| signed_with(&headers, &body, k));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        s.receipts.push(Receipt {
            webhook_id: header(&headers, "webhook-id"),
            task_id: v["data"]["task"]["id"].as_str().unwrap_or("").to_owned(),
            event: v["type"].as_str().unwrap_or("").to_owned(),
            verified,
            arrived: Instant::now(),
            answered: None,
        });
        s.receipts.len() - 1
    };
    tokio::time::sleep(ANSWER_DELAY).await;
    state.lock().unwrap().receipts[index].answered = Some(Instant::now());
    StatusCode::NO_CONTENT
}

/// `hopper serve` on a free port of its own; returns the child and its base URL. Its stderr
/// is kept (the last lines go into failure messages).
fn serve(
    config: &Path,
    data_dir: &Path,
    db: &str,
    log: Arc<Mutex<Vec<String>>>,
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .arg("--config")
        .arg(config)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("HOPPER_DATA_DIR", data_dir)
        .env("HOPPER_DATABASE_URL", db)
        .env("HOPPER_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_TOKEN")
        .env_remove("HOPPER_CONFIG")
        .env_remove("HOPPER_BIND")
        .env_remove("HOPPER_OUTBOUND_ALLOWLIST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => panic!(
                "hopper serve exited before listening:\n{}",
                log.lock().unwrap().join("\n")
            ),
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
        log.lock().unwrap().push(line);
    };
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let mut log = log.lock().unwrap();
            log.push(l);
            if log.len() > 200 {
                log.remove(0);
            }
        }
    });
    (child, url)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Kills the process if the test fails before it does.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pending rows locked by some worker: id → (locked_by, locked_until).
async fn locked_rows(db: &sqlx::PgPool) -> BTreeMap<String, (String, i64)> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, locked_by, locked_until FROM deliveries \
         WHERE status = 'pending' AND locked_by IS NOT NULL",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, by, until)| (id, (by, until)))
        .collect()
}

async fn post_task(http: &reqwest::Client, base: &str, title: &str) -> Result<(), String> {
    let r = http
        .post(format!("{base}/v1/instances/hopper-global/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({"title": title, "tags": ["security"]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        201 => Ok(()),
        s => Err(format!("{s}: {}", r.text().await.unwrap_or_default())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_two_processes_loses_no_delivery() {
    if std::env::var_os("HOPPER_TEST_DATABASE_URL").is_none() {
        eprintln!(
            "skipped: needs PostgreSQL; set HOPPER_TEST_DATABASE_URL \
             (scripts/test-setup.sh, then scripts/test.sh sets it)"
        );
        return;
    }
    let started = Instant::now();
    let env = TestEnv::new(Backend::Postgres).await;
    let dir = env.dir.path();
    std::fs::write(dir.join("global.yaml"), GLOBAL_YAML).unwrap();
    std::fs::write(
        dir.join("project_routing_rules.yaml"),
        include_str!("../../config/project_routing_rules.yaml"),
    )
    .unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env.url)
        .await
        .unwrap();

    // The executor: verifies every signature, answers 204 after a moment.
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A first (it migrates the fresh database), then B.
    let log_a = Arc::new(Mutex::new(Vec::new()));
    let log_b = Arc::new(Mutex::new(Vec::new()));
    let config = dir.join("global.yaml");
    let (a, base_a) = serve(&config, &dir.join("a"), &env.url, log_a.clone());
    let mut reaper = Reaper(vec![a]);
    let (b, base_b) = serve(&config, &dir.join("b"), &env.url, log_b.clone());
    reaper.0.push(b);
    let logs = || {
        format!(
            "\n--- A's log:\n{}\n--- B's log:\n{}",
            log_a.lock().unwrap().join("\n"),
            log_b.lock().unwrap().join("\n")
        )
    };

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = http
        .post(format!("{base_a}/v1/executors"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "sark-runner",
            "kind": "project",
            "project": "sark",
            "webhook_url": hook,
            "events": ["task.available"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: serde_json::Value = r.json().await.unwrap();
    state.lock().unwrap().secret = Some(reg["secret"].as_str().unwrap().to_owned());
    let executor_id = reg["executor"]["id"].as_str().unwrap().to_owned();

    // 300 tasks, routed to `sark`, half through each process, 4 requests at a time each. A
    // request to A that fails (A is stopped or dead) is made again through B: the task may
    // then exist twice, which is fine, since what must reach the executor is every task the
    // database holds, whoever answered for it.
    let titles: Arc<Vec<String>> = Arc::new((0..TASKS).map(|i| format!("load task {i}")).collect());
    let mut adders = Vec::new();
    for (which, base) in [(0, base_a.clone()), (1, base_b.clone())] {
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (titles, next, http) = (titles.clone(), next.clone(), http.clone());
            let (base, base_b) = (base.clone(), base_b.clone());
            adders.push(tokio::spawn(async move {
                let mut via_b = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) * 2 + which;
                    let Some(title) = titles.get(i) else {
                        return via_b;
                    };
                    if post_task(&http, &base, title).await.is_err() {
                        via_b += 1;
                        post_task(&http, &base_b, title)
                            .await
                            .unwrap_or_else(|e| panic!("B refused {title:?}: {e}"));
                    }
                }
            }));
        }
    }

    // Under load: a good part delivered, the rest coming. Then A is frozen (SIGSTOP), so the
    // rows it holds are exactly those it holds when SIGKILL lands; they are told from B's by
    // staying locked, unchanged, for 3 s (an attempt of B lasts at most the 1 s timeout). If
    // A happens to hold none (or B seems to hold one too), A runs on a moment and is frozen
    // again.
    let t = Instant::now();
    while state.lock().unwrap().receipts.len() < TASKS / 5 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not even {} deliveries within 60 s{}",
            TASKS / 5,
            logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let under_load_after = started.elapsed();
    let a = &mut reaper.0[0];
    let mut stranded = BTreeMap::new();
    let mut freezes = 0;
    for _ in 0..20 {
        freezes += 1;
        signal(a, "-STOP");
        let before = locked_rows(&db).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = locked_rows(&db).await;
        stranded = before
            .into_iter()
            .filter(|(id, lock)| after.get(id) == Some(lock))
            .collect();
        let workers: BTreeSet<&String> = stranded.values().map(|(by, _)| by).collect();
        // One worker: A's (were B's too, one of its attempts was slow: look again).
        if workers.len() == 1 {
            break;
        }
        stranded.clear();
        signal(a, "-CONT");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let received_at_kill = state.lock().unwrap().receipts.len();
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let killed_at = Instant::now();
    assert!(
        !stranded.is_empty(),
        "A never held a delivery when frozen: the kill did not land mid-delivery \
         ({received_at_kill} received){}",
        logs()
    );
    let a_workers: BTreeSet<&str> = stranded.values().map(|(by, _)| by.as_str()).collect();

    let mut via_b = 0;
    for h in adders {
        via_b += h.await.unwrap();
    }

    // Every task the database holds for `sark` reaches the executor (bounded: A's rows wait
    // for their lock, ~5 s, then B sends them).
    let sark_tasks = || async {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE instance_id = 'hopper-sark'")
                .fetch_all(&db)
                .await
                .unwrap();
        ids
    };
    let wait = Instant::now();
    loop {
        let tasks = sark_tasks().await;
        let got: BTreeSet<String> = state
            .lock()
            .unwrap()
            .receipts
            .iter()
            .map(|r| r.task_id.clone())
            .collect();
        let (undelivered, outbox): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE status <> 'delivered' \
             OR locked_by IS NOT NULL), (SELECT COUNT(*) FROM task_outbox)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        let missing = tasks.iter().filter(|t| !got.contains(*t)).count();
        if tasks.len() >= TASKS && missing == 0 && undelivered == 0 && outbox == 0 {
            break;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(90),
            "90 s after the kill: {missing} of {} tasks never reached the executor, \
             {undelivered} deliveries not delivered or still locked, {outbox} outbox rows \
             left{}",
            tasks.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_delivered = killed_at.elapsed();

    let tasks = sark_tasks().await;
    let titles_in_db: BTreeSet<String> =
        sqlx::query_scalar("SELECT title FROM tasks WHERE instance_id = 'hopper-sark'")
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(titles_in_db.len(), TASKS, "every title made it to sark");
    let receipts = state.lock().unwrap().receipts.clone();

    // Every request was signed with the executor's secret, and was the task's availability.
    for r in &receipts {
        assert!(r.verified, "bad signature on {}", r.webhook_id);
        assert_eq!(r.event, "task.available", "{}", r.webhook_id);
    }

    // The rows: one `task.available` delivery per task, every one delivered, none locked.
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, task_id, event, status, attempts, locked_by, locked_until \
             FROM deliveries",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let task_set: BTreeSet<&str> = tasks.iter().map(String::as_str).collect();
    assert_eq!(rows.len(), tasks.len(), "one delivery per task");
    for (id, task, event, status, _, by, until) in &rows {
        assert!(
            task_set.contains(task.as_str()),
            "{id}: foreign task {task}"
        );
        assert_eq!(event, "task.available", "{id}");
        assert_eq!(status, "delivered", "{id}");
        assert!(by.is_none() && until.is_none(), "{id} still locked");
    }
    let row_of: HashMap<&str, &str> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();

    // Attempts recorded per delivery, and when the last began.
    let attempts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT delivery_id, COUNT(*), MAX(at) FROM delivery_attempts GROUP BY delivery_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let attempts: HashMap<String, (i64, i64)> = attempts
        .into_iter()
        .map(|(id, n, at)| (id, (n, at)))
        .collect();

    let mut by_id: BTreeMap<&str, Vec<&Receipt>> = BTreeMap::new();
    for r in &receipts {
        by_id.entry(r.webhook_id.as_str()).or_default().push(r);
    }
    let mut resent = 0;
    for (id, got) in &by_id {
        let task = row_of
            .get(id)
            .unwrap_or_else(|| panic!("received {id}, which is no delivery"));
        assert!(
            got.iter().all(|r| r.task_id == *task),
            "{id}: a body for another task"
        );
        // Never two sends of one message in flight at once: each copy arrived after the one
        // before had been answered. (Two processes sending the same claim would overlap: the
        // executor takes 40 ms to answer.)
        for w in got.windows(2) {
            let answered = w[0]
                .answered
                .unwrap_or_else(|| panic!("{id}: a copy was never answered"));
            assert!(
                w[1].arrived >= answered,
                "{id} was in flight twice at once: sent by two workers for one attempt"
            );
        }
        // Once per attempt: more copies than recorded attempts only for a row A held when it
        // died (it sent, the executor answered, A never recorded it; B sent it again, as the
        // same attempt, once A's lock had run out) — and then exactly one more.
        let (recorded, last_at) = attempts.get(*id).copied().unwrap_or((0, 0));
        let extra = got.len() as i64 - recorded;
        match stranded.get(*id) {
            Some((_, locked_until)) => {
                assert!(
                    extra <= 1,
                    "{id} (A's when killed): {} copies for {recorded} attempts",
                    got.len()
                );
                resent += extra.max(0);
                assert!(
                    last_at >= *locked_until,
                    "{id} (A's when killed) was sent again at {last_at}, before A's lock ran \
                     out at {locked_until}"
                );
            }
            None => assert!(
                extra <= 0,
                "{id}: {} copies for {recorded} recorded attempts, and A did not hold it \
                 when killed",
                got.len()
            ),
        }
    }
    let total_attempts: i64 = attempts.values().map(|(n, _)| n).sum();
    assert!(
        (receipts.len() as i64) <= total_attempts + stranded.len() as i64,
        "{} copies received, {total_attempts} attempts recorded, {} rows A held",
        receipts.len(),
        stranded.len()
    );

    // B, which lived, is still fine.
    let r = http
        .get(format!(
            "{base_b}/v1/deliveries?executor={executor_id}&limit=1"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    eprintln!(
        "{} tasks ({} re-posted through B), {} copies received for {} deliveries \
         ({total_attempts} attempts recorded); A killed after {received_at_kill} copies \
         holding {} rows (worker {:?}), {resent} of them sent twice; under load {under_load_after:.1?} after the start, \
         {freezes} freeze(s); all delivered {:.1?} after the kill; {:.1?} in all",
        tasks.len(),
        via_b,
        receipts.len(),
        rows.len(),
        stranded.len(),
        a_workers,
        all_delivered,
        started.elapsed()
    );
}
