//! Human-readable tables; `--json` prints the API's JSON instead.

use std::io::Write;

use crate::domain::{Instance, InstanceStats, InstanceTree, Task};

/// `println!` for the CLI: what is printed came in part from outside (email subjects, issue
/// titles, executor names), so control characters other than newline and tab are shown as
/// `\u{fffd}` instead of reaching the terminal, where an escape sequence could rewrite the
/// screen or the title bar. A closed pipe (`hopper list | head`) ends the process quietly.
macro_rules! say {
    () => { $crate::cli::output::say_line(String::new()) };
    ($($arg:tt)*) => { $crate::cli::output::say_line(format!($($arg)*)) };
}
pub(crate) use say;

/// Prints one line through [`say!`].
pub fn say_line(line: String) {
    let clean = terminal_safe(&line);
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{clean}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `s` with every control character but `\n` and `\t` replaced.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    s.chars()
        .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
        .collect::<String>()
        .into()
}

pub fn print_value<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => say!("{s}"),
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
    say!(
        "{}  [{}] {}  ({})",
        t.id,
        t.status,
        t.title,
        t.priority.as_str()
    );
    say!("  instance: {}", t.instance_id);
    if let Some(r) = &t.routed_to {
        say!("  routed to: {r}");
    }
    if let Some(r) = &t.routing_reason {
        say!("  reason: {r}");
    }
    if let Some(c) = &t.claimed_by {
        say!(
            "  claimed by: {c} (lease {} until {})",
            t.lease_id.as_deref().unwrap_or("-"),
            t.lease_expires_at.as_deref().unwrap_or("-")
        );
    }
    if !t.tags.is_empty() {
        say!("  tags: {}", t.tags.join(", "));
    }
    if let Some(f) = &t.feedback {
        if let Some(q) = f.quality_score {
            say!("  quality: {q:.2}");
        }
        if let Some(n) = &f.notes {
            say!("  notes: {}", cut(n, 200));
        }
    }
}

pub fn print_tasks(tasks: &[Task], with_instance: bool) {
    if tasks.is_empty() {
        say!("no tasks");
        return;
    }
    say!(
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
        say!(
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
    say!("{:<40} {:<14} {:<9} PARENT", "INSTANCE", "SCOPE", "STATUS");
    for i in list {
        let parent = i
            .parent_instance_id
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        say!(
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
    say!(
        "{}: {} tasks ({})",
        s.instance_id,
        s.total,
        counts.join(" ")
    );
    if let Some(age) = s.oldest_pending_age_seconds {
        say!("oldest pending: {age}s");
    }
    if let Some(n) = s.unassignable {
        say!("unassignable: {n} (pending, no enabled executor has the capabilities)");
    }
    if !s.children.is_empty() {
        say!("children: {}", s.children.join(", "));
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
    say!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        assert_eq!(terminal_safe("plain\ttext"), "plain\ttext");
        let shown = terminal_safe("\u{1b}]0;pwned\u{7}Subject\r\0");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("Subject"));
    }
}
