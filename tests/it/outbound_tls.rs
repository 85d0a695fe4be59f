//! Deliveries over https: a loopback executor with its own certificate authority, trusted
//! through `outbound.ca_file`; the same executor without that file is refused at the handshake
//! and the attempt says why.

use std::sync::Arc;

use tokio_rustls::rustls;

use crate::outbound_support::{
    Receiver, Server, executor, outbound_configs, sark_task, secret, until,
};
use crate::support::{Backend, TestEnv, on_both};

/// A certificate for `localhost` (the PEM to trust, and the server's TLS config).
fn localhost_certificate() -> (String, Arc<rustls::ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    (pem, Arc::new(server))
}

/// Trusted through `outbound.ca_file`, the https executor gets the signed delivery.
async fn delivered_over_https(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (pem, tls) = localhost_certificate();
    let ca = env.dir.path().join("executor-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut configs = outbound_configs(&env);
    configs.root.outbound.allowlist.push("localhost".into());
    configs.root.outbound.ca_file = Some(ca.display().to_string());
    let server = Server::start(configs).await;
    let key = secret();
    let rx = Receiver::start_tls(&[&key], &[], tls).await;
    assert!(rx.url.starts_with("https://localhost:"));
    let ex = executor(&server.engine, "tls-runner", &rx.url, &key, false).await;
    let task = sark_task(&server.engine, "Rotate the signing keys").await;

    let exid = ex.id.to_string();
    until("delivered over https", || async {
        let d = server.deliveries(&exid).await;
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].verified_by,
        vec![0],
        "signed with the executor's secret"
    );
    assert_eq!(got[0].body["data"]["task"]["id"], task.as_str());
}
on_both!(delivered_over_https);

/// Without the CA the handshake fails: the attempt records a certificate error, nothing is
/// received, and the delivery stays pending for its retries.
async fn untrusted_certificate_is_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (_, tls) = localhost_certificate();
    let mut configs = outbound_configs(&env);
    configs.root.outbound.allowlist.push("localhost".into());
    let server = Server::start(configs).await;
    let key = secret();
    let rx = Receiver::start_tls(&[&key], &[], tls).await;
    let ex = executor(&server.engine, "self-signed", &rx.url, &key, false).await;
    sark_task(&server.engine, "Nobody should read this").await;

    let exid = ex.id.to_string();
    until("an attempt recorded", || async {
        let d = server.deliveries(&exid).await;
        d.len() == 1 && d[0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let list = server.deliveries(&exid).await;
    let d = server.delivery(list[0]["id"].as_str().unwrap()).await;
    assert_ne!(d["status"], "delivered");
    let error = d["history"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(error.contains("certificate"), "attempt error: {error}");
    assert!(d["history"][0].get("status_code").is_none());
    assert!(rx.received().is_empty());
}
on_both!(untrusted_certificate_is_refused);

/// A CA file that does not load stops delivery from starting, naming the key and the file.
#[tokio::test]
async fn bad_ca_file_stops_start_up() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let bad = env.dir.path().join("not-a-pem.txt");
    std::fs::write(&bad, "hello").unwrap();
    for path in [bad.display().to_string(), "/nonexistent/ca.pem".to_string()] {
        let mut configs = outbound_configs(&env);
        configs.root.outbound.ca_file = Some(path.clone());
        let engine = hopper::Engine::open(configs).await.unwrap();
        let err = match hopper::outbound::spawn(engine.clone(), Default::default()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{path} accepted as a CA file"),
        };
        assert!(err.starts_with("outbound.ca_file"), "{err}");
        assert!(err.contains(&path), "{err}");
        engine.close().await;
    }
}
