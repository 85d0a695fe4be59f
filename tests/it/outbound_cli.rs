//! `hopper deliveries list|show|retry` through the binary, against a server.

use std::process::Command;

use crate::outbound_support::{
    Receiver, Server, TOKEN, executor, outbound_configs, sark_task, secret, until,
};
use crate::support::{Backend, TestEnv};

fn hopper(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(["--server", &server.base, "--token", TOKEN])
        .args(args)
        .env("HOPPER_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_list_show_and_retry() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = Server::start(outbound_configs(&env)).await;
    let key = secret();
    // Four failures: the whole schedule, so the delivery is dead; then 204 on the retry.
    let rx = Receiver::start(&[&key], &[500, 500, 500, 500]).await;
    let ex = executor(&server.engine, "sark-cli", &rx.url, &key, false).await;
    sark_task(&server.engine, "For the CLI").await;
    let exid = ex.id.to_string();
    until("dead", || async {
        server
            .deliveries(&exid)
            .await
            .first()
            .is_some_and(|d| d["status"] == "dead")
    })
    .await;

    let (ok, out, err) = hopper(
        &server,
        &[
            "deliveries",
            "list",
            "--executor",
            &exid,
            "--status",
            "dead",
        ],
    );
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.starts_with("msg_")).expect(&out);
    let id = line.split_whitespace().next().unwrap().to_owned();
    assert!(
        line.contains("dead") && line.contains("task.available"),
        "{line}"
    );

    let (ok, out, err) = hopper(&server, &["--json", "deliveries", "show", &id]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["history"].as_array().unwrap().len(), 4);
    assert_eq!(v["history"][0]["status_code"], 500);
    assert_eq!(v["history"][0]["response"], "executor says hello");

    let (ok, out, err) = hopper(&server, &["deliveries", "retry", &id]);
    assert!(ok, "{err}");
    // Pending as the retry left it; the dispatcher's own periodic pass may still have taken it
    // in the moment before the answer was read (the receiver's count below tells the retry).
    assert!(
        out.contains("pending") || out.contains("delivered"),
        "{out}"
    );
    until("delivered after retry", || async {
        server.deliveries(&exid).await[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(rx.received().len(), 5);

    // A delivered one is not retried: a clear error, not a crash.
    let (ok, _, err) = hopper(&server, &["deliveries", "retry", &id]);
    assert!(!ok);
    assert!(err.contains("delivered"), "{err}");
    let (ok, _, err) = hopper(&server, &["deliveries", "show", "msg_nope"]);
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
}
