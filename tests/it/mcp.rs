//! The MCP server with a real MCP client (rmcp's), over both transports: streamable HTTP at
//! `/mcp` of a server on loopback, and stdio with the built `hopper mcp` as a child process
//! (on the local database, and against a server with an executor token). Tools are listed
//! with their schemas; work is added, taken and finished; bad arguments are tool errors with
//! the REST codes and the session goes on; foreign executor tokens and read tokens are refused
//! as `/v1` refuses them; concurrent sessions each get their own task.

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::executors::register;
use crate::support::{Backend, TestEnv, TestServer, eventually, on_both};

type Client = RunningService<RoleClient, ()>;

const TOOLS: [&str; 15] = [
    "add_task",
    "get_next",
    "claim",
    "heartbeat",
    "complete",
    "fail",
    "release",
    "list_tasks",
    "get_task",
    "instances_tree",
    "instance_stats",
    "explain_routing",
    "route_task",
    "search_memory",
    "list_executors",
];

async fn http(server: &TestServer, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.base))
        .auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

/// `hopper mcp` as a child process, with `args` after `mcp`.
async fn stdio(env: &TestEnv, args: &[&str]) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hopper"));
    cmd.arg("mcp")
        .args(args)
        .env("HOPPER_DATA_DIR", env.dir.path())
        .env("HOPPER_DATABASE_URL", &env.url)
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_CONFIG")
        .env_remove("HOPPER_TOKEN");
    let (child, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ().serve(child).await.unwrap()
}

async fn call(c: &Client, tool: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    c.peer()
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: the session broke: {e}"))
}

/// The structured answer of a call that must succeed.
async fn ok(c: &Client, tool: &str, args: Value) -> Value {
    let r = call(c, tool, args).await;
    assert_eq!(r.is_error, Some(false), "{tool}: {r:?}");
    r.structured_content.unwrap()
}

/// The REST status and code of a call that must fail.
async fn refused(c: &Client, tool: &str, args: Value) -> (u64, String) {
    let r = call(c, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail: {r:?}");
    let e = &r.structured_content.unwrap()["error"];
    assert!(!e["message"].as_str().unwrap().is_empty());
    (
        e["status"].as_u64().unwrap(),
        e["code"].as_str().unwrap().to_owned(),
    )
}

async fn read_resource(c: &Client, uri: &str) -> Result<Value, String> {
    match c
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
    {
        Ok(r) => match &r.contents[0] {
            ResourceContents::TextResourceContents { text, .. } => {
                Ok(serde_json::from_str(text).unwrap())
            }
            other => panic!("{other:?}"),
        },
        Err(e) => Err(e.to_string()),
    }
}

async fn mint_read_token(server: &TestServer) -> String {
    let (status, minted) = crate::executors::call(
        server,
        "POST",
        "/v1/tokens",
        &server.token,
        Some(json!({"role": "read", "name": "mcp-dash"})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

async fn tools_are_listed_with_their_schemas(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let c = http(&server, &server.token).await;
    let tools = c.peer().list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    let mut want = TOOLS.to_vec();
    want.sort_unstable();
    assert_eq!(names, want);
    let required = |name: &str| -> Vec<String> {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t.input_schema["type"], "object", "{name}");
        let out = t.output_schema.as_ref().unwrap_or_else(|| panic!("{name}"));
        assert_eq!(out["type"], "object", "{name}");
        let mut r: Vec<String> = t
            .input_schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        r.sort();
        r
    };
    assert_eq!(required("add_task"), ["title"]);
    assert_eq!(required("get_next"), ["instance"]);
    assert_eq!(required("heartbeat"), ["lease_id", "task_id"]);
    assert_eq!(required("complete"), ["task_id"]);
    assert_eq!(required("fail"), ["reason", "task_id"]);
    assert_eq!(required("route_task"), ["project", "task_id"]);
    assert_eq!(required("search_memory"), ["q"]);
    assert!(required("instances_tree").is_empty());
    // The feedback `complete` takes is the REST API's, defined inside the schema.
    let complete = tools.iter().find(|t| t.name == "complete").unwrap();
    let text = serde_json::to_string(&complete.input_schema).unwrap();
    assert!(
        text.contains("#/$defs/Feedback") && text.contains("quality_score"),
        "{text}"
    );
    let templates = c.peer().list_resource_templates(None).await.unwrap();
    let uris: Vec<&str> = templates
        .resource_templates
        .iter()
        .map(|t| t.uri_template.as_str())
        .collect();
    assert_eq!(uris, ["hopper://tasks/{id}", "hopper://instances/{id}"]);
}
on_both!(tools_are_listed_with_their_schemas);

async fn an_executor_takes_and_finishes_work_over_http(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let reg = register(&server, "sark-runner", "sark", &["python"]).await;
    let admin = http(&server, &server.token).await;
    let worker = http(&server, reg["token"].as_str().unwrap()).await;

    let global = ok(
        &admin,
        "add_task",
        json!({"title": "Harden the MCP endpoint", "tags": ["security"], "priority": "high"}),
    )
    .await;
    assert_eq!(global["status"], "routed", "{global}");
    assert_eq!(global["source"]["kind"], "mcp");
    let global_id = global["id"].as_str().unwrap().to_owned();

    let next = ok(&worker, "get_next", json!({"instance": "hopper-sark"})).await;
    let task = &next["task"];
    assert_eq!(task["title"], "Harden the MCP endpoint");
    assert_eq!(
        task["claimed_by"], "sark-runner",
        "the token's executor acts"
    );
    let id = task["id"].as_str().unwrap().to_owned();
    let lease = task["lease_id"].as_str().unwrap().to_owned();

    let beat = ok(
        &worker,
        "heartbeat",
        json!({"task_id": id, "lease_id": lease, "lease_seconds": 120}),
    )
    .await;
    assert_eq!(beat["status"], "claimed");
    assert_eq!(
        refused(
            &worker,
            "complete",
            json!({"task_id": id, "lease_id": "not-the-lease"})
        )
        .await,
        (409, "lease_lost".into())
    );
    let attached = read_resource(&worker, &format!("hopper://tasks/{id}"))
        .await
        .unwrap();
    assert_eq!(attached["task"]["id"], id.as_str());
    assert!(!attached["history"].as_array().unwrap().is_empty());

    let done = ok(
        &worker,
        "complete",
        json!({"task_id": id, "lease_id": lease,
               "feedback": {"quality_score": 4.5, "was_good_match": true, "actual_duration": "2h"}}),
    )
    .await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["feedback"]["quality_score"], 4.5);
    // Nothing else is waiting: `task` is null, not an error.
    let none = ok(&worker, "get_next", json!({"instance": "hopper-sark"})).await;
    assert_eq!(none["task"], Value::Null);

    // The global task finishes when its delegated copy does.
    let admin = &admin;
    let global_id = &global_id;
    eventually(|| async move {
        let g = ok(admin, "get_task", json!({"task_id": global_id})).await;
        (g["task"]["status"] == "done").then_some(())
    })
    .await;
    let tree = ok(admin, "instances_tree", json!({})).await;
    assert_eq!(tree["instance_id"], "hopper-global");
    let stats = ok(admin, "instance_stats", json!({"instance": "hopper-sark"})).await;
    assert_eq!(stats["tasks"]["done"], 1, "{stats}");
    let routing = ok(admin, "explain_routing", json!({"task_id": global_id})).await;
    assert!(
        !routing["decisions"].as_array().unwrap().is_empty(),
        "{routing}"
    );
    let execs = ok(admin, "list_executors", json!({"project": "sark"})).await;
    assert_eq!(execs["executors"][0]["name"], "sark-runner");
    assert!(!execs.to_string().contains("whsec_"), "no secrets: {execs}");
    let hits = ok(admin, "search_memory", json!({"q": "harden"})).await;
    assert!(hits["hits"].is_array(), "{hits}");
}
on_both!(an_executor_takes_and_finishes_work_over_http);

async fn bad_arguments_are_tool_errors_and_the_session_goes_on(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let c = http(&server, &server.token).await;
    let bad_id = refused(&c, "get_task", json!({"task_id": "not a task id"})).await;
    assert_eq!(bad_id, (400, "bad_request".into()));
    let missing = refused(&c, "add_task", json!({"description": "no title"})).await;
    assert_eq!(missing, (422, "invalid".into()));
    let unknown = refused(
        &c,
        "add_task",
        json!({"title": "x", "source": {"kind": "github"}}),
    )
    .await;
    assert_eq!(
        unknown,
        (422, "invalid".into()),
        "provenance is not the caller's to set"
    );
    let wrong_type = refused(&c, "list_tasks", json!({"limit": "ten"})).await;
    assert_eq!(wrong_type, (422, "invalid".into()));
    let nowhere = refused(
        &c,
        "get_task",
        json!({"task_id": hopper::domain::TaskId::generate().to_string()}),
    )
    .await;
    assert_eq!(nowhere, (404, "not_found".into()));
    let no_tool = refused(&c, "drop_database", json!({})).await;
    assert_eq!(no_tool.0, 404);
    let added = ok(
        &c,
        "add_task",
        json!({"title": "still here", "project": "docs"}),
    )
    .await;
    let listed = ok(&c, "list_tasks", json!({"instance": "hopper-global"})).await;
    assert_eq!(listed["tasks"][0]["id"], added["id"]);
    assert_eq!(
        refused(&c, "complete", json!({"task_id": added["id"]})).await,
        (409, "conflict".into()),
        "a delegated task finishes when its copy does"
    );
    let listed = ok(&c, "list_tasks", json!({"instance": "hopper-docs"})).await;
    let copy = &listed["tasks"][0];
    let finished = ok(&c, "complete", json!({"task_id": copy["id"]})).await;
    assert_eq!(finished["status"], "done", "the admin may finish any task");
    let err = read_resource(&c, "hopper://tasks/nope").await.unwrap_err();
    assert!(err.contains("bad_request"), "{err}");
    assert!(
        read_resource(&c, "hopper://instances/hopper-global")
            .await
            .is_ok()
    );
}
on_both!(bad_arguments_are_tool_errors_and_the_session_goes_on);

async fn foreign_and_read_tokens_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let sark = register(&server, "sark-runner", "sark", &[]).await;
    let other = register(&server, "other-runner", "other", &[]).await;
    let admin = http(&server, &server.token).await;
    let task = ok(
        &admin,
        "add_task",
        json!({"instance": "hopper-sark", "title": "sark's"}),
    )
    .await;
    let id = task["id"].as_str().unwrap();

    let foreign = http(&server, other["token"].as_str().unwrap()).await;
    let forbidden = (403, "forbidden".to_owned());
    for (tool, args) in [
        ("get_next", json!({"instance": "hopper-sark"})),
        ("list_tasks", json!({"instance": "hopper-sark"})),
        ("get_task", json!({"task_id": id})),
        ("claim", json!({"task_id": id})),
        ("complete", json!({"task_id": id, "lease_id": "x"})),
        ("release", json!({"task_id": id, "lease_id": "x"})),
        ("instances_tree", json!({})),
        ("add_task", json!({"title": "sneaked in"})),
        ("list_executors", json!({})),
    ] {
        assert_eq!(refused(&foreign, tool, args).await, forbidden, "{tool}");
    }
    // Acting as another executor is refused too, even on its own instance.
    assert_eq!(
        refused(
            &foreign,
            "get_next",
            json!({"instance": "hopper-other", "executor": "sark-runner"})
        )
        .await,
        forbidden
    );
    assert!(
        read_resource(&foreign, "hopper://instances/hopper-sark")
            .await
            .is_err()
    );
    assert!(
        read_resource(&foreign, &format!("hopper://tasks/{id}"))
            .await
            .is_err()
    );
    let visible = foreign.peer().list_resources(None).await.unwrap();
    let uris: Vec<&str> = visible.resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(
        !uris.contains(&"hopper://instances/hopper-sark"),
        "{uris:?}"
    );
    // Its own executor's work it may take.
    let own = http(&server, sark["token"].as_str().unwrap()).await;
    let got = ok(&own, "get_next", json!({"instance": "hopper-sark"})).await;
    assert_eq!(got["task"]["id"], id);
    assert!(
        read_resource(&own, "hopper://instances/hopper-sark")
            .await
            .is_ok()
    );

    let read = http(&server, &mint_read_token(&server).await).await;
    for (tool, args) in [
        ("add_task", json!({"title": "no"})),
        ("release", json!({"task_id": id})),
        ("complete", json!({"task_id": id})),
        ("route_task", json!({"task_id": id, "project": "other"})),
        (
            "get_next",
            json!({"instance": "hopper-sark", "executor": "r"}),
        ),
    ] {
        assert_eq!(refused(&read, tool, args).await, forbidden, "{tool}");
    }
    let seen = ok(&read, "get_task", json!({"task_id": id})).await;
    assert_eq!(seen["task"]["status"], "claimed", "nothing changed");

    // No token, or a wrong one: 401 before any MCP.
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", server.base))
        .bearer_auth("hop_wrong")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
on_both!(foreign_and_read_tokens_are_refused);

async fn concurrent_sessions_do_not_interfere(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    register(&server, "sark-runner", "sark", &[]).await;
    let admin = http(&server, &server.token).await;
    for i in 0..8 {
        ok(
            &admin,
            "add_task",
            json!({"instance": "hopper-sark", "title": format!("job {i}")}),
        )
        .await;
    }
    let sessions = (0..8).map(|i| {
        let server = &server;
        async move {
            let c = http(server, &server.token).await;
            let name = format!("w{i}");
            let next = ok(
                &c,
                "get_next",
                json!({"instance": "hopper-sark", "executor": name}),
            )
            .await;
            let t = &next["task"];
            assert_eq!(t["claimed_by"], name.as_str());
            let done = ok(
                &c,
                "complete",
                json!({"task_id": t["id"], "executor": name, "lease_id": t["lease_id"]}),
            )
            .await;
            assert_eq!(done["status"], "done");
            done["id"].as_str().unwrap().to_owned()
        }
    });
    let mut ids = futures::future::join_all(sessions).await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "each session took its own task");
    let stats = ok(&admin, "instance_stats", json!({"instance": "hopper-sark"})).await;
    assert_eq!(stats["tasks"]["done"], 8, "{stats}");
}
on_both!(concurrent_sessions_do_not_interfere);

async fn stdio_on_the_local_database(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let c = stdio(&env, &["--executor", "me"]).await;
    assert_eq!(c.peer().list_all_tools().await.unwrap().len(), TOOLS.len());
    let global = ok(
        &c,
        "add_task",
        json!({"title": "Fix the docs", "project": "docs"}),
    )
    .await;
    assert_eq!(global["status"], "routed");
    assert_eq!(
        refused(&c, "get_next", json!({"instance": "hopper docs"})).await,
        (400, "bad_request".into())
    );
    let next = ok(&c, "get_next", json!({"instance": "hopper-docs"})).await;
    let t = &next["task"];
    assert_eq!(t["claimed_by"], "me", "the --executor default claims");
    let done = ok(
        &c,
        "complete",
        json!({"task_id": t["id"], "lease_id": t["lease_id"]}),
    )
    .await;
    assert_eq!(done["status"], "done");
    let c = &c;
    let global_id = global["id"].clone();
    eventually(|| {
        let global_id = global_id.clone();
        async move {
            let g = ok(c, "get_task", json!({"task_id": global_id})).await;
            (g["task"]["status"] == "done").then_some(())
        }
    })
    .await;
}
on_both!(stdio_on_the_local_database);

async fn stdio_against_a_server_keeps_the_tokens_rules(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let sark = register(&server, "sark-runner", "sark", &[]).await;
    register(&server, "other-runner", "other", &[]).await;
    let admin = http(&server, &server.token).await;
    let theirs = ok(
        &admin,
        "add_task",
        json!({"instance": "hopper-other", "title": "not sark's"}),
    )
    .await;
    ok(
        &admin,
        "add_task",
        json!({"instance": "hopper-sark", "title": "sark's"}),
    )
    .await;

    let token = sark["token"].as_str().unwrap();
    let c = stdio(
        &env,
        &[
            "--server",
            &server.base,
            "--token",
            token,
            "--executor",
            "sark-runner",
        ],
    )
    .await;
    let next = ok(&c, "get_next", json!({"instance": "hopper-sark"})).await;
    assert_eq!(next["task"]["title"], "sark's");
    assert_eq!(
        refused(&c, "get_task", json!({"task_id": theirs["id"]})).await,
        (403, "forbidden".into()),
        "the server's refusal, passed on"
    );
    let done = ok(
        &c,
        "complete",
        json!({"task_id": next["task"]["id"], "lease_id": next["task"]["lease_id"]}),
    )
    .await;
    assert_eq!(done["status"], "done");
}
on_both!(stdio_against_a_server_keeps_the_tokens_rules);

/// A server whose configuration is `configs`, on a loopback port; its stop token.
async fn serve_with(
    configs: hopper::config::ConfigSet,
) -> (String, tokio_util::sync::CancellationToken) {
    let engine = hopper::Engine::open(configs).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hopper::server::run(
        engine,
        hopper::config::Secret::new("test-admin-token".to_owned()),
        listener,
        stop.clone(),
    ));
    (base, stop)
}

/// `integrations.mcp.port` adds a listener serving only `/mcp`; `enabled: false` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_on_its_own_port_and_off() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut configs = env.configs();
    configs.root.integrations.mcp = Some(hopper::config::ToggleConfig {
        enabled: true,
        port: Some(port),
        ..Default::default()
    });
    let (base, stop) = serve_with(configs).await;
    let own = format!("http://127.0.0.1:{port}");
    let c = eventually(|| async {
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{own}/mcp"))
            .auth_header("test-admin-token".to_owned());
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .ok()
    })
    .await;
    let tree = ok(&c, "instances_tree", json!({})).await;
    assert_eq!(tree["instance_id"], "hopper-global");
    let get = |url: String| async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        get(format!("{own}/v1/instances/tree")).await,
        404,
        "only /mcp there"
    );
    assert_eq!(get(format!("{base}/v1/instances/tree")).await, 200);
    stop.cancel();

    let mut off = env.configs();
    off.root.integrations.mcp = Some(hopper::config::ToggleConfig::default());
    let (base, stop) = serve_with(off).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth("test-admin-token")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "enabled: false turns MCP off");
    stop.cancel();
}
