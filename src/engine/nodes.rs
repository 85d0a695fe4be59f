//! Instances: the in-memory map of the hierarchy, child creation and store selection.

use std::path::Path;
use std::sync::Arc;

use super::Engine;
use crate::config::{ConfigSet, HopperConfig, Storage};
use crate::domain::{
    Instance, InstanceFilter, InstanceId, InstanceStats, InstanceStatus, InstanceTree, Millis,
    Scope, TaskStatus, now_millis,
};
use crate::error::{HopperError, Result};
use crate::store::{NewInstance, Store, StoreKey};

/// A live instance: its registry row, resolved config and the store holding its tasks.
#[derive(Debug)]
pub struct Node {
    pub instance: Instance,
    pub config: HopperConfig,
    pub store: Store,
    /// Orchestration nesting below the project: run = 1, phase = 2.
    pub depth: u32,
    /// The orchestration run this instance belongs to (itself, for a run).
    pub run: Option<InstanceId>,
    /// The project this instance belongs to (itself, for a project).
    pub project: Option<String>,
    pub created_at: Millis,
    /// When this process last looked the instance up (see `Engine::close_idle_projects`).
    pub(super) last_used: std::sync::atomic::AtomicI64,
}

impl Node {
    pub(super) fn touch(&self) {
        self.last_used
            .store(now_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn last_used(&self) -> Millis {
        self.last_used.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn id(&self) -> &InstanceId {
        &self.instance.instance_id
    }

    pub fn scope(&self) -> Scope {
        self.instance.scope
    }

    pub fn parent(&self) -> Option<&InstanceId> {
        self.instance.parent_instance_id.as_ref()
    }
}

/// Where the root instance keeps its data.
pub(super) fn root_store_key(configs: &ConfigSet) -> Result<StoreKey> {
    let root = &configs.root;
    let data_dir = &root.server.data_dir;
    match root.persistence.storage {
        // The root holds the registry and every acknowledged event: keeping it in memory would
        // answer 2xx for what a restart then forgets.
        Storage::Memory => Err(HopperError::Invalid(
            "persistence.storage: `memory` is for orchestration runs only; the root instance \
             needs `sqlite` or `postgresql`"
                .into(),
        )),
        Storage::Sqlite | Storage::Inherit => {
            if let Some(url) = &root.persistence.url {
                return StoreKey::from_url(url).map_err(HopperError::Invalid);
            }
            let path = root
                .persistence
                .path
                .clone()
                .unwrap_or_else(|| "{data_dir}/hopper.db".into())
                .replace("{data_dir}", data_dir);
            Ok(StoreKey::sqlite_file(Path::new(&path)))
        }
        Storage::Postgresql => {
            let url = root.persistence.url.as_deref().ok_or_else(|| {
                HopperError::Invalid("persistence.url: required for postgresql storage".into())
            })?;
            StoreKey::from_url(url).map_err(HopperError::Invalid)
        }
    }
}

fn fill(template: &str, project: &str, run: &str, data_dir: &str) -> String {
    template
        .replace("{project_name}", project)
        .replace("{run_id}", run)
        .replace("{data_dir}", data_dir)
}

impl Engine {
    /// Loads every registered instance. In-memory runs cannot outlive a process: they are
    /// marked lost here and their parents' tasks re-queued by recovery.
    pub(super) async fn load_registry(&self) -> Result<()> {
        let root_cfg = self.inner.configs.root.clone();
        let now = now_millis();
        let (root, _) = self
            .inner
            .registry
            .register_instance(&NewInstance {
                id: &self.inner.root,
                scope: root_cfg.scope,
                parent: None,
                config: &root_cfg.registry_json(),
                metadata: &serde_json::json!({}),
                owner: None,
                now,
            })
            .await?;
        let root_node = Node {
            project: (root.scope == Scope::Project).then(|| self.inner.root.to_string()),
            run: None,
            depth: 0,
            created_at: now,
            last_used: now.into(),
            store: self.inner.registry.clone(),
            config: root_cfg,
            instance: root,
        };
        let mut nodes = self.inner.nodes.write().await;
        nodes.insert(Arc::new(root_node));
        let all = self
            .inner
            .registry
            .list_instances(&InstanceFilter {
                include_archived: true,
                ..Default::default()
            })
            .await?;
        drop(nodes);
        // Parents are registered before children, and the list is in creation order.
        for inst in all {
            if inst.instance_id == self.inner.root || inst.status != InstanceStatus::Running {
                continue;
            }
            let Some(parent_id) = inst.parent_instance_id.clone() else {
                continue;
            };
            let Ok(parent) = self.node(&parent_id).await else {
                continue;
            };
            // One bad row (an older version's, a file that cannot be opened) must not keep
            // every other instance from starting: it is reported and left alone.
            let adopted = match self.adopt(&parent, inst.clone()).await {
                Ok(adopted) => adopted.is_some(),
                Err(e) => {
                    tracing::error!(instance = %inst.instance_id, error = %e, "instance not loaded");
                    continue;
                }
            };
            if !adopted && !self.owned_elsewhere(&inst.instance_id).await? {
                self.inner
                    .registry
                    .set_instance_status(&inst.instance_id, InstanceStatus::Lost, None, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Puts a registered instance into the live map. `None` for an in-memory instance this
    /// process did not create: its tasks lived in another (or an earlier) process's memory.
    pub(super) async fn adopt(&self, parent: &Node, inst: Instance) -> Result<Option<Arc<Node>>> {
        if inst.scope != parent.scope().child_scope() {
            return Err(HopperError::Conflict(format!(
                "`{}` is registered as {} under the {} `{}`",
                inst.instance_id,
                inst.scope.as_str(),
                parent.scope().as_str(),
                parent.id()
            )));
        }
        let config = self.child_config(parent, &inst.instance_id)?;
        if config.persistence.storage == Storage::Memory {
            return Ok(None);
        }
        let node = Arc::new(self.build_node(parent, inst, config).await?);
        Ok(Some(self.inner.nodes.write().await.insert(node)))
    }

    /// The configuration a child of `parent` runs with, templates filled in.
    fn child_config(&self, parent: &Node, child: &InstanceId) -> Result<HopperConfig> {
        let scope = parent.scope().child_scope();
        let mut cfg = self.inner.configs.template(scope).clone();
        let data_dir = self.inner.configs.root.server.data_dir.clone();
        let project = match scope {
            Scope::Project => child.as_str().trim_start_matches("hopper-").to_owned(),
            _ => parent.project.clone().unwrap_or_default(),
        };
        let run = child
            .as_str()
            .rsplit_once("-run-")
            .map(|(_, r)| r.split("-phase-").next().unwrap_or(r).to_owned())
            .unwrap_or_default();
        cfg.instance_id = child.to_string();
        cfg.parent = Some(parent.id().to_string());
        cfg.persistence.path = cfg
            .persistence
            .path
            .map(|p| fill(&p, &project, &run, &data_dir));
        cfg.persistence.url = cfg
            .persistence
            .url
            .map(|p| fill(&p, &project, &run, &data_dir));
        Ok(cfg)
    }

    async fn build_node(
        &self,
        parent: &Node,
        instance: Instance,
        config: HopperConfig,
    ) -> Result<Node> {
        let store = match config.persistence.storage {
            Storage::Inherit => parent.store.clone(),
            Storage::Memory => self.inner.stores.get(&self.inner.memory).await?,
            Storage::Sqlite => {
                let key = match (&config.persistence.url, &config.persistence.path) {
                    (Some(url), _) => StoreKey::from_url(url).map_err(HopperError::Invalid)?,
                    (None, Some(path)) => StoreKey::sqlite_file(Path::new(path)),
                    (None, None) => parent.store.key().clone(),
                };
                self.inner.stores.get(&key).await?
            }
            Storage::Postgresql => {
                let url = config.persistence.url.as_deref().ok_or_else(|| {
                    HopperError::Invalid(format!(
                        "{}: persistence.url is required",
                        instance.instance_id
                    ))
                })?;
                let key = StoreKey::from_url(url).map_err(HopperError::Invalid)?;
                self.inner.stores.get(&key).await?
            }
        };
        let scope = instance.scope;
        let depth = if scope == Scope::Orchestration {
            parent.depth + 1
        } else {
            0
        };
        let run = match (scope, parent.scope()) {
            (Scope::Orchestration, Scope::Orchestration) => parent.run.clone(),
            (Scope::Orchestration, _) => Some(instance.instance_id.clone()),
            _ => None,
        };
        let project = match scope {
            Scope::Project => Some(
                instance
                    .instance_id
                    .as_str()
                    .trim_start_matches("hopper-")
                    .to_owned(),
            ),
            _ => parent.project.clone(),
        };
        Ok(Node {
            depth,
            run,
            project,
            created_at: now_millis(),
            last_used: now_millis().into(),
            store,
            config,
            instance,
        })
    }

    /// Gets or creates the child `name` of `parent` (the design's `get_child_hopper`).
    pub async fn child(
        &self,
        parent: &InstanceId,
        name: &str,
        metadata: Option<serde_json::Value>,
    ) -> Result<Arc<Node>> {
        let parent = self.node(parent).await?;
        let id = parent.id().child(name).map_err(HopperError::Invalid)?;
        let scope = parent.scope().child_scope();
        // Ids are spelt by appending to the parent's, so `hopper-a` + `b-run-x` and
        // `hopper-a-b` + `run-x` meet: an instance found under this id must really be this
        // parent's child, or work handed to it could climb back up the tree.
        let is_ours =
            |n: &Instance| n.parent_instance_id.as_ref() == Some(parent.id()) && n.scope == scope;
        if let Ok(existing) = self.node(&id).await {
            if !is_ours(&existing.instance) {
                return Err(HopperError::Conflict(format!(
                    "`{id}` exists and is not a {} child of `{}`",
                    scope.as_str(),
                    parent.id()
                )));
            }
            return Ok(existing);
        }
        if parent.instance.status != InstanceStatus::Running {
            return Err(HopperError::Conflict(format!(
                "instance `{}` is {}",
                parent.id(),
                parent.instance.status.as_str()
            )));
        }
        if scope == Scope::Orchestration {
            let max = self.inner.configs.orchestration.child_instances.max_depth;
            if parent.depth + 1 > max {
                return Err(HopperError::Invalid(format!(
                    "`{id}` would nest {} orchestration levels; child_instances.max_depth is {max}",
                    parent.depth + 1
                )));
            }
        }
        let config = self.child_config(&parent, &id)?;
        let metadata = metadata.unwrap_or_else(|| serde_json::json!({}));
        let owner =
            (config.persistence.storage == Storage::Memory).then_some(self.inner.boot_id.as_str());
        let (instance, _) = self
            .inner
            .registry
            .register_instance(&NewInstance {
                id: &id,
                scope,
                parent: Some(parent.id()),
                config: &config.registry_json(),
                metadata: &metadata,
                owner,
                now: now_millis(),
            })
            .await?;
        if !is_ours(&instance) || instance.status != InstanceStatus::Running {
            return Err(HopperError::Conflict(format!(
                "`{id}` is registered as a {} {} instance under {}",
                instance.status.as_str(),
                instance.scope.as_str(),
                instance
                    .parent_instance_id
                    .as_ref()
                    .map_or("nothing", |p| p.as_str())
            )));
        }
        let node = Arc::new(self.build_node(&parent, instance, config).await?);
        // Two callers may race to create the same child: the first one in the map wins.
        let node = self.inner.nodes.write().await.insert(node);
        metrics::counter!("hopper_instances_created_total", "scope" => scope.as_str()).increment(1);
        tracing::info!(instance = %id, parent = %parent.id(), "instance created");
        Ok(node)
    }

    pub(super) async fn children_of(&self, id: &InstanceId) -> Vec<Arc<Node>> {
        let mut out: Vec<Arc<Node>> = self
            .inner
            .nodes
            .read()
            .await
            .values()
            .filter(|n| n.parent() == Some(id))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id().cmp(b.id()))
        });
        out
    }

    /// The instance and all its live descendants, parents first.
    pub(super) async fn subtree(&self, id: &InstanceId) -> Vec<Arc<Node>> {
        let mut out = Vec::new();
        let mut stack = vec![id.clone()];
        while let Some(next) = stack.pop() {
            if let Ok(node) = self.node(&next).await {
                for c in self.children_of(&next).await.into_iter().rev() {
                    stack.push(c.id().clone());
                }
                out.push(node);
            }
        }
        out
    }

    pub(super) async fn projects(&self) -> Arc<crate::routing::Projects> {
        self.refresh_routing_executors().await;
        self.inner.nodes.read().await.projects()
    }

    pub async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        match self.inner.registry.get_instance(id).await? {
            Some(i) => Ok(i),
            None => Err(HopperError::NotFound(format!("instance `{id}` not found"))),
        }
    }

    pub async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        Ok(self.inner.registry.list_instances(filter).await?)
    }

    pub async fn stats(&self, id: &InstanceId) -> Result<InstanceStats> {
        let node = self.node(id).await?;
        let counts = node.store.status_counts(id).await?;
        let mut stats = InstanceStats {
            instance_id: id.to_string(),
            ..Default::default()
        };
        for s in TaskStatus::ALL {
            stats.tasks.insert(s.as_str().to_owned(), 0);
        }
        for (status, n) in counts {
            stats.total += n;
            stats.tasks.insert(status, n);
        }
        stats.oldest_pending_age_seconds = node
            .store
            .oldest_pending(id)
            .await?
            .map(|t| (now_millis() - t).max(0) / 1000);
        stats.children = self
            .children_of(id)
            .await
            .iter()
            .map(|c| c.id().to_string())
            .collect();
        stats.unassignable = self.unassignable(&node).await?;
        Ok(stats)
    }

    pub async fn tree(&self) -> Result<InstanceTree> {
        self.tree_of(self.root().clone()).await
    }

    fn tree_of(&self, id: InstanceId) -> futures::future::BoxFuture<'_, Result<InstanceTree>> {
        Box::pin(async move {
            let node = self.node(&id).await?;
            let open = node.store.count_open(std::slice::from_ref(&id)).await?;
            let mut children = Vec::new();
            for c in self.children_of(&id).await {
                children.push(self.tree_of(c.id().clone()).await?);
            }
            Ok(InstanceTree {
                instance_id: id.to_string(),
                scope: node.scope(),
                status: node.instance.status,
                open_tasks: open,
                children,
            })
        })
    }

    pub(super) async fn forget_subtree(
        &self,
        nodes: &[Arc<Node>],
        status: InstanceStatus,
        summary: Option<&serde_json::Value>,
    ) -> Result<()> {
        let now = now_millis();
        let mut map = self.inner.nodes.write().await;
        for (i, n) in nodes.iter().enumerate() {
            map.remove(n.id());
            let s = if i == 0 { summary } else { None };
            self.inner
                .registry
                .set_instance_status(n.id(), status, s, now)
                .await?;
        }
        Ok(())
    }
}
