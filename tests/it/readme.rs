//! The README's tour, run as written: every `sh` block after a `<!-- tour -->` marker, with
//! `cargo run --release --` and `hopper` meaning the binary under test and port 8080 moved to a
//! free one (tests run in parallel). The first two blocks share a shell (the CLI block uses
//! the server and `$TOKEN` of the first); the mail block starts its own server.

use std::path::Path;
use std::process::Command;

use hopper::domain::{InstanceId, TaskFilter, TaskStatus};

fn tour_blocks() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut blocks = Vec::new();
    for part in readme.split("<!-- tour -->").skip(1) {
        let body = part
            .split_once("```sh\n")
            .and_then(|(_, rest)| rest.split_once("\n```"))
            .map(|(code, _)| code.to_owned())
            .expect("a tour marker is followed by an sh block");
        blocks.push(body);
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `script` in `dir` with `hopper` on PATH on a free port; the servers it starts are
/// stopped at exit. The port is free when picked, not when the server binds it: if something
/// took it meanwhile (the server says so), whatever answered there was not the block's server,
/// so the block runs again on another port.
fn run(script: &str, dir: &Path) -> String {
    for _ in 0..3 {
        let port = free_port();
        match run_on(script, dir, port) {
            Some(out) => return out,
            None => eprintln!("port {port} was taken before the tour's server bound it; again"),
        }
    }
    panic!("no free port for the README tour in three tries");
}

/// `None` when the block's server could not bind `port`.
fn run_on(script: &str, dir: &Path, port: u16) -> Option<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_hopper"));
    let script = script
        .replace("cargo run --release --", "hopper")
        .replace(":8080", &format!(":{port}"));
    let full =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}\n");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&full)
        .current_dir(dir)
        .env("PATH", path)
        .env("HOPPER_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_DATA_DIR")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_TOKEN")
        .env_remove("HOPPER_ADMIN_TOKEN")
        .env_remove("HOPPER_EMAIL_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains(&format!("binding 127.0.0.1:{port}")) {
        return None;
    }
    assert!(
        out.status.success(),
        "the README tour failed:\n{full}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    Some(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_as_written() {
    let blocks = tour_blocks();
    assert_eq!(blocks.len(), 3, "REST, CLI and mail blocks");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&format!("{}\n{}", blocks[0], blocks[1]), dir.path());
    assert!(out.contains("hopper-sark"), "{out}");
    // `hopper memory search "sark mcp"` found the routing of the REST block's task.
    assert!(
        out.lines()
            .any(|l| l.contains("routed") && l.contains("sark")),
        "{out}"
    );

    // What the tour did is in the embedded default's database.
    let mut configs = hopper::config::ConfigSet::embedded();
    configs.root.server.data_dir = dir.path().join(".hopper").display().to_string();
    let engine = hopper::Engine::open(configs.clone()).await.unwrap();
    let global = engine
        .list_tasks(&InstanceId::global(), &TaskFilter::default())
        .await
        .unwrap();
    let sark = global
        .iter()
        .find(|t| t.title == "Add MCP server support to SARK")
        .unwrap();
    assert_eq!(
        sark.status,
        TaskStatus::Done,
        "the run's completion bubbled up"
    );
    assert_eq!(
        sark.routed_to.as_ref().map(|r| r.as_str()),
        Some("hopper-sark")
    );
    let docs = global
        .iter()
        .find(|t| t.title == "Fix typo in README")
        .unwrap();
    assert_eq!(docs.status, TaskStatus::Done);
    engine.close().await;
    drop(engine);

    let out = run(&blocks[2], dir.path());
    assert!(out.contains("\"status\""), "{out}");
    let engine = hopper::Engine::open(configs).await.unwrap();
    let global = engine
        .list_tasks(&InstanceId::global(), &TaskFilter::default())
        .await
        .unwrap();
    let mail = global
        .iter()
        .find(|t| t.title == "Printer jammed")
        .unwrap_or_else(|| {
            panic!("the mail became a task; the block said {out}; global holds {global:#?}")
        });
    assert_eq!(
        mail.routed_to.as_ref().map(|r| r.as_str()),
        Some("hopper-web")
    );
    engine.close().await;
}
