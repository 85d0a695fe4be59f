//! Reading the model's answers: the JSON object in a message (also inside ```json fences or
//! surrounded by text) and the plan of a decomposition.

use serde_json::Value;

use super::{Plan, PlannedPhase};
use crate::routing::remote::one_line;

/// The JSON object in `content`: the whole text, or else the text from the first `{` to the
/// last `}` (which also strips fences and chatter). `Err` is a reason to abstain.
pub fn json_object(content: &str) -> Result<Value, String> {
    let trimmed = content.trim();
    let whole = serde_json::from_str::<Value>(trimmed);
    let parsed = match whole {
        Ok(v) => Ok(v),
        Err(e) => match (trimmed.find('{'), trimmed.rfind('}')) {
            (Some(start), Some(end)) if start < end => {
                serde_json::from_str::<Value>(&trimmed[start..=end])
            }
            _ => Err(e),
        },
    };
    let value = parsed.map_err(|e| format!("answer is not JSON: {e}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(format!(
            "answer is not a JSON object: {}",
            one_line(&value.to_string(), 200)
        ))
    }
}

/// The plan in `content`, checked against the limits. `Err` is a reason to refuse it.
pub fn plan(content: &str, max_phases: usize, max_tasks_per_phase: usize) -> Result<Plan, String> {
    let value = json_object(content)?;
    let plan: Plan = serde_json::from_value(value)
        .map_err(|e| format!("answer is not a plan of phases and tasks: {e}"))?;
    if plan.phases.is_empty() {
        return Err("the plan has no phases".to_owned());
    }
    if plan.phases.len() > max_phases {
        return Err(format!(
            "the plan has {} phases, more than the {max_phases} allowed",
            plan.phases.len()
        ));
    }
    for (i, phase) in plan.phases.iter().enumerate() {
        check_phase(i + 1, phase, max_tasks_per_phase)?;
    }
    Ok(plan)
}

fn check_phase(number: usize, phase: &PlannedPhase, max_tasks: usize) -> Result<(), String> {
    if phase.name.trim().is_empty() {
        return Err(format!("phase {number} of the plan has no name"));
    }
    let name = one_line(&phase.name, 80);
    if phase.tasks.is_empty() {
        return Err(format!(
            "phase {number} (\"{name}\") of the plan has no tasks"
        ));
    }
    if phase.tasks.len() > max_tasks {
        return Err(format!(
            "phase {number} (\"{name}\") of the plan has {} tasks, more than the {max_tasks} \
             allowed",
            phase.tasks.len()
        ));
    }
    if let Some(t) = phase.tasks.iter().position(|t| t.title.trim().is_empty()) {
        return Err(format!(
            "task {} of phase {number} (\"{name}\") has an empty title",
            t + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_in_fences_and_text() {
        let want = serde_json::json!({"project": "sark", "confidence": 0.9});
        let plain = r#"{"project": "sark", "confidence": 0.9}"#;
        assert_eq!(json_object(plain), Ok(want.clone()));
        let fenced = format!("```json\n{plain}\n```");
        assert_eq!(json_object(&fenced), Ok(want.clone()));
        let chatty = format!("Sure! Here is my answer: {plain} Hope that helps.");
        assert_eq!(json_object(&chatty), Ok(want));
    }

    #[test]
    fn non_json_and_non_objects_are_refused_with_the_parser_s_words() {
        assert_eq!(
            json_object("I think sark."),
            Err("answer is not JSON: expected value at line 1 column 1".to_owned())
        );
        assert!(
            json_object("{ not json }")
                .unwrap_err()
                .starts_with("answer is not JSON: key must be a string")
        );
        assert_eq!(
            json_object("[1, 2]"),
            Err("answer is not a JSON object: [1,2]".to_owned())
        );
    }

    #[test]
    fn plans_are_checked_against_the_limits() {
        let good = r#"{"phases":[{"name":"build","tasks":[{"title":"a"},{"title":"b","description":"d","tags":["x"]}]}]}"#;
        let p = plan(good, 2, 2).unwrap();
        assert_eq!(p.phases[0].tasks[1].tags, ["x"]);
        assert_eq!(p.phases[0].tasks[0].description, "");
        assert_eq!(
            plan(good, 2, 1),
            Err("phase 1 (\"build\") of the plan has 2 tasks, more than the 1 allowed".to_owned())
        );
        assert_eq!(
            plan(r#"{"phases":[]}"#, 2, 2),
            Err("the plan has no phases".to_owned())
        );
        let two = r#"{"phases":[{"name":"a","tasks":[{"title":"t"}]},{"name":"b","tasks":[{"title":"t"}]}]}"#;
        assert!(
            plan(two, 1, 5)
                .unwrap_err()
                .contains("more than the 1 allowed")
        );
        let empty_title = r#"{"phases":[{"name":"a","tasks":[{"title":"  "}]}]}"#;
        assert!(plan(empty_title, 1, 5).unwrap_err().contains("empty title"));
        let no_tasks = r#"{"phases":[{"name":"a","tasks":[]}]}"#;
        assert!(plan(no_tasks, 1, 5).unwrap_err().contains("has no tasks"));
        assert!(
            plan(r#"{"steps":[]}"#, 1, 5)
                .unwrap_err()
                .starts_with("answer is not a plan")
        );
    }
}
