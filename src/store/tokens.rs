//! `api_tokens`: tokens beyond the configured admin token. Only the hex SHA-256 of a token is
//! stored; a token is 256 random bits, so a lookup by hash is as good as a constant-time
//! comparison and needs no secret kept here.

use super::rows::{ApiToken, TOKEN_COLUMNS, TokenRow};
use super::{Store, StoreResult, on_reader, on_writer};
use crate::domain::{ExecutorId, Millis, TokenRole};

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub id: &'a str,
    /// Hex SHA-256 of the token.
    pub hash: &'a str,
    pub role: TokenRole,
    pub executor: Option<&'a ExecutorId>,
    pub name: Option<&'a str>,
    pub now: Millis,
}

impl Store {
    pub async fn insert_token(&self, t: &NewToken<'_>) -> StoreResult<()> {
        const Q: &str = "INSERT INTO api_tokens (id, token_hash, role, executor_id, name, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6)";
        on_writer!(self, c => {
            sqlx::query(Q)
                .bind(t.id)
                .bind(t.hash)
                .bind(t.role.as_str())
                .bind(t.executor.map(|e| e.as_str().to_owned()))
                .bind(t.name)
                .bind(t.now)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The unrevoked token whose hash is `hash`.
    pub async fn find_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        let q = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        );
        let row: Option<TokenRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(hash).fetch_optional(p).await?);
        row.map(ApiToken::try_from).transpose()
    }

    /// Every token, revoked ones included, oldest first; never a hash.
    pub async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let q = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id");
        let rows: Vec<TokenRow> = on_reader!(self, p => sqlx::query_as(&q).fetch_all(p).await?);
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    pub async fn get_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        let q = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        let row: Option<TokenRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id).fetch_optional(p).await?);
        row.map(ApiToken::try_from).transpose()
    }

    /// Revokes a token; false when there is no such unrevoked token.
    pub async fn revoke_token(&self, id: &str, now: Millis) -> StoreResult<bool> {
        const Q: &str =
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let n = on_writer!(self, c => Ok(sqlx::query(Q)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }
}
