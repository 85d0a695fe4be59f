//! Validation of a remote decider's answer, shared by the LLM and Sage clients.

use super::{Candidate, RemoteOutcome, RemoteTrace, one_line};

/// A validated decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub project: String,
    pub confidence: f64,
    pub reason: String,
    pub needs_orchestration: bool,
}

/// Checks an answer object: `project` names one of `candidates` (a leading `hopper-` is
/// dropped), `confidence` is a number in 0..=1, `reason` a string (default ""),
/// `needs_orchestration` a bool (default false). `project` null or missing is a refusal.
/// `Err` is the reason to abstain.
pub fn judge(answer: &serde_json::Value, candidates: &[Candidate]) -> Result<Verdict, String> {
    let Some(obj) = answer.as_object() else {
        return Err(format!(
            "answer is not a JSON object: {}",
            one_line(&answer.to_string(), 200)
        ));
    };
    let reason = match obj.get("reason") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "answer's reason is not a string: {}",
                one_line(&other.to_string(), 200)
            ));
        }
    };
    let project = match obj.get("project") {
        None | Some(serde_json::Value::Null) => {
            let why = if reason.trim().is_empty() {
                "no reason given".to_owned()
            } else {
                one_line(&reason, 500)
            };
            return Err(format!("declined: {why}"));
        }
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(other) => {
            return Err(format!(
                "answer's project is not a string: {}",
                one_line(&other.to_string(), 200)
            ));
        }
    };
    let name = if candidates.iter().any(|c| c.name == project) {
        project.clone()
    } else {
        project
            .strip_prefix("hopper-")
            .unwrap_or(&project)
            .to_owned()
    };
    if !candidates.iter().any(|c| c.name == name) {
        return Err(format!("unknown project \"{}\"", one_line(&project, 100)));
    }
    let confidence = match obj.get("confidence") {
        Some(serde_json::Value::Number(n)) => n.as_f64().filter(|c| (0.0..=1.0).contains(c)),
        _ => None,
    };
    let Some(confidence) = confidence else {
        let shown = obj
            .get("confidence")
            .map(|c| one_line(&c.to_string(), 50))
            .unwrap_or_else(|| "missing".to_owned());
        return Err(format!(
            "answer's confidence is not a number between 0 and 1: {shown}"
        ));
    };
    let needs_orchestration = match obj.get("needs_orchestration") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "answer's needs_orchestration is not true or false: {}",
                one_line(&other.to_string(), 50)
            ));
        }
    };
    Ok(Verdict {
        project: name,
        confidence,
        reason,
        needs_orchestration,
    })
}

/// The outcome of a judged answer.
pub fn outcome(verdict: Result<Verdict, String>, trace: RemoteTrace) -> RemoteOutcome {
    match verdict {
        Ok(v) => RemoteOutcome::Decided {
            project: v.project,
            confidence: v.confidence,
            reason: v.reason,
            needs_orchestration: v.needs_orchestration,
            trace,
        },
        Err(reason) => RemoteOutcome::Abstained {
            reason,
            trace: Some(trace),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn candidates() -> Vec<Candidate> {
        ["sark", "flynn"]
            .iter()
            .map(|n| Candidate {
                name: (*n).into(),
                capabilities: vec![],
                executors: vec![],
            })
            .collect()
    }

    #[test]
    fn a_good_answer_is_a_verdict_and_hopper_prefix_is_dropped() {
        let v = judge(
            &json!({"project": "hopper-sark", "confidence": 0.8, "reason": "security",
                    "needs_orchestration": true}),
            &candidates(),
        );
        assert_eq!(
            v,
            Ok(Verdict {
                project: "sark".into(),
                confidence: 0.8,
                reason: "security".into(),
                needs_orchestration: true,
            })
        );
        let v = judge(&json!({"project": "flynn", "confidence": 1}), &candidates()).unwrap();
        assert_eq!((v.reason.as_str(), v.needs_orchestration), ("", false));
    }

    #[test]
    fn bad_answers_give_one_line_reasons() {
        let c = candidates();
        let reason = |v: serde_json::Value| judge(&v, &c).unwrap_err();
        assert_eq!(
            reason(json!({"project": "clu", "confidence": 0.5})),
            "unknown project \"clu\""
        );
        assert!(
            reason(json!({"project": "sark", "confidence": "0.8"}))
                .starts_with("answer's confidence is not a number between 0 and 1")
        );
        assert!(reason(json!({"project": "sark", "confidence": 1.5})).contains("1.5"));
        assert!(reason(json!({"project": "sark"})).ends_with("missing"));
        assert_eq!(
            reason(json!({"project": null, "reason": "nothing\nfits"})),
            "declined: nothing fits"
        );
        assert_eq!(reason(json!({})), "declined: no reason given");
        assert!(reason(json!([1])).starts_with("answer is not a JSON object"));
        assert!(
            reason(json!({"project": "sark", "confidence": 0.5, "needs_orchestration": "yes"}))
                .contains("needs_orchestration")
        );
    }
}
