//! The remote deciders (`hopper::routing::llm`, `hopper::routing::sage`) against loopback
//! fakes over real HTTP: what they send, and every way an answer can fail to be a decision.

use std::time::Duration;

use hopper::config::Secret;
use hopper::routing::llm::{DecomposeRequest, LlmClient, LlmSettings};
use hopper::routing::remote::{
    Candidate, Limits, RemoteOutcome, RemoteTrace, RouteRequest, TaskSummary,
};
use hopper::routing::sage::{SageClient, SageSettings};
use serde_json::json;

use crate::fake_llm::{FakeAnswer, FakeLlm, completion};
use crate::fake_sage::{FakeSage, SageAnswer};
use crate::outbound_support::secret;

const KEY: &str = "sk-test-very-secret-key";

fn llm_settings(base_url: &str, timeout: Duration, limits: Limits) -> LlmSettings {
    LlmSettings {
        base_url: base_url.into(),
        api_key: Some(Secret::new(KEY)),
        model: "gpt-test".into(),
        temperature: 0.2,
        timeout,
        max_tokens: 300,
        json_mode: true,
        limits,
        max_prompt_projects: 10,
    }
}

fn llm(base_url: &str) -> LlmClient {
    LlmClient::new(llm_settings(
        base_url,
        Duration::from_secs(5),
        Limits::default(),
    ))
    .unwrap()
}

fn sage(url: &str, secret: Option<&str>) -> SageClient {
    SageClient::new(SageSettings {
        url: url.into(),
        secret: secret.map(Secret::new),
        timeout: Duration::from_secs(5),
        limits: Limits::default(),
    })
    .unwrap()
}

fn request() -> RouteRequest {
    let candidate = |name: &str, caps: &[&str]| Candidate {
        name: name.into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        executors: vec![format!("{name}-bot")],
    };
    let draft = hopper::domain::TaskDraft {
        title: "Rotate the TLS certificates".into(),
        description: "They expire next week.".into(),
        tags: vec!["security".into()],
        priority: hopper::domain::Priority::High,
        ..Default::default()
    };
    let mut task = TaskSummary::from(&draft);
    task.source = Some(json!({"kind": "github", "container": "acme/site"}));
    RouteRequest {
        task,
        projects: vec![
            candidate("sark", &["security"]),
            candidate("flynn", &["frontend"]),
        ],
    }
}

/// The decision, or a failure naming the reason.
fn decided(o: RemoteOutcome) -> (String, f64, String, bool, RemoteTrace) {
    match o {
        RemoteOutcome::Decided {
            project,
            confidence,
            reason,
            needs_orchestration,
            trace,
        } => (project, confidence, reason, needs_orchestration, trace),
        RemoteOutcome::Abstained { reason, .. } => panic!("abstained: {reason}"),
    }
}

fn abstained(o: RemoteOutcome) -> (String, Option<RemoteTrace>) {
    match o {
        RemoteOutcome::Abstained { reason, trace } => (reason, trace),
        RemoteOutcome::Decided { project, .. } => panic!("decided {project}"),
    }
}

#[tokio::test]
async fn llm_good_answer_decides_with_the_configured_request() {
    let fake = FakeLlm::start(vec![FakeAnswer::route("hopper-sark", 0.9, "certificates")]).await;
    let client = llm(&format!("{}/", fake.url));
    assert_eq!(client.model(), "gpt-test");
    let (project, confidence, reason, orchestrate, trace) = decided(client.route(&request()).await);
    assert_eq!(
        (project.as_str(), confidence, reason.as_str(), orchestrate),
        ("sark", 0.9, "certificates", false)
    );

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let (auth, body) = &seen[0];
    assert_eq!(auth, &format!("Bearer {KEY}"));
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(user.contains("Rotate the TLS certificates") && user.contains("name: flynn"));
    assert!(user.contains("priority: high") && user.contains("acme/site"));

    // The trace keeps what was asked and said, and never the key.
    assert_eq!(trace.url, format!("{}/chat/completions", fake.url));
    assert_eq!(trace.model.as_deref(), Some("fake-model-2026"));
    assert_eq!(trace.request, body["messages"]);
    assert_eq!(trace.status, Some(200));
    assert_eq!(trace.usage.as_ref().unwrap()["total_tokens"], 150);
    assert!(trace.answer.as_deref().unwrap().contains("hopper-sark"));
    assert!(!serde_json::to_string(&trace).unwrap().contains(KEY));
}

#[tokio::test]
async fn llm_without_a_key_sends_no_authorization_and_accepts_fenced_answers() {
    let fenced = "Here you go:\n```json\n{\"project\": \"flynn\", \"confidence\": 0.6, \
                  \"needs_orchestration\": true}\n```";
    let fake = FakeLlm::start(vec![FakeAnswer::Content(fenced.into())]).await;
    let mut s = llm_settings(&fake.url, Duration::from_secs(5), Limits::default());
    s.api_key = None;
    s.json_mode = false;
    let client = LlmClient::new(s).unwrap();
    let (project, confidence, reason, orchestrate, _) = decided(client.route(&request()).await);
    assert_eq!(
        (project.as_str(), confidence, reason.as_str(), orchestrate),
        ("flynn", 0.6, "", true)
    );
    let (auth, body) = &fake.requests()[0];
    assert_eq!(auth, "");
    assert!(body.get("response_format").is_none());
}

#[tokio::test]
async fn llm_timeout_abstains() {
    let late = FakeAnswer::delayed(
        Duration::from_secs(2),
        FakeAnswer::route("sark", 0.9, "late"),
    );
    let fake = FakeLlm::start(vec![late]).await;
    let client = LlmClient::new(llm_settings(
        &fake.url,
        Duration::from_millis(300),
        Limits::default(),
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let (reason, trace) = abstained(client.route(&request()).await);
    assert_eq!(reason, "timed out after 300 ms");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    let trace = trace.unwrap();
    assert_eq!(trace.status, None);
    assert!(trace.latency_ms >= 250, "{}", trace.latency_ms);
}

#[tokio::test]
async fn llm_unreachable_abstains_naming_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = llm(&format!("http://127.0.0.1:{port}/v1"));
    let (reason, _) = abstained(client.route(&request()).await);
    let want = format!("could not reach http://127.0.0.1:{port}/v1/chat/completions: ");
    assert!(reason.starts_with(&want), "{reason}");
    assert!(!reason.contains('\n') && !reason.contains(KEY));
}

#[tokio::test]
async fn llm_garbage_abstains() {
    let fake = FakeLlm::start(vec![
        FakeAnswer::Garbage("<html>oops</html>".into()),
        FakeAnswer::Content("I would pick sark.".into()),
    ])
    .await;
    let client = llm(&fake.url);
    let (reason, trace) = abstained(client.route(&request()).await);
    assert_eq!(
        reason,
        "answer is not JSON: expected value at line 1 column 1"
    );
    assert_eq!(trace.unwrap().answer.as_deref(), Some("<html>oops</html>"));
    let (reason, trace) = abstained(client.route(&request()).await);
    assert_eq!(
        reason,
        "answer is not JSON: expected value at line 1 column 1"
    );
    assert_eq!(trace.unwrap().answer.as_deref(), Some("I would pick sark."));
}

#[tokio::test]
async fn llm_unknown_project_bad_confidence_declines_and_cut_answers_abstain() {
    let fake = FakeLlm::start(vec![
        FakeAnswer::route("clu", 0.9, "?"),
        FakeAnswer::Content(r#"{"project": "sark", "confidence": "0.8"}"#.into()),
        FakeAnswer::Content(r#"{"project": null, "reason": "nothing fits"}"#.into()),
        FakeAnswer::Json(completion(r#"{"project": "sa"#, "length")),
    ])
    .await;
    let client = llm(&fake.url);
    let mut reasons = Vec::new();
    for _ in 0..4 {
        reasons.push(abstained(client.route(&request()).await).0);
    }
    assert_eq!(
        reasons,
        [
            "unknown project \"clu\"",
            "answer's confidence is not a number between 0 and 1: \"0.8\"",
            "declined: nothing fits",
            "answer cut off at max_tokens (300)",
        ]
    );
}

#[tokio::test]
async fn llm_http_500_abstains_with_the_status() {
    let fake = FakeLlm::start(vec![
        FakeAnswer::Status(500, "upstream exploded".into()),
        FakeAnswer::Status(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests",
                             "code": "rate_limit_exceeded"}})
            .to_string(),
        ),
    ])
    .await;
    let client = llm(&fake.url);
    let (reason, trace) = abstained(client.route(&request()).await);
    assert_eq!(reason, "HTTP 500: upstream exploded");
    assert_eq!(trace.unwrap().status, Some(500));
    let (reason, _) = abstained(client.route(&request()).await);
    assert_eq!(reason, "HTTP 429: Rate limit reached");
}

#[tokio::test]
async fn llm_queue_bound_abstains_at_once() {
    let slow = FakeAnswer::delayed(
        Duration::from_millis(800),
        FakeAnswer::route("sark", 0.7, "slow"),
    );
    let fake = FakeLlm::start(vec![slow]).await;
    let limits = Limits {
        max_wait: None,
        max_concurrency: 1,
        max_queue: 0,
    };
    let client = LlmClient::new(llm_settings(&fake.url, Duration::from_secs(5), limits)).unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.route(&request()).await }
    });
    // Until the first call is in flight.
    for _ in 0..100 {
        if !fake.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let (reason, trace) = abstained(client.route(&request()).await);
    assert!(reason.starts_with("queue full: 0 waiting"), "{reason}");
    assert!(trace.is_none());
    assert!(started.elapsed() < Duration::from_millis(300));
    let (project, ..) = decided(first.await.unwrap());
    assert_eq!(project, "sark");
    assert_eq!(fake.requests().len(), 1);
    // The permit is back: the next call goes through.
    let (project, ..) = decided(client.route(&request()).await);
    assert_eq!(project, "sark");
}

fn decompose_request() -> DecomposeRequest {
    DecomposeRequest {
        task: request().task,
        project: "sark".into(),
        template_phases: vec!["prepare".into(), "rotate".into()],
        max_phases: 3,
        max_tasks_per_phase: 2,
    }
}

#[tokio::test]
async fn llm_decompose_good_answer_gives_the_phases() {
    let plan = json!({"phases": [
        {"name": "prepare", "tasks": [
            {"title": "List the certificates", "description": "all hosts", "tags": ["tls"]}]},
        {"name": "rotate", "tasks": [
            {"title": "Issue new certificates", "description": "", "tags": []},
            {"title": "Deploy them", "description": "rolling", "tags": ["deploy"]}]},
    ]});
    let fake = FakeLlm::start(vec![FakeAnswer::Content(format!("```json\n{plan}\n```"))]).await;
    let (plan, trace) = llm(&fake.url)
        .decompose(&decompose_request())
        .await
        .unwrap();
    let names: Vec<_> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prepare", "rotate"]);
    assert_eq!(plan.phases[1].tasks[1].title, "Deploy them");
    assert_eq!(plan.phases[0].tasks[0].tags, ["tls"]);
    assert_eq!(trace.status, Some(200));
    let (_, body) = &fake.requests()[0];
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("prepare, rotate") && user.contains("1 to 3 phases"));
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("planner")
    );
}

#[tokio::test]
async fn llm_decompose_invalid_answer_is_refused() {
    let too_many = json!({"phases": [{"name": "all", "tasks": [
        {"title": "a"}, {"title": "b"}, {"title": "c"}]}]});
    let fake = FakeLlm::start(vec![
        FakeAnswer::Content("no plan today".into()),
        FakeAnswer::Content(json!({"phases": []}).to_string()),
        FakeAnswer::Content(too_many.to_string()),
        FakeAnswer::Status(503, "overloaded".into()),
    ])
    .await;
    let client = llm(&fake.url);
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let (reason, trace) = client.decompose(&decompose_request()).await.unwrap_err();
        assert!(trace.is_some());
        reasons.push(reason);
    }
    assert_eq!(
        reasons,
        [
            "answer is not JSON: expected ident at line 1 column 2",
            "the plan has no phases",
            "phase 1 (\"all\") of the plan has 3 tasks, more than the 2 allowed",
            "HTTP 503: overloaded",
        ]
    );
}

#[tokio::test]
async fn sage_good_answer_decides_and_the_signature_verifies() {
    let key = secret();
    let fake = FakeSage::start(
        Some(key.clone()),
        vec![SageAnswer::route(
            "sark",
            0.85,
            "certificates are sark's job",
        )],
    )
    .await;
    let (project, confidence, reason, orchestrate, trace) =
        decided(sage(&fake.url, Some(&key)).route(&request()).await);
    assert_eq!(
        (project.as_str(), confidence, reason.as_str(), orchestrate),
        ("sark", 0.85, "certificates are sark's job", false)
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(r.verified, "signature did not verify: {r:?}");
    assert!(r.id.starts_with("msg_") && r.id.len() > 20);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.body["task"]["title"], "Rotate the TLS certificates");
    assert_eq!(r.body["task"]["priority"], "high");
    assert_eq!(r.body["projects"][0]["name"], "sark");
    assert_eq!(trace.request, r.body);
    assert_eq!(
        (trace.url.as_str(), trace.model.as_ref()),
        (fake.url.as_str(), None)
    );
    assert!(!serde_json::to_string(&trace).unwrap().contains(&key));
}

#[tokio::test]
async fn sage_without_a_secret_sends_no_signature() {
    let fake = FakeSage::start(None, vec![SageAnswer::route("flynn", 0.5, "")]).await;
    let (project, ..) = decided(sage(&fake.url, None).route(&request()).await);
    assert_eq!(project, "flynn");
    let r = &fake.requests()[0];
    assert_eq!(r.signature, "");
    assert!(!r.verified);
    assert!(r.id.starts_with("msg_") && !r.timestamp.is_empty());
}

#[tokio::test]
async fn sage_garbage_errors_and_refusals_abstain() {
    let key = secret();
    let fake = FakeSage::start(
        Some(key.clone()),
        vec![
            SageAnswer::Garbage("sark, probably".into()),
            SageAnswer::Status(500, "sage is down".into()),
            SageAnswer::route("hopper-clu", 0.5, ""),
            SageAnswer::Json(json!({"project": null, "reason": "not my call"})),
            SageAnswer::Delay(
                Duration::from_secs(2),
                Box::new(SageAnswer::route("sark", 1.0, "")),
            ),
        ],
    )
    .await;
    let client = SageClient::new(SageSettings {
        url: fake.url.clone(),
        secret: Some(Secret::new(key)),
        timeout: Duration::from_millis(300),
        limits: Limits::default(),
    })
    .unwrap();
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let (reason, trace) = abstained(client.route(&request()).await);
        assert!(trace.is_some());
        reasons.push(reason);
    }
    assert_eq!(
        reasons,
        [
            "answer is not JSON: expected value at line 1 column 1",
            "HTTP 500: sage is down",
            "unknown project \"hopper-clu\"",
            "declined: not my call",
            "timed out after 300 ms",
        ]
    );
    assert!(fake.requests().iter().all(|r| r.verified));
}
