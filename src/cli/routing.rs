//! `hopper explain TASK`, `hopper route TASK --project P [--reason R]` and
//! `hopper decompose TASK --dry-run`: routing decisions shown, corrected and planned.

use clap::Args;

use super::output::{print_task, print_value, say};
use crate::domain::TaskId;
use crate::engine::{Plan, RerouteRequest, RoutingReport};
use crate::routing::StepOutcome;
use crate::service::HopperService;

#[derive(Debug, Args)]
pub struct RouteArgs {
    pub id: String,
    /// The project to send it to.
    #[arg(long)]
    pub project: String,
    /// Why (kept with the correction; routing memory learns from it).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DecomposeArgs {
    pub id: String,
    /// Show the plan without creating anything (the only mode: runs are made when a task is
    /// routed to orchestration).
    #[arg(long)]
    pub dry_run: bool,
}

fn tid(s: &str) -> anyhow::Result<TaskId> {
    TaskId::parse(s).map_err(anyhow::Error::msg)
}

pub async fn explain(s: &dyn HopperService, id: &str, json: bool) -> anyhow::Result<()> {
    let report = s.explain_routing(&tid(id)?).await?;
    if json {
        print_value(&report);
    } else {
        print_report(&report);
    }
    Ok(())
}

pub async fn route(s: &dyn HopperService, a: &RouteArgs, json: bool) -> anyhow::Result<()> {
    let req = RerouteRequest {
        project: a.project.clone(),
        reason: a.reason.clone(),
    };
    let task = s.reroute(&tid(&a.id)?, &req).await?;
    if json {
        print_value(&task);
    } else {
        print_task(&task);
    }
    Ok(())
}

pub async fn decompose(s: &dyn HopperService, a: &DecomposeArgs, json: bool) -> anyhow::Result<()> {
    if !a.dry_run {
        anyhow::bail!(
            "only --dry-run is supported: a run is planned when its task is routed to orchestration"
        );
    }
    let plan = s.plan(&tid(&a.id)?).await?;
    if json {
        print_value(&plan);
    } else {
        print_plan(&plan);
    }
    Ok(())
}

fn print_report(r: &RoutingReport) {
    say!(
        "task {} (global task {}): {}{}",
        r.task_id,
        r.global_task_id,
        r.status.as_str(),
        r.routed_to
            .as_ref()
            .map(|t| format!(" → {t}"))
            .unwrap_or_default()
    );
    if r.decisions.is_empty() {
        say!("  no routing decision recorded");
    }
    for d in &r.decisions {
        let to = d.to.as_deref().unwrap_or("(stays)");
        say!(
            "{}  {:<8} {} on {}: {} by {} (confidence {})",
            d.at,
            d.event,
            d.task_id,
            d.instance_id,
            to,
            d.decided_by.as_deref().unwrap_or("-"),
            d.confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or("-".into())
        );
        if let Some(why) = &d.reasoning {
            say!("    why: {why}");
        }
        if let Some(c) = &d.correction {
            say!("    correction: {c}");
        }
        for step in &d.chain {
            let mark = match step.outcome {
                StepOutcome::Decided => "decided",
                StepOutcome::Abstained => "abstained",
                StepOutcome::BelowThreshold => "too unsure",
            };
            say!(
                "    {:<13} {:<10} {}{}  ({} µs)",
                step.provider,
                mark,
                step.project
                    .as_ref()
                    .map(|p| format!("{p}: "))
                    .unwrap_or_default(),
                step.reason,
                step.latency_us
            );
            for alt in &step.alternatives {
                say!("                  also {} ({})", alt.project, alt.score);
            }
        }
    }
}

fn print_plan(p: &Plan) {
    say!("plan from {}", p.source);
    if let Some(why) = &p.fallback_reason {
        say!("  (template because {why})");
    }
    for (i, phase) in p.phases.iter().enumerate() {
        say!("phase-{}  {}", i + 1, phase.name);
        for t in &phase.tasks {
            say!(
                "  - {}{}",
                t.title,
                if t.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", t.tags.join(", "))
                }
            );
        }
    }
}
