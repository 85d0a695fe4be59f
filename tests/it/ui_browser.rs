//! The dashboard in a real browser: headless Chromium driven through chromedriver. Sign in
//! (a wrong token first), see a webhook's task in the tree, open it, re-route it, replay the
//! inbound event, resend a dead-lettered delivery, be refused a form without its CSRF token,
//! sign out. A PNG of each page goes to `$CARGO_TARGET_TMPDIR/ui-screenshots/`.
//!
//! Chromium and chromedriver are Debian's (`scripts/test-setup.sh` installs them); without
//! them this test fails saying so, since CI has them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::outbound_support::{Receiver, Server, TOKEN, executor, outbound_configs, secret};
use crate::support::{Backend, TestEnv, eventually};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn find(names: &[&str], env: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for n in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "{} not found (set {env} or run scripts/test-setup.sh, which installs Debian's chromium and chromium-driver)",
        names[0]
    );
}

/// chromedriver on a free loopback port, and a browser session with a fresh profile.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let chromium = find(&["chromium", "chromium-browser"], "HOPPER_CHROMIUM");
        let driver = find(&["chromedriver"], "HOPPER_CHROMEDRIVER");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("chromedriver answered within 10 s");
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            _driver: child,
            _profile: profile,
            shots,
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_in(&self, css: &str, text: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// The page's text. A navigation or a live refresh can replace the body between finding
    /// it and reading it (seen under a loaded full suite: "stale element"), so try again.
    async fn text(&self) -> String {
        let mut last = None;
        for _ in 0..50 {
            match self.client.find(Locator::Css("body")).await {
                Ok(body) => match body.text().await {
                    Ok(t) => return t,
                    Err(e) => last = Some(e.to_string()),
                },
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the page's text could not be read: {last:?}")
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits (10 s at most) for the page to say `needle`: a click that submits a form may
    /// return before the next page has loaded.
    async fn until_text(&self, needle: &str) {
        for _ in 0..100 {
            if self.text().await.contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no `{needle}` on {}: {}",
            self.url().await,
            self.text().await
        );
    }

    /// Waits (10 s at most) for the browser to be at a URL ending with `suffix`.
    async fn until_url(&self, suffix: &str) {
        for _ in 0..100 {
            if self.url().await.ends_with(suffix) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not at `{suffix}` but at {}", self.url().await);
    }
}

/// A Standard Webhooks POST to the `alerts` HTTP source.
async fn alert(server: &Server, id: &str, title: &str) -> serde_json::Value {
    let body = json!({"alert": {"name": title}, "labels": ["security"]}).to_string();
    let ts = hopper_integration_api::verify::unix_now().to_string();
    let sig = hopper_integration_api::verify::StandardWebhook::sign(
        &hopper_integration_api::Secret::new(WHSEC),
        id,
        &ts,
        body.as_bytes(),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/http/alerts", server.base))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts)
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert(
        "http".into(),
        json!({ "alerts": { "secret": WHSEC, "title": "/alert/name", "tags": "/labels" } }),
    );
    let server = Server::start(outbound_configs(&env)).await;
    // An executor whose webhook answers 500 until its four attempts are spent.
    let whsec = secret();
    let hook = Receiver::start(&[&whsec], &[500, 500, 500, 500]).await;
    let exec = executor(&server.engine, "sark-hook", &hook.url, &whsec, false).await;
    let receipt = alert(&server, "msg_1", "Disk almost full on db-1").await;
    let task_id = receipt["task_id"].as_str().unwrap().to_owned();
    // Dead-lettered first, so the deliveries that follow (the re-route's cancellation) find
    // the endpoint answering 204.
    let dead = eventually(|| async {
        let list = server.deliveries(exec.id.as_str()).await;
        list.into_iter().find(|d| d["status"] == "dead")
    })
    .await;
    let did = dead["id"].as_str().unwrap().to_owned();

    let b = Browser::start().await;
    let base = &server.base;

    // A wrong token is refused; the right one opens the overview.
    b.client.goto(&format!("{base}/ui")).await.unwrap();
    b.until_url("/ui/login").await;
    b.shot("login").await;
    b.type_in("#token", "wrong-token").await;
    b.click("button[type=submit]").await;
    b.until_text("That token is not valid.").await;
    b.type_in("#token", TOKEN).await;
    b.click("button[type=submit]").await;
    b.until_url("/ui").await;
    b.until_text("hopper-sark").await;
    b.shot("overview").await;

    // The webhook's task, in its project's queue.
    b.click("a[href='/ui/instances/hopper-sark']").await;
    b.shot("instance").await;
    let own = server
        .engine
        .list_tasks(
            &hopper::domain::InstanceId::parse("hopper-sark").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let child = own.first().expect("the routed task in sark").id.to_string();
    b.click(&format!("a[href='/ui/tasks/{child}']")).await;
    b.until_text("Disk almost full on db-1").await;
    b.shot("task").await;

    // Re-route the task from the global instance's page.
    b.client
        .goto(&format!("{base}/ui/tasks/{task_id}"))
        .await
        .unwrap();
    b.type_in("#reroute-project", "other").await;
    b.type_in("#reroute-reason", "belongs to other").await;
    b.click("#reroute").await;
    b.until_text("Re-routed.").await;
    let t = server
        .engine
        .get_task(&hopper::domain::TaskId::parse(&task_id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        t.routed_to.map(|r| r.to_string()).as_deref(),
        Some("hopper-other")
    );
    b.shot("task-rerouted").await;

    // A form whose CSRF token was taken out is refused.
    b.client
        .execute(
            "document.querySelectorAll('input[name=_csrf]').forEach(e => e.remove());",
            vec![],
        )
        .await
        .unwrap();
    b.click("#signout").await;
    b.until_text("CSRF").await;
    b.client.back().await.unwrap();

    // Replay the inbound event.
    b.client.goto(&format!("{base}/ui/events")).await.unwrap();
    b.shot("events").await;
    let event = receipt["event_id"].as_str().unwrap();
    b.click(&format!("a[href='/ui/events/{event}']")).await;
    b.until_text("Disk almost full on db-1").await;
    assert!(!b.text().await.contains(WHSEC));
    b.shot("event").await;
    b.click("form[action$='/replay'] button").await;
    b.until_text("Replayed").await;

    // Resend the dead-lettered delivery.
    b.client
        .goto(&format!("{base}/ui/executors"))
        .await
        .unwrap();
    b.shot("executors").await;
    b.click(&format!("a[href='/ui/executors/{}']", exec.id))
        .await;
    b.shot("executor").await;
    b.click(&format!("a[href='/ui/deliveries/{did}']")).await;
    b.until_text("500").await;
    b.shot("delivery").await;
    b.click("form[action$='/resend'] button").await;
    b.until_text("Sent again.").await;
    eventually(|| async { (server.delivery(&did).await["status"] == "delivered").then_some(()) })
        .await;

    b.client.goto(&format!("{base}/ui/memory")).await.unwrap();
    b.shot("memory").await;

    // Sign out: the session is gone.
    b.click("#signout").await;
    b.until_url("/ui/login").await;
    b.client.goto(&format!("{base}/ui")).await.unwrap();
    b.until_url("/ui/login").await;
    b.client.close().await.unwrap();
}
