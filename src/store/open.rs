//! Which database a name means, and the set of open ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use super::postgres::PgBackend;
use super::sqlite::SqliteBackend;
use super::{Backend, Store, StoreResult};

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
    /// Whether the episode triggers record (`memory.episodic.backend` not `null`): set on each
    /// store as it opens, either way, so turning memory off stops a database that recorded.
    pub memory: bool,
    /// Whether the outbox triggers must record in every store of the set (an executor with a
    /// webhook exists): set by [`StoreSet::want_outbox`], and then given to each store `get`
    /// opens before anyone can write to it. Never cleared (see `Engine::want_outbox`).
    outbox_wanted: Arc<AtomicBool>,
}

impl Default for StoreSet {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            pool_size: None,
            sqlite_full_sync: true,
            memory: true,
            outbox_wanted: Arc::default(),
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
        let backend = match key {
            StoreKey::SqliteFile(path) => Backend::Sqlite(
                SqliteBackend::open_file(path, self.pool_size, self.sqlite_full_sync).await?,
            ),
            StoreKey::Postgres(url) => {
                Backend::Postgres(PgBackend::open(url, self.pool_size).await?)
            }
            StoreKey::Memory(name) => Backend::Sqlite(SqliteBackend::open_memory(name).await?),
        };
        let store = Store {
            backend,
            key: key.clone(),
        };
        store.migrate().await?;
        // Read under the `open` lock, after `want_outbox` may have stored true: either this
        // sees it, or `want_outbox`'s walk over `all()` (which waits for the lock) sees this
        // store. SeqCst orders the two without more locking.
        if self.outbox_wanted.load(Ordering::SeqCst) {
            store.want_outbox().await?;
        }
        // A run's in-memory database is gone with the run: its episodes would be too.
        if !matches!(key, StoreKey::Memory(_)) {
            store.want_memory(self.memory).await?;
        }
        tracing::info!(store = %key.describe(), "store opened");
        open.insert(key.clone(), store.clone());
        Ok(store)
    }

    /// Drops the set's handle on `key`'s store. Once the last handle elsewhere is gone, its
    /// connections, threads and files are released; `get` opens it again when next needed.
    pub async fn forget(&self, key: &StoreKey) -> Option<Store> {
        self.open.lock().await.remove(key)
    }

    /// Makes the outbox triggers record in every open store and in every store opened from
    /// now on. Returns once each open store has the flag on disk.
    pub async fn want_outbox(&self) -> StoreResult<()> {
        self.outbox_wanted.store(true, Ordering::SeqCst);
        for store in self.all().await {
            store.want_outbox().await?;
        }
        Ok(())
    }

    /// Whether `want_outbox` was called on this set.
    pub fn outbox_wanted(&self) -> bool {
        self.outbox_wanted.load(Ordering::SeqCst)
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
