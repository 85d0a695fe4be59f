//! Routing decisions with 1,000 projects registered, single-threaded, each decision timed on
//! its own (decisions/s, p50, p99, max):
//!
//! - `rules`: the rules provider alone — 1,000 projects, each with 4 keywords, 3 tags, 1-2
//!   capabilities, a `github:org/repo-N` source (some a Slack channel too), a few with a
//!   `priority_boost` or `priorities`; tasks from a fixed mix (one project by keyword, by tag,
//!   by source, by required capability; several; none), titles ~60 characters, descriptions
//!   ~500;
//! - `capabilities`: the capabilities provider alone — the same 1,000 projects with 1-3
//!   executors of 3-6 capabilities; tasks with 1-2 required capabilities and tags;
//! - `chain`: `[rules, capabilities]` through `Chain` and `Router::decide_now` (what ingest
//!   runs), explanation steps included;
//!
//! beside, in the same run, a peer and a ceiling on the same tasks: the naive loop the index
//! replaced (for each project, for each keyword, `text.contains(&k.to_lowercase())`, tags and
//! sources by comparison), and the cost of lowercasing the task text and looking for one
//! keyword in it. Target (the issue): ≥ 50,000 decisions/s and p99 < 1 ms.
//!
//! `cargo bench --bench routing` prints the figures; HOPPER_BENCH_PROJECTS (default 1000) and
//! HOPPER_BENCH_DECISIONS (default 200000; the naive peer runs a tenth) scale it. Under
//! `cargo test --benches` (no `--bench` argument) it runs a small smoke pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hopper::config::{ProjectRule, RoutingRules};
use hopper::domain::{Priority, Scope, SourceRef, TaskDraft};
use hopper::routing::{
    CapabilitiesProvider, Chain, ExecutorInfo, LiveRules, ProjectInfo, Provider, Route, Router,
    RulesProvider, Verdict,
};

const TARGET_RATE: f64 = 50_000.0;
const TARGET_P99_MS: f64 = 1.0;

/// Shared capabilities: executors draw 3-6 of them, rules 1-2.
const CAPS: &[&str] = &[
    "rust",
    "python",
    "go",
    "typescript",
    "react",
    "terraform",
    "aws",
    "gcp",
    "kubernetes",
    "postgres",
    "sqlite",
    "redis",
    "kafka",
    "grpc",
    "graphql",
    "docker",
    "ansible",
    "java",
    "kotlin",
    "swift",
    "android",
    "ios",
    "ml",
    "pytorch",
    "cuda",
    "security",
    "docs",
    "design",
    "sql",
    "bash",
];

/// Words for titles and descriptions; none is a keyword.
const FILLER: &[&str] = &[
    "the", "build", "fails", "when", "users", "open", "page", "after", "update", "with", "slow",
    "response", "please", "check", "logs", "and", "fix", "error", "in", "module", "that",
    "handles", "requests", "from", "clients", "on", "mobile", "we", "saw", "it", "twice", "this",
    "week", "also", "timeout", "retry", "cache", "config", "deploy", "review", "tests", "flaky",
];

const SYLLABLES: &[&str] = &[
    "ka", "zu", "mor", "vel", "tri", "ox", "pan", "qui", "dra", "len", "fos", "gim", "hub", "jet",
    "wex", "yor", "bli", "cru", "nep", "sto",
];

/// A small deterministic generator (xorshift64*), so every run draws the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Project `i`'s keyword `k`: a made-up word, unique to the project.
fn keyword(i: usize, k: usize) -> String {
    let n = i * 4 + k;
    let s = SYLLABLES.len();
    format!(
        "{}{}{}{}",
        SYLLABLES[n % s],
        SYLLABLES[(n / s) % s],
        SYLLABLES[(n / s / s) % s],
        SYLLABLES[(n / s / s / s) % s]
    )
}

fn name(i: usize) -> String {
    format!("proj-{i:04}")
}

/// Tags: one unique (`team-N`), two shared (`area-K`, 1 in 100 projects each).
fn tags(i: usize) -> [String; 3] {
    [
        format!("team-{i}"),
        format!("area-{}", i % 100),
        format!("area-{}", (i * 7 + 3) % 100),
    ]
}

struct World {
    rules: RoutingRules,
    projects: Vec<ProjectInfo>,
}

fn world(n: usize) -> World {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rules = RoutingRules::default();
    let mut projects = Vec::with_capacity(n);
    for i in 0..n {
        let mut rule = ProjectRule {
            keywords: (0..4).map(|k| keyword(i, k)).collect(),
            tags: tags(i).to_vec(),
            capabilities: (0..1 + i % 2).map(|_| rng.pick(CAPS).to_owned()).collect(),
            sources: vec![format!("github:org/repo-{i}")],
            ..ProjectRule::default()
        };
        rule.capabilities.push(format!("skill-{i}"));
        if i % 5 == 0 {
            rule.sources.push(format!("slack:c{i:06}"));
        }
        if i % 10 == 0 {
            rule.priority_boost.insert(format!("area-{}", i % 100), 1.5);
        }
        if i % 50 == 0 {
            rule.priorities.push("urgent".into());
        }
        rules.projects.insert(name(i), rule);

        let executors: Vec<ExecutorInfo> = (0..1 + rng.below(3))
            .map(|e| {
                let mut caps: Vec<String> = Vec::new();
                while caps.len() < 3 + rng.below(4) {
                    let c = rng.pick(CAPS).to_owned();
                    if !caps.contains(&c) {
                        caps.push(c);
                    }
                }
                if e == 0 {
                    caps.push(format!("skill-{i}"));
                }
                ExecutorInfo {
                    name: format!("{}-bot-{e}", name(i)),
                    capabilities: caps,
                }
            })
            .collect();
        let mut capabilities: Vec<String> = Vec::new();
        for c in executors.iter().flat_map(|e| &e.capabilities) {
            if !capabilities.contains(c) {
                capabilities.push(c.clone());
            }
        }
        projects.push(ProjectInfo {
            name: name(i),
            capabilities,
            executors,
        });
    }
    World { rules, projects }
}

fn filler(rng: &mut Rng, chars: usize) -> String {
    let mut s = String::with_capacity(chars + 12);
    while s.len() < chars {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(rng.pick(FILLER));
    }
    s
}

/// Filler text with `word` somewhere in it.
fn text_with(rng: &mut Rng, chars: usize, word: &str) -> String {
    let before = filler(rng, chars / 3);
    let after = filler(rng, chars.saturating_sub(before.len() + word.len() + 2));
    format!("{before} {word} {after}")
}

/// What a task of the mix is meant to match (checked before timing).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Keyword,
    Tag,
    Source,
    Capability,
    Several,
    Nothing,
}

const KINDS: [Kind; 6] = [
    Kind::Keyword,
    Kind::Tag,
    Kind::Source,
    Kind::Capability,
    Kind::Several,
    Kind::Nothing,
];

/// The rules mix: task `d` and, when it should match exactly one project, which.
fn rules_task(rng: &mut Rng, n: usize, kind: Kind) -> (TaskDraft, Option<usize>) {
    let p = rng.below(n);
    let mut t = TaskDraft {
        title: filler(rng, 60),
        description: filler(rng, 500),
        ..TaskDraft::default()
    };
    match kind {
        Kind::Keyword => {
            let k = keyword(p, rng.below(4));
            t.title = text_with(rng, 60, &k);
        }
        Kind::Tag => t.tags = vec![format!("team-{p}"), "bug".into()],
        Kind::Source => {
            t.source = Some(SourceRef {
                kind: "github".into(),
                container: Some(format!("org/repo-{p}")),
                ..SourceRef::default()
            })
        }
        Kind::Capability => t.required_capabilities = vec![format!("skill-{p}")],
        Kind::Several => {
            let q = rng.below(n);
            t.description = text_with(rng, 500, &keyword(q, 0));
            t.tags = vec![format!("area-{}", rng.below(100)), format!("team-{p}")];
            t.required_capabilities = vec![rng.pick(CAPS).to_owned()];
            t.priority = Priority::Urgent;
        }
        Kind::Nothing => t.tags = vec!["misc".into()],
    }
    let single = matches!(
        kind,
        Kind::Keyword | Kind::Tag | Kind::Source | Kind::Capability
    )
    .then_some(p);
    (t, single)
}

/// The capabilities mix: 1-2 required capabilities (one project's own skill, or shared ones)
/// and 1-3 tags.
fn capability_task(rng: &mut Rng, n: usize) -> (TaskDraft, Option<usize>) {
    let p = rng.below(n);
    let mut t = TaskDraft {
        title: filler(rng, 60),
        description: filler(rng, 500),
        ..TaskDraft::default()
    };
    let single = match rng.below(3) {
        0 => {
            t.required_capabilities = vec![format!("skill-{p}"), rng.pick(CAPS).to_owned()];
            None
        }
        1 => {
            t.required_capabilities = vec![format!("skill-{p}")];
            Some(p)
        }
        _ => {
            let a = rng.pick(CAPS);
            let b = rng.pick(CAPS);
            t.required_capabilities = if a == b {
                vec![a.to_owned()]
            } else {
                vec![a.to_owned(), b.to_owned()]
            };
            None
        }
    };
    t.tags = (0..1 + rng.below(3))
        .map(|_| rng.pick(CAPS).to_owned())
        .collect();
    (t, single)
}

/// The loop the index replaced, as the peer: every project, every keyword lowercased and
/// looked for in the lowercased text, tags and sources compared; the best score.
fn naive(rules: &RoutingRules, t: &TaskDraft) -> Option<usize> {
    let text = format!("{} {}", t.title, t.description).to_lowercase();
    let source = t.source.as_ref().map(|s| {
        let kind = s.kind.to_lowercase();
        let full = s
            .container
            .as_ref()
            .map(|c| format!("{kind}:{}", c.to_lowercase()));
        (kind, full)
    });
    let mut best: Option<(f64, usize)> = None;
    for (i, rule) in rules.projects.values().enumerate() {
        let mut score = 0.0;
        for k in &rule.keywords {
            if text.contains(&k.to_lowercase()) {
                score += 2.0;
            }
        }
        for tag in &t.tags {
            if rule.tags.contains(tag) {
                score += 3.0;
            }
        }
        for c in &t.required_capabilities {
            if rule.capabilities.contains(c) {
                score += 5.0;
            }
        }
        if let Some((kind, full)) = &source {
            for s in &rule.sources {
                let s = s.to_lowercase();
                if &s == kind || Some(&s) == full.as_ref() {
                    score += 4.0;
                }
            }
        }
        if score > 0.0 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Per-decision latencies and the wall time of the whole run.
struct Run {
    lat: Vec<Duration>,
    wall: Duration,
}

fn time(tasks: &[TaskDraft], n: usize, f: &dyn Fn(&TaskDraft)) -> Run {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for d in 0..n {
        let t = &tasks[d % tasks.len()];
        let at = Instant::now();
        f(black_box(t));
        lat.push(at.elapsed());
    }
    let wall = start.elapsed();
    lat.sort_unstable();
    Run { lat, wall }
}

fn report(label: &str, r: &Run, target: bool) {
    let rate = r.lat.len() as f64 / r.wall.as_secs_f64();
    let p99 = common::pct(&r.lat, 0.99);
    let verdict = if !target {
        ""
    } else if rate >= TARGET_RATE && p99 < TARGET_P99_MS {
        "  meets target"
    } else {
        "  MISSES target"
    };
    println!(
        "{label:<34} {:>7} decisions: {rate:>10.0} /s  p50 {:.4} ms  p99 {:.4} ms  max {:.3} ms{verdict}",
        r.lat.len(),
        common::pct(&r.lat, 0.5),
        p99,
        common::pct(&r.lat, 1.0),
    );
}

fn chosen(a: &hopper::routing::Answer) -> Option<&str> {
    match &a.verdict {
        Verdict::Decided(c) => Some(c.project.as_str()),
        Verdict::Abstained(_) => None,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let (n, decisions) = if full {
        (
            env("HOPPER_BENCH_PROJECTS").unwrap_or(1_000),
            env("HOPPER_BENCH_DECISIONS").unwrap_or(200_000),
        )
    } else {
        (50, 600)
    };
    let World { rules, projects } = world(n);
    // As the engine hands it to routing: with its capability index.
    let projects = hopper::routing::Projects::new(projects);
    let live = LiveRules::new(rules.clone());
    let rules_p = Arc::new(RulesProvider::new(live.clone()));
    let caps_p = Arc::new(CapabilitiesProvider);
    let chain = Chain::new(
        vec![
            rules_p.clone() as Arc<dyn Provider>,
            caps_p.clone() as Arc<dyn Provider>,
        ],
        0.5,
        live.clone(),
    );

    // 600 distinct tasks per mix, cycled: enough that no branch predictor learns one task.
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mixed: Vec<(TaskDraft, Option<usize>)> = (0..600)
        .map(|d| rules_task(&mut rng, n, KINDS[d % KINDS.len()]))
        .collect();
    let cap_mix: Vec<(TaskDraft, Option<usize>)> =
        (0..600).map(|_| capability_task(&mut rng, n)).collect();

    // The mix does what it says: single matches go to their project, `Nothing` to nobody, and
    // the peer agrees with the rules provider on each.
    for (d, (t, single)) in mixed.iter().enumerate() {
        let a = rules_p.answer(t, &projects);
        let got = chosen(&a);
        if let Some(p) = single {
            assert_eq!(got, Some(name(*p).as_str()), "{:?}: {t:?}", KINDS[d % 6]);
            assert_eq!(naive(&rules, t), Some(*p));
        }
        if KINDS[d % KINDS.len()] == Kind::Nothing {
            assert_eq!(got, None, "{t:?}");
        }
        let routed = chain.decide_now(Scope::Global, t, &projects).unwrap();
        assert!(routed.explanation.is_some());
    }
    for (t, single) in &cap_mix {
        if let Some(p) = single {
            assert_eq!(
                chosen(&caps_p.answer(t, &projects)),
                Some(name(*p).as_str())
            );
        }
    }
    let mixed: Vec<TaskDraft> = mixed.into_iter().map(|(t, _)| t).collect();
    let cap_mix: Vec<TaskDraft> = cap_mix.into_iter().map(|(t, _)| t).collect();
    let routed = mixed
        .iter()
        .filter(|t| {
            matches!(
                chain.decide_now(Scope::Global, t, &projects).unwrap().route,
                Route::Project(_)
            )
        })
        .count();

    println!(
        "routing, {n} projects, single thread ({routed} of {} mixed tasks routed to a project; target ≥ {TARGET_RATE:.0}/s, p99 < {TARGET_P99_MS} ms)",
        mixed.len()
    );
    // HOPPER_BENCH_ONLY=caps runs only the figures whose label contains `caps` (one path
    // under a profiler).
    let only = std::env::var("HOPPER_BENCH_ONLY").unwrap_or_default();
    let figure =
        |label: &str, tasks: &[TaskDraft], n: usize, target: bool, f: &dyn Fn(&TaskDraft)| {
            if label.contains(only.as_str()) {
                report(label, &time(tasks, n, f), target && full);
            }
        };
    figure(
        "ceiling: lowercase + 1 contains",
        &mixed,
        decisions,
        false,
        &|t| {
            black_box(
                format!("{} {}", t.title, t.description)
                    .to_lowercase()
                    .contains("kazumorvel"),
            );
        },
    );
    figure("rules (index), mix", &mixed, decisions, true, &|t| {
        black_box(rules_p.answer(t, &projects));
    });
    figure(
        "peer: naive loop, mix",
        &mixed,
        (decisions / 10).max(1),
        false,
        &|t| {
            black_box(naive(&rules, t));
        },
    );
    figure("capabilities, caps", &cap_mix, decisions, true, &|t| {
        black_box(caps_p.answer(t, &projects));
    });
    figure(
        "chain [rules, capabilities], mix",
        &mixed,
        decisions,
        true,
        &|t| {
            black_box(chain.decide_now(Scope::Global, t, &projects));
        },
    );
    figure(
        "chain [rules, capabilities], caps",
        &cap_mix,
        decisions,
        true,
        &|t| {
            black_box(chain.decide_now(Scope::Global, t, &projects));
        },
    );
}
