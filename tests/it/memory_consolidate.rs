//! Consolidated memory committed for real: a local git repository through the git CLI, and a
//! loopback server speaking GitLab's repository files, branches and commits API with the
//! `gitlab` crate pointed at it (its requests checked: token header, one commit, actions).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hopper::memory::consolidate::{GitRepo, GitlabRepo, MemoryRepo, RepoError, render};
use hopper::memory::{Episode, EpisodeKind};
use serde_json::json;

fn episode(seq: i64, kind: EpisodeKind, project: &str, title: &str) -> Episode {
    Episode {
        seq,
        instance_id: "global".into(),
        task_id: format!("task-{seq}"),
        kind,
        at: 1_780_000_000_000 + seq * 1000,
        project: Some(project.into()),
        from_project: None,
        decided_by: Some("rules".into()),
        confidence: Some(0.9),
        title: title.into(),
        text: String::new(),
        tags: vec!["ci".into()],
        quality: (kind == EpisodeKind::Completed).then_some(4.0),
        routing_correct: None,
        notes: None,
        duration_ms: Some(60_000),
    }
}

fn first_files() -> BTreeMap<String, String> {
    render(
        None,
        &[
            episode(1, EpisodeKind::Routed, "backend", "Database migration"),
            episode(2, EpisodeKind::Routed, "frontend", "Login page"),
            episode(3, EpisodeKind::Completed, "backend", "Database migration"),
        ],
    )
    .files
}

fn git_out(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_local_git_repository_commits_only_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data/memory");
    let repo = GitRepo::new(&path, "memory");
    let files = first_files();
    assert_eq!(
        repo.read("README.md").await.unwrap(),
        None,
        "no repository yet"
    );

    let first = repo.commit(&files, "memory: 3 episodes").await.unwrap();
    let first = first.expect("a first commit");
    assert_eq!(first.len(), 40, "{first}");
    assert_eq!(git_out(&path, &["rev-parse", "HEAD"]).trim(), first);
    assert_eq!(
        git_out(&path, &["symbolic-ref", "--short", "HEAD"]).trim(),
        "memory"
    );
    assert_eq!(
        std::fs::read_to_string(path.join("projects/backend.md")).unwrap(),
        files["projects/backend.md"]
    );

    // Reads give what is committed on the branch, not what the work tree has.
    assert_eq!(
        repo.read("projects/backend.md").await.unwrap().as_ref(),
        Some(&files["projects/backend.md"])
    );
    std::fs::write(path.join("README.md"), "edited, not committed").unwrap();
    assert_eq!(
        repo.read("README.md").await.unwrap().as_ref(),
        Some(&files["README.md"])
    );
    assert_eq!(repo.read("no/such.md").await.unwrap(), None);
    assert!(repo.read("../escape.md").await.is_err());

    // The same files again: nothing to commit.
    assert_eq!(repo.commit(&files, "memory: again").await.unwrap(), None);

    // One file changed: a second commit with just it.
    let mut changed = files.clone();
    changed.insert("README.md".into(), "# Routing memory\n\nchanged\n".into());
    let second = repo
        .commit(&changed, "memory: 1 change")
        .await
        .unwrap()
        .expect("a second commit");
    assert_ne!(second, first);
    let log = git_out(&path, &["log", "--format=%H %an <%ae> %cn <%ce> %s"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(
        lines[0],
        format!("{second} Hopper <hopper@localhost> Hopper <hopper@localhost> memory: 1 change")
    );
    assert!(lines[1].starts_with(&first));
    let touched = git_out(&path, &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(touched.trim(), "README.md");

    // A path that would leave the repository is refused before anything is written.
    let mut bad = files.clone();
    bad.insert("../escape.md".into(), "x".into());
    let err = repo.commit(&bad, "memory: bad").await.unwrap_err();
    assert!(matches!(err, RepoError::Permanent(_)), "{err}");
    assert!(!tmp.path().join("data/escape.md").exists());
}

// --- A loopback GitLab -------------------------------------------------------------------

const TOKEN: &str = "glpat-memory";
const PROJECT: &str = "acme/memory";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token: Option<String>,
    form: Vec<(String, String)>,
}

#[derive(Default)]
struct Remote {
    default_branch: String,
    /// branch → path → content
    branches: BTreeMap<String, BTreeMap<String, String>>,
    seen: Vec<Seen>,
    commits: u32,
    /// Answer every commit with this status instead (to check classification).
    fail_commits: Option<u16>,
}

type Shared = Arc<Mutex<Remote>>;

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn answer(status: u16, body: serde_json::Value) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

async fn handle(
    State(remote): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        token: headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        form: form.clone(),
    };
    let mut r = remote.lock().unwrap();
    r.seen.push(seen.clone());
    if seen.token.as_deref() != Some(TOKEN) {
        return answer(401, json!({"message": "401 Unauthorized"}));
    }
    if seen.path == "/api/v4/user" {
        return answer(
            200,
            json!({"id": 7, "username": "hopper-bot", "name": "Hopper", "state": "active"}),
        );
    }
    let Some(rest) = seen.path.strip_prefix("/api/v4/projects/") else {
        return answer(404, json!({"message": "404 Not Found"}));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if decode(parts[0]) != PROJECT {
        return answer(404, json!({"message": "404 Project Not Found"}));
    }
    match (method.as_str(), &parts[1..]) {
        ("GET", []) => answer(
            200,
            json!({"id": 42, "path_with_namespace": PROJECT, "default_branch": r.default_branch}),
        ),
        ("GET", ["repository", "branches", branch]) => {
            let branch = decode(branch);
            if r.branches.contains_key(&branch) {
                answer(200, json!({"name": branch}))
            } else {
                answer(404, json!({"message": "404 Branch Not Found"}))
            }
        }
        ("GET", ["repository", "files", path]) => {
            let path = decode(path);
            let git_ref = query
                .iter()
                .find(|(k, _)| k == "ref")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            match r.branches.get(&git_ref).and_then(|b| b.get(&path)) {
                Some(content) => answer(
                    200,
                    json!({
                        "file_name": path.rsplit('/').next(), "file_path": path,
                        "size": content.len(), "encoding": "base64",
                        "content": base64::engine::general_purpose::STANDARD.encode(content),
                        "ref": git_ref, "blob_id": "b", "commit_id": "c", "last_commit_id": "c"
                    }),
                ),
                None => answer(404, json!({"message": "404 File Not Found"})),
            }
        }
        ("POST", ["repository", "commits"]) => {
            if let Some(status) = r.fail_commits {
                return answer(status, json!({"message": "refused"}));
            }
            let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let branch = field("branch").unwrap();
            if !r.branches.contains_key(&branch) {
                let Some(start) = field("start_branch") else {
                    return answer(
                        400,
                        json!({"message": "You can only create or edit files when you are on a branch"}),
                    );
                };
                let base = r.branches.get(&start).cloned().unwrap_or_default();
                r.branches.insert(branch.clone(), base);
            }
            let mut actions: Vec<BTreeMap<String, String>> = Vec::new();
            for (k, v) in &form {
                if let Some(name) = k
                    .strip_prefix("actions[][")
                    .and_then(|k| k.strip_suffix(']'))
                {
                    if name == "action" {
                        actions.push(BTreeMap::new());
                    }
                    actions.last_mut().unwrap().insert(name.into(), v.clone());
                }
            }
            let files = r.branches.get_mut(&branch).unwrap();
            for a in &actions {
                let path = a["file_path"].clone();
                let exists = files.contains_key(&path);
                match a["action"].as_str() {
                    "create" if exists => {
                        return answer(
                            400,
                            json!({"message": "A file with this name already exists"}),
                        );
                    }
                    "update" if !exists => {
                        return answer(
                            400,
                            json!({"message": "A file with this name doesn't exist"}),
                        );
                    }
                    "create" | "update" => {
                        assert_eq!(a["encoding"], "text");
                        files.insert(path, a["content"].clone());
                    }
                    other => panic!("unexpected action {other}"),
                }
            }
            r.commits += 1;
            let id = format!("{:040x}", r.commits);
            answer(
                201,
                json!({"id": id, "short_id": &id[..8], "title": field("commit_message")}),
            )
        }
        _ => answer(404, json!({"message": "404 Not Found"})),
    }
}

async fn gitlab(remote: Remote) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(remote));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), shared)
}

fn take_seen(remote: &Shared) -> Vec<Seen> {
    std::mem::take(&mut remote.lock().unwrap().seen)
}

/// `(action, path)` of the one commit request among `seen`.
fn one_commit(seen: &[Seen]) -> (Seen, Vec<(String, String)>) {
    let commits: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/repository/commits"))
        .collect();
    assert_eq!(commits.len(), 1, "{seen:#?}");
    let c = commits[0].clone();
    let actions = c
        .form
        .iter()
        .filter(|(k, _)| k == "actions[][action]" || k == "actions[][file_path]")
        .map(|(_, v)| v.clone())
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    (c, actions)
}

#[tokio::test]
async fn gitlab_gets_one_commit_of_creates_then_only_the_updates() {
    let mut remote = Remote {
        default_branch: "main".into(),
        ..Default::default()
    };
    remote.branches.insert("main".into(), BTreeMap::new());
    remote.branches.insert("memory".into(), BTreeMap::new());
    let (url, remote) = gitlab(remote).await;
    let repo = GitlabRepo::new(&url, PROJECT, "memory", TOKEN);
    assert!(!format!("{repo:?}").contains(TOKEN));
    let files = first_files();

    let id = repo.commit(&files, "memory: 3 episodes").await.unwrap();
    assert_eq!(id.as_deref(), Some(format!("{:040x}", 1).as_str()));
    let seen = take_seen(&remote);
    assert!(
        seen.iter().all(|s| s.token.as_deref() == Some(TOKEN)),
        "{seen:#?}"
    );
    let (commit, actions) = one_commit(&seen);
    let form: BTreeMap<&str, &str> = commit
        .form
        .iter()
        .filter(|(k, _)| !k.starts_with("actions"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(form["branch"], "memory");
    assert_eq!(form["commit_message"], "memory: 3 episodes");
    assert_eq!(form["author_name"], "Hopper");
    assert!(!form.contains_key("start_branch"));
    let expected: Vec<(String, String)> = files
        .keys()
        .map(|p| ("create".to_string(), p.clone()))
        .collect();
    assert_eq!(actions, expected);
    assert_eq!(remote.lock().unwrap().branches["memory"], files);
    assert_eq!(
        repo.read("README.md").await.unwrap().as_ref(),
        Some(&files["README.md"]),
        "read back through the files API"
    );
    assert_eq!(repo.read("no/such.md").await.unwrap(), None);
    take_seen(&remote);

    // Nothing changed: files read, no commit.
    assert_eq!(repo.commit(&files, "memory: again").await.unwrap(), None);
    let seen = take_seen(&remote);
    assert!(seen.iter().all(|s| s.method == "GET"), "{seen:#?}");
    assert_eq!(remote.lock().unwrap().commits, 1);

    // More episodes: the changed files are updates, unchanged ones are left out.
    let snapshot = render(
        None,
        &[
            episode(1, EpisodeKind::Routed, "backend", "Database migration"),
            episode(2, EpisodeKind::Routed, "frontend", "Login page"),
            episode(3, EpisodeKind::Completed, "backend", "Database migration"),
            episode(4, EpisodeKind::Failed, "backend", "Database index"),
        ],
    );
    let changed: BTreeSet<&String> = snapshot
        .files
        .iter()
        .filter(|(p, c)| files.get(*p) != Some(*c))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.contains(&"projects/backend.md".to_string()));
    assert!(!changed.contains(&"projects/frontend.md".to_string()));
    let id = repo
        .commit(&snapshot.files, "memory: 1 episode")
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some(format!("{:040x}", 2).as_str()));
    let (_, actions) = one_commit(&take_seen(&remote));
    let expected: Vec<(String, String)> = changed
        .iter()
        .map(|p| ("update".to_string(), (*p).clone()))
        .collect();
    assert_eq!(actions, expected);
    assert_eq!(remote.lock().unwrap().branches["memory"], snapshot.files);
}

#[tokio::test]
async fn a_missing_gitlab_branch_is_created_from_the_default_branch() {
    let mut remote = Remote {
        default_branch: "main".into(),
        ..Default::default()
    };
    // The default branch already has a README someone wrote and our README.
    let files = first_files();
    let mut main = BTreeMap::new();
    main.insert("README.md".to_string(), files["README.md"].clone());
    main.insert("NOTES.md".to_string(), "by hand\n".to_string());
    remote.branches.insert("main".into(), main);
    let (url, remote) = gitlab(remote).await;
    let repo = GitlabRepo::new(format!("{url}/"), PROJECT, "memory", TOKEN);

    let id = repo.commit(&files, "memory: first").await.unwrap();
    assert!(id.is_some());
    let seen = take_seen(&remote);
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.ends_with("/repository/branches/memory")),
        "{seen:#?}"
    );
    let (commit, actions) = one_commit(&seen);
    let start: Vec<&(String, String)> = commit
        .form
        .iter()
        .filter(|(k, _)| k == "start_branch")
        .collect();
    assert_eq!(start, [&("start_branch".to_string(), "main".to_string())]);
    // Compared with the default branch: its identical README is not sent again.
    assert!(
        !actions.iter().any(|(_, p)| p == "README.md"),
        "{actions:?}"
    );
    assert!(actions.iter().all(|(a, _)| a == "create"));
    let r = remote.lock().unwrap();
    assert_eq!(r.branches["memory"]["NOTES.md"], "by hand\n");
    assert_eq!(r.branches["memory"]["profile.json"], files["profile.json"]);
    assert!(!r.branches["main"].contains_key("profile.json"));
}

#[tokio::test]
async fn gitlab_failures_are_split_into_retry_and_permanent() {
    for (status, retry) in [(502, true), (429, true), (403, false), (400, false)] {
        let mut remote = Remote {
            default_branch: "main".into(),
            fail_commits: Some(status),
            ..Default::default()
        };
        remote.branches.insert("memory".into(), BTreeMap::new());
        let (url, _remote) = gitlab(remote).await;
        let repo = GitlabRepo::new(&url, PROJECT, "memory", TOKEN);
        let err = repo.commit(&first_files(), "m").await.unwrap_err();
        assert_eq!(err.is_retryable(), retry, "{status}: {err}");
    }
    // A revoked token is permanent.
    let (url, _remote) = gitlab(Remote::default()).await;
    let repo = GitlabRepo::new(&url, PROJECT, "memory", "glpat-wrong");
    let err = repo.commit(&first_files(), "m").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}
