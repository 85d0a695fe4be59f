//! Decomposition: the phases and tasks of an orchestration run. The template
//! (`orchestration.phases`) by default; with `intelligence.decompose: llm` the LLM's answer,
//! bounded by `intelligence.decompose_limits`, and the template whenever that answer is
//! missing or invalid (the plan says why).

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Engine, Node};
use crate::config::DecomposeMode;
use crate::domain::{TaskDraft, TaskId};
use crate::error::Result;
use crate::routing::llm::DecomposeRequest;
use crate::routing::remote::TaskSummary;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanTask {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanPhase {
    pub name: String,
    /// Tasks the run's phase instance starts with (none from the template).
    pub tasks: Vec<PlanTask>,
}

/// The plan of an orchestration run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// `llm` or `template`.
    pub source: String,
    /// Why the template was used although `decompose` is `llm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub phases: Vec<PlanPhase>,
    /// The LLM's request and answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub trace: Option<serde_json::Value>,
}

impl Engine {
    fn template_plan(&self, why: Option<String>) -> Plan {
        let phases = &self.inner.configs.orchestration.orchestration.phases;
        Plan {
            source: "template".into(),
            fallback_reason: why,
            phases: phases
                .iter()
                .map(|p| PlanPhase {
                    name: p.clone(),
                    tasks: vec![],
                })
                .collect(),
            trace: None,
        }
    }

    /// The plan for `draft` in project `project`.
    pub(super) async fn plan_draft(&self, project: &str, draft: &TaskDraft) -> Plan {
        let configs = &self.inner.configs;
        let mode = configs.project.intelligence.decompose;
        if mode != DecomposeMode::Llm && configs.root.intelligence.decompose != DecomposeMode::Llm {
            return self.template_plan(None);
        }
        let Some(llm) = &self.inner.routing.decomposer else {
            return self.template_plan(Some(
                "the LLM is not configured (intelligence.llm.base_url or HOPPER_LLM_BASE_URL)"
                    .into(),
            ));
        };
        let limits = &configs.root.intelligence.decompose_limits;
        let req = DecomposeRequest {
            task: TaskSummary::from(draft),
            project: project.to_owned(),
            template_phases: configs.orchestration.orchestration.phases.clone(),
            max_phases: limits.max_phases.max(1),
            max_tasks_per_phase: limits.max_tasks_per_phase.max(1),
        };
        match llm.decompose(&req).await {
            Ok((plan, trace)) => Plan {
                source: "llm".into(),
                fallback_reason: None,
                phases: plan
                    .phases
                    .into_iter()
                    .map(|p| PlanPhase {
                        name: p.name,
                        tasks: p
                            .tasks
                            .into_iter()
                            .map(|t| PlanTask {
                                title: t.title,
                                description: t.description,
                                tags: t.tags,
                            })
                            .collect(),
                    })
                    .collect(),
                trace: serde_json::to_value(trace).ok(),
            },
            Err((why, trace)) => {
                let mut p = self.template_plan(Some(format!("the LLM's plan was refused: {why}")));
                p.trace = trace.and_then(|t| serde_json::to_value(t).ok());
                p
            }
        }
    }

    /// `hopper decompose TASK --dry-run`: the plan, nothing created.
    pub async fn plan_for(&self, id: &TaskId) -> Result<Plan> {
        let (task, node) = self.locate(id).await?;
        let project = match (&node.project, &task.routed_to) {
            (Some(p), _) => p.clone(),
            (None, Some(to)) => to
                .as_str()
                .strip_prefix("hopper-")
                .unwrap_or(to.as_str())
                .to_owned(),
            (None, None) => node.id().to_string(),
        };
        Ok(self.plan_draft(&project, &task.to_draft()).await)
    }

    /// Puts the plan's tasks into the run's phase instances (`phase-1`, ...).
    pub(super) async fn seed_phases(&self, run: &Node, plan: &Plan) {
        for (i, phase) in plan.phases.iter().enumerate() {
            if phase.tasks.is_empty() {
                continue;
            }
            let Ok(id) = run.id().child(&format!("phase-{}", i + 1)) else {
                continue;
            };
            let Ok(node) = self.node(&id).await else {
                continue;
            };
            for t in &phase.tasks {
                let mut draft = TaskDraft::new(t.title.clone());
                draft.description = t.description.clone();
                draft.tags = t.tags.clone();
                let added = self
                    .add_at(node.clone(), draft, None, TaskId::generate())
                    .await;
                if let Err(e) = added {
                    tracing::warn!(run = %run.id(), phase = %phase.name, error = %e, "a planned task was not added");
                }
            }
        }
    }

    /// Phase metadata for the run's children.
    pub(super) fn phase_metadata(plan: &Plan, i: usize) -> serde_json::Value {
        json!({ "phase": plan.phases[i].name, "plan": plan.source })
    }
}
