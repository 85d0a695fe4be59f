//! Report text and labels from templates (minijinja). The context: `moment`, `project`,
//! `executor`, `reason`, `notes`, `quality`, and `task` (the task as the API shows it).

use minijinja::Environment;
use serde_json::{Value, json};

use crate::config::ReportPolicy;
use crate::domain::{Feedback, Moment, Task};

/// The default message of each moment.
fn default_template(m: Moment) -> &'static str {
    match m {
        Moment::Routed => {
            "Hopper routed this to **{{ project }}**.{% if reason %} ({{ reason }}){% endif %}"
        }
        Moment::Claimed => "**{{ executor }}** picked this up.",
        Moment::Completed => {
            "Done{% if project %} in **{{ project }}**{% endif %}.\
             {% if quality %} Quality {{ quality }}/5.{% endif %}\
             {% if notes %}\n\n{{ notes }}{% endif %}"
        }
        Moment::Failed => "Failed{% if reason %}: {{ reason }}{% endif %}.",
    }
}

/// Notes and quality: the task's own feedback, else its children's (a routed task's feedback
/// is the aggregate of what its project reported).
fn feedback_of(f: Option<&Feedback>) -> (Option<String>, Option<f64>) {
    let Some(f) = f else { return (None, None) };
    let mut notes = f.notes.clone();
    let mut quality = f.quality_score;
    for c in &f.children {
        let Some(cf) = c.feedback.as_deref() else {
            continue;
        };
        let (n, q) = feedback_of(Some(cf));
        notes = notes.or(n);
        quality = quality.or(q);
    }
    (notes, quality)
}

/// The template context of `task` at `moment`.
pub fn context(task: &Task, moment: Moment, project: Option<&str>) -> Value {
    let (notes, quality) = feedback_of(task.feedback.as_ref());
    let reason = match moment {
        Moment::Failed => task.failure_reason.clone(),
        Moment::Routed => task.routing_reason.clone(),
        _ => None,
    };
    json!({
        "moment": moment.as_str(),
        "project": project,
        "executor": task.claimed_by,
        "reason": reason,
        "notes": notes,
        "quality": quality,
        "task": task,
    })
}

/// The message and labels for `moment` under `policy`.
pub fn render(
    policy: &ReportPolicy,
    moment: Moment,
    ctx: &Value,
) -> Result<(String, Vec<String>), String> {
    let env = Environment::new();
    let template = policy
        .templates
        .get(&moment)
        .map(String::as_str)
        .unwrap_or_else(|| default_template(moment));
    let text = env
        .render_str(template, ctx)
        .map_err(|e| format!("template for `{}`: {e}", moment.as_str()))?;
    let mut labels = Vec::new();
    for l in policy.labels.get(&moment).into_iter().flatten() {
        let label = env
            .render_str(l, ctx)
            .map_err(|e| format!("label `{l}`: {e}"))?;
        if !label.trim().is_empty() {
            labels.push(label);
        }
    }
    Ok((text, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        serde_json::from_value(json!({
            "id": "task_0195a0a0a0a07000800000000000000a", "instance_id": "hopper-global",
            "title": "Fix the login", "description": "", "tags": [], "priority": "normal",
            "needs_orchestration": false, "required_capabilities": [], "status": "done",
            "attempts": 0, "created_at": "2026-12-06T08:00:00Z", "updated_at": "2026-12-06T08:00:00Z",
            "feedback": {"children": [{"instance_id": "hopper-web", "task_id": "t", "title": "Fix the login",
                "status": "done", "feedback": {"notes": "patched the cookie", "quality_score": 4.5}}]}
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_custom_templates_render() {
        let ctx = context(&task(), Moment::Completed, Some("web"));
        let (text, labels) = render(&ReportPolicy::default(), Moment::Completed, &ctx).unwrap();
        assert_eq!(
            text,
            "Done in **web**. Quality 4.5/5.\n\npatched the cookie"
        );
        assert!(labels.is_empty());
        let mut p = ReportPolicy::default();
        p.templates.insert(
            Moment::Completed,
            "{{ task.title }} is {{ task.status }}".into(),
        );
        p.labels
            .insert(Moment::Completed, vec!["hopper:done/{{ project }}".into()]);
        let (text, labels) = render(&p, Moment::Completed, &ctx).unwrap();
        assert_eq!(text, "Fix the login is done");
        assert_eq!(labels, ["hopper:done/web"]);
        p.templates.insert(Moment::Completed, "{{ oops".into());
        assert!(
            render(&p, Moment::Completed, &ctx)
                .unwrap_err()
                .contains("completed")
        );
    }
}
