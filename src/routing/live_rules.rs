//! The rules file, live: decisions read the current rules without a lock, and a watcher swaps
//! in an edited file. A bad edit keeps the previous rules and says why, once per bad version.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::rules::Compiled;
use crate::config::{ConfigError, RoutingRules};

#[derive(Clone)]
pub struct LiveRules {
    current: Arc<ArcSwap<Compiled>>,
}

impl LiveRules {
    pub fn new(rules: RoutingRules) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Compiled::new(rules))),
        }
    }

    /// The rules in force now.
    pub fn get(&self) -> Arc<Compiled> {
        self.current.load_full()
    }

    /// A guard for one decision (cheaper than `get`: no reference count touched).
    pub fn load(&self) -> arc_swap::Guard<Arc<Compiled>> {
        self.current.load()
    }

    pub fn set(&self, rules: RoutingRules) {
        self.current.store(Arc::new(Compiled::new(rules)));
    }
}

/// What the watcher last saw of the file.
#[derive(Default)]
struct Seen {
    digest: Option<[u8; 32]>,
}

/// Reads `path` and, if its content changed since `seen`, parses and swaps it in. `Ok(true)`:
/// new rules are live; `Err`: the file changed but does not parse (the old rules stay).
fn reload(live: &LiveRules, path: &Path, seen: &mut Seen) -> Result<bool, ConfigError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        // A file being replaced (editors write a new file and rename it) may be missing for a
        // moment: keep what we have and look again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(ConfigError {
                file: path.display().to_string(),
                key: "(file)".into(),
                reason: format!("cannot read: {e}"),
            });
        }
    };
    let digest: [u8; 32] = Sha256::digest(&text).into();
    if seen.digest == Some(digest) {
        return Ok(false);
    }
    seen.digest = Some(digest);
    let text = String::from_utf8_lossy(&text);
    let rules = RoutingRules::parse(&text, path)?;
    live.set(rules);
    Ok(true)
}

/// Watches `path` every `every` until `stop`, swapping edits into `live`. The file's content
/// at start is taken as what `live` already holds.
pub fn watch_rules(
    live: LiveRules,
    path: PathBuf,
    every: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = Seen {
            digest: std::fs::read(&path).ok().map(|t| Sha256::digest(&t).into()),
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match reload(&live, &path, &mut seen) {
                Ok(true) => tracing::info!(file = %path.display(), "routing rules reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "routing rules not reloaded; the previous rules stay in force")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_is_swapped_in_and_a_bad_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, "default_project: one\n").unwrap();
        let live = LiveRules::new(RoutingRules::load(&path).unwrap());
        let mut seen = Seen::default();
        assert!(reload(&live, &path, &mut seen).unwrap());
        assert!(!reload(&live, &path, &mut seen).unwrap(), "unchanged");
        std::fs::write(&path, "default_project: two\n").unwrap();
        assert!(reload(&live, &path, &mut seen).unwrap());
        assert_eq!(live.get().rules.default_project.as_deref(), Some("two"));
        std::fs::write(&path, "default_project: [not, a, name\n").unwrap();
        let err = reload(&live, &path, &mut seen).unwrap_err();
        assert!(err.to_string().contains("rules.yaml"), "{err}");
        assert_eq!(live.get().rules.default_project.as_deref(), Some("two"));
        assert!(
            !reload(&live, &path, &mut seen).unwrap(),
            "a bad version is reported once"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(
            !reload(&live, &path, &mut seen).unwrap(),
            "a missing file keeps the rules"
        );
    }
}
