//! The dashboard over real HTTP: signing in and out, the pages, CSRF and Origin checks, a read
//! token that sees but cannot act, an executor token that sees only its own instances, bad
//! input answered with a 4xx page, secrets never rendered, and keyset pagination.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::executors::{call, register};
use crate::support::{Backend, TestEnv, TestServer, on_both};

/// A dashboard client: no redirects followed, the session cookie kept by hand.
pub struct Ui {
    base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
}

impl Ui {
    pub fn new(server: &TestServer) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base: server.base.clone(),
            client,
            cookie: None,
        }
    }

    pub async fn sign_in(&mut self, token: &str) -> reqwest::Response {
        let r = self
            .client
            .post(format!("{}/ui/login", self.base))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        if let Some(c) = r.headers().get(SET_COOKIE) {
            let c = c.to_str().unwrap().to_owned();
            self.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        r
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// POSTs `form` (plus `_csrf` when given) with `origin` as the Origin header.
    pub async fn post(
        &self,
        path: &str,
        csrf: Option<&str>,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if let Some(c) = csrf {
            fields.push(("_csrf", c));
        }
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(&fields);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }
}

/// The CSRF token in a page's forms.
pub fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &html[at + 20..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn add(server: &TestServer, instance: &str, body: serde_json::Value) -> String {
    if let Some(project) = instance.strip_prefix("hopper-").filter(|p| *p != "global") {
        let global = hopper::domain::InstanceId::global();
        server.engine.child(&global, project, None).await.unwrap();
    }
    let (s, t) = call(
        server,
        "POST",
        &format!("/v1/instances/{instance}/tasks"),
        &server.token,
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_str().unwrap().to_owned()
}

async fn sign_in_pages_csrf_and_sign_out(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let mut ui = Ui::new(&server);

    // Nothing without a session; a wrong token is refused.
    let (s, _) = ui.get("/ui").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let r = ui.sign_in("not-the-token").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(ui.cookie.is_none());
    let r = ui.sign_in(&server.token).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    // Behind a TLS-terminating proxy the cookie is Secure.
    let tls = ui
        .client
        .post(format!("{}/ui/login", server.base))
        .header("x-forwarded-proto", "https")
        .form(&[("token", server.token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        tls.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    assert!(!set.contains(&server.token), "the cookie is encoded: {set}");

    // The tree shows a routed task's project; the task page its routing and history.
    let id = add(
        &server,
        "hopper-global",
        json!({"title": "audit the MCP server", "tags": ["security"]}),
    )
    .await;
    let (s, html) = ui.get("/ui").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("hopper-sark") && html.contains("Instances"),
        "{html}"
    );
    let (s, html) = ui.get(&format!("/ui/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("audit the MCP server") && html.contains("Provider chain"),
        "{html}"
    );
    let token = csrf(&html);

    // Forms: no token, a wrong one, or another origin are refused; the right one acts.
    let cancel = format!("/ui/tasks/{id}/cancel");
    assert_eq!(
        ui.post(&cancel, None, &[], None).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ui.post(&cancel, Some("forged"), &[], None).await.status(),
        StatusCode::FORBIDDEN
    );
    let evil = ui
        .post(&cancel, Some(&token), &[], Some("http://evil.example"))
        .await;
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .engine
            .get_task(&hopper::domain::TaskId::parse(&id).unwrap())
            .await
            .unwrap()
            .status
            .as_str(),
        "routed"
    );
    let own_origin = server.base.clone();
    let r = ui.post(&cancel, Some(&token), &[], Some(&own_origin)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=cancelled")
    );
    assert_eq!(
        server
            .engine
            .get_task(&hopper::domain::TaskId::parse(&id).unwrap())
            .await
            .unwrap()
            .status
            .as_str(),
        "cancelled"
    );

    // Bad input is a 4xx page, never a 5xx.
    for (path, want) in [
        ("/ui/tasks/nope", 400),
        ("/ui/tasks/task_0123456789abcdef0123456789abcdef", 404),
        ("/ui/instances/Not%20An%20Id", 400),
        ("/ui/instances/hopper-global?status=bogus", 400),
        ("/ui/instances/hopper-global?after=xyz", 400),
        ("/ui/instances/nowhere", 404),
        ("/ui/events/evt_missing", 404),
        ("/ui/memory?page=nothing.md", 400),
    ] {
        let (s, html) = ui.get(path).await;
        assert_eq!(s.as_u16(), want, "{path}: {html}");
        assert!(html.contains("<h1>"), "{path}: an HTML page");
    }
    // Every page renders.
    for path in [
        "/ui/events",
        "/ui/executors",
        "/ui/memory?q=audit",
        "/ui/instances/hopper-global",
    ] {
        let (s, html) = ui.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {html}");
    }

    // Signing out needs the token too, and drops the cookie.
    let (_, html) = ui.get("/ui").await;
    assert_eq!(
        ui.post("/ui/logout", None, &[], None).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = ui.post("/ui/logout", Some(&csrf(&html)), &[], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}
on_both!(sign_in_pages_csrf_and_sign_out);

#[tokio::test]
async fn a_read_token_sees_but_cannot_act() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let (s, minted) = call(
        &server,
        "POST",
        "/v1/tokens",
        &server.token,
        Some(json!({"role": "read"})),
    )
    .await;
    assert_eq!(s, 201, "{minted}");
    let id = add(
        &server,
        "hopper-sark",
        json!({"title": "look, don't touch"}),
    )
    .await;
    let mut ui = Ui::new(&server);
    ui.sign_in(minted["token"].as_str().unwrap()).await;
    let (s, html) = ui.get(&format!("/ui/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("look, don't touch") && html.contains("read-only"));
    assert!(
        !html.contains("Cancel task") && !html.contains("Re-route"),
        "{html}"
    );
    // The page still has the sign-out form, so a valid token to forge with.
    let token = csrf(&html);
    for action in ["cancel", "reroute", "release"] {
        let r = ui
            .post(
                &format!("/ui/tasks/{id}/{action}"),
                Some(&token),
                &[("project", "other")],
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(
        server
            .engine
            .get_task(&hopper::domain::TaskId::parse(&id).unwrap())
            .await
            .unwrap()
            .status
            .as_str(),
        "pending"
    );
    let (s, _) = ui.get("/ui/executors").await;
    assert_eq!(s, StatusCode::OK, "a read token reads executors");
}

#[tokio::test]
async fn an_executor_token_sees_only_its_instances() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let reg = register(&server, "sark-runner", "sark", &[]).await;
    register(&server, "other-runner", "other", &[]).await;
    let mine = add(&server, "hopper-sark", json!({"title": "mine"})).await;
    let theirs = add(&server, "hopper-other", json!({"title": "theirs"})).await;
    let mut ui = Ui::new(&server);
    ui.sign_in(reg["token"].as_str().unwrap()).await;
    let (s, html) = ui.get("/ui").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("/ui/instances/hopper-sark"), "{html}");
    assert!(
        !html.contains("/ui/instances/hopper-other")
            && !html.contains("/ui/instances/hopper-global"),
        "{html}"
    );
    assert!(!html.contains("Dead letters"), "{html}");
    assert_eq!(ui.get("/ui/instances/hopper-sark").await.0, StatusCode::OK);
    let (s, html) = ui.get(&format!("/ui/tasks/{mine}")).await;
    assert_eq!(s, StatusCode::OK);
    // What the API keeps from executor tokens the page keeps too: routing, deliveries.
    assert!(
        !html.contains("routing-h") && !html.contains("deliv-h"),
        "{html}"
    );
    for path in [
        "/ui/instances/hopper-other".to_owned(),
        "/ui/instances/hopper-global".into(),
        format!("/ui/tasks/{theirs}"),
        "/ui/events".into(),
        "/ui/executors".into(),
        "/ui/memory".into(),
    ] {
        assert_eq!(ui.get(&path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn secrets_are_never_rendered() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    env.inbound.insert(
        "http".into(),
        json!({ "alerts": { "secret": whsec, "title": "/title" } }),
    );
    let server = TestServer::start(&env).await;
    let body =
        json!({"title": "db down", "api_token": "tok-in-the-body", "nested": {"secret": "s3cr3t"}})
            .to_string();
    let ts = hopper_integration_api::verify::unix_now().to_string();
    let sig = hopper_integration_api::verify::StandardWebhook::sign(
        &hopper_integration_api::Secret::new(whsec),
        "msg_1",
        &ts,
        body.as_bytes(),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/http/alerts", server.base))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", &ts)
        .header("webhook-signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let receipt: serde_json::Value = r.json().await.unwrap();
    let mut ui = Ui::new(&server);
    ui.sign_in(&server.token).await;
    let (s, html) = ui
        .get(&format!(
            "/ui/events/{}",
            receipt["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("db down"), "{html}");
    for secret in [
        whsec,
        "tok-in-the-body",
        "s3cr3t",
        sig.as_str(),
        server.token.as_str(),
    ] {
        assert!(!html.contains(secret), "{secret} rendered");
    }
}

async fn keyset_pages_and_filters(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    for i in 0..120 {
        let tags = if i % 10 == 0 {
            json!(["db_x"])
        } else {
            json!(["web"])
        };
        let priority = if i % 3 == 0 { "high" } else { "low" };
        add(
            &server,
            "hopper-sark",
            json!({"title": format!("t{i:03}"), "tags": tags, "priority": priority}),
        )
        .await;
    }
    let mut ui = Ui::new(&server);
    ui.sign_in(&server.token).await;
    let mut path = "/ui/instances/hopper-sark".to_owned();
    let mut seen = Vec::new();
    loop {
        let (s, html) = ui.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        let titles: Vec<String> = html
            .match_indices("<td>t")
            .map(|(at, _)| html[at + 4..at + 8].to_owned())
            .collect();
        seen.extend(titles);
        let Some(at) = html.find("id=\"next-page\" href=\"") else {
            break;
        };
        let rest = &html[at + 21..];
        path = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
        assert!(path.contains("after=task_"), "{path}");
    }
    let want: Vec<String> = (0..120).map(|i| format!("t{i:03}")).collect();
    assert_eq!(seen, want, "every task once, in order, over three pages");
    // Filters combine, and `_` in a tag is literal, not a wildcard.
    let (_, html) = ui
        .get("/ui/instances/hopper-sark?tag=db_x&priority=high")
        .await;
    assert_eq!(html.matches("<td>t").count(), 4, "{html}"); // 0, 30, 60, 90
    // Tags match whatever their case, on both databases alike.
    let (_, html) = ui
        .get("/ui/instances/hopper-sark?tag=DB_X&priority=high")
        .await;
    assert_eq!(html.matches("<td>t").count(), 4, "{html}");
    let (_, html) = ui.get("/ui/instances/hopper-sark?tag=db%25").await;
    assert_eq!(html.matches("<td>t").count(), 0);
    let (_, html) = ui
        .get("/ui/instances/hopper-sark?status=pending&priority=low")
        .await;
    assert_eq!(html.matches("<td>t").count(), 50, "a full first page");
    // The REST list pages the same way.
    let (_, first) = call(
        &server,
        "GET",
        "/v1/instances/hopper-sark/tasks?limit=100",
        &server.token,
        None,
    )
    .await;
    let last = first[99]["id"].as_str().unwrap();
    let (_, rest) = call(
        &server,
        "GET",
        &format!("/v1/instances/hopper-sark/tasks?after={last}"),
        &server.token,
        None,
    )
    .await;
    assert_eq!(rest.as_array().unwrap().len(), 20);
}
on_both!(keyset_pages_and_filters);
