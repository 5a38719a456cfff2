//! Machine tokens: generation, hashing, the in-memory cache and the `Caller` extractor.
//!
//! A token is `rg_<scope>_<43 base64url chars>` (256 random bits). Only its SHA-256 is stored;
//! lookups hash the presented secret and find the hash in a cache refreshed on every change
//! (`NOTIFY rollgate_tokens`), so a request never waits for the database to authenticate.
use std::{collections::HashMap, sync::Arc};

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::sync::RwLock;

use crate::{error::ApiError, AppState};

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything under `/api/admin`, and evaluation for any tenant.
    Admin,
    /// Evaluation for any tenant (`?tenant=`, OFREP, snapshot, stream).
    Server,
    /// `/api/features` for its own tenant only.
    Tenant,
}

impl Scope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Server => "server",
            Scope::Tenant => "tenant",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "server" => Some(Scope::Server),
            "tenant" => Some(Scope::Tenant),
            _ => None,
        }
    }
}

/// An authenticated machine caller: a shared reference to its token's identity in the cache, so
/// authenticating a request copies no strings.
#[derive(Debug, Clone)]
pub struct Caller(Arc<Identity>);

impl std::ops::Deref for Caller {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

/// Who a token is.
#[derive(Debug)]
pub struct Identity {
    /// Token id.
    pub token_id: i64,
    /// Token name.
    pub name: String,
    /// Scope.
    pub scope: Scope,
    /// Tenant of a tenant token.
    pub tenant_id: Option<String>,
    /// The person the token acts for when approving (`store::tokens::TokenRow::owner`, else
    /// `token:<name>`).
    pub person: String,
    expires_at: Option<DateTime<Utc>>,
}

impl Identity {
    /// The actor written to the audit log (`token:<name>`), acting for the token's person.
    pub fn actor(&self, source: store::Source) -> store::Actor {
        store::Actor::new(format!("token:{}", self.name), source).for_person(self.person.clone())
    }

    /// 403 unless the scope is one of `allowed`.
    pub fn require(&self, allowed: &[Scope]) -> Result<(), ApiError> {
        if allowed.contains(&self.scope) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this endpoint needs a token with scope {}; this token has scope {}",
                names.join(" or "),
                self.scope.as_str()
            )))
        }
    }
}

/// The live tokens by SHA-256 of their secret.
#[derive(Debug, Default, Clone)]
pub struct TokenCache {
    inner: Arc<RwLock<HashMap<[u8; 32], Caller>>>,
}

/// The map, even if a thread panicked while holding the lock (the map is replaced whole, never
/// left half-written).
fn unpoison<T>(r: Result<T, std::sync::PoisonError<T>>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TokenCache {
    /// Replaces the cache with the database's live tokens.
    pub async fn reload(&self, pool: &store::PgPool) -> Result<usize, store::Error> {
        let rows = store::tokens::active(pool).await?;
        let mut map = HashMap::with_capacity(rows.len());
        for r in rows {
            let (Ok(hash), Some(scope)) = (
                <[u8; 32]>::try_from(r.token_hash.as_slice()),
                Scope::parse(&r.scope),
            ) else {
                tracing::warn!(
                    token = r.id,
                    "skipping a token with an unreadable hash or scope"
                );
                continue;
            };
            let person = r.owner.unwrap_or_else(|| format!("token:{}", r.name));
            map.insert(
                hash,
                Caller(Arc::new(Identity {
                    token_id: r.id,
                    person,
                    name: r.name,
                    scope,
                    tenant_id: r.tenant_id,
                    expires_at: r.expires_at,
                })),
            );
        }
        let n = map.len();
        *unpoison(self.inner.write()) = map;
        Ok(n)
    }

    /// The caller presenting `secret`, if it is live and not expired.
    pub async fn lookup(&self, secret: &str) -> Option<Caller> {
        // The lookup compares SHA-256 digests, never secrets, so its timing tells nothing about
        // a stored secret.
        let caller = unpoison(self.inner.read())
            .get(&hash_secret(secret))?
            .clone();
        if caller.expires_at.is_some_and(|e| e <= Utc::now()) {
            return None;
        }
        Some(caller)
    }
}

/// SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh secret for `scope`: `rg_<scope>_` and 256 random bits in base64url.
pub fn generate_secret(scope: Scope) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "rg_{}_{}",
        scope.as_str(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The first characters of a secret, safe to show.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(14).collect()
}

/// The secret from `Authorization: Bearer …` or `X-API-Key: …`.
fn presented(parts: &Parts) -> Result<&str, ApiError> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let malformed =
            || ApiError::unauthorized("the Authorization header must be `Bearer <token>`");
        let v = v.to_str().map_err(|_| malformed())?.trim();
        let (scheme, rest) = v.split_once(' ').ok_or_else(malformed)?;
        let rest = rest.trim();
        return if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Ok(rest)
        } else {
            Err(malformed())
        };
    }
    match parts
        .headers
        .get("x-api-key")
        .map(|v| v.to_str().map(str::trim))
    {
        Some(Ok(k)) if !k.is_empty() => Ok(k),
        Some(_) => Err(ApiError::unauthorized(
            "the X-API-Key header is empty or not ASCII",
        )),
        None => Err(ApiError::unauthorized(
            "missing token: send Authorization: Bearer <token> or X-API-Key: <token>",
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = presented(parts)?;
        state
            .live
            .tokens
            .lookup(secret)
            .await
            .ok_or_else(|| ApiError::unauthorized("unknown, revoked or expired token"))
    }
}
