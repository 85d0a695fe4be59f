//! `capabilities` in the chain: the task's required capabilities and tags against what the
//! registered executors declare. A project is a candidate when one of its executors has every
//! required capability; candidates rank by how many of the task's tags their executors list.

use async_trait::async_trait;

use super::chain::{Answer, Choice, Provider};
use super::explain::{Alternative, Top};
use super::{ExecutorInfo, Projects};
use crate::domain::TaskDraft;

pub struct CapabilitiesProvider;

/// `a == b`, with the length and first byte compared inline before the library `memcmp`.
///
/// Routing compares every registered capability with the task's (1,000 projects: ~10,000
/// comparisons per required capability), and `==` on strings of equal length calls `memcmp`:
/// ~20% of the samples in a profile of `benches/routing.rs`. The change it makes is within
/// that bench's run-to-run noise on a shared machine; the comparisons themselves remain.
#[inline]
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// `list.contains(item)` with [`same`].
#[inline]
pub(super) fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| same(x, item))
}

/// How well one executor fits: `None` when it lacks a required capability.
fn fit(e: &ExecutorInfo, task: &TaskDraft) -> Option<usize> {
    if !task
        .required_capabilities
        .iter()
        .all(|c| has(&e.capabilities, c))
    {
        return None;
    }
    Some(task.tags.iter().filter(|t| has(&e.capabilities, t)).count())
}

/// Indexes of the projects worth a look, in list order: those declaring every required
/// capability, or without any required, those declaring one of the tags.
fn candidates(task: &TaskDraft, projects: &Projects) -> Vec<usize> {
    let mut required = task.required_capabilities.iter();
    match required.next() {
        Some(first) => {
            let mut out = projects.with_capability(first).to_vec();
            for cap in required {
                let have = projects.with_capability(cap);
                out.retain(|i| have.binary_search(i).is_ok());
            }
            out
        }
        None => {
            let mut out: Vec<usize> = task
                .tags
                .iter()
                .flat_map(|t| projects.with_capability(t).iter().copied())
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

impl CapabilitiesProvider {
    pub fn answer(&self, task: &TaskDraft, projects: &Projects) -> Answer {
        let required = !task.required_capabilities.is_empty();
        if !required && task.tags.is_empty() {
            return Answer::abstain("the task has no tags or required capabilities");
        }
        // (tag matches, executor, project), best first; ties keep project order. Only the
        // projects the index says declare a required capability (or, without any, a tag).
        let mut ranked = Top::new();
        for p in candidates(task, projects).into_iter().map(|i| &projects[i]) {
            let best = p
                .executors
                .iter()
                .filter_map(|e| fit(e, task).map(|n| (n, e.name.as_str())))
                .max_by_key(|(n, _)| *n);
            if let Some((n, executor)) = best
                && (required || n > 0)
            {
                ranked.offer((n, executor, p.name.as_str()), |a, b| a.0 > b.0);
            }
        }
        let candidates = ranked.count;
        let ranked = ranked.items;
        let Some(&(n, executor, project)) = ranked.first() else {
            return Answer::abstain(if required {
                format!(
                    "no enabled executor declares all of {}",
                    task.required_capabilities.join(", ")
                )
            } else {
                format!(
                    "no enabled executor declares any of the tags {}",
                    task.tags.join(", ")
                )
            });
        };
        let runner_up = ranked.get(1).map(|r| r.0);
        let confidence = match (runner_up, required) {
            (None, true) => 0.9,
            (None, false) => 0.7,
            (Some(m), _) if m < n => 0.6,
            (Some(_), _) => 0.5,
        };
        let what = if required {
            format!("has {}", task.required_capabilities.join(", "))
        } else {
            format!("declares {n} of the task's tags")
        };
        Answer::decided(Choice {
            project: project.to_owned(),
            confidence,
            reason: format!(
                "executor `{executor}` {what}; {} project(s) could take it",
                candidates
            ),
            needs_orchestration: false,
            alternatives: ranked
                .iter()
                .skip(1)
                .take(3)
                .map(|(n, _, p)| Alternative {
                    project: (*p).to_owned(),
                    score: *n as f64,
                })
                .collect(),
        })
    }
}

#[async_trait]
impl Provider for CapabilitiesProvider {
    fn kind(&self) -> &'static str {
        "capabilities"
    }

    fn decide_now(&self, task: &TaskDraft, projects: &Projects) -> Option<Answer> {
        Some(self.answer(task, projects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ProjectInfo;

    fn project(name: &str, executors: &[(&str, &[&str])]) -> ProjectInfo {
        ProjectInfo {
            name: name.into(),
            capabilities: vec![],
            executors: executors
                .iter()
                .map(|(n, caps)| ExecutorInfo {
                    name: (*n).into(),
                    capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn required_capabilities_pick_the_only_project_that_has_them() {
        let projects = Projects::new(vec![
            project("web", &[("web-bot", &["typescript", "react"])]),
            project("infra", &[("tf-runner", &["terraform", "aws"])]),
        ]);
        let mut t = TaskDraft::new("Add a bucket");
        t.required_capabilities = vec!["terraform".into()];
        let Answer { verdict, .. } = CapabilitiesProvider.answer(&t, &projects);
        match verdict {
            super::super::Verdict::Decided(c) => {
                assert_eq!(c.project, "infra");
                assert_eq!(c.confidence, 0.9);
                assert!(c.reason.contains("tf-runner"), "{}", c.reason);
            }
            other => panic!("{other:?}"),
        }
        t.required_capabilities = vec!["cobol".into()];
        let a = CapabilitiesProvider.answer(&t, &projects);
        assert_eq!(
            a.verdict,
            super::super::Verdict::Abstained("no enabled executor declares all of cobol".into())
        );
    }

    #[test]
    fn tags_rank_candidates_and_ties_lower_confidence() {
        let projects = Projects::new(vec![
            project("a", &[("x", &["rust", "db"])]),
            project("b", &[("y", &["rust"])]),
        ]);
        let t = TaskDraft::new("Speed up the store").with_tags(["rust", "db"]);
        match CapabilitiesProvider.answer(&t, &projects).verdict {
            super::super::Verdict::Decided(c) => {
                assert_eq!(c.project, "a");
                assert_eq!(c.confidence, 0.6);
                assert_eq!(c.alternatives[0].project, "b");
            }
            other => panic!("{other:?}"),
        }
        let t = TaskDraft::new("Anything").with_tags(["rust"]);
        match CapabilitiesProvider.answer(&t, &projects).verdict {
            super::super::Verdict::Decided(c) => assert_eq!(c.confidence, 0.5),
            other => panic!("{other:?}"),
        }
    }
}
