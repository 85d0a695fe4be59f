//! Human-readable tables; `--json` prints the API's JSON instead.

use crate::domain::{Instance, InstanceStats, InstanceTree, Task};

pub fn print_value<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cannot print: {e}"),
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub fn print_task(t: &Task) {
    println!(
        "{}  [{}] {}  ({})",
        t.id,
        t.status,
        t.title,
        t.priority.as_str()
    );
    println!("  instance: {}", t.instance_id);
    if let Some(r) = &t.routed_to {
        println!("  routed to: {r}");
    }
    if let Some(r) = &t.routing_reason {
        println!("  reason: {r}");
    }
    if let Some(c) = &t.claimed_by {
        println!(
            "  claimed by: {c} (lease until {})",
            t.lease_expires_at.as_deref().unwrap_or("-")
        );
    }
    if !t.tags.is_empty() {
        println!("  tags: {}", t.tags.join(", "));
    }
    if let Some(f) = &t.feedback {
        if let Some(q) = f.quality_score {
            println!("  quality: {q:.2}");
        }
        if let Some(n) = &f.notes {
            println!("  notes: {}", cut(n, 200));
        }
    }
}

pub fn print_tasks(tasks: &[Task], with_instance: bool) {
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    println!(
        "{:<37} {:<9} {:<7} {:<30} TITLE",
        "ID",
        "STATUS",
        "PRIO",
        if with_instance {
            "INSTANCE"
        } else {
            "EXECUTOR"
        }
    );
    for t in tasks {
        let col = if with_instance {
            t.instance_id.to_string()
        } else {
            t.claimed_by
                .clone()
                .or(t.executor.clone())
                .unwrap_or_default()
        };
        println!(
            "{:<37} {:<9} {:<7} {:<30} {}",
            t.id,
            t.status.as_str(),
            t.priority.as_str(),
            cut(&col, 30),
            cut(&t.title, 60)
        );
    }
}

pub fn print_instances(list: &[Instance]) {
    println!("{:<40} {:<14} {:<9} PARENT", "INSTANCE", "SCOPE", "STATUS");
    for i in list {
        let parent = i
            .parent_instance_id
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        println!(
            "{:<40} {:<14} {:<9} {}",
            i.instance_id,
            i.scope.as_str(),
            i.status.as_str(),
            parent
        );
    }
}

pub fn print_stats(s: &InstanceStats) {
    let counts: Vec<String> = s.tasks.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{}: {} tasks ({})",
        s.instance_id,
        s.total,
        counts.join(" ")
    );
    if let Some(age) = s.oldest_pending_age_seconds {
        println!("oldest pending: {age}s");
    }
    if !s.children.is_empty() {
        println!("children: {}", s.children.join(", "));
    }
}

pub fn print_tree(t: &InstanceTree, prefix: &str, last: bool, root: bool) {
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    println!(
        "{prefix}{branch}{} ({}, {} open)",
        t.instance_id,
        t.scope.as_str(),
        t.open_tasks
    );
    let child_prefix = if root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    for (i, c) in t.children.iter().enumerate() {
        print_tree(c, &child_prefix, i + 1 == t.children.len(), false);
    }
}
