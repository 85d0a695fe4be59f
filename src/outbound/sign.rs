//! Standard Webhooks signatures (standardwebhooks.com), the sending side.
//!
//! A secret is `whsec_` + base64 of the key bytes; the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}` and a signature is `v1,` + base64 of its
//! HMAC-SHA256. `webhook-signature` lists several space-separated: while a secret is being
//! rotated the old and the new secret both sign, so a receiver holding either accepts the
//! message (the spec's receivers accept any one matching entry).
//!
//! The secret never appears in an error or a log line: [`SignError`] only says what is wrong
//! with its shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix the spec gives signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// Key bytes in a generated secret: the spec asks for 24 to 64.
const SECRET_BYTES: usize = 32;

/// A signing secret that cannot be used. Says what is wrong, never what the secret is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("a webhook signing secret starts with `whsec_`")]
    MissingPrefix,
    #[error("a webhook signing secret is `whsec_` followed by base64 key bytes")]
    NotBase64,
    #[error("a webhook signing secret has no key bytes after `whsec_`")]
    EmptyKey,
    #[error("no signing secret to sign with")]
    NoSecret,
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let key: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The key bytes of a `whsec_` secret.
fn key_of(secret: &str) -> Result<Vec<u8>, SignError> {
    let b64 = secret
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignError::MissingPrefix)?;
    let key = BASE64.decode(b64).map_err(|_| SignError::NotBase64)?;
    if key.is_empty() {
        return Err(SignError::EmptyKey);
    }
    Ok(key)
}

/// `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">` under `secret`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let key = key_of(secret)?;
    // HMAC takes a key of any length; the error arm is unreachable but costs nothing to map.
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| SignError::EmptyKey)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` value: one `v1,` entry per secret, space-separated, in the order
/// given. Any unusable secret fails the whole header, so a broken rotation is noticed rather
/// than silently signing with one secret fewer.
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    if secrets.is_empty() {
        return Err(SignError::NoSecret);
    }
    let signatures = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hopper_integration_api::Secret;
    use hopper_integration_api::verify::{StandardWebhook, unix_now};

    use super::*;

    #[test]
    fn the_reference_libraries_vector_is_reproduced() {
        // standard-webhooks/standard-webhooks, libraries/javascript/src/webhook.test.ts,
        // "sign function works" (the same vector is in the other reference libraries).
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn generated_secrets_are_whsec_and_32_random_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert_eq!(key_of(&a).map(|k| k.len()), Ok(32));
        assert!(a.starts_with("whsec_"));
    }

    #[test]
    fn the_inbound_verifier_accepts_our_signatures_and_either_rotated_secret() {
        let old = generate_secret();
        let new = generate_secret();
        let ts = unix_now();
        let body = br#"{"type":"task.available"}"#;
        let header = signature_header(&[&new, &old], "msg_1", ts, body);
        let header = header.as_deref().unwrap_or_default();
        assert_eq!(header.split(' ').count(), 2);
        let ts_text = ts.to_string();
        let hook = StandardWebhook {
            id: "msg_1",
            timestamp: &ts_text,
            signatures: header,
        };
        let window = Duration::from_secs(300);
        for secret in [&old, &new] {
            assert!(
                hook.verify(&Secret::new(secret.clone()), body, window)
                    .is_ok()
            );
        }
        let stranger = Secret::new(generate_secret());
        assert!(hook.verify(&stranger, body, window).is_err());
        assert!(hook.verify(&Secret::new(new), b"{}", window).is_err());
        let other_id = StandardWebhook {
            id: "msg_2",
            ..hook
        };
        assert!(other_id.verify(&Secret::new(old), body, window).is_err());
    }

    #[test]
    fn unusable_secrets_are_refused_without_being_echoed() {
        assert_eq!(sign("MfKQ9r8G", "m", 1, b""), Err(SignError::MissingPrefix));
        assert_eq!(
            sign("whsec_not base64!", "m", 1, b""),
            Err(SignError::NotBase64)
        );
        assert_eq!(sign("whsec_", "m", 1, b""), Err(SignError::EmptyKey));
        assert_eq!(signature_header(&[], "m", 1, b""), Err(SignError::NoSecret));
        let good = generate_secret();
        assert_eq!(
            signature_header(&[&good, "whsec_!!"], "m", 1, b""),
            Err(SignError::NotBase64)
        );
        let message = SignError::NotBase64.to_string();
        assert!(!message.contains("!!"));
    }
}
