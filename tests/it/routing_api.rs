//! Routing explained and corrected over real HTTP and through the `hopper` binary:
//! `GET /v1/tasks/{id}/routing`, `POST /v1/tasks/{id}/route`, `GET /v1/tasks/{id}/plan`,
//! `hopper explain`, `hopper route` and `hopper decompose`, with every refusal a JSON error
//! with the right status and the token scopes applied.

use std::process::Command;

use hopper::Engine;
use hopper::config::{ConfigSet, ProjectRule, Secret};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestEnv, on_both};

/// A server on the test rules (`sark`: security, mcp) plus `waypoint` (writing, docs), so a
/// task tagged `security` and `writing` matches two projects.
struct Server {
    base: String,
    token: String,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn configs(env: &TestEnv) -> ConfigSet {
    let mut c = env.configs();
    c.rules.projects.insert(
        "waypoint".into(),
        ProjectRule {
            tags: vec!["writing".into(), "docs".into()],
            ..ProjectRule::default()
        },
    );
    c
}

impl Server {
    async fn start(env: &TestEnv) -> Self {
        let engine = Engine::open(configs(env)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let token = "routing-admin-token".to_owned();
        tokio::spawn(hopper::server::run(
            engine,
            Secret::new(token.clone()),
            listener,
            stop.clone(),
        ));
        Self { base, token, stop }
    }

    /// A request with a JSON body (or none) and a bearer token (or none).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req =
            reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// As the admin.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.token), body).await
    }

    /// A raw body with the given content type (or none), as the admin.
    async fn raw(&self, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        answer(req.send().await.unwrap()).await
    }

    /// Adds a task to the global instance; the task as answered.
    async fn add(&self, title: &str, tags: &[&str]) -> Value {
        let (status, t) = self
            .admin(
                "POST",
                "/v1/instances/hopper-global/tasks",
                Some(json!({"title": title, "tags": tags})),
            )
            .await;
        assert_eq!(status, 201, "{t}");
        t
    }

    /// The tasks stored in `instance`.
    async fn tasks_in(&self, instance: &str) -> Vec<Value> {
        let (status, list) = self
            .admin("GET", &format!("/v1/instances/{instance}/tasks"), None)
            .await;
        assert_eq!(status, 200, "{list}");
        list.as_array().cloned().unwrap_or_default()
    }

    async fn mint_read_token(&self) -> String {
        let (status, minted) = self
            .admin(
                "POST",
                "/v1/tokens",
                Some(json!({"role": "read", "name": "dash"})),
            )
            .await;
        assert_eq!(status, 201, "{minted}");
        minted["token"].as_str().unwrap().to_owned()
    }
}

/// Status and JSON body; a body that is not JSON is a test failure (every error is JSON).
async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

/// Status and error code of an error answer (asserting it is the JSON error shape).
fn error(got: &(u16, Value)) -> (u16, &str) {
    let code = got.1["error"]["code"].as_str();
    assert!(
        code.is_some() && got.1["error"]["message"].is_string(),
        "{}: not a JSON error: {}",
        got.0,
        got.1
    );
    (got.0, code.unwrap())
}

fn message(got: &(u16, Value)) -> String {
    got.1["error"]["message"].as_str().unwrap_or("").to_owned()
}

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

/// A task routed by rules, two projects matching: the decision's chain names `rules`, its
/// outcome `decided` and the other project as an alternative; asking through the project's
/// copy gives the same path. Unknown and malformed ids answer as `GET /v1/tasks/{id}` does.
async fn explain_shows_the_rules_chain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(&env).await;
    let t = server
        .add("Write the threat model", &["security", "writing"])
        .await;
    assert_eq!(t["status"], "routed", "{t}");
    let routed_to = t["routed_to"].as_str().unwrap().to_owned();
    assert!(
        routed_to == "hopper-sark" || routed_to == "hopper-waypoint",
        "{routed_to}"
    );
    let (chosen, other) = if routed_to == "hopper-sark" {
        ("sark", "waypoint")
    } else {
        ("waypoint", "sark")
    };

    let (status, report) = server
        .admin("GET", &format!("/v1/tasks/{}/routing", id(&t)), None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["task_id"], id(&t));
    assert_eq!(report["global_task_id"], id(&t));
    assert_eq!(report["status"], "routed");
    assert_eq!(report["routed_to"], routed_to);
    let decisions = report["decisions"].as_array().unwrap();
    let d = decisions
        .iter()
        .find(|d| d["decided_by"] == "rules")
        .unwrap_or_else(|| panic!("no decision by rules: {report}"));
    assert_eq!(d["instance_id"], "hopper-global");
    assert_eq!(d["to"], routed_to);
    let step = &d["chain"][0];
    assert_eq!(step["provider"], "rules", "{d}");
    assert_eq!(step["outcome"], "decided", "{d}");
    assert_eq!(step["project"], chosen, "{d}");
    let alternatives: Vec<&str> = step["alternatives"]
        .as_array()
        .unwrap_or_else(|| panic!("no alternatives: {d}"))
        .iter()
        .map(|a| a["project"].as_str().unwrap())
        .collect();
    assert_eq!(alternatives, [other], "{d}");

    // Through the project's copy: the same global task, the same decision first.
    let copies = server.tasks_in(&routed_to).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (status, via_copy) = server
        .admin(
            "GET",
            &format!("/v1/tasks/{}/routing", id(&copies[0])),
            None,
        )
        .await;
    assert_eq!(status, 200, "{via_copy}");
    assert_eq!(via_copy["task_id"], id(&copies[0]));
    assert_eq!(via_copy["global_task_id"], id(&t));
    assert_eq!(via_copy["decisions"][0]["decided_by"], "rules");

    // Unknown: 404 JSON, as for the task itself.
    let unknown = hopper::domain::TaskId::generate().to_string();
    let task_404 = server
        .admin("GET", &format!("/v1/tasks/{unknown}"), None)
        .await;
    assert_eq!(error(&task_404), (404, "not_found"));
    for route in ["routing", "plan"] {
        let got = server
            .admin("GET", &format!("/v1/tasks/{unknown}/{route}"), None)
            .await;
        assert_eq!(error(&got), (404, "not_found"), "{route}");
        assert!(message(&got).contains(&unknown), "{}", got.1);
    }
    let got = server
        .admin(
            "POST",
            &format!("/v1/tasks/{unknown}/route"),
            Some(json!({"project": "waypoint"})),
        )
        .await;
    assert_eq!(error(&got), (404, "not_found"));

    // Malformed: whatever `GET /v1/tasks/{id}` answers, a JSON error, never a 5xx.
    for bad in ["nope", "task_nope", "task_%2E%2E%2Fetc"] {
        let plain = server.admin("GET", &format!("/v1/tasks/{bad}"), None).await;
        let plain = (plain.0, error(&plain).1.to_owned());
        assert_eq!(plain, (400, "bad_request".to_owned()), "{bad}");
        for (method, route, body) in [
            ("GET", "routing", None),
            ("GET", "plan", None),
            ("POST", "route", Some(json!({"project": "waypoint"}))),
        ] {
            let got = server
                .admin(method, &format!("/v1/tasks/{bad}/{route}"), body)
                .await;
            assert_eq!(
                (got.0, error(&got).1),
                (plain.0, plain.1.as_str()),
                "{method} {bad}/{route}: {}",
                got.1
            );
        }
    }
}
on_both!(explain_shows_the_rules_chain);

/// Re-routing over HTTP: moved, corrected in the explanation, refused (409) to the same
/// project, a claimed copy and a finished task, 422 for names that are no project, and every
/// malformed request a 4xx JSON error.
async fn reroute_over_http(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(&env).await;
    let t = server.add("Audit the MCP server", &["security"]).await;
    assert_eq!(t["routed_to"], "hopper-sark", "{t}");
    let route = format!("/v1/tasks/{}/route", id(&t));

    let (status, moved) = server
        .admin(
            "POST",
            &route,
            Some(json!({"project": "waypoint", "reason": "it is a writing task"})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["id"], id(&t));
    assert_eq!(moved["status"], "routed");
    assert_eq!(moved["routed_to"], "hopper-waypoint");
    let (_, shown) = server
        .admin("GET", &format!("/v1/tasks/{}", id(&t)), None)
        .await;
    assert_eq!(shown["routed_to"], "hopper-waypoint", "{shown}");
    let old = server.tasks_in("hopper-sark").await;
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["status"], "cancelled");
    let new = server.tasks_in("hopper-waypoint").await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["status"], "pending");

    let (status, report) = server
        .admin("GET", &format!("/v1/tasks/{}/routing", id(&t)), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["routed_to"], "hopper-waypoint");
    let decisions = report["decisions"].as_array().unwrap();
    let rerouted = decisions
        .iter()
        .find(|d| d["event"] == "rerouted")
        .unwrap_or_else(|| panic!("no correction: {report}"));
    let c = &rerouted["correction"];
    assert_eq!(c["from"], "hopper-sark", "{c}");
    assert_eq!(c["to"], "hopper-waypoint", "{c}");
    assert_eq!(c["reason"], "it is a writing task", "{c}");
    assert_eq!(c["by"], "admin", "{c}");
    let last = decisions.last().unwrap();
    assert_eq!(last["decided_by"], "correction", "{report}");
    assert_eq!(last["to"], "hopper-waypoint", "{report}");
    assert_eq!(last["chain"][0]["provider"], "correction");
    assert_eq!(last["chain"][0]["outcome"], "decided");

    // Same project again (either spelling): 409, nothing changes.
    for same in ["waypoint", "hopper-waypoint"] {
        let got = server
            .admin("POST", &route, Some(json!({"project": same})))
            .await;
        assert_eq!(error(&got), (409, "conflict"), "{same}");
        assert!(message(&got).contains("already routed"), "{}", got.1);
    }
    assert_eq!(server.tasks_in("hopper-waypoint").await.len(), 1);

    // Names that are no project: 422, and no instance made for them.
    for bad in [
        "../etc",
        "hopper-global",
        "global",
        "",
        "a/b",
        "sark-run-0123abcd",
    ] {
        let got = server
            .admin("POST", &route, Some(json!({"project": bad})))
            .await;
        assert_eq!(error(&got), (422, "invalid"), "{bad:?}: {}", got.1);
    }
    let (_, tree) = server.admin("GET", "/v1/instances", None).await;
    assert!(!tree.to_string().contains("etc"), "{tree}");

    // Malformed requests: JSON errors, never a 5xx.
    let unknown_field = server
        .admin(
            "POST",
            &route,
            Some(json!({"project": "sark", "priority": "high"})),
        )
        .await;
    assert_eq!(error(&unknown_field), (422, "invalid"));
    assert!(message(&unknown_field).contains("priority"));
    let wrong_type = server
        .admin("POST", &route, Some(json!({"project": 7})))
        .await;
    assert_eq!(error(&wrong_type), (422, "invalid"));
    let text = server
        .raw(&route, Some("text/plain"), r#"{"project":"sark"}"#)
        .await;
    assert_eq!(error(&text), (415, "unsupported_media_type"));
    let untyped = server.raw(&route, None, r#"{"project":"sark"}"#).await;
    assert_eq!(error(&untyped), (415, "unsupported_media_type"));
    let broken = server
        .raw(&route, Some("application/json"), r#"{"project":"#)
        .await;
    assert_eq!(error(&broken), (400, "malformed_json"));
    for ct in [None, Some("application/json")] {
        let empty = server.raw(&route, ct, "").await;
        assert_eq!(error(&empty), (422, "invalid"), "{ct:?}: {}", empty.1);
        assert!(message(&empty).contains("project"), "{}", empty.1);
    }
    let array = server
        .raw(&route, Some("application/json"), r#"["sark"]"#)
        .await;
    assert_eq!(error(&array), (422, "invalid"));
    // None of these moved it.
    let (_, shown) = server
        .admin("GET", &format!("/v1/tasks/{}", id(&t)), None)
        .await;
    assert_eq!(shown["routed_to"], "hopper-waypoint", "{shown}");

    // A claimed copy: 409 "release it first"; released, the re-route goes through.
    let t2 = server.add("Rotate the keys", &["security"]).await;
    let (status, claimed) = server
        .admin(
            "POST",
            "/v1/instances/hopper-sark/next",
            Some(json!({"executor": "guard"})),
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["parent_task_id"], id(&t2), "{claimed}");
    let route2 = format!("/v1/tasks/{}/route", id(&t2));
    let got = server
        .admin("POST", &route2, Some(json!({"project": "waypoint"})))
        .await;
    assert_eq!(error(&got), (409, "conflict"));
    assert!(message(&got).contains("release it first"), "{}", got.1);
    let got = server
        .admin("POST", &route2, Some(json!({"project": "brand-new"})))
        .await;
    assert_eq!(error(&got), (409, "conflict"));
    let (status, _) = server
        .admin("GET", "/v1/instances/hopper-brand-new", None)
        .await;
    assert_eq!(status, 404, "a refused re-route must not create a project");
    // Asking through the copy's id is the same global task, the same answer.
    let got = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/route", id(&claimed)),
            Some(json!({"project": "waypoint"})),
        )
        .await;
    assert_eq!(error(&got), (409, "conflict"));
    let lease = claimed["lease_id"].as_str().unwrap();
    let (status, released) = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/release", id(&claimed)),
            Some(json!({"executor": "guard", "lease_id": lease})),
        )
        .await;
    assert_eq!(status, 200, "{released}");
    let (status, moved) = server
        .admin("POST", &route2, Some(json!({"project": "hopper-waypoint"})))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["routed_to"], "hopper-waypoint");

    // A done task: 409, and the project it names is not created on the way.
    let t3 = server.add("Pen-test the gateway", &["security"]).await;
    let (status, claimed) = server
        .admin(
            "POST",
            "/v1/instances/hopper-sark/next",
            Some(json!({"executor": "guard"})),
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["parent_task_id"], id(&t3), "{claimed}");
    let (status, done) = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/complete", id(&claimed)),
            Some(json!({"executor": "guard", "lease_id": claimed["lease_id"]})),
        )
        .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("done")));
    let (_, shown) = server
        .admin("GET", &format!("/v1/tasks/{}", id(&t3)), None)
        .await;
    assert_eq!(shown["status"], "done", "{shown}");
    let got = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/route", id(&t3)),
            Some(json!({"project": "elsewhere"})),
        )
        .await;
    assert_eq!(error(&got), (409, "conflict"));
    assert!(message(&got).contains("done"), "{}", got.1);
    let (status, _) = server
        .admin("GET", "/v1/instances/hopper-elsewhere", None)
        .await;
    assert_eq!(status, 404, "a refused re-route must not create a project");

    // A triaged task (no rule matched) is sent where the correction says.
    let t4 = server.add("Water the plants", &[]).await;
    assert_eq!(t4["status"], "pending", "{t4}");
    let (status, sent) = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/route", id(&t4)),
            Some(json!({"project": "waypoint"})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "routed");
    assert_eq!(sent["routed_to"], "hopper-waypoint");
    let (_, report) = server
        .admin("GET", &format!("/v1/tasks/{}/routing", id(&t4)), None)
        .await;
    let c = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d.get("correction").cloned())
        .unwrap_or_else(|| panic!("no correction: {report}"));
    assert_eq!(c["from"], Value::Null);
    assert_eq!(c["to"], "hopper-waypoint");

    // A task made directly in a project was not routed by the global instance: 409.
    let (status, local) = server
        .admin(
            "POST",
            "/v1/instances/hopper-sark/tasks",
            Some(json!({"title": "local"})),
        )
        .await;
    assert_eq!(status, 201, "{local}");
    let got = server
        .admin(
            "POST",
            &format!("/v1/tasks/{}/route", id(&local)),
            Some(json!({"project": "waypoint"})),
        )
        .await;
    assert_eq!(error(&got), (409, "conflict"));
}
on_both!(reroute_over_http);

/// A read token explains and plans but does not re-route; an executor token does neither (the
/// routing routes are not in `EXECUTOR_ROUTES`); no token or a wrong one is 401.
async fn routing_routes_are_scoped(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(&env).await;
    for (method, path) in [
        ("GET", "/v1/tasks/{id}/routing"),
        ("POST", "/v1/tasks/{id}/route"),
        ("GET", "/v1/tasks/{id}/plan"),
    ] {
        assert!(
            !hopper::api::auth::EXECUTOR_ROUTES.contains(&(method, path)),
            "{method} {path} is open to executors"
        );
    }
    let t = server.add("Audit", &["security"]).await;
    let copy = server.tasks_in("hopper-sark").await.remove(0);
    let read = server.mint_read_token().await;
    let (status, reg) = server
        .admin(
            "POST",
            "/v1/executors",
            Some(json!({"name": "sark-runner", "kind": "project", "project": "sark"})),
        )
        .await;
    assert_eq!(status, 201, "{reg}");
    let exec = reg["token"].as_str().unwrap().to_owned();
    let body = || Some(json!({"project": "waypoint"}));

    for task in [id(&t), id(&copy)] {
        let (status, report) = server
            .call(
                "GET",
                &format!("/v1/tasks/{task}/routing"),
                Some(&read),
                None,
            )
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["global_task_id"], id(&t));
        let (status, plan) = server
            .call("GET", &format!("/v1/tasks/{task}/plan"), Some(&read), None)
            .await;
        assert_eq!(status, 200, "{plan}");
        let got = server
            .call(
                "POST",
                &format!("/v1/tasks/{task}/route"),
                Some(&read),
                body(),
            )
            .await;
        assert_eq!(error(&got), (403, "forbidden"));

        // The executor serves sark, and the copy is sark's: still 403 on all three.
        for (method, route, b) in [
            ("GET", "routing", None),
            ("GET", "plan", None),
            ("POST", "route", body()),
        ] {
            let got = server
                .call(method, &format!("/v1/tasks/{task}/{route}"), Some(&exec), b)
                .await;
            assert_eq!(error(&got), (403, "forbidden"), "{method} {route}");
        }
        for token in [None, Some("wrong"), Some("hop_0000")] {
            for (method, route, b) in [
                ("GET", "routing", None),
                ("GET", "plan", None),
                ("POST", "route", body()),
            ] {
                let got = server
                    .call(method, &format!("/v1/tasks/{task}/{route}"), token, b)
                    .await;
                assert_eq!(
                    error(&got),
                    (401, "unauthorized"),
                    "{method} {route} {token:?}"
                );
            }
        }
    }
    // Nothing was moved by any of them.
    let (_, shown) = server
        .admin("GET", &format!("/v1/tasks/{}", id(&t)), None)
        .await;
    assert_eq!(shown["routed_to"], "hopper-sark", "{shown}");
}
on_both!(routing_routes_are_scoped);

/// With the default configuration the plan is the template: the configured phases, no tasks.
async fn plan_is_the_template_by_default(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(&env).await;
    let phases = configs(&env).orchestration.orchestration.phases;
    assert!(!phases.is_empty());
    let routed = server.add("Audit", &["security"]).await;
    let triaged = server.add("Something else", &[]).await;
    let copy = server.tasks_in("hopper-sark").await.remove(0);
    for task in [&routed, &triaged, &copy] {
        let (status, plan) = server
            .admin("GET", &format!("/v1/tasks/{}/plan", id(task)), None)
            .await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["source"], "template", "{plan}");
        assert!(plan.get("fallback_reason").is_none(), "{plan}");
        assert!(plan.get("trace").is_none(), "{plan}");
        let names: Vec<&str> = plan["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, phases, "{plan}");
        assert!(
            plan["phases"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["tasks"] == json!([])),
            "{plan}"
        );
    }
    // Planning creates nothing.
    assert_eq!(server.tasks_in("hopper-sark").await.len(), 1);
    let (_, instances) = server.admin("GET", "/v1/instances", None).await;
    assert!(!instances.to_string().contains("-run-"), "{instances}");
}
on_both!(plan_is_the_template_by_default);

fn hopper(args: &[&str], data_dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(args)
        .env("HOPPER_DATA_DIR", data_dir)
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_CONFIG")
        .env_remove("HOPPER_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hopper explain`, `route` and `decompose` against a server, in text and JSON.
async fn cli_explains_routes_and_plans(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(&env).await;
    let a = id(&server.add("Audit the MCP server", &["security"]).await);
    let b = id(&server.add("Review the auth flow", &["security"]).await);
    let phases = configs(&env).orchestration.orchestration.phases;
    let (base, token) = (server.base.clone(), server.token.clone());
    let dir = tempfile::tempdir().unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let unknown_id = hopper::domain::TaskId::generate().to_string();
    let runs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let mut all = vec!["--server", &base, "--token", &token];
            all.extend_from_slice(args);
            hopper(&all, dir.path())
        };
        vec![
            run(&["explain", &a2]),
            run(&["explain", &a2, "--json"]),
            run(&["route", &a2, "--project", "waypoint", "--reason", "docs"]),
            run(&["explain", &a2]),
            run(&["--json", "route", &b2, "--project", "waypoint"]),
            run(&["route", &b2, "--project", "waypoint"]),
            run(&["route", &b2, "--project", "../etc"]),
            run(&["decompose", &a2]),
            run(&["decompose", &a2, "--dry-run"]),
            run(&["decompose", &a2, "--dry-run", "--json"]),
            run(&["explain", "task_nope"]),
            run(&["explain", &unknown_id]),
        ]
    })
    .await
    .unwrap();
    let [
        explain,
        explain_json,
        route,
        explain_after,
        route_json,
        route_again,
        route_bad,
        decompose,
        dry_run,
        dry_run_json,
        malformed,
        unknown,
    ] = &runs[..]
    else {
        unreachable!()
    };

    assert!(explain.0, "{}", explain.2);
    assert!(explain.1.contains(&a), "{}", explain.1);
    assert!(
        explain
            .1
            .lines()
            .any(|l| l.contains("rules") && l.contains("decided")),
        "{}",
        explain.1
    );
    assert!(explain_json.0, "{}", explain_json.2);
    let report: Value = serde_json::from_str(&explain_json.1).unwrap();
    assert_eq!(report["task_id"], a);
    assert_eq!(report["decisions"][0]["chain"][0]["provider"], "rules");
    assert_eq!(report["decisions"][0]["chain"][0]["outcome"], "decided");

    assert!(route.0, "{}", route.2);
    assert!(route.1.contains(&a), "{}", route.1);
    assert!(
        route.1.contains("routed to: hopper-waypoint"),
        "{}",
        route.1
    );
    assert!(explain_after.0, "{}", explain_after.2);
    assert!(explain_after.1.contains("rerouted"), "{}", explain_after.1);
    assert!(explain_after.1.contains("docs"), "{}", explain_after.1);
    assert!(
        explain_after
            .1
            .lines()
            .any(|l| l.contains("correction") && l.contains("decided")),
        "{}",
        explain_after.1
    );

    assert!(route_json.0, "{}", route_json.2);
    let moved: Value = serde_json::from_str(&route_json.1).unwrap();
    assert_eq!(moved["id"], b);
    assert_eq!(moved["routed_to"], "hopper-waypoint");
    assert!(
        !route_again.0 && route_again.2.contains("already routed"),
        "{route_again:?}"
    );
    assert!(!route_bad.0 && !route_bad.2.is_empty(), "{route_bad:?}");

    assert!(!decompose.0, "{decompose:?}");
    assert!(decompose.2.contains("--dry-run"), "{}", decompose.2);
    assert!(dry_run.0, "{}", dry_run.2);
    assert!(dry_run.1.contains("plan from template"), "{}", dry_run.1);
    let plan: Value = serde_json::from_str(&dry_run_json.1).unwrap();
    assert_eq!(plan["source"], "template");
    assert_eq!(plan["phases"].as_array().unwrap().len(), phases.len());

    assert!(
        !malformed.0 && malformed.2.contains("task id"),
        "{malformed:?}"
    );
    assert!(!unknown.0 && unknown.2.contains("not found"), "{unknown:?}");

    // The server saw the CLI's corrections.
    let (_, shown) = server.admin("GET", &format!("/v1/tasks/{a}"), None).await;
    assert_eq!(shown["routed_to"], "hopper-waypoint");
}
on_both!(cli_explains_routes_and_plans);

/// The same commands on a local data directory (no server).
#[test]
fn cli_on_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = hopper(
        &["add", "Fix typo", "--project", "docs", "--json"],
        dir.path(),
    );
    assert!(ok, "{err}");
    let task: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(task["routed_to"], "hopper-docs");
    let t = id(&task);

    let (ok, out, err) = hopper(&["explain", &t, "--json"], dir.path());
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["routed_to"], "hopper-docs", "{report}");
    assert!(
        !report["decisions"].as_array().unwrap().is_empty(),
        "{report}"
    );

    let (ok, out, err) = hopper(
        &["route", &t, "--project", "waypoint", "--reason", "docs"],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(out.contains("routed to: hopper-waypoint"), "{out}");
    let (ok, out, err) = hopper(&["explain", &t], dir.path());
    assert!(ok && out.contains("rerouted"), "{out}{err}");

    let (ok, _, err) = hopper(&["decompose", &t], dir.path());
    assert!(!ok && err.contains("--dry-run"), "{err}");
    let (ok, out, err) = hopper(&["decompose", &t, "--dry-run", "--json"], dir.path());
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["source"], "template");
}
