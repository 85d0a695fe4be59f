//! Secrets never leave the process (issue 12). A real `hopper serve` gets secrets through the
//! environment, through `${VAR}`s in its files and written into the file itself; then every
//! `/v1` answer, the CLI's JSON, the server's log and the database are searched for them.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper_integration_api::Secret;
use hopper_integration_api::verify::sign_hex;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{Backend, TestEnv, TestServer, on_both};

/// `inbound.github.secret: ${HOPPER_GITHUB_WEBHOOK_SECRET}`.
const GH_SECRET: &str = "s3cr3t-gh-7f2a";
/// Only in the environment: the Slack source falls back to it.
const SLACK_SECRET: &str = "s3cr3t-slack-91c4";
/// `inbound.email.token: ${HOPPER_EMAIL_TOKEN:-}`.
const EMAIL_TOKEN: &str = "s3cr3t-mail-3b8e";
const ADMIN_TOKEN: &str = "s3cr3t-admin-55d0";
/// Written into the file as it is.
const GITLAB_TOKEN: &str = "s3cr3t-gl-literal-c2e9";
/// Written into the file as `whsec_` + base64 of `s3cr3t-http-9a52!`.
const HTTP_SECRET: &str = "czNjcjN0LWh0dHAtOWE1MiE=";
/// The password of a URL written into the file.
const URL_PASSWORD: &str = "s3cr3t-urlpw-0d7b";
/// From `${VAR}`s under keys whose names give nothing away.
const MODEL: &str = "s3cr3t-model-a41f";
const PROJECT_PATH: &str = "s3cr3t-projpath-48b0";
/// `HOPPER_MEMORY_GITLAB_TOKEN`: consolidation's GitLab token, only in the environment.
const MEMORY_TOKEN: &str = "s3cr3t-memory-7f21";
/// `${VAR}` in the project template.
const PROJECT_TOKEN: &str = "s3cr3t-proj-6e13";
/// The password of the PostgreSQL URL the tests connect with (`hopper`).
const PG_USERINFO: &str = "hopper:hopper@";

const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");
const GITLAB_ISSUE: &str = include_str!("../fixtures/gitlab/issue_open.json");
const MAIL: &[u8] = include_bytes!("../fixtures/email/multipart_latin1.eml");

const GLOBAL_YAML: &str = r#"
scope: global
instance_id: hopper-global
intelligence:
  provider: rules
  model: ${HOPPER_TEST_SECRETS_MODEL}
memory:
  consolidated:
    backend: gitlab
    url: https://oauth2:s3cr3t-urlpw-0d7b@gitlab.example.com/hopper/memory.git
    repository: hopper/memory
child_instances:
  auto_create: true
  default_config: project.yaml
inbound:
  github:
    secret: ${HOPPER_GITHUB_WEBHOOK_SECRET}
  gitlab:
    token: s3cr3t-gl-literal-c2e9
  email:
    token: ${HOPPER_EMAIL_TOKEN:-}
  http:
    alerts:
      secret: whsec_czNjcjN0LWh0dHAtOWE1MiE=
      title: /alert/name
"#;

const PROJECT_YAML: &str = r#"
scope: project
instance_id: hopper-{project_name}
parent: hopper-global
persistence:
  storage: inherit
memory:
  episodic:
    backend: sqlite
    path: ${HOPPER_TEST_SECRETS_PROJECT_PATH}
integrations:
  github:
    enabled: false
    token: ${HOPPER_TEST_SECRETS_PROJECT_TOKEN}
"#;

fn needles(backend: Backend) -> Vec<&'static str> {
    let mut n = vec![
        GH_SECRET,
        SLACK_SECRET,
        EMAIL_TOKEN,
        ADMIN_TOKEN,
        GITLAB_TOKEN,
        HTTP_SECRET,
        URL_PASSWORD,
        MODEL,
        PROJECT_PATH,
        PROJECT_TOKEN,
        MEMORY_TOKEN,
    ];
    if backend == Backend::Postgres {
        n.push(PG_USERINFO);
    }
    n
}

/// Fails naming what leaked where, with a little context.
fn assert_clean(what: &str, haystack: &[u8], needles: &[&str]) {
    for needle in needles {
        if let Some(at) = haystack
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            let from = at.saturating_sub(80);
            let to = (at + needle.len() + 80).min(haystack.len());
            panic!(
                "`{needle}` leaked into {what}: …{}…",
                String::from_utf8_lossy(&haystack[from..to])
            );
        }
    }
}

/// `hopper` with the secrets in its environment and nothing else of the caller's.
fn hopper_cmd(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hopper"));
    for k in ["HOPPER_URL", "HOPPER_TOKEN", "HOPPER_CONFIG", "HOPPER_BIND"] {
        cmd.env_remove(k);
    }
    cmd.arg("--config")
        .arg(dir.join("global.yaml"))
        .env("HOPPER_DATA_DIR", dir)
        .env("HOPPER_DATABASE_URL", url)
        .env("HOPPER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOPPER_GITHUB_WEBHOOK_SECRET", GH_SECRET)
        .env("HOPPER_SLACK_SIGNING_SECRET", SLACK_SECRET)
        .env("HOPPER_EMAIL_TOKEN", EMAIL_TOKEN)
        .env("HOPPER_TEST_SECRETS_MODEL", MODEL)
        .env("HOPPER_TEST_SECRETS_PROJECT_PATH", PROJECT_PATH)
        .env("HOPPER_TEST_SECRETS_PROJECT_TOKEN", PROJECT_TOKEN)
        .env("HOPPER_MEMORY_GITLAB_TOKEN", MEMORY_TOKEN)
        .env("RUST_LOG", "debug");
    cmd
}

/// A `hopper serve` child process; its stdout and stderr are collected line by line.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Serve {
    fn start(dir: &Path, url: &str) -> Self {
        let mut child = hopper_cmd(dir, url)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(addr) = text.split("hopper listening on ").nth(1) {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                    log.lock().unwrap().extend_from_slice(&line);
                    line.clear();
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "hopper serve did not start:\n{}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                )
            });
        Self { child, base, log }
    }

    fn stop(mut self) -> Vec<u8> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The readers see end-of-file once the process is gone.
        std::thread::sleep(Duration::from_millis(200));
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs the CLI; stdout and stderr together, after checking it succeeded.
fn cli(dir: &Path, url: &str, args: &[&str]) -> Vec<u8> {
    let out = hopper_cmd(dir, url).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "hopper {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    [out.stdout, out.stderr].concat()
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The database as it lies on disk (SQLite: the file and its WAL as bytes) or as a dump.
async fn database_bytes(env: &TestEnv, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let db = env.dir.path().join("hopper.db");
            let mut bytes = std::fs::read(&db).unwrap();
            if let Ok(wal) = std::fs::read(env.dir.path().join("hopper.db-wal")) {
                bytes.extend(wal);
            }
            bytes
        }
        Backend::Postgres => match Command::new("pg_dump").arg(&env.url).output() {
            Ok(out) if out.status.success() => out.stdout,
            // Without the client tools, every text the registry holds.
            _ => {
                let mut conn = sqlx::PgConnection::connect(&env.url).await.unwrap();
                let rows: Vec<(String, String, Option<String>)> =
                    sqlx::query_as("SELECT config, metadata, summary FROM hopper_instances")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                format!("{rows:?}").into_bytes()
            }
        },
    }
}

async fn nothing_secret_leaves_the_process(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let dir = env.dir.path().to_owned();
    std::fs::write(dir.join("global.yaml"), GLOBAL_YAML).unwrap();
    std::fs::write(dir.join("project.yaml"), PROJECT_YAML).unwrap();
    let url = env.url.clone();
    let server = tokio::task::block_in_place(|| Serve::start(&dir, &url));
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
    };
    let mut answers: Vec<(String, Vec<u8>)> = Vec::new();

    // Deliveries signed with the secrets, so events and tasks exist to be listed.
    let sig = format!(
        "sha256={}",
        sign_hex(&Secret::new(GH_SECRET), &[ISSUE_OPENED.as_bytes()])
    );
    let deliveries = [
        http.post(format!("{base}/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-secret-1")
            .header("x-hub-signature-256", sig)
            .body(ISSUE_OPENED),
        http.post(format!("{base}/webhooks/gitlab"))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Issue Hook")
            .header("x-gitlab-event-uuid", "uuid-secret-1")
            .header("x-gitlab-token", GITLAB_TOKEN)
            .body(GITLAB_ISSUE),
        http.post(format!("{base}/webhooks/email"))
            .header("content-type", "message/rfc822")
            .bearer_auth(EMAIL_TOKEN)
            .body(MAIL),
    ];
    for req in deliveries {
        let (status, body) = answer(req).await;
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        answers.push(("a webhook receipt".into(), body));
    }
    let task = json!({ "title": "Rotate the vault keys", "project": "vault" });
    let (status, body) =
        answer(api(reqwest::Method::POST, "/v1/instances/hopper-global/tasks").json(&task)).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let task: Value = serde_json::from_slice(&body).unwrap();
    answers.push(("POST tasks".into(), body));
    let (status, body) =
        answer(api(reqwest::Method::POST, "/v1/instances").json(&json!({ "name": "made-by-api" })))
            .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    answers.push(("POST /v1/instances".into(), body));

    let (_, events) = answer(api(reqwest::Method::GET, "/v1/events")).await;
    let events: Value = serde_json::from_slice(&events).unwrap();
    let event_id = events[0]["id"].as_str().unwrap().to_owned();
    let task_id = task["id"].as_str().unwrap();
    for path in [
        "/v1/instances?include_archived=true".to_owned(),
        "/v1/instances/tree".into(),
        "/v1/instances/hopper-global".into(),
        "/v1/instances/hopper-vault".into(),
        "/v1/instances/hopper-global/stats".into(),
        "/v1/instances/hopper-vault/stats".into(),
        "/v1/instances/hopper-global/tasks?hierarchy=true".into(),
        "/v1/instances/hopper-vault/tasks".into(),
        format!("/v1/tasks/{task_id}"),
        "/v1/events".into(),
        format!("/v1/events/{event_id}"),
    ] {
        let (status, body) = answer(api(reqwest::Method::GET, &path)).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        answers.push((format!("GET {path}"), body));
    }

    let (base2, token) = (base.clone(), ADMIN_TOKEN.to_owned());
    let (dir2, url2) = (dir.clone(), url.clone());
    let cli_out = tokio::task::spawn_blocking(move || {
        let remote = |args: &[&str]| {
            let mut all = vec!["--server", base2.as_str(), "--token", &token, "--json"];
            all.extend_from_slice(args);
            (format!("hopper {args:?}"), cli(&dir2, &url2, &all))
        };
        let mut out = vec![
            remote(&["instances", "list", "--all"]),
            remote(&["instances", "tree"]),
            remote(&["status", "--instance", "hopper-vault"]),
            remote(&["stats"]),
            remote(&["list", "--hierarchy"]),
            remote(&["events", "list"]),
        ];
        // Local mode opens the database itself, with the same configuration.
        for args in [
            &["--json", "instances", "list", "--all"][..],
            &["--json", "status", "--instance", "hopper-global"],
        ] {
            out.push((format!("local hopper {args:?}"), cli(&dir2, &url2, args)));
        }
        out
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&cli_out[0].1).contains("hopper-vault"),
        "the CLI lists instances"
    );
    answers.extend(cli_out);

    let log = tokio::task::block_in_place(|| server.stop());
    assert!(String::from_utf8_lossy(&log).contains("store opened"));
    answers.push(("the server's log".into(), log));
    let db = database_bytes(&env, backend).await;
    assert!(
        db.windows(12).any(|w| w == b"hopper-vault"),
        "the database was read"
    );
    answers.push(("the database".into(), db));

    let needles = needles(backend);
    for (what, bytes) in &answers {
        assert_clean(what, bytes, &needles);
    }

    // What the registry shows is still useful: where values came from, what is set.
    let listed = answers
        .iter()
        .find(|(what, _)| what.starts_with("GET /v1/instances?"))
        .map(|(_, body)| body.as_slice())
        .unwrap_or_default();
    let list: Value = serde_json::from_slice(listed).unwrap();
    let by_id = |id: &str| {
        list.as_array()
            .and_then(|a| a.iter().find(|i| i["instance_id"] == id))
            .map(|i| i["config"].clone())
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    let root = by_id("hopper-global");
    assert_eq!(
        root["intelligence"]["model"],
        "${HOPPER_TEST_SECRETS_MODEL}"
    );
    assert_eq!(root["inbound"]["github"]["secret"], "***");
    assert_eq!(root["inbound"]["gitlab"]["token"], "***");
    assert_eq!(
        root["memory"]["consolidated"]["url"],
        "https://oauth2:***@gitlab.example.com/hopper/memory.git"
    );
    assert_eq!(root["server"]["admin_token"], "***");
    if backend == Backend::Postgres {
        assert!(
            root["persistence"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("postgres://hopper:***@")),
            "{root}"
        );
    }
    let vault = by_id("hopper-vault");
    assert_eq!(
        vault["memory"]["episodic"]["path"],
        "${HOPPER_TEST_SECRETS_PROJECT_PATH}"
    );
    assert_eq!(vault["integrations"]["github"]["token"], "***");
}
on_both!(nothing_secret_leaves_the_process);

const OLD_GH: &str = "s3cr3t-old-gh-1c9d";
const OLD_PW: &str = "s3cr3t-old-pw-e7a0";
const OLD_TOKEN: &str = "s3cr3t-old-tok-2b6f";

/// Every row's config, after setting them all to `set` when given.
async fn registry_rows(env: &TestEnv, backend: Backend, set: Option<&str>) -> Vec<String> {
    const SET: &str = "UPDATE hopper_instances SET config = $1";
    const GET: &str = "SELECT config FROM hopper_instances ORDER BY instance_id";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&env.url).await.unwrap();
            if let Some(old) = set {
                sqlx::query(SET).bind(old).execute(&mut c).await.unwrap();
            }
            sqlx::query_scalar(GET).fetch_all(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&env.url).await.unwrap();
            if let Some(old) = set {
                sqlx::query(SET).bind(old).execute(&mut c).await.unwrap();
            }
            sqlx::query_scalar(GET).fetch_all(&mut c).await.unwrap()
        }
    }
}

/// Registries written before redaction hold secrets in clear: they do not come back out, and
/// the rows lose them at the next start-up.
async fn rows_from_older_versions_are_scrubbed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    engine
        .child(&hopper::domain::InstanceId::global(), "legacy", None)
        .await
        .unwrap();
    engine.close().await;
    let old = json!({
        "inbound": {"github": {"secret": OLD_GH}},
        "persistence": {"url": format!("postgres://hopper:{OLD_PW}@db.example/hopper")},
        "integrations": {"github": {"enabled": true, "token": OLD_TOKEN}},
    })
    .to_string();
    let before = registry_rows(&env, backend, Some(&old)).await;
    assert!(before.len() == 2 && before.iter().all(|c| c.contains(OLD_GH)));

    let server = TestServer::start(&env).await;
    let http = reqwest::Client::new();
    let needles = [OLD_GH, OLD_PW, OLD_TOKEN];
    for path in ["/v1/instances", "/v1/instances/hopper-legacy"] {
        let body = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_clean(&format!("GET {path}"), &body, &needles);
        assert!(
            String::from_utf8_lossy(&body).contains("postgres://hopper:***@db.example/hopper"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let after = registry_rows(&env, backend, None).await;
    assert_eq!(after.len(), 2);
    assert_clean("the registry rows", after.join("\n").as_bytes(), &needles);
}
on_both!(rows_from_older_versions_are_scrubbed);
