//! The outbound URL policy against real sockets: what `check` refuses and why, and that the
//! delivery client itself refuses private addresses at connect time and never follows
//! redirects.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hopper::outbound::{AddressClass, UrlPolicy, UrlPolicyError, UrlRefused};

fn policy(allow: &[&str]) -> UrlPolicy {
    let entries: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
    UrlPolicy::new(&entries).unwrap()
}

/// A loopback receiver: `/hook` answers 204, `/moved` a 302 to `/hook`, `/slow` after 5 s,
/// `/agent` with the caller's user agent.
async fn receiver() -> (u16, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/hook", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/moved",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/hook")]).into_response() }),
        )
        .route(
            "/slow",
            get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }),
        )
        .route(
            "/agent",
            get(|headers: axum::http::HeaderMap| async move {
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

fn class_of(refused: &UrlRefused) -> Option<AddressClass> {
    match refused {
        UrlRefused::Disallowed { class, .. } => Some(*class),
        _ => None,
    }
}

#[tokio::test]
async fn every_disallowed_address_class_is_refused_with_its_reason() {
    use AddressClass::*;
    let p = policy(&[]);
    let cases = [
        ("http://127.0.0.1:8080/hook", Loopback),
        ("http://[::1]/hook", Loopback),
        ("http://10.0.0.5/", Private),
        ("http://172.20.1.1/", Private),
        ("https://192.168.0.10/", Private),
        ("http://[fd00::1]/", Private),
        ("http://169.254.10.1/", LinkLocal),
        ("http://[fe80::1]/", LinkLocal),
        ("http://0.0.0.0/", Unspecified),
        ("http://[::]/", Unspecified),
        ("http://255.255.255.255/", Broadcast),
        ("http://192.0.2.1/", Documentation),
        ("http://[2001:db8::1]/", Documentation),
        ("http://100.64.0.1/", Shared),
        ("http://224.0.0.1/", Multicast),
        ("http://[ff02::1]/", Multicast),
        ("http://169.254.169.254/latest/meta-data/", CloudMetadata),
        ("http://[fd00:ec2::254]/", CloudMetadata),
        ("http://[::ffff:127.0.0.1]/", Loopback),
        ("http://[::ffff:169.254.169.254]/", CloudMetadata),
        ("http://[64:ff9b::a00:1]/", Private),
        // The URL parser's shorthand forms of addresses are still addresses.
        ("http://2130706433/", Loopback),
        ("http://0x7f.1/", Loopback),
    ];
    for (url, want) in cases {
        let refused = p.check(url).await.unwrap_err();
        assert_eq!(class_of(&refused), Some(want), "{url}: {refused}");
        let message = refused.to_string();
        assert!(message.contains(&want.to_string()), "{message}");
        assert!(message.contains("HOPPER_OUTBOUND_ALLOWLIST"), "{message}");
        assert!(message.contains("outbound.allowlist"), "{message}");
    }
    let meta = p
        .check("http://metadata.google.internal/computeMetadata/v1/")
        .await;
    assert!(
        matches!(meta, Err(UrlRefused::MetadataHost { .. })),
        "{meta:?}"
    );
}

#[tokio::test]
async fn malformed_urls_wrong_schemes_and_userinfo_are_refused() {
    let p = policy(&["127.0.0.0/8"]);
    let refused = |url: &'static str| {
        let p = p.clone();
        async move { p.check(url).await.unwrap_err() }
    };
    assert!(matches!(refused("not a url").await, UrlRefused::Invalid(_)));
    assert!(matches!(refused("ftp://127.0.0.1/x").await, UrlRefused::Scheme(s) if s == "ftp"));
    assert!(matches!(
        refused("file:///etc/passwd").await,
        UrlRefused::Scheme(_)
    ));
    assert!(matches!(
        refused("unix:/run/x.sock").await,
        UrlRefused::Scheme(_)
    ));
    let userinfo = refused("http://user:hunter2@127.0.0.1/").await;
    assert_eq!(userinfo, UrlRefused::Userinfo);
    assert!(!userinfo.to_string().contains("hunter2"));
    assert_eq!(
        refused("http://user@127.0.0.1/").await,
        UrlRefused::Userinfo
    );
    let nowhere = refused("http://does-not-exist.invalid/").await;
    assert!(nowhere.is_transient(), "{nowhere}");
    assert!(!UrlRefused::Userinfo.is_transient());
}

#[tokio::test]
async fn public_addresses_pass_and_allowlisted_networks_and_hosts_pass() {
    let p = policy(&[]);
    let checked = p.check("https://8.8.8.8/hooks?x=1").await.unwrap();
    assert_eq!(checked.url().as_str(), "https://8.8.8.8/hooks?x=1");
    assert_eq!(checked.addrs()[0].port(), 443);

    let p = policy(&[
        "10.1.0.0/16",
        "::1/128",
        "192.168.7.7",
        " Executor.Internal. ",
        "",
    ]);
    assert!(p.check("http://10.1.2.3:9000/").await.is_ok());
    assert!(p.check("http://[::1]:9000/").await.is_ok());
    assert!(p.check("http://192.168.7.7/").await.is_ok());
    let outside = p.check("http://10.2.0.1/").await.unwrap_err();
    assert_eq!(class_of(&outside), Some(AddressClass::Private));
    assert!(p.check("http://192.168.7.8/").await.is_err());
    // The name is allowed whatever it resolves to; it does not have to resolve to pass the
    // name check, but a URL still has to resolve to be delivered to.
    let by_name = p.check("http://EXECUTOR.internal/hook").await.unwrap_err();
    assert!(
        matches!(by_name, UrlRefused::Unresolvable { .. }),
        "{by_name}"
    );
    // An allowlisted IPv4 network also covers its IPv4-mapped IPv6 form.
    let p = policy(&["127.0.0.0/8"]);
    assert!(p.check("http://[::ffff:127.0.0.1]/").await.is_ok());
}

#[tokio::test]
async fn localhost_is_refused_by_default_and_allowed_by_the_loopback_network() {
    let url = "http://localhost:8123/hook";
    let refused = policy(&[]).check(url).await.unwrap_err();
    assert_eq!(
        class_of(&refused),
        Some(AddressClass::Loopback),
        "{refused}"
    );
    assert!(refused.to_string().contains("localhost"));
    // `localhost` may also answer ::1; allowing both loopback networks covers either.
    let checked = policy(&["127.0.0.0/8", "::1/128"])
        .check(url)
        .await
        .unwrap();
    assert!(checked.addrs().iter().all(|a| a.ip().is_loopback()));
    assert!(policy(&["localhost"]).check(url).await.is_ok());
}

#[test]
fn a_bad_allowlist_entry_is_named() {
    for bad in [
        "10.0.0.0/33",
        "not a host",
        "exa mple.com",
        "a..b",
        "http://x/",
    ] {
        let entries = vec!["127.0.0.0/8".to_string(), bad.to_string()];
        let err = UrlPolicy::new(&entries).unwrap_err();
        assert_eq!(err, UrlPolicyError { entry: bad.into() });
        assert!(err.to_string().contains(bad));
    }
}

#[tokio::test]
async fn the_client_refuses_a_private_answer_at_connect_time() {
    let (port, _server) = receiver().await;
    let url = format!("http://localhost:{port}/hook");
    // `check` skipped, as if the name had rebound after it: the resolver still refuses.
    let closed = policy(&[]).client(Duration::from_secs(5), vec![]).unwrap();
    let err = closed.post(&url).body("{}").send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let chain = format!("{:?}", anyhow::Error::from(err));
    assert!(chain.contains("loopback"), "{chain}");

    let open = policy(&["127.0.0.0/8", "::1/128"])
        .client(Duration::from_secs(5), vec![])
        .unwrap();
    let answer = open.post(&url).body("{}").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_client_does_not_follow_redirects_and_times_out() {
    let (port, _server) = receiver().await;
    let client = policy(&["127.0.0.0/8", "::1/128"])
        .client(Duration::from_millis(300), vec![])
        .unwrap();
    let answer = client
        .post(format!("http://127.0.0.1:{port}/moved"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    assert_eq!(answer.headers()[header::LOCATION], "/hook");
    let slow = client
        .get(format!("http://127.0.0.1:{port}/slow"))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
    let agent = client
        .get(format!("http://127.0.0.1:{port}/agent"))
        .send()
        .await;
    let agent = agent.unwrap().text().await.unwrap();
    assert_eq!(agent, format!("hopper/{}", env!("CARGO_PKG_VERSION")));
}
