//! Executors over real HTTP: registration answers a secret and a token once, the registry
//! keeps only what it must (the token as a hash), and names, kinds, events and webhook URLs
//! are checked.

use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer, on_both};

/// One JSON call; the answer's status and body (`null` when it is not JSON).
pub async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Registers `name` for `project` with `capabilities`; the whole answer.
pub async fn register(server: &TestServer, name: &str, project: &str, caps: &[&str]) -> Value {
    let (status, body) = call(
        server,
        "POST",
        "/v1/executors",
        &server.token,
        Some(json!({"name": name, "kind": "project", "project": project, "capabilities": caps})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn registration_shows_secrets_once(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let admin = server.token.clone();
    let reg = register(&server, "sark-runner", "sark", &["python", "security"]).await;
    let secret = reg["secret"].as_str().unwrap().to_owned();
    let token = reg["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        token.starts_with("hop_") && token.len() >= 4 + 64,
        "{token}"
    );
    let e = &reg["executor"];
    assert_eq!(e["project"], "hopper-sark");
    assert_eq!(e["events"], json!(["task.available", "task.cancelled"]));
    assert_eq!(e["enabled"], true);
    let id = e["id"].as_str().unwrap().to_owned();

    // Never again: not by id, not by name, not in the listing, not in the history.
    for path in [
        format!("/v1/executors/{id}"),
        "/v1/executors/sark-runner".to_owned(),
        "/v1/executors".to_owned(),
        "/v1/executors?project=sark".to_owned(),
        format!("/v1/executors/{id}/events"),
        "/v1/tokens".to_owned(),
    ] {
        let (status, body) = call(&server, "GET", &path, &admin, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(&secret) && !text.contains(&token),
            "{path}: {text}"
        );
        assert!(
            !text.contains("whsec_") && !text.contains("hop_"),
            "{path}: {text}"
        );
    }
    let (_, listed) = call(
        &server,
        "GET",
        "/v1/executors?project=hopper-sark",
        &admin,
        None,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, none) = call(&server, "GET", "/v1/executors?project=other", &admin, None).await;
    assert_eq!(none, json!([]));

    // The database holds the token only as its SHA-256.
    let hashes: Vec<(String, String)> = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&env.url).await.unwrap();
            sqlx::query_as("SELECT token_hash, role FROM api_tokens")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env.url).await.unwrap();
            sqlx::query_as("SELECT token_hash, role FROM api_tokens")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        hashes,
        [(hopper::engine::token_hash(&token), "executor".to_owned())]
    );
    assert!(!hashes[0].0.contains(&token[4..]));

    // The token works: it reads its own record.
    let (status, own) = call(&server, "GET", "/v1/executors/sark-runner", &token, None).await;
    assert_eq!((status, own["id"].as_str()), (200, Some(id.as_str())));

    // A second executor with the same name is a conflict; the first is untouched.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/executors",
        &admin,
        Some(json!({"name": "sark-runner", "kind": "ci", "project": "sark"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (_, events) = call(
        &server,
        "GET",
        &format!("/v1/executors/{id}/events"),
        &admin,
        None,
    )
    .await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["executor.registered"]);
}
on_both!(registration_shows_secrets_once);

async fn bad_registrations_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let admin = server.token.clone();
    let base = json!({"name": "x", "kind": "project", "project": "sark"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, why) in [
        (with("kind", json!("robot")), "kind"),
        (with("events", json!(["task.exploded"])), "events"),
        (with("name", json!("Bad Name")), "name"),
        (with("capabilities", json!([""])), "capabilities"),
        (with("webhook_url", json!("http://10.0.0.1/x")), "private"),
        (
            with("webhook_url", json!("http://169.254.169.254/")),
            "metadata",
        ),
        (
            with("webhook_url", json!("http://localhost:1/")),
            "loopback",
        ),
        (with("webhook_url", json!("ftp://example.com/")), "scheme"),
    ] {
        let (status, answer) = call(&server, "POST", "/v1/executors", &admin, Some(body)).await;
        assert_eq!(status, 422, "{why}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid", "{why}: {answer}");
    }
    let (_, list) = call(&server, "GET", "/v1/executors", &admin, None).await;
    assert_eq!(list, json!([]));
}
on_both!(bad_registrations_are_refused);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_fine_when_allowlisted() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut configs = env.configs();
    configs.root.outbound.allowlist = vec!["127.0.0.0/8".into()];
    let engine = hopper::Engine::open(configs).await.unwrap();
    let reg = engine
        .register_executor(
            serde_json::from_value(json!({
                "name": "local", "kind": "project", "project": "sark",
                "webhook_url": "http://127.0.0.1:9/hook"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        reg.executor.webhook_url.as_deref(),
        Some("http://127.0.0.1:9/hook")
    );
    // Updating to a private address is refused the same way.
    let err = engine
        .update_executor(
            "local",
            serde_json::from_value(json!({"webhook_url": "http://10.0.0.1/x"})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, hopper::HopperError::Invalid(_)), "{err}");
}

/// The CLI, through the binary, against a real server: register, list, show, rotate-secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_register_list_show_rotate() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hopper"))
            .args(["--server", &server.base, "--token", &server.token])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let out = tokio::task::block_in_place(|| {
        run(&[
            "executors",
            "register",
            "cli-runner",
            "--project",
            "sark",
            "--capabilities",
            "python,go",
        ])
    });
    assert!(out.contains("not shown again"), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:  "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        secret.starts_with("whsec_") && token.starts_with("hop_"),
        "{out}"
    );
    tokio::task::block_in_place(|| {
        run(&[
            "executors",
            "disable",
            "cli-runner",
            "--reason",
            "maintenance",
        ])
    });
    let list = tokio::task::block_in_place(|| run(&["executors", "list"]));
    assert!(
        list.contains("cli-runner") && list.contains("disabled (maintenance)"),
        "{list}"
    );
    let show = tokio::task::block_in_place(|| run(&["--json", "executors", "show", "cli-runner"]));
    let shown: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(shown["capabilities"], json!(["python", "go"]));
    let rotated =
        tokio::task::block_in_place(|| run(&["executors", "rotate-secret", "cli-runner"]));
    let new_secret = rotated
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        new_secret.starts_with("whsec_") && new_secret != secret,
        "{rotated}"
    );
    for out in [&list, &show] {
        assert!(!out.contains(&secret) && !out.contains(&token) && !out.contains(&new_secret));
    }
    let events = call(
        &server,
        "GET",
        "/v1/executors/cli-runner/events",
        &server.token,
        None,
    )
    .await
    .1;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "executor.registered",
            "executor.disabled",
            "executor.secret_rotated"
        ]
    );
}
