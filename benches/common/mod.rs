//! Helpers shared by the bench binaries (each uses some of them).
#![allow(dead_code)]

use std::time::Duration;

use hopper::config::{ConfigSet, Storage};
use sqlx::Connection;

/// The defaults on the database `url` names, with `dir` as the data directory.
pub fn configs(url: &str, dir: &std::path::Path) -> ConfigSet {
    let mut c = ConfigSet::defaults();
    c.root.persistence.storage = if url.starts_with("sqlite:") {
        Storage::Sqlite
    } else {
        Storage::Postgresql
    };
    c.root.persistence.url = Some(url.to_owned());
    c.root.server.data_dir = dir.display().to_string();
    c
}

/// The `p` quantile (0..1) of sorted latencies, in ms (NaN when there are none).
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

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

/// Drops a database made by [`fresh_pg`] (the engine using it must be closed); with
/// HOPPER_BENCH_KEEP set it is left behind to look at, and named.
pub async fn drop_pg(admin: &str, url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if std::env::var_os("HOPPER_BENCH_KEEP").is_some() {
        println!("(kept database {name})");
        return;
    }
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    // The engine's last connections may still be closing; FORCE does not always win that race.
    let mut last = None;
    for _ in 0..5 {
        match sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if let Some(e) = last {
        println!("(could not drop {name}: {e})");
    }
}

/// CPU time so far (ns) of this process's threads whose name passes `named`, from
/// `/proc/self/task/*/schedstat`; 0 where that is not readable (not Linux). For the work of
/// the database threads, which the in-process load generator does not share.
pub fn threads_cpu_ns(named: impl Fn(&str) -> bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| named(c.trim())))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
