//! What a project name may be. Names arrive from outside (a task's `project`, an email's
//! `hopper+NAME@`, a repository name, a Slack `--project`), and `hopper-{name}` is also how
//! runs and phases are spelt, so a name is checked against the shape of the hierarchy before
//! it is used: a route may only ever go from the global instance to one of its projects.

use std::sync::Arc;

use super::Node;
use crate::domain::{InstanceId, Scope};

/// Refuses names that are not a project's: the root's own name and names shaped like a run
/// (`x-run-1a2b3c4d`) or a phase (`...-phase-2`) of another project.
pub(super) fn project_name(name: &str, root: &InstanceId) -> Result<(), String> {
    let root_name = root
        .as_str()
        .strip_prefix("hopper-")
        .unwrap_or(root.as_str());
    if name == "global" || name == root_name {
        return Err(format!("`{name}` names the global instance, not a project"));
    }
    if looks_like_run(name) {
        return Err(format!(
            "`{name}` is shaped like an orchestration run or phase, not a project"
        ));
    }
    Ok(())
}

/// `...-run-XXXXXXXX` (eight hex digits, as `start_run` names them), optionally followed by
/// `-phase-N`.
fn looks_like_run(name: &str) -> bool {
    name.match_indices("-run-").any(|(at, _)| {
        let rest = &name[at + 5..];
        let (hex, tail) = rest.split_at(rest.len().min(8));
        hex.len() == 8
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && (tail.is_empty() || tail.starts_with("-phase-"))
    })
}

/// `node` when it is a project instance directly under `global`; otherwise why not.
pub(super) fn is_project_of(node: &Arc<Node>, global: &Node) -> Result<Arc<Node>, String> {
    if node.scope() == Scope::Project && node.parent() == Some(global.id()) {
        Ok(node.clone())
    } else {
        Err(format!(
            "`{}` is a {} instance, not a project of `{}`",
            node.id(),
            node.scope().as_str(),
            global.id()
        ))
    }
}

/// A delegation may only hand work to a direct child of the delegating instance: that keeps
/// every chain of delegations strictly descending, so none can loop.
pub(super) fn check_descends(parent: &InstanceId, child: &Node) -> Result<(), String> {
    if child.parent() == Some(parent) {
        Ok(())
    } else {
        Err(format!(
            "refusing to delegate from `{parent}` to `{}`: not its child",
            child.id()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_run_shaped_names_are_refused() {
        let root = InstanceId::global();
        assert!(project_name("global", &root).is_err());
        assert!(project_name("sark-run-0a1b2c3d", &root).is_err());
        assert!(project_name("sark-run-0a1b2c3d-phase-1", &root).is_err());
        assert!(project_name("sark", &root).is_ok());
        assert!(project_name("dry-run-tool", &root).is_ok());
        assert!(project_name("x-run-0a1b2c3dz", &root).is_ok());
    }
}
