//! The messages sent to the model. Deterministic: the same request gives the same text, so
//! answers can be compared and cached by prompt.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::DecomposeRequest;
use crate::routing::remote::{Candidate, RouteRequest, TaskSummary};

/// The most of a task description put in a prompt, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;

const ROUTE_SYSTEM: &str = "You are Hopper's router. Hopper receives tasks and hands each \
to the one project best able to do it. Read the task and the candidate projects, then answer \
ONLY a JSON object, with no other text: {\"project\": <one of the candidate names, or null if \
none fits>, \"confidence\": <a number from 0 to 1>, \"reason\": \"<one short sentence>\", \
\"needs_orchestration\": <true if the task needs several steps or executors, else false>}.";

const DECOMPOSE_SYSTEM: &str = "You are Hopper's planner. Split the task into phases done \
one after another, each made of tasks that can be done independently. Answer ONLY a JSON \
object, with no other text: {\"phases\": [{\"name\": \"<phase name>\", \"tasks\": \
[{\"title\": \"<short title>\", \"description\": \"<what to do>\", \"tags\": [\"<tag>\"]}]}]}.";

/// The chat messages asking where `req`'s task goes, showing at most `max_projects`
/// candidates (0: all).
pub fn route_messages(req: &RouteRequest, max_projects: usize) -> Value {
    let mut user = String::new();
    write_task(&mut user, &req.task);
    let shown = select_candidates(&req.task, &req.projects, max_projects);
    let left_out = req.projects.len() - shown.len();
    let _ = write!(user, "\nCandidate projects ({}", shown.len());
    if left_out > 0 {
        let _ = write!(
            user,
            " shown; {left_out} less related project{} left out",
            if left_out == 1 { " was" } else { "s were" }
        );
    }
    user.push_str("):\n");
    if shown.is_empty() {
        user.push_str("(none)\n");
    }
    for c in shown {
        let _ = writeln!(
            user,
            "- name: {}; capabilities: {}; executors: {}",
            c.name,
            list(&c.capabilities),
            list(&c.executors)
        );
    }
    user.push_str("\nAnswer with the JSON object only.");
    messages(ROUTE_SYSTEM, &user)
}

/// The chat messages asking for a plan of `req`'s task.
pub fn decompose_messages(req: &DecomposeRequest) -> Value {
    let mut user = String::new();
    write_task(&mut user, &req.task);
    let _ = writeln!(user, "\nProject: {}", req.project);
    if !req.template_phases.is_empty() {
        let _ = writeln!(
            user,
            "Use these phases unless the task clearly needs others: {}",
            req.template_phases.join(", ")
        );
    }
    let _ = write!(
        user,
        "Limits: 1 to {} phases, 1 to {} tasks in each phase; every task has a non-empty \
         title.\n\nAnswer with the JSON object only.",
        req.max_phases, req.max_tasks_per_phase
    );
    messages(DECOMPOSE_SYSTEM, &user)
}

fn messages(system: &str, user: &str) -> Value {
    json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ])
}

fn write_task(out: &mut String, t: &TaskSummary) {
    out.push_str("Task:\n");
    if let Some(id) = &t.id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "title: {}", quoted(&t.title));
    let _ = writeln!(out, "description: {}", quoted(&description(&t.description)));
    let _ = writeln!(out, "tags: {}", list(&t.tags));
    let _ = writeln!(out, "priority: {}", t.priority);
    let _ = writeln!(
        out,
        "required capabilities: {}",
        list(&t.required_capabilities)
    );
    if let Some(source) = &t.source {
        let _ = writeln!(out, "source: {source}");
    }
}

/// The description, cut to [`MAX_DESCRIPTION_CHARS`] with a note of how much was left out.
pub fn description(d: &str) -> String {
    let total = d.chars().count();
    if total <= MAX_DESCRIPTION_CHARS {
        return d.to_owned();
    }
    let mut cut: String = d.chars().take(MAX_DESCRIPTION_CHARS).collect();
    let _ = write!(
        cut,
        " […{} more characters left out]",
        total - MAX_DESCRIPTION_CHARS
    );
    cut
}

/// A JSON string literal: newlines and quotes in user text cannot break the prompt's layout.
fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// Lower-case words of three or more letters or digits.
fn words(text: &str, into: &mut BTreeSet<String>) {
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.chars().count() >= 3 {
            into.insert(w.to_lowercase());
        }
    }
}

/// At most `max` candidates (0: all): those sharing the most tags, capabilities or words with
/// the task first, then by name.
pub fn select_candidates<'a>(
    task: &TaskSummary,
    projects: &'a [Candidate],
    max: usize,
) -> Vec<&'a Candidate> {
    let mut task_words = BTreeSet::new();
    for t in task.tags.iter().chain(&task.required_capabilities) {
        task_words.insert(t.to_lowercase());
        words(t, &mut task_words);
    }
    words(&task.title, &mut task_words);
    words(&task.description, &mut task_words);
    let score = |c: &Candidate| {
        let mut own = BTreeSet::new();
        own.insert(c.name.to_lowercase());
        words(&c.name, &mut own);
        for cap in &c.capabilities {
            own.insert(cap.to_lowercase());
            words(cap, &mut own);
        }
        own.intersection(&task_words).count()
    };
    let mut scored: Vec<(usize, &Candidate)> = projects.iter().map(|c| (score(c), c)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let keep = if max == 0 { scored.len() } else { max };
    scored.into_iter().take(keep).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(description: &str) -> TaskSummary {
        TaskSummary {
            id: None,
            title: "Rotate the TLS certificates".into(),
            description: description.into(),
            tags: vec!["security".into()],
            priority: "high".into(),
            required_capabilities: vec![],
            source: Some(json!({"kind": "github"})),
        }
    }

    fn candidate(name: &str, caps: &[&str]) -> Candidate {
        Candidate {
            name: name.into(),
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            executors: vec![format!("{name}-bot")],
        }
    }

    fn request() -> RouteRequest {
        RouteRequest {
            task: task("Certificates expire next week."),
            projects: vec![
                candidate("zeta", &[]),
                candidate("alpha", &["frontend"]),
                candidate("sark", &["security"]),
                candidate("beta", &["certificates"]),
            ],
        }
    }

    fn user_text(messages: &Value) -> String {
        messages[1]["content"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_same_request_gives_the_same_prompt() {
        let a = route_messages(&request(), 0);
        let b = route_messages(&request(), 0);
        assert_eq!(a, b);
        assert_eq!(a[0]["role"], "system");
        assert!(
            a[0]["content"]
                .as_str()
                .unwrap()
                .contains("Hopper's router")
        );
        let user = user_text(&a);
        assert!(user.contains("title: \"Rotate the TLS certificates\""));
        assert!(user.contains("priority: high"));
        assert!(user.contains("source: {\"kind\":\"github\"}"));
        assert!(user.contains("- name: sark; capabilities: security; executors: sark-bot"));
    }

    #[test]
    fn related_candidates_come_first_and_the_rest_are_counted() {
        let req = request();
        let names: Vec<_> = select_candidates(&req.task, &req.projects, 0)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["beta", "sark", "alpha", "zeta"]);
        let user = user_text(&route_messages(&req, 2));
        assert!(user.contains("(2 shown; 2 less related projects were left out)"));
        assert!(user.contains("name: beta") && user.contains("name: sark"));
        assert!(!user.contains("name: alpha") && !user.contains("name: zeta"));
    }

    #[test]
    fn long_descriptions_are_cut() {
        let long = "é".repeat(MAX_DESCRIPTION_CHARS + 10);
        let cut = description(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_DESCRIPTION_CHARS)));
        assert!(cut.ends_with(" […10 more characters left out]"));
        let mut req = request();
        req.task.description = long;
        let user = user_text(&route_messages(&req, 0));
        assert!(user.chars().count() < MAX_DESCRIPTION_CHARS + 1_000);
        assert_eq!(description("short"), "short");
    }
}
