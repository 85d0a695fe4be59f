//! Memory: episodes (what happened to tasks, per instance) that routing learns from, and the
//! nightly consolidation of them into readable files in a git repository.

pub mod consolidate;
mod episode;
pub mod job;
mod learned;

pub use episode::{Episode, EpisodeKind};
pub use learned::{LearnedProfile, PRIOR_WEIGHT, affinity};
