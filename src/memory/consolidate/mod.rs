//! Consolidation: the episodes since the last run become readable files in a git repository.
//!
//! `render` is a pure function from the previous routing profile and the new episodes to the
//! files (`profile.json`, a page per project, an index): deterministic, so the same memory
//! gives byte-identical files and an unchanged memory makes no commit, and cumulative, so a
//! run only reads the episodes above the profile's watermark.
//!
//! `profile` holds the cumulative figures in integers and bounded, totally ordered lists: that
//! is what lets "previous profile + new episodes" equal "all episodes at once" exactly, even
//! after the profile went through JSON.
//!
//! `MemoryRepo` is where the files go: `GitRepo` (a local repository through the git CLI, the
//! default) or `GitlabRepo` (one commit through GitLab's commits API). Both answer `None` when
//! nothing changed, and split failures into `Retry` and `Permanent` so the caller moves the
//! watermark only after a commit succeeded and knows whether to try again next run.

mod git;
mod gitlab;
mod profile;
mod render;
mod repo;

pub use self::git::GitRepo;
pub use self::gitlab::GitlabRepo;
pub use self::profile::{
    Correction, FeedbackNote, KEEP_RECENT, PROFILE_VERSION, ProjectProfile, RoutingProfile,
    keywords,
};
pub use self::render::{PROFILE_FILE, Snapshot, files, human_duration, page_path, render};
pub use self::repo::{MemoryRepo, RepoError, check_path};
