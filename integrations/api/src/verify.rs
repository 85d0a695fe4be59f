//! Signature checks shared by the sources. All comparisons are constant-time (`Mac::verify_slice`
//! or `subtle`), and every check runs on the raw bytes before anything is parsed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{InboundError, Secret};

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> Result<HmacSha256, InboundError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| InboundError::NotConfigured)?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac)
}

/// HMAC-SHA256 over the concatenated `parts`, compared with a hex signature (GitHub's
/// `sha256=...`, Slack's `v0=...` once the prefix is stripped).
pub fn hmac_sha256_hex(secret: &Secret, parts: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    mac(secret.expose().as_bytes(), parts)
        .map(|m| m.verify_slice(&expected).is_ok())
        .unwrap_or(false)
}

/// Hex HMAC-SHA256 of `parts`: what a sender computes (used by tests, benches and `mailgate`).
pub fn sign_hex(secret: &Secret, parts: &[&[u8]]) -> String {
    mac(secret.expose().as_bytes(), parts)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Seconds since the epoch, for timestamp windows.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether `timestamp` (seconds) is within `tolerance` of now, either way.
pub fn fresh(timestamp: &str, tolerance: Duration) -> bool {
    timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (unix_now() - t).unsigned_abs() <= tolerance.as_secs())
}

/// Standard Webhooks (standardwebhooks.com), as used by GitLab's signing tokens and by the
/// generic HTTP source: `webhook-signature` holds space-separated `v1,<base64>` entries, each
/// an HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 part of a
/// `whsec_` secret. Any one matching entry is enough (senders list several while rotating).
pub struct StandardWebhook<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signatures: &'a str,
}

impl StandardWebhook<'_> {
    pub fn verify(
        &self,
        secret: &Secret,
        body: &[u8],
        tolerance: Duration,
    ) -> Result<(), InboundError> {
        let key = standard_key(secret)?;
        if !fresh(self.timestamp, tolerance) {
            return Err(InboundError::Unauthorized);
        }
        let mac = mac(
            &key,
            &[
                self.id.as_bytes(),
                b".",
                self.timestamp.trim().as_bytes(),
                b".",
                body,
            ],
        )?;
        let ok = self.signatures.split_whitespace().any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|b64| BASE64.decode(b64).ok())
                .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
        });
        if ok {
            Ok(())
        } else {
            Err(InboundError::Unauthorized)
        }
    }

    /// The `webhook-signature` value a sender would put on `body` (tests, benches).
    pub fn sign(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> String {
        let Ok(key) = standard_key(secret) else {
            return String::new();
        };
        mac(
            &key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        )
        .map(|m| format!("v1,{}", BASE64.encode(m.finalize().into_bytes())))
        .unwrap_or_default()
    }
}

fn standard_key(secret: &Secret) -> Result<Vec<u8>, InboundError> {
    let raw = secret.expose().trim();
    let b64 = raw.strip_prefix("whsec_").unwrap_or(raw);
    BASE64.decode(b64).map_err(|_| InboundError::NotConfigured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_style_signature_round_trips_and_rejects_tampering() {
        let s = Secret::new("It's a Secret to Everybody");
        // The example from GitHub's "Validating webhook deliveries" documentation.
        let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hmac_sha256_hex(&s, &[b"Hello, World!"], sig));
        assert!(!hmac_sha256_hex(&s, &[b"Hello, World?"], sig));
        assert!(!hmac_sha256_hex(&s, &[b"Hello, World!"], "zz"));
        assert_eq!(sign_hex(&s, &[b"Hello, World!"]), sig);
    }

    #[test]
    fn standard_webhooks_accepts_any_listed_signature_within_tolerance() {
        let s = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let ts = unix_now().to_string();
        let good = StandardWebhook::sign(&s, "msg_1", &ts, b"{}");
        let header = format!("v1,AAAA {good}");
        let hook = StandardWebhook {
            id: "msg_1",
            timestamp: &ts,
            signatures: &header,
        };
        assert!(hook.verify(&s, b"{}", Duration::from_secs(300)).is_ok());
        assert!(hook.verify(&s, b"{ }", Duration::from_secs(300)).is_err());
        let old = (unix_now() - 600).to_string();
        let stale = StandardWebhook {
            id: "msg_1",
            timestamp: &old,
            signatures: &good,
        };
        assert!(stale.verify(&s, b"{}", Duration::from_secs(300)).is_err());
    }
}
