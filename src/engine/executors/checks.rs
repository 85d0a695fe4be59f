//! What a registration or an update must satisfy before anything is stored. Every refusal is
//! the caller's mistake, so each is `Invalid` (422) with a reason.

use crate::domain::events;
use crate::error::{HopperError, Result};

/// `[a-z0-9][a-z0-9_-]{0,62}`: names appear in URLs, logs and `claimed_by`.
pub(super) fn name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(HopperError::Invalid(format!(
            "executor name `{}` must match [a-z0-9][a-z0-9_-]{{0,62}}",
            crate::engine::log_str(name)
        )))
    }
}

pub(super) fn capabilities(caps: &[String]) -> Result<()> {
    if caps.len() > 256 {
        return Err(HopperError::Invalid(
            "at most 256 capabilities per executor".into(),
        ));
    }
    match caps.iter().find(|c| c.trim().is_empty() || c.len() > 200) {
        Some(_) => Err(HopperError::Invalid(
            "capabilities must be non-empty strings of at most 200 bytes".into(),
        )),
        None => Ok(()),
    }
}

/// Subscribed events: a subset of [`events::ALL`], without repeats.
pub(super) fn events(wanted: &[String]) -> Result<()> {
    for (i, e) in wanted.iter().enumerate() {
        if !events::ALL.contains(&e.as_str()) {
            return Err(HopperError::Invalid(format!(
                "unknown event `{}` (one of {})",
                crate::engine::log_str(e),
                events::ALL.join(", ")
            )));
        }
        if wanted[..i].contains(e) {
            return Err(HopperError::Invalid(format!("event `{e}` is listed twice")));
        }
    }
    Ok(())
}

pub(super) fn velocity(v: Option<&str>) -> Result<()> {
    const KNOWN: [&str; 4] = ["fast", "medium", "slow", "glacial"];
    match v {
        Some(v) if !KNOWN.contains(&v) => Err(HopperError::Invalid(format!(
            "velocity must be one of {}",
            KNOWN.join(", ")
        ))),
        _ => Ok(()),
    }
}

pub(super) fn objects(sla: Option<&serde_json::Value>, config: &serde_json::Value) -> Result<()> {
    if sla.is_some_and(|s| !s.is_object()) {
        return Err(HopperError::Invalid("sla must be an object".into()));
    }
    if !config.is_object() {
        return Err(HopperError::Invalid("config must be an object".into()));
    }
    Ok(())
}

/// A webhook URL, checked against the outbound policy (DNS resolved now; deliveries check
/// again, since a name can change what it points at).
pub(super) async fn webhook_url(url: &str, allowlist: &[String]) -> Result<()> {
    let policy = crate::outbound::UrlPolicy::new(allowlist)
        .map_err(|e| HopperError::Invalid(format!("outbound.allowlist: {e}")))?;
    policy
        .check(url)
        .await
        .map(|_| ())
        .map_err(|e| HopperError::Invalid(e.to_string()))
}

/// A fresh Standard Webhooks signing secret (`whsec_…`).
pub(super) fn new_secret() -> String {
    crate::outbound::generate_secret()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["a", "sark-runner", "ci_1", &"a".repeat(63)] {
            assert!(super::name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a b", "é", &"a".repeat(64)] {
            assert!(super::name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_are_a_subset_of_the_known_ones() {
        assert!(super::events(&["task.available".into()]).is_ok());
        assert!(super::events(&["task.exploded".into()]).is_err());
        assert!(super::events(&["task.available".into(), "task.available".into()]).is_err());
    }
}
