//! The verifiers' property on stable, in CI: random and tampered signatures never verify,
//! and garbage in any header never panics.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hopper_integration_api::Secret;
use hopper_integration_api::verify::{StandardWebhook, hmac_sha256_hex, sign_hex, unix_now};

#[test]
fn tampering_with_any_byte_breaks_the_signature() {
    let secret = Secret::new("s3cret");
    let body = br#"{"action":"opened","issue":{"number":1}}"#.to_vec();
    let good = sign_hex(&secret, &[&body]);
    assert!(hmac_sha256_hex(&secret, &[&body], &good));
    for i in 0..body.len() {
        let mut forged = body.clone();
        forged[i] ^= 0x20;
        assert!(!hmac_sha256_hex(&secret, &[&forged], &good), "byte {i}");
    }
    for i in 0..good.len() {
        let mut sig = good.clone().into_bytes();
        sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
        let sig = String::from_utf8(sig).unwrap();
        assert!(!hmac_sha256_hex(&secret, &[&body], &sig), "sig char {i}");
    }
    assert!(!hmac_sha256_hex(&Secret::new("other"), &[&body], &good));
    for junk in [
        "",
        "zz",
        "sha256=",
        &"f".repeat(64),
        &"0".repeat(10_000),
        "\u{1F600}",
    ] {
        assert!(!hmac_sha256_hex(&secret, &[&body], junk));
    }
}

#[test]
fn standard_webhooks_rejects_garbage_headers() {
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let ts = unix_now().to_string();
    let junk = [
        "",
        " ",
        "v1,",
        "v1,!!!",
        "v2,abc",
        "v1,AAAA v1,BBBB",
        "\u{0}",
        "9999999999999999999999",
    ];
    for id in junk {
        for stamp in junk.iter().copied().chain([ts.as_str()]) {
            for sig in junk {
                let hook = StandardWebhook {
                    id,
                    timestamp: stamp,
                    signatures: sig,
                };
                assert!(
                    hook.verify(&secret, b"{}", Duration::from_secs(300))
                        .is_err()
                );
            }
        }
    }
}
