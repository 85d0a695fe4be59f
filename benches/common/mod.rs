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
