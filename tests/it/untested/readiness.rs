//! `/readyz` without a database.

use serde_json::json;
use sqlx::Connection;

use super::call;
use crate::support::{Backend, TestEnv, TestServer};

/// With its PostgreSQL database gone, the server is alive (`/healthz` 200) and says it is not
/// ready (`/readyz` 503). PostgreSQL only: an open SQLite file cannot be taken away from a
/// process that holds it (deleting or `chmod`ing it leaves the open handles working).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_database_is_gone() {
    let env = TestEnv::new(Backend::Postgres).await;
    let server = TestServer::start(&env).await;
    assert_eq!(
        call(&server, "GET", "/readyz", None).await,
        (200, json!({ "status": "ready" }))
    );
    let name = env.url.rsplit('/').next().unwrap();
    let admin_url = std::env::var("HOPPER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hopper:hopper@127.0.0.1:5432/hopper".into());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .execute(&mut admin)
        .await
        .unwrap();
    // FORCE cannot end an autovacuum worker busy in the new database (error 42501 for a
    // role without pg_signal_backend): it finishes in moments, so the drop is tried again.
    let mut dropped = Err(None);
    for _ in 0..50 {
        match sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => {
                dropped = Ok(());
                break;
            }
            Err(e) => dropped = Err(Some(e)),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    dropped.expect("the database is dropped");

    let ready = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        call(&server, "GET", "/readyz", None),
    )
    .await
    .expect("/readyz answers without the database");
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert_eq!(ready.1["error"]["code"], "not_ready");
    assert_eq!(
        call(&server, "GET", "/healthz", None).await,
        (200, json!({ "status": "ok" }))
    );
}
