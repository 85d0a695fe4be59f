//! What routing keeps from consolidation: the last routing profile, which the `memory` provider
//! leans on besides the live episodes.
//!
//! Why both: the episodes are the database's and go with it (a reset, a new server on an empty
//! database); the profile is in the memory repository, so it is loaded at start-up
//! ([`crate::memory::job::load_learned`]) and what was learned survives. It is a prior that
//! grows with the square root of the work it summarises and stops at [`PRIOR_WEIGHT`] per
//! project (about two tasks that went well): with many live episodes it barely moves a decision
//! (they overlap with what the profile counted, and counting them twice at full weight would
//! overstate old work); without them it is all the memory there is, and three good tasks in the
//! profile outweigh one unverified route in the new database.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::consolidate::{RoutingProfile, keywords};

/// The most weight the profile gives one project.
pub const PRIOR_WEIGHT: f64 = 2.0;

/// The profile routing reads, swapped whole when a consolidation commits a new one.
#[derive(Clone, Default)]
pub struct LearnedProfile(Arc<ArcSwapOption<RoutingProfile>>);

impl LearnedProfile {
    pub fn get(&self) -> Option<Arc<RoutingProfile>> {
        self.0.load_full()
    }

    pub fn set(&self, profile: RoutingProfile) {
        self.0.store(Some(Arc::new(profile)));
    }
}

impl std::fmt::Debug for LearnedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.get();
        f.debug_struct("LearnedProfile")
            .field("episodes", &p.as_ref().map(|p| p.episodes))
            .finish()
    }
}

/// `(project, weight)` for a task with this title and these tags: how much of the project's
/// work was of this kind (title keywords and tags it received, per piece of work), times how
/// that work turned out (successes over finished, with one of each assumed so a project with
/// no outcomes yet is neutral), less the share of its work people moved elsewhere, times the
/// square root of the work (capped). Projects the task shares nothing with are left out.
pub fn affinity(profile: &RoutingProfile, title: &str, tags: &[String]) -> Vec<(String, f64)> {
    let words = keywords(title);
    let tags: BTreeSet<String> = tags
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::new();
    for (name, p) in &profile.projects {
        let work = p.kinds.get("routed").copied().unwrap_or(0)
            + p.kinds.get("corrected").copied().unwrap_or(0);
        if work == 0 {
            continue;
        }
        let seen: u64 = words
            .iter()
            .filter_map(|w| p.keywords.get(w))
            .chain(tags.iter().filter_map(|t| p.tags.get(t)))
            .sum();
        if seen == 0 {
            continue;
        }
        let parts = (words.len() + tags.len()).max(1) as f64;
        let alike = (seen as f64 / work as f64 / parts).min(1.0);
        let outcome = (p.successes as f64 + 1.0) / (p.finished() as f64 + 2.0);
        let moved = p.corrections_out as f64 / (work + p.corrections_out) as f64;
        let weight = alike * (outcome - moved) * (work as f64).sqrt().min(PRIOR_WEIGHT);
        if weight != 0.0 {
            out.push((name.clone(), weight));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::consolidate::ProjectProfile;

    fn project(work: u64, ok: u64, failed: u64, moved: u64, words: &[&str]) -> ProjectProfile {
        let mut p = ProjectProfile::default();
        p.kinds.insert("routed".into(), work);
        p.successes = ok;
        p.failures = failed;
        p.corrections_out = moved;
        for w in words {
            p.keywords.insert((*w).into(), work);
        }
        p
    }

    #[test]
    fn work_of_the_kind_that_went_well_weighs_most() {
        let mut profile = RoutingProfile::new();
        profile.projects.insert(
            "waypoint".into(),
            project(4, 4, 0, 0, &["release", "notes"]),
        );
        profile
            .projects
            .insert("sark".into(), project(4, 0, 4, 0, &["release", "notes"]));
        profile
            .projects
            .insert("vault".into(), project(2, 0, 0, 4, &["release"]));
        profile
            .projects
            .insert("other".into(), project(4, 4, 0, 0, &["keys"]));
        let got = affinity(&profile, "Write the release notes", &[]);
        assert_eq!(got[0].0, "waypoint");
        assert!(got[0].1 > 0.5 && got[0].1 <= PRIOR_WEIGHT, "{got:?}");
        let sark = got.iter().find(|(p, _)| p == "sark").map(|x| x.1);
        assert!(
            sark.is_some_and(|w| w < got[0].1 / 4.0),
            "failing work weighs little: {got:?}"
        );
        let vault = got.iter().find(|(p, _)| p == "vault").map(|x| x.1);
        assert!(
            vault.is_some_and(|w| w < 0.0),
            "corrected away counts against: {got:?}"
        );
        assert!(
            !got.iter().any(|(p, _)| p == "other"),
            "nothing shared: {got:?}"
        );
    }
}
