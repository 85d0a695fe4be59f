use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret or token (webhook secrets, the admin token). Never printed: `Debug`,
/// `Display` and `Serialize` show a placeholder, so a secret cannot leak through a log line,
/// an error message or a dumped config by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// `None` for an empty value: an unset `${VAR}` expands to "", which must not count as a
    /// configured secret.
    pub fn non_empty(value: Option<String>) -> Option<Self> {
        value.filter(|v| !v.trim().is_empty()).map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a presented token. Both sides are hashed first, so not
    /// even their lengths leak.
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        a.ct_eq(&b).into()
    }
}

/// What a serialised secret becomes; config loading drops it again.
pub const REDACTED: &str = "[redacted]";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_value_and_never_prints_it() {
        let s = Secret::new("tok");
        assert!(s.matches("tok"));
        assert!(!s.matches("tok2") && !s.matches("") && !s.matches("to"));
        assert!(!format!("{s:?} {s}").contains("tok"));
    }
}
