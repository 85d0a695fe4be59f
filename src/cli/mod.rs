//! The `hopper` command line. Every command except `serve` and `migrate` works either against
//! a server (`--server` / `HOPPER_URL`) or directly on the local database.

mod commands;
mod deliveries;
mod executors;
mod inbound;
mod logging;
mod memory;
mod output;
mod routing;
mod tokens;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commands::run;
pub use inbound::MailgateError;
pub use logging::{init_logging, report_fatal};

#[derive(Debug, Parser)]
#[command(
    name = "hopper",
    version,
    about = "Webhook gateway and hierarchical task router"
)]
pub struct Cli {
    /// Root instance configuration (e.g. config/global_hopper.yaml); built-in defaults without it.
    #[arg(long, global = true, env = "HOPPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Talk to this server instead of opening the local database.
    #[arg(long, global = true, env = "HOPPER_URL")]
    pub server: Option<String>,
    /// Bearer token for --server (defaults to HOPPER_ADMIN_TOKEN, then the data dir's token).
    #[arg(long, global = true, env = "HOPPER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Database URL for the root instance (sqlite:path or postgres://...).
    #[arg(
        long,
        global = true,
        env = "HOPPER_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Where the embedded database and the admin token live (default ./.hopper).
    #[arg(long, global = true, env = "HOPPER_DATA_DIR")]
    pub data_dir: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "HOPPER_BIND")]
        bind: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Consolidate memory now: the episodes since the last run become the routing profile and
    /// pages committed to the memory repository (`memory.consolidated`; by default the git
    /// repository `memory/` in the data directory). On the local database.
    Consolidate {
        /// The instance whose episodes (the global one by default).
        #[arg(long)]
        instance: Option<String>,
        /// Render and list the files; commit nothing, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add a task (to the global instance unless --instance says otherwise).
    Add(AddArgs),
    /// List an instance's tasks.
    List(ListArgs),
    /// Same as list; --hierarchy includes child instances.
    Tasks(ListArgs),
    /// Show one task with its history.
    Show { id: String },
    /// Claim the next task for an executor.
    Next {
        #[arg(long, default_value = "hopper-global")]
        instance: String,
        #[arg(long)]
        executor: String,
        /// Seconds the claim holds without a heartbeat (default: tasks.lease_seconds).
        #[arg(long)]
        lease_seconds: Option<u64>,
    },
    /// Claim a specific task (prints the claim's lease id).
    Claim {
        id: String,
        #[arg(long)]
        executor: String,
        #[arg(long)]
        lease_seconds: Option<u64>,
    },
    /// Extend a claim's lease.
    Heartbeat {
        id: String,
        #[arg(long)]
        executor: String,
        /// The lease id the claim returned.
        #[arg(long)]
        lease: String,
        #[arg(long)]
        lease_seconds: Option<u64>,
    },
    /// Complete a task.
    Complete(CompleteArgs),
    /// Mark a task failed.
    Fail {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, requires = "lease")]
        executor: Option<String>,
        /// The lease id the claim returned (with --executor).
        #[arg(long, requires = "executor")]
        lease: Option<String>,
    },
    /// Give a claimed task back to its queue.
    Release {
        id: String,
        #[arg(long, requires = "lease")]
        executor: Option<String>,
        /// The lease id the claim returned (with --executor).
        #[arg(long, requires = "executor")]
        lease: Option<String>,
    },
    /// Cancel a task and whatever it delegated.
    Cancel { id: String },
    /// How a task was routed: each decision, the provider chain, alternatives, corrections.
    Explain { id: String },
    /// Re-route a pending (or routed, unclaimed) global task to another project.
    Route(routing::RouteArgs),
    /// The orchestration plan a task would run with (`--dry-run`).
    Decompose(routing::DecomposeArgs),
    /// Manage instances.
    #[command(subcommand)]
    Instances(InstancesCommand),
    /// Register and manage executors (who does a project's work).
    #[command(subcommand)]
    Executors(executors::ExecutorsCommand),
    /// Mint, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Task counts of an instance.
    Stats {
        #[arg(long, default_value = "hopper-global")]
        instance: String,
    },
    /// An instance, its counts and its children.
    Status {
        #[arg(long, default_value = "hopper-global")]
        instance: String,
    },
    /// Inspect and replay inbound events (webhooks, email).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect and retry outbound deliveries to executors.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// Search the episodes routing learns from.
    #[command(subcommand)]
    Memory(memory::MemoryCommand),
    /// Serve MCP (Model Context Protocol) on stdin/stdout for a coding assistant: on the local
    /// database, or against a server with --server and --token (whose rules then apply).
    Mcp {
        /// Who claims when a tool call names no executor.
        #[arg(long)]
        executor: Option<String>,
    },
    /// Post an email read on stdin to the server (for a Postfix/procmail pipe). Exits 75 on a
    /// temporary failure so the MTA retries.
    Mailgate {
        #[arg(long, env = "HOPPER_EMAIL_TOKEN", hide_env_values = true)]
        email_token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Newest first.
    List {
        #[arg(long)]
        source: Option<String>,
        /// accepted, ignored or commented.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One event with its raw body.
    Show { id: String },
    /// Read an event again with the current configuration.
    Replay { id: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub title: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, default_value = "hopper-global")]
    pub instance: String,
    #[arg(long, default_value = "normal")]
    pub priority: String,
    #[arg(long)]
    pub executor: Option<String>,
    #[arg(long)]
    pub needs_orchestration: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, default_value = "hopper-global")]
    pub instance: String,
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub hierarchy: bool,
    #[arg(long)]
    pub limit: Option<i64>,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    pub id: String,
    /// Act as this executor (with --lease); without both, act as admin.
    #[arg(long, requires = "lease")]
    pub executor: Option<String>,
    /// The lease id the claim returned.
    #[arg(long, requires = "executor")]
    pub lease: Option<String>,
    /// Quality score 0.0-5.0.
    #[arg(long)]
    pub quality: Option<f64>,
    #[arg(long)]
    pub notes: Option<String>,
    /// Full feedback as JSON (fields of the specification's TaskFeedback).
    #[arg(long)]
    pub feedback: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// List instances.
    List {
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        parent: Option<String>,
        /// Include archived and lost instances.
        #[arg(long)]
        all: bool,
    },
    /// Show the hierarchy.
    Tree,
    /// Get or create a child instance.
    Create {
        name: String,
        #[arg(long)]
        parent: Option<String>,
        /// JSON object: capabilities, webhook_url, ...
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Archive an orchestration instance.
    Archive { id: String },
}
