//! Where log lines go and in what shape: stderr (stdout is the CLI's output), filtered by
//! `RUST_LOG`, as human text or, with `HOPPER_LOG_FORMAT=json`, one JSON object per line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// Whether stderr carries JSON: then every line on it must be a JSON object, the operator
/// notices of `serve` and a fatal error included, or a log collector stops at the first
/// plain one.
static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber. In JSON each line has `timestamp`, `level`, `fields`, `target` and
/// the enclosing `spans` with their ids (task, instance, delivery). A value that is neither
/// `text` nor `json` is refused rather than ignored: whoever set it expects a collector to be
/// able to parse what comes out.
pub fn init_logging() -> Result<(), String> {
    let format = match std::env::var("HOPPER_LOG_FORMAT") {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => String::new(),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("HOPPER_LOG_FORMAT is not valid UTF-8; expected `text` or `json`".into());
        }
    };
    // rmcp logs every MCP request (each one, over stateless HTTP) at info.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rmcp=warn"));
    // Colours only for a person at a terminal: in a file or a journal the escape codes would
    // be noise around every level and field name (NO_COLOR turns them off there too).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => fmt.init(),
        "json" => {
            fmt.json().init();
            JSON.store(true, Ordering::Relaxed);
        }
        _ => {
            return Err(format!(
                "HOPPER_LOG_FORMAT `{}`: expected `text` or `json`",
                format.escape_debug()
            ));
        }
    }
    Ok(())
}

/// A line for the operator on stderr (where the server listens, where the token is): as it is
/// in text, an `info` event in JSON.
pub(crate) fn notice(line: std::fmt::Arguments<'_>) {
    if JSON.load(Ordering::Relaxed) {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// The error that ends the process: `error: ...` in text, an `error` event in JSON.
pub fn report_fatal(e: &anyhow::Error) {
    if JSON.load(Ordering::Relaxed) {
        tracing::error!("{e:#}");
    } else {
        eprintln!("error: {e:#}");
    }
}
