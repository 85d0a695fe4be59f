use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Mutex;

use super::commit::{Committer, Writer};
use super::{Db, Store, StoreError, StoreResult};

/// What identifies a database, so two instances naming the same one share a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreKey {
    SqliteFile(PathBuf),
    Postgres(String),
    /// The process's in-memory database for orchestration runs.
    Memory(String),
}

impl StoreKey {
    /// From a URL (`sqlite:path`, `postgres://...`).
    pub fn from_url(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() || path == ":memory:" {
                return Err(format!(
                    "`{url}`: name a file (in-memory stores are for runs only)"
                ));
            }
            Ok(Self::sqlite_file(Path::new(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreKey::Postgres(url.to_owned()))
        } else {
            // The URL may carry a password: the message names the URL with it masked.
            let shown = crate::config::mask_url_passwords(url).unwrap_or_else(|| url.to_owned());
            Err(format!(
                "`{shown}` is neither a sqlite: nor a postgres:// URL"
            ))
        }
    }

    pub fn sqlite_file(path: &Path) -> Self {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        StoreKey::SqliteFile(abs)
    }

    /// A description safe for logs (no password).
    pub fn describe(&self) -> String {
        match self {
            StoreKey::SqliteFile(p) => format!("sqlite:{}", p.display()),
            StoreKey::Postgres(url) => match url.rsplit_once('@') {
                Some((_, host)) => format!("postgres://…@{host}"),
                None => url.clone(),
            },
            StoreKey::Memory(_) => "memory".into(),
        }
    }
}

/// Every open store, by key. Opening is lazy and each database is migrated once.
#[derive(Clone)]
pub struct StoreSet {
    open: Arc<Mutex<HashMap<StoreKey, Store>>>,
    pub pool_size: Option<u32>,
    /// `synchronous=FULL` (true) or `NORMAL` for SQLite files.
    pub sqlite_full_sync: bool,
}

impl Default for StoreSet {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            pool_size: None,
            sqlite_full_sync: true,
        }
    }
}

impl StoreSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn get(&self, key: &StoreKey) -> StoreResult<Store> {
        let mut open = self.open.lock().await;
        if let Some(store) = open.get(key) {
            return Ok(store.clone());
        }
        let (db, reader) = match key {
            StoreKey::SqliteFile(path) => {
                open_sqlite_file(path, self.pool_size, self.sqlite_full_sync).await?
            }
            StoreKey::Postgres(url) => {
                let db = open_postgres(url, self.pool_size).await?;
                (db.clone(), db)
            }
            StoreKey::Memory(name) => {
                let db = open_memory(name).await?;
                (db.clone(), db)
            }
        };
        let relaxed = match key {
            StoreKey::Postgres(url) => Some(open_relaxed_postgres(url).await?),
            _ => None,
        };
        let alive = Arc::new(());
        let committer = match (&db, key) {
            (Db::Sqlite(writer), StoreKey::SqliteFile(path)) => {
                let own = sqlite_writer_options(path, self.sqlite_full_sync)
                    .connect()
                    .await?;
                let sync = match self.sqlite_full_sync {
                    true => Some(super::durable::WalSync::start(path)?),
                    false => None,
                };
                let own = Writer::Own {
                    conn: own,
                    finish_frames: super::checkpoint::FINISH_FRAMES,
                };
                let committer = Committer::start(own, sync)?;
                let opts = sqlite_options(path, self.sqlite_full_sync);
                let weak = Arc::downgrade(&alive);
                super::checkpoint::spawn(path.clone(), opts, writer.clone(), weak);
                Some(committer)
            }
            (Db::Sqlite(pool), _) => Some(Committer::start(Writer::Shared(pool.clone()), None)?),
            (Db::Postgres(_), _) => None,
        };
        let pg_records = match &db {
            Db::Postgres(p) => Some(super::batch_pg::PgBatcher::start(p.clone(), "inbound")),
            Db::Sqlite(_) => None,
        };
        let pg_routes = match key {
            StoreKey::Postgres(url) => {
                let pool = open_route_postgres(url).await?;
                Some(super::batch_pg::PgBatcher::start(pool, "route"))
            }
            _ => None,
        };
        let store = Store {
            db,
            reader,
            committer,
            relaxed,
            pg_records,
            pg_routes,
            key: key.clone(),
            _alive: alive,
        };
        store.migrate().await?;
        tracing::info!(store = %key.describe(), "store opened");
        open.insert(key.clone(), store.clone());
        Ok(store)
    }

    /// Drops the set's handle on `key`'s store. Once the last handle elsewhere is gone, its
    /// connections, threads and files are released; `get` opens it again when next needed.
    pub async fn forget(&self, key: &StoreKey) -> Option<Store> {
        self.open.lock().await.remove(key)
    }

    pub async fn all(&self) -> Vec<Store> {
        self.open.lock().await.values().cloned().collect()
    }

    pub async fn close_all(&self) {
        for store in self.all().await {
            store.close().await;
        }
    }
}

fn sqlite_options(path: &Path, full_sync: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL lets readers run beside the one writer. FULL: an answered write survives power
        // loss (one fsync per group commit batch, see `durable`). NORMAL survives crashes of
        // the process only, the usual WAL trade-off, when configured.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if full_sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        // Other processes may share the file: they still wait for each other here.
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-16000")
        // Once a checkpoint has caught up, the WAL file is cut back to this size.
        .pragma("journal_size_limit", "67108864")
        .foreign_keys(true)
}

/// The writers never checkpoint; `checkpoint` does, beside them. Nor do they fsync at commit:
/// under FULL the group committer's fsync thread does, off the write path (`durable`).
fn sqlite_writer_options(path: &Path, full_sync: bool) -> SqliteConnectOptions {
    sqlite_options(path, full_sync)
        .pragma("wal_autocheckpoint", "0")
        .synchronous(SqliteSynchronous::Normal)
}

async fn open_sqlite_file(
    path: &Path,
    size: Option<u32>,
    full_sync: bool,
) -> StoreResult<(Db, Db)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
    }
    let opts = sqlite_options(path, full_sync);
    let writer_opts = sqlite_writer_options(path, full_sync);
    // A local file cannot go stale like a network connection: skip the ping sqlx would
    // otherwise send before handing out every connection (a full round trip per transaction).
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(writer_opts)
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(size.unwrap_or(8))
        .test_before_acquire(false)
        .connect_with(opts.read_only(true))
        .await?;
    Ok((Db::Sqlite(writer), Db::Sqlite(reader)))
}

async fn open_memory(name: &str) -> StoreResult<Db> {
    let opts =
        SqliteConnectOptions::from_str(&format!("sqlite:file:{name}?mode=memory&cache=shared"))?
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
    // A shared-cache memory database lives while one connection is open: keep one forever.
    // One connection also sidesteps shared-cache table locks between connections.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await?;
    Ok(Db::Sqlite(pool))
}

/// Connections with `synchronous_commit=off`, for writes that recovery re-drives anyway (see
/// `Store::relaxed`): their commit does not wait for the WAL flush.
async fn open_relaxed_postgres(url: &str) -> StoreResult<sqlx::PgPool> {
    let opts =
        sqlx::postgres::PgConnectOptions::from_str(url)?.options([("synchronous_commit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?)
}

/// The route batcher's connections (`delegations::route_pg`): relaxed commits like the pool
/// above, and plans made of index lookups only. Each route in a batch is one primary-key lookup
/// per table; left to itself, the planner may instead AND in a bitmap of the partial index of
/// pending tasks (which walks every pending task, the project queues included) or hash-join a
/// full scan of the events. With the statistics of a table that grows fast (a fresh database
/// under load) that halved throughput.
async fn open_route_postgres(url: &str) -> StoreResult<sqlx::PgPool> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)?.options([
        ("synchronous_commit", "off"),
        ("enable_bitmapscan", "off"),
        ("enable_seqscan", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(super::batch_pg::IN_FLIGHT as u32)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?)
}

async fn open_postgres(url: &str, size: Option<u32>) -> StoreResult<Db> {
    // No ping before every acquire (a full round trip per statement): idle and lifetime limits
    // retire old connections, and a connection that died anyway fails one statement, is
    // dropped by the pool, and the next acquire opens a fresh one.
    let pool = PgPoolOptions::new()
        .max_connections(size.unwrap_or(16))
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(Db::Postgres(pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let err = StoreKey::from_url("mysql://u:hunter2@db/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("mysql://u:"), "{err}");
    }
}
