//! Every source's verifier and interpreter on arbitrary headers and bodies: no panic, and no
//! signature-checked source accepts a forged request (a bare token, as email uses, could be
//! found by the fuzzer's comparison tracing, so that one is only run, not asserted).
#![no_main]

use hopper_integration_api::{InboundRequest, Plugin, SourceSettings};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn sources() -> Vec<Box<dyn hopper_integration_api::InboundSource>> {
    let plugins: Vec<(Plugin, serde_json::Value)> = vec![
        (hopper_github::plugin(), json!({ "secret": "s3cret" })),
        (hopper_gitlab::plugin(), json!({ "token": "s3cret", "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" })),
        (hopper_slack::plugin(), json!({ "signing_secret": "s3cret" })),
        (hopper_email::plugin(), json!({ "token": "s3cret" })),
        (hopper_http::plugin(), json!({ "f": { "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } })),
    ];
    let env = |_: &str| None;
    plugins
        .into_iter()
        .flat_map(|(p, section)| (p.build)(&SourceSettings { section: &section, env: &env }).unwrap_or_default())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // First bytes pick header values, the rest is the body.
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = data.get(split + 1..).unwrap_or_default();
    let mut parts = head.split('\n');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = [
        "x-hub-signature-256", "x-github-event", "x-gitlab-token", "x-gitlab-event",
        "x-slack-signature", "x-slack-request-timestamp", "webhook-id", "webhook-timestamp",
        "webhook-signature", "authorization", "content-type",
    ]
    .iter()
    .map(|h| (h.to_string(), next()))
    .collect();
    for source in sources() {
        let request = InboundRequest { headers: &headers, body };
        let verified = source.verify(request).is_ok();
        assert!(!verified || source.path() == "email", "{} verified a forged request", source.path());
        let _ = source.interpret(&hopper_integration_api::Verified::vouch(request));
    }
});
