use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A task id: `task_` followed by a UUIDv7, so ids sort by creation time and read well in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "task_019a5c2e7c1e7b3f8a4d2c1b0e9f8a7b")]
pub struct TaskId(String);

impl TaskId {
    pub fn generate() -> Self {
        Self(format!("task_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("task_")
            .ok_or_else(|| format!("task id `{s}` must start with `task_`"))?;
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("task id `{s}` is malformed"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl AsRef<str> for TaskId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance id as the design names them: `hopper-global`, `hopper-{project}`,
/// `hopper-{project}-run-{run}`, `...-phase-{n}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "hopper-global")]
pub struct InstanceId(String);

impl InstanceId {
    pub const GLOBAL: &'static str = "hopper-global";

    pub fn global() -> Self {
        Self(Self::GLOBAL.to_owned())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "instance id `{s}` must be 1-100 characters of a-z, 0-9, `-` or `_`"
            ))
        }
    }

    /// The id of a child: a project under the global instance is `hopper-{name}`; anything
    /// deeper appends to its parent (`hopper-czarina-run-abc`, `...-phase-1`).
    pub fn child(&self, name: &str) -> Result<Self, String> {
        validate_child_name(name)?;
        if self.0 == Self::GLOBAL {
            if name.starts_with("hopper-") {
                Self::parse(name)
            } else {
                Self::parse(&format!("hopper-{name}"))
            }
        } else {
            Self::parse(&format!("{}-{name}", self.0))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn validate_child_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "child name `{name}` must be 1-63 characters of a-z, 0-9, `-`, `_`, starting with a letter or digit"
        ))
    }
}

impl TryFrom<String> for InstanceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> Self {
        id.0
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_sort_by_creation() {
        let a = TaskId::generate();
        let b = TaskId::generate();
        assert!(a < b);
        assert_eq!(TaskId::parse(a.as_str()), Ok(a));
        assert!(TaskId::parse("task_xyz").is_err());
        assert!(TaskId::parse("nope").is_err());
    }

    #[test]
    fn child_ids_follow_the_design() {
        let global = InstanceId::global();
        let project = global.child("czarina").unwrap();
        assert_eq!(project.as_str(), "hopper-czarina");
        let run = project.child("run-abc").unwrap();
        assert_eq!(run.as_str(), "hopper-czarina-run-abc");
        assert_eq!(
            run.child("phase-1").unwrap().as_str(),
            "hopper-czarina-run-abc-phase-1"
        );
        assert!(global.child("Bad Name").is_err());
        assert!(global.child("").is_err());
    }
}
