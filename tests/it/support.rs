use std::sync::Arc;

use hopper::Engine;
use hopper::config::{ConfigSet, ProjectRule, Secret};
use hopper::domain::InstanceId;
use hopper::service::{Hopper, HopperService};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Each PostgreSQL test leaves its database behind (a `Drop` cannot run the async drop), so
/// the first test of a run drops those of earlier runs: test and bench databases whose name
/// (a UUIDv7) says they are over an hour old, so a run still going elsewhere keeps its own.
async fn sweep_old_databases(conn: &mut sqlx::PgConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'hopper\\_t\\_%' \
         OR datname LIKE 'hopper\\_bench\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(3600))
        .unwrap_or(0);
    for name in names {
        let Some(created) = name
            .rsplit('_')
            .next()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .and_then(|id| id.get_timestamp())
            .map(|t| t.to_unix().0)
        else {
            continue;
        };
        if created < hour_ago {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// One test's private database and data directory.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub lease_seconds: u64,
    pub body_limit: usize,
    /// `inbound:` sections (secrets, limits, mappings) for webhook tests.
    pub inbound: std::collections::BTreeMap<String, serde_json::Value>,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub max_inflight_body_bytes: u64,
    /// The root's `persistence.inbound_retention`, when a test sets it.
    pub inbound_retention: Option<hopper::config::Retention>,
}

fn pg_admin_url() -> String {
    std::env::var("HOPPER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hopper:hopper@127.0.0.1:5432/hopper".into())
}

impl TestEnv {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite:{}", dir.path().join("hopper.db").display()),
            Backend::Postgres => {
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is needed (run scripts/test-setup.sh): {e}")
                    });
                sweep_old_databases(&mut conn).await;
                let name = format!("hopper_t_{}", uuid::Uuid::now_v7().simple());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (base, _) = admin.rsplit_once('/').unwrap();
                format!("{base}/{name}")
            }
        };
        Self {
            dir,
            url,
            lease_seconds: 300,
            body_limit: 1024 * 1024,
            inbound: Default::default(),
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            inbound_retention: None,
        }
    }

    pub fn configs(&self) -> ConfigSet {
        let mut c = ConfigSet::defaults();
        c.root.persistence.url = Some(self.url.clone());
        c.root.persistence.storage = if self.url.starts_with("sqlite:") {
            hopper::config::Storage::Sqlite
        } else {
            hopper::config::Storage::Postgresql
        };
        c.root.server.data_dir = self.dir.path().display().to_string();
        c.root.server.body_limit_bytes = self.body_limit;
        c.root.server.sweep_interval_ms = 100;
        c.root.server.header_read_timeout_ms = self.header_read_timeout_ms;
        c.root.server.body_read_timeout_ms = self.body_read_timeout_ms;
        c.root.server.max_inflight_body_bytes = self.max_inflight_body_bytes;
        if let Some(r) = self.inbound_retention {
            c.root.persistence.inbound_retention = r;
        }
        c.root.inbound = self.inbound.clone();
        for cfg in [&mut c.root, &mut c.project, &mut c.orchestration] {
            cfg.tasks.lease_seconds = self.lease_seconds;
        }
        c.rules.projects.insert(
            "sark".into(),
            ProjectRule {
                tags: vec!["security".into(), "mcp".into()],
                ..ProjectRule::default()
            },
        );
        c.rules.orchestration.tags = vec!["feature".into()];
        c
    }

    pub async fn engine(&self) -> Engine {
        Engine::open(self.configs()).await.unwrap()
    }
}

pub fn global(engine: &Engine) -> Hopper {
    let svc: Arc<dyn HopperService> = Arc::new(engine.clone());
    Hopper::new(svc, InstanceId::global())
}

pub fn handle(engine: &Engine, id: &InstanceId) -> Hopper {
    let svc: Arc<dyn HopperService> = Arc::new(engine.clone());
    Hopper::new(svc, id.clone())
}

/// A real server on a loopback port; stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub token: String,
    pub engine: Engine,
    stop: CancellationToken,
}

impl TestServer {
    pub async fn start(env: &TestEnv) -> Self {
        let engine = env.engine().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let token = "test-admin-token".to_owned();
        tokio::spawn(hopper::server::run(
            engine.clone(),
            Secret::new(token.clone()),
            listener,
            stop.clone(),
        ));
        Self {
            base,
            token,
            engine,
            stop,
        }
    }
}

impl TestServer {
    /// The Prometheus text at `/metrics` (the recorder is process-wide: every test's counts).
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the first series of `name` whose labels include all of `labels`
    /// (`source="github"`), 0 when there is none.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .find(|l| labels.iter().all(|want| l.contains(want)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs an async scenario once per backend, as two named tests.
macro_rules! on_both {
    ($scenario:ident) => {
        on_both!($scenario, current_thread);
    };
    ($scenario:ident, $flavor:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::support::Backend::Postgres).await
            }
        }
    };
}
pub(crate) use on_both;

/// Polls `check` until it returns `Some`, for work the server finishes after answering. The
/// limit is generous because a loaded 2-core machine (a build beside the suite) took over 5 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("condition not met within 30 s");
}

/// Tasks stored directly in `instance`.
pub async fn tasks_in(engine: &Engine, instance: &InstanceId) -> Vec<hopper::domain::Task> {
    engine
        .list_tasks(instance, &hopper::domain::TaskFilter::default())
        .await
        .unwrap()
}
