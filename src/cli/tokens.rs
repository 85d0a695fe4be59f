//! `hopper tokens create|list|revoke`: further admin, read-only or executor tokens. A token
//! is printed once, when it is made; Hopper keeps only its hash.

use clap::Subcommand;

use super::output::{print_value, say};
use crate::domain::TokenRole;
use crate::engine::TokenRequest;
use crate::service::HopperService;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Mint a token; printed once.
    Create {
        /// admin, read or executor.
        #[arg(long)]
        role: String,
        /// For role executor: the executor (id or name) it acts as.
        #[arg(long)]
        executor: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

pub async fn tokens(s: &dyn HopperService, cmd: &TokensCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create {
            role,
            executor,
            name,
        } => {
            let role: TokenRole = role.parse().map_err(anyhow::Error::msg)?;
            let req = TokenRequest {
                role: Some(role),
                executor: executor.clone(),
                name: name.clone(),
            };
            let t = s.mint_token(&req).await?;
            if json {
                print_value(&t);
            } else {
                say!("{} ({})", t.info.id, t.info.role.as_str());
                say!("token: {}", t.token);
                say!("The token is not shown again: keep it now.");
            }
        }
        TokensCommand::List => {
            let list = s.list_tokens().await?;
            if json {
                print_value(&list);
            } else if list.is_empty() {
                say!("no tokens");
            } else {
                say!(
                    "{:<37} {:<9} {:<38} {:<20} STATE",
                    "ID",
                    "ROLE",
                    "EXECUTOR",
                    "NAME"
                );
                for t in list {
                    say!(
                        "{:<37} {:<9} {:<38} {:<20} {}",
                        t.id,
                        t.role.as_str(),
                        t.executor_id.map(String::from).unwrap_or_default(),
                        t.name.unwrap_or_default(),
                        t.revoked_at
                            .map(|r| format!("revoked {r}"))
                            .unwrap_or_else(|| "active".into())
                    );
                }
            }
        }
        TokensCommand::Revoke { id } => {
            let t = s.revoke_token(id).await?;
            if json {
                print_value(&t);
            } else {
                say!("revoked {}", t.id);
            }
        }
    }
    Ok(())
}
