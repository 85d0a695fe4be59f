//! Helpers shared by the bench binaries.

use sqlx::Connection;

/// A new, empty PostgreSQL database next to the one `admin` names; its URL.
pub async fn fresh_pg(admin: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    let name = format!("hopper_bench_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

/// Drops a database made by [`fresh_pg`] (the engine using it must be closed).
pub async fn drop_pg(admin: &str, url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    if let Err(e) = dropped {
        println!("(could not drop {name}: {e})");
    }
}
