//! Migrations that rebuild a table, run over a database the earlier migrations filled.

use std::borrow::Cow;

use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection};

/// Migration 20 (lean episode rows) rebuilds `episodes`: the rows and their `seq` survive,
/// a task taken back before the upgrade is still known to have been routed (its next routing
/// is a correction), and new episodes go on after the old ones, into the full-text index too.
#[tokio::test]
async fn lean_episode_rows_keep_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("up.db").display());
    let mut c = SqliteConnection::connect(&url).await.unwrap();
    let all = sqlx::migrate!("./migrations/sqlite");
    let before = Migrator {
        migrations: Cow::Owned(all.migrations.iter().take(19).cloned().collect()),
        ..sqlx::migrate!("./migrations/sqlite")
    };
    assert!(
        before
            .migrations
            .last()
            .unwrap()
            .description
            .contains("drop deliveries due")
    );
    before.run_direct(&mut c).await.unwrap();

    let task = |id: &str, routed: &str| {
        format!(
            "INSERT INTO tasks (id, instance_id, title, description, tags, priority, status, \
             routed_to, created_at, updated_at) VALUES ('{id}', 'global', 'Rotate keys {id}', \
             'quarterly', '[]', 2, 'routed', '{routed}', 1, 1)"
        )
    };
    run(&mut c, "INSERT INTO memory_wanted (id) VALUES (1)").await;
    run(&mut c, &task("t1", "hopper-sark")).await;
    run(&mut c, &task("t2", "hopper-sark")).await;
    // t1 taken back under the old triggers: only its episode says where it was.
    run(
        &mut c,
        "UPDATE tasks SET status = 'pending', routed_to = NULL WHERE id = 't1'",
    )
    .await;

    all.run_direct(&mut c).await.unwrap();

    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, task_id, kind FROM episodes ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (1, "t1".into(), "routed".into()),
            (2, "t2".into(), "routed".into())
        ]
    );
    run(
        &mut c,
        "UPDATE tasks SET status = 'routed', routed_to = 'hopper-vault' WHERE id = 't1'",
    )
    .await;
    run(&mut c, &task("t3", "hopper-vault")).await;
    let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
        "SELECT seq, task_id, kind, from_project FROM episodes WHERE seq > 2 ORDER BY seq",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (3, "t1".into(), "corrected".into(), Some("sark".into())),
            (4, "t3".into(), "routed".into(), None)
        ]
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM episode_reroutes")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(kept, 0, "routed again: nothing left aside");
    run(&mut c, "UPDATE episode_index SET upto = 4").await;
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM episodes_fts WHERE episodes_fts MATCH 'rotate'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(found, 4);
}

async fn run(c: &mut SqliteConnection, sql: &str) {
    sqlx::raw_sql(sql).execute(c).await.unwrap();
}
