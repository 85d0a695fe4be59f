//! All integration tests in one binary (one link, not one per file). Every scenario that
//! touches storage runs against a real SQLite file and a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod cli;
mod config;
mod executors;
mod hierarchy;
mod hostile_projects;
mod hygiene;
mod inbound_durability;
mod inbound_github;
mod inbound_module;
mod inbound_sources;
mod leases;
mod outbound_cli;
mod outbound_delivery;
mod outbound_dispatch;
mod outbound_e2e;
mod outbound_policy;
mod outbound_processes;
mod outbound_support;
mod outbound_tls;
mod outbound_wanted;
mod readme;
mod recovery;
mod scoped_tokens;
mod secrets;
mod shipped_layout;
mod slow_clients;
mod smtp_hardening;
mod stopping;
mod support;
mod two_processes;
mod untested;
