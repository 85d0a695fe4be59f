//! The instances this process runs, and the project list the routers see.
//!
//! Every routing decision of the global instance looks at all projects. Building that list
//! from the live map walked every instance (runs and phases included) and cloned each
//! project's name and capabilities once per delivery: O(instances) work on the hot path of a
//! gateway with many projects. The list changes only when an instance comes or goes, so it is
//! rebuilt then and shared (`Arc`) with every decision in between.

use std::collections::HashMap;
use std::sync::Arc;

use super::Node;
use crate::domain::{InstanceId, Scope};
use crate::routing::{ExecutorInfo, ProjectInfo, Projects};

#[derive(Default)]
pub(super) struct LiveNodes {
    map: HashMap<InstanceId, Arc<Node>>,
    projects: Arc<Projects>,
    /// Enabled executors by project name (`sark`), as routing last read them.
    executors: HashMap<String, Vec<ExecutorInfo>>,
}

impl LiveNodes {
    pub fn get(&self, id: &InstanceId) -> Option<&Arc<Node>> {
        self.map.get(id)
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.map.values()
    }

    /// Adds `node` unless its id is live already (two callers may race to create the same
    /// instance: the first one in wins); returns the node the map holds.
    pub fn insert(&mut self, node: Arc<Node>) -> Arc<Node> {
        let id = node.id().clone();
        let mut added = false;
        let live = self
            .map
            .entry(id)
            .or_insert_with(|| {
                added = true;
                node
            })
            .clone();
        if added && live.scope() == Scope::Project {
            self.refresh_projects();
        }
        live
    }

    pub fn remove(&mut self, id: &InstanceId) {
        if let Some(gone) = self.map.remove(id)
            && gone.scope() == Scope::Project
        {
            self.refresh_projects();
        }
    }

    /// Takes a project out of the map without changing the project list routers see: it
    /// still exists, only its database is closed until `Engine::node` loads it again.
    pub fn park(&mut self, id: &InstanceId) -> Option<Arc<Node>> {
        self.map.remove(id)
    }

    /// The live projects, as routers see them.
    pub fn projects(&self) -> Arc<Projects> {
        self.projects.clone()
    }

    /// Replaces the executors routing sees (and the project list with them).
    pub fn set_executors(&mut self, executors: HashMap<String, Vec<ExecutorInfo>>) {
        self.executors = executors;
        self.refresh_projects();
    }

    /// Live projects with their executors, then projects that only executors name so far
    /// (routing there creates the instance).
    fn refresh_projects(&mut self) {
        let mut projects: Vec<ProjectInfo> = self
            .map
            .values()
            .filter(|n| n.scope() == Scope::Project)
            .map(|n| {
                let name = n.project.clone().unwrap_or_default();
                let capabilities = n.instance.metadata["capabilities"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                ProjectInfo {
                    name,
                    capabilities,
                    executors: vec![],
                }
            })
            .collect();
        let mut at: HashMap<String, usize> = projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        for (name, executors) in &self.executors {
            let i = *at.entry(name.clone()).or_insert_with(|| {
                projects.push(ProjectInfo {
                    name: name.clone(),
                    ..ProjectInfo::default()
                });
                projects.len() - 1
            });
            let p = &mut projects[i];
            for c in executors.iter().flat_map(|e| &e.capabilities) {
                if !p.capabilities.contains(c) {
                    p.capabilities.push(c.clone());
                }
            }
            p.executors = executors.clone();
        }
        // A stable order: the map's would change from one rebuild to the next, and routers
        // break ties by position.
        projects.sort_by(|a, b| a.name.cmp(&b.name));
        self.projects = Arc::new(Projects::new(projects));
    }
}
