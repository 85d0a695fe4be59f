//! The shipped configuration files load as they are; bad ones fail naming file, key and reason.

use std::path::Path;

use hopper::config::{ConfigSet, IntelligenceProvider, Overrides, Retention, Storage};
use hopper::domain::Scope;

fn shipped() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/global_hopper.yaml"
    ))
}

#[test]
fn shipped_configs_load_and_follow_the_design() {
    let set = ConfigSet::load(Some(shipped()), &Overrides::default()).unwrap();
    assert_eq!(set.root.scope, Scope::Global);
    assert_eq!(set.root.instance_id, "hopper-global");
    assert_eq!(set.root.persistence.storage, Storage::Postgresql);
    assert_eq!(set.root.intelligence.provider, IntelligenceProvider::Llm);
    assert_eq!(set.project.scope, Scope::Project);
    assert_eq!(set.project.persistence.storage, Storage::Sqlite);
    assert_eq!(
        set.project.persistence.path.as_deref(),
        Some(".hopper/{project_name}/tasks.db")
    );
    assert_eq!(set.orchestration.persistence.storage, Storage::Memory);
    assert_eq!(
        set.orchestration.persistence.retention,
        Retention::RunDuration
    );
    assert_eq!(set.orchestration.child_instances.max_depth, 2);
    assert!(!set.rules.projects.is_empty(), "routing rules loaded");
    let warnings = set.not_enabled_features().join("\n");
    for feature in ["llm routing provider", "integrations.github"] {
        assert!(
            warnings.contains(feature),
            "{feature} not reported in {warnings}"
        );
    }
    assert!(!warnings.contains("integrations.mcp"), "MCP is built in");
}

#[test]
fn environment_overrides_the_file() {
    let o = Overrides {
        database_url: Some("sqlite:/tmp/x.db".into()),
        bind: Some("0.0.0.0:9".into()),
        ..Default::default()
    };
    let set = ConfigSet::load(Some(shipped()), &o).unwrap();
    assert_eq!(set.root.persistence.storage, Storage::Sqlite);
    assert_eq!(set.root.server.bind, "0.0.0.0:9");
}

fn load_text(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    let err = ConfigSet::load(Some(&path), &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.yaml"), "file named: {msg}");
    msg
}

#[test]
fn bad_configs_name_file_key_and_reason() {
    let msg = load_text("persistence:\n  storage: mongodb\n");
    assert!(
        msg.contains("persistence.storage") && msg.contains("mongodb"),
        "{msg}"
    );
    let msg = load_text("persistence:\n  retention: soon\n");
    assert!(
        msg.contains("persistence.retention") && msg.contains("soon"),
        "{msg}"
    );
    let msg = load_text("intelligence:\n  provdier: rules\n");
    assert!(
        msg.contains("intelligence") && msg.contains("provdier"),
        "{msg}"
    );
    let msg = load_text("scope: planet\n");
    assert!(msg.contains("scope") && msg.contains("planet"), "{msg}");
    let msg = load_text("tasks: [1, 2\n");
    assert!(msg.contains("(yaml)"), "{msg}");
    let msg = load_text("server:\n  bind: \"${OOPS\"\n");
    assert!(msg.contains("server.bind"), "{msg}");
}

#[test]
fn no_file_means_embedded_defaults() {
    let set = ConfigSet::load(None, &Overrides::default()).unwrap();
    assert_eq!(set.root.persistence.storage, Storage::Sqlite);
    assert_eq!(set.root.server.bind, "127.0.0.1:8080");
    assert_eq!(set.project.persistence.storage, Storage::Inherit);
    assert_eq!(set.orchestration.persistence.storage, Storage::Memory);
    assert!(set.not_enabled_features().is_empty());
}

#[test]
fn shipped_inbound_sections_build_every_endpoint() {
    let set = ConfigSet::load(Some(shipped()), &Overrides::default()).unwrap();
    let no_env = |_: &str| None;
    let gateway = hopper::gateway::Gateway::build(&set, &no_env).unwrap();
    assert_eq!(
        gateway.paths(),
        [
            "email",
            "github",
            "gitlab",
            "slack/commands",
            "slack/events"
        ]
    );
}

#[test]
fn bad_inbound_config_names_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "inbound:\n  githib: {}\n",
            "inbound.githib",
            "unknown source",
        ),
        (
            "inbound:\n  github:\n    max_body_bytes: lots\n",
            "inbound.github.max_body_bytes",
            "invalid",
        ),
        (
            "inbound:\n  github:\n    secrt: x\n",
            "inbound.github",
            "unknown field `secrt`",
        ),
        (
            "inbound:\n  http:\n    alerts:\n      secret: whsec_!!!\n",
            "inbound.http.alerts.secret",
            "whsec_",
        ),
    ];
    for (yaml, key, reason) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, format!("scope: global\n{yaml}")).unwrap();
        let set = ConfigSet::load(Some(&path), &Overrides::default()).unwrap();
        let err = hopper::gateway::Gateway::build(&set, &|_: &str| None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.yaml"), "{text}");
        assert!(text.contains(key), "{key} in {text}");
        assert!(text.contains(reason), "{reason} in {text}");
    }
}

#[tokio::test]
async fn shipped_email_section_leaves_smtp_off_until_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = ConfigSet::load(Some(shipped()), &Overrides::default()).unwrap();
    set.root.persistence.storage = Storage::Sqlite;
    set.root.persistence.url = Some(format!("sqlite:{}", dir.path().join("h.db").display()));
    set.project.persistence.path = Some(dir.path().join("{project_name}.db").display().to_string());
    let engine = hopper::Engine::open(set).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = hopper::gateway::smtp::start(&engine, stop.clone())
        .await
        .unwrap();
    assert_eq!(
        started, None,
        "empty ${{HOPPER_SMTP_BIND:-}} means no listener"
    );
    stop.cancel();
    engine.close().await;
}
