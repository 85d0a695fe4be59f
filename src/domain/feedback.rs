use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Feedback on a finished task, with the fields of the v1.0.0 specification. Every field is
/// optional: an executor says what it knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_duration: Option<String>,
    /// 1-5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity_rating: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was_good_match: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub should_have_routed_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_feedback: Option<String>,
    /// 0.0-5.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_rework: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rework_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexpected_blockers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_skills_not_tagged: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Filled when this feedback was aggregated from delegated children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildFeedback>,
}

/// One child's contribution to an aggregated feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChildFeedback {
    pub instance_id: String,
    pub task_id: String,
    pub title: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub feedback: Option<Box<Feedback>>,
}

impl Feedback {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = self.complexity_rating
            && !(1..=5).contains(&c)
        {
            return Err("complexity_rating must be 1 to 5".into());
        }
        if let Some(q) = self.quality_score
            && (!(0.0..=5.0).contains(&q) || q.is_nan())
        {
            return Err("quality_score must be 0.0 to 5.0".into());
        }
        Ok(())
    }

    /// Folds the children's feedback into the parent's: scores average, a bad routing anywhere
    /// makes the whole a bad match, blockers and notes are collected, and the parts are kept.
    pub fn aggregate(own: Option<Feedback>, children: Vec<ChildFeedback>) -> Option<Feedback> {
        if own.is_none() && children.is_empty() {
            return None;
        }
        let mut out = own.unwrap_or_default();
        let given: Vec<&Feedback> = children
            .iter()
            .filter_map(|c| c.feedback.as_deref())
            .collect();
        let scores: Vec<f64> = given.iter().filter_map(|f| f.quality_score).collect();
        if out.quality_score.is_none() && !scores.is_empty() {
            out.quality_score = Some(scores.iter().sum::<f64>() / scores.len() as f64);
        }
        if out.was_good_match.is_none() {
            let matches: Vec<bool> = given.iter().filter_map(|f| f.was_good_match).collect();
            if !matches.is_empty() {
                out.was_good_match = Some(matches.iter().all(|m| *m));
            }
        }
        if out.complexity_rating.is_none() {
            out.complexity_rating = given.iter().filter_map(|f| f.complexity_rating).max();
        }
        if out.required_rework.is_none() && given.iter().any(|f| f.required_rework.is_some()) {
            out.required_rework = Some(given.iter().any(|f| f.required_rework == Some(true)));
        }
        for f in &given {
            for b in &f.unexpected_blockers {
                if !out.unexpected_blockers.contains(b) {
                    out.unexpected_blockers.push(b.clone());
                }
            }
        }
        if out.notes.is_none() {
            let notes: Vec<String> = children
                .iter()
                .filter_map(|c| {
                    let n = c.feedback.as_ref()?.notes.as_ref()?;
                    Some(format!("{}: {n}", c.title))
                })
                .collect();
            if !notes.is_empty() {
                out.notes = Some(notes.join("\n"));
            }
        }
        out.children = children;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(score: f64, good: bool, note: &str) -> ChildFeedback {
        ChildFeedback {
            instance_id: "hopper-x".into(),
            task_id: "task_1".into(),
            title: "t".into(),
            status: "done".into(),
            feedback: Some(Box::new(Feedback {
                quality_score: Some(score),
                was_good_match: Some(good),
                notes: Some(note.into()),
                ..Feedback::default()
            })),
        }
    }

    #[test]
    fn aggregation_averages_and_keeps_parts() {
        let agg =
            Feedback::aggregate(None, vec![child(4.0, true, "a"), child(2.0, false, "b")]).unwrap();
        assert_eq!(agg.quality_score, Some(3.0));
        assert_eq!(agg.was_good_match, Some(false));
        assert_eq!(agg.children.len(), 2);
        assert_eq!(agg.notes.as_deref(), Some("t: a\nt: b"));
        assert!(Feedback::aggregate(None, vec![]).is_none());
    }

    #[test]
    fn validation_rejects_out_of_range() {
        let f = Feedback {
            quality_score: Some(7.0),
            ..Feedback::default()
        };
        assert!(f.validate().is_err());
        let f = Feedback {
            complexity_rating: Some(0),
            ..Feedback::default()
        };
        assert!(f.validate().is_err());
    }
}
