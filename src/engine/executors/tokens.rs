//! Minted API tokens and who a bearer token makes the caller.
//!
//! A token is `hop_` and 256 random bits in hex; only its SHA-256 is stored. Resolving a token
//! consults a small in-process cache first and the database on a miss, so a token minted by
//! another process sharing the database works at once. A hit is trusted for at most
//! [`CACHE_TTL`]: a token revoked by *another* process stops working within that bound (one
//! revoked through this process stops at once: revocation empties the cache). Unknown tokens
//! are never cached, so a later mint is never shadowed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::{Executor, TokenRole, now_millis};
use crate::engine::Engine;
use crate::error::{HopperError, Result};
use crate::store::{ApiToken, NewToken};

/// How long a resolved token (or an executor looked up by name) is trusted without asking the
/// database again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; past it the cache starts over (cheap, and bounds memory against a
/// caller cycling through many valid tokens).
const CACHE_MAX: usize = 10_000;

/// Who is calling, as the bearer token says.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    Admin,
    Read,
    /// An executor token: acts as this executor, on the instances it serves.
    Executor(Box<Executor>),
}

/// A freshly minted token: the value is here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MintedToken {
    #[serde(flatten)]
    pub info: ApiToken,
    /// The bearer token. Shown only now; Hopper keeps only its hash.
    pub token: String,
}

/// What to mint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub role: Option<TokenRole>,
    /// For an executor token: the executor (id or name) it acts as.
    #[serde(default)]
    pub executor: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The hex SHA-256 a token is stored as.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The in-process caches in front of `api_tokens` and `executors` (see the module docs).
#[derive(Default)]
pub(crate) struct Cache {
    tokens: Mutex<HashMap<String, (Instant, Caller)>>,
    by_name: Mutex<HashMap<String, (Instant, Option<Executor>)>>,
}

impl Cache {
    fn get<K: std::hash::Hash + Eq, V: Clone>(
        map: &Mutex<HashMap<K, (Instant, V)>>,
        key: &K,
    ) -> Option<V> {
        let map = map.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (Instant, V)>>, key: K, v: V) {
        if let Ok(mut map) = map.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(key, (Instant::now(), v));
        }
    }

    /// Forgets everything: after any change to executors or tokens made through this process.
    pub(crate) fn clear(&self) {
        if let Ok(mut m) = self.tokens.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.by_name.lock() {
            m.clear();
        }
    }
}

impl Engine {
    /// Who `token` (not the configured admin token, which the API checks first) makes the
    /// caller; `None` when it is unknown or revoked.
    pub async fn resolve_token(&self, token: &str) -> Result<Option<Caller>> {
        let hash = token_hash(token);
        let cache = &self.inner.executor_cache;
        if let Some(c) = Cache::get(&cache.tokens, &hash) {
            return Ok(Some(c));
        }
        let Some(row) = self.inner.registry.find_token(&hash).await? else {
            return Ok(None);
        };
        let caller = match row.role {
            TokenRole::Admin => Caller::Admin,
            TokenRole::Read => Caller::Read,
            TokenRole::Executor => {
                let Some(id) = row.executor_id else {
                    return Ok(None);
                };
                match self.inner.registry.get_executor(id.as_str()).await? {
                    Some(e) => Caller::Executor(Box::new(e)),
                    // Its executor was removed (its tokens are revoked with it).
                    None => return Ok(None),
                }
            }
        };
        Cache::put(&cache.tokens, hash, caller.clone());
        Ok(Some(caller))
    }

    /// The registered executor called `name`, if any (cached like tokens: the claim path asks
    /// this on every `get_next`).
    pub async fn registered_executor(&self, name: &str) -> Result<Option<Executor>> {
        let cache = &self.inner.executor_cache;
        if let Some(e) = Cache::get(&cache.by_name, &name.to_owned()) {
            return Ok(e);
        }
        let e = self
            .inner
            .registry
            .get_executor(name)
            .await?
            .filter(|e| e.name == name);
        Cache::put(&cache.by_name, name.to_owned(), e.clone());
        Ok(e)
    }

    pub(super) fn forget_cached(&self) {
        self.inner.executor_cache.clear();
        self.inner.routing.executors_changed();
    }

    /// Mints a token for `role` (an executor token for `executor`); its value is returned once.
    pub async fn mint_token(&self, req: &TokenRequest) -> Result<MintedToken> {
        let role = req.role.ok_or_else(|| {
            HopperError::Invalid("`role` is required (admin, read, executor)".into())
        })?;
        let executor = match (role, req.executor.as_deref()) {
            (TokenRole::Executor, Some(e)) => Some(self.get_executor(e).await?),
            (TokenRole::Executor, None) => {
                return Err(HopperError::Invalid(
                    "an executor token needs `executor` (its id or name)".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(HopperError::Invalid(
                    "`executor` is only for role `executor`".into(),
                ));
            }
            (_, None) => None,
        };
        if req.name.as_ref().is_some_and(|n| n.len() > 200) {
            return Err(HopperError::Invalid(
                "token name is at most 200 bytes".into(),
            ));
        }
        self.mint(role, executor.as_ref(), req.name.as_deref())
            .await
    }

    pub(super) async fn mint(
        &self,
        role: TokenRole,
        executor: Option<&Executor>,
        name: Option<&str>,
    ) -> Result<MintedToken> {
        let token = format!("hop_{}", random_hex());
        let id = format!("tok_{}", uuid::Uuid::now_v7().simple());
        let now = now_millis();
        self.inner
            .registry
            .insert_token(&NewToken {
                id: &id,
                hash: &token_hash(&token),
                role,
                executor: executor.map(|e| &e.id),
                name,
                now,
            })
            .await?;
        let info = self
            .inner
            .registry
            .get_token(&id)
            .await?
            .ok_or_else(|| HopperError::NotFound(format!("token `{id}` vanished")))?;
        Ok(MintedToken { info, token })
    }

    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        Ok(self.inner.registry.list_tokens().await?)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<ApiToken> {
        let store = &self.inner.registry;
        let found = store.get_token(id).await?;
        let Some(found) = found else {
            return Err(HopperError::NotFound(format!(
                "token `{}` not found",
                crate::engine::log_str(id)
            )));
        };
        if found.revoked_at.is_none() {
            store.revoke_token(id, now_millis()).await?;
        }
        self.forget_cached();
        store
            .get_token(id)
            .await?
            .ok_or_else(|| HopperError::NotFound(format!("token `{}` not found", found.id)))
    }
}
