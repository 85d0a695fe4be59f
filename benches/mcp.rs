//! MCP over streamable HTTP against the real server on loopback, side by side with the REST
//! call it stands for, in the same run: `get_task` as an MCP tool call (JSON-RPC in a POST to
//! `/mcp`, stateless, JSON answer) and as `GET /v1/tasks/{id}`, both with the admin token.
//!
//! - latency: one client, the two calls alternated so both see the same machine; p50 and p99
//!   of each and the difference (what MCP adds: JSON-RPC framing, rmcp's dispatch, the
//!   structured answer);
//! - throughput: 16 concurrent sessions (or REST clients) calling as fast as they can.
//!
//! `cargo bench --bench mcp` prints the figures on SQLite; under `cargo test` it runs a small
//! smoke pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use std::time::{Duration, Instant};

use hopper::config::{ConfigSet, Secret, Storage};
use hopper::domain::{InstanceId, TaskDraft};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-admin-token";

struct Scale {
    latency_calls: usize,
    sessions: usize,
    seconds: f64,
}

async fn start(dir: &std::path::Path) -> (String, String, CancellationToken) {
    let mut c = ConfigSet::defaults();
    c.root.persistence.storage = Storage::Sqlite;
    c.root.persistence.url = Some(format!("sqlite:{}", dir.join("mcp.db").display()));
    c.root.server.data_dir = dir.display().to_string();
    let engine = hopper::Engine::open(c).await.unwrap();
    let task = engine
        .add_task(
            &InstanceId::global(),
            TaskDraft::new("Benchmark the MCP endpoint").with_tags(["bench", "mcp"]),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(hopper::server::run(
        engine,
        Secret::new(TOKEN.to_owned()),
        listener,
        stop.clone(),
    ));
    (base, task.id.to_string(), stop)
}

type Session = RunningService<RoleClient, ()>;

async fn session(base: &str) -> Session {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .auth_header(TOKEN.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

async fn mcp_get(s: &Session, id: &str) {
    let args = serde_json::json!({ "task_id": id });
    let r = s
        .peer()
        .call_tool(
            CallToolRequestParams::new("get_task")
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{r:?}");
}

async fn rest_get(client: &reqwest::Client, base: &str, id: &str) {
    let resp = client
        .get(format!("{base}/v1/tasks/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
}

/// Calls per second over `seconds` with `n` concurrent callers (`call(i)` is caller i's call).
async fn throughput<F, Fut>(n: usize, seconds: f64, call: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut done = 0usize;
                while Instant::now() < until {
                    call(i).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn run(s: &Scale) {
    let dir = tempfile::tempdir().unwrap();
    let (base, id, stop) = start(dir.path()).await;
    let rest = reqwest::Client::new();
    let one = session(&base).await;
    // Warm both paths (connections, caches, the tool catalog).
    for _ in 0..50 {
        mcp_get(&one, &id).await;
        rest_get(&rest, &base, &id).await;
    }
    let (mut m, mut r) = (Vec::new(), Vec::new());
    for _ in 0..s.latency_calls {
        let t = Instant::now();
        mcp_get(&one, &id).await;
        m.push(t.elapsed());
        let t = Instant::now();
        rest_get(&rest, &base, &id).await;
        r.push(t.elapsed());
    }
    m.sort();
    r.sort();

    let sessions: Vec<_> = futures::future::join_all((0..s.sessions).map(|_| session(&base))).await;
    let sessions = std::sync::Arc::new(sessions);
    let mcp_rate = {
        let (sessions, id) = (sessions.clone(), id.clone());
        throughput(s.sessions, s.seconds, move |i| {
            let (sessions, id) = (sessions.clone(), id.clone());
            async move { mcp_get(&sessions[i], &id).await }
        })
        .await
    };
    let rest_rate = {
        let (base, id, rest) = (base.clone(), id.clone(), rest.clone());
        throughput(s.sessions, s.seconds, move |_| {
            let (base, id, rest) = (base.clone(), id.clone(), rest.clone());
            async move { rest_get(&rest, &base, &id).await }
        })
        .await
    };

    println!(
        "get_task over loopback, SQLite, {} sequential calls each (alternated), then {} concurrent callers for {:.1} s",
        s.latency_calls, s.sessions, s.seconds
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12}",
        "", "p50 ms", "p99 ms", "calls/s (16)"
    );
    println!(
        "{:<28} {:>10.3} {:>10.3} {:>12.0}",
        "MCP tools/call get_task",
        common::pct(&m, 0.5),
        common::pct(&m, 0.99),
        mcp_rate
    );
    println!(
        "{:<28} {:>10.3} {:>10.3} {:>12.0}",
        "REST GET /v1/tasks/{id}",
        common::pct(&r, 0.5),
        common::pct(&r, 0.99),
        rest_rate
    );
    println!(
        "{:<28} {:>10.3} {:>10.3}",
        "MCP added latency",
        common::pct(&m, 0.5) - common::pct(&r, 0.5),
        common::pct(&m, 0.99) - common::pct(&r, 0.99)
    );
    stop.cancel();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let s = if full {
        Scale {
            latency_calls: 5_000,
            sessions: 16,
            seconds: 5.0,
        }
    } else {
        Scale {
            latency_calls: 50,
            sessions: 16,
            seconds: 0.3,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&s));
}
