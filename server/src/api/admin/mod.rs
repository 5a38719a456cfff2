//! `/api/admin`: tenants, flags and their rollouts, rollout plans, tokens, audit. Admin tokens
//! only — every handler takes the [`Admin`] extractor, so a handler without it cannot be written
//! by mistake into an admin router that answers anyone (the role matrix test checks every route of
//! the OpenAPI document with every kind of caller).
//!
//! Each resource has its own file and its own [`OpenApiRouter`]; [`router`] merges them. A route is
//! registered once, with `routes!`, and that registration is also its entry in the OpenAPI
//! document: a route cannot exist without its documentation, nor the other way round.
use axum::{extract::FromRequestParts, http::request::Parts, Json};
use store::rollout::{Gating, Spec};
use store::{Actor, Source};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    AppState,
};

pub mod audit;
pub mod flags;
pub mod plans;
pub mod tenants;
pub mod tokens;

/// The flag the seed's `enable-multi-workspace` endpoint switches.
pub const SEED_FLAG: &str = "multi_workspace_enabled";

/// A caller with an admin token: 401 without a live token, 403 with another scope.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The actor written to the audit log (`token:<name>`, source `api`).
    pub actor: Actor,
    /// The person the token acts for (a token it creates acts for the same person).
    pub person: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(&[Scope::Admin])?;
        Ok(Admin {
            actor: caller.actor(Source::Api),
            person: caller.person.clone(),
        })
    }
}

/// Every admin route, documented.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::archive_tenant
        ))
        .routes(routes!(tenants::set_tenant_flag))
        .routes(routes!(tenants::enable_multi_workspace))
        .routes(routes!(flags::list_flags, flags::create_flag))
        .routes(routes!(flags::get_flag))
        .routes(routes!(flags::flag_at))
        .routes(routes!(flags::put_rollout))
        .routes(routes!(flags::advance))
        .routes(routes!(flags::rollback))
        .routes(routes!(plans::get_plan, plans::import_plan))
        .routes(routes!(plans::tick_item))
        .routes(routes!(plans::sign_milestone))
        .routes(routes!(plans::request_change))
        .routes(routes!(plans::approve_change))
        .routes(routes!(plans::plan_settings))
        .routes(routes!(plans::plan_contacts))
        .routes(routes!(plans::resume_plan))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit::audit))
        .routes(routes!(audit::migrations))
}

/// Publishes the write to this instance's snapshot before answering (read-your-writes): a
/// catch-up from the outbox, which reads and applies only what changed since the snapshot's
/// version (the write, and whatever else committed meanwhile). Other instances follow through
/// NOTIFY.
async fn settle(state: &AppState) {
    state.live.publish(&state.pool).await;
}

/// Makes a change through the one write path and publishes it on this instance.
async fn write(
    state: &AppState,
    actor: &Actor,
    key: &str,
    spec: Spec,
    expected: Option<i64>,
    gating: &Gating,
) -> Result<Json<store::flags::Change>, ApiError> {
    let applied = store::rollout::change(&state.pool, actor, key, &spec, expected, gating).await?;
    settle(state).await;
    Ok(Json(applied.change))
}

/// An optional JSON body: empty means the default. A body that is not JSON is a 400; JSON of
/// the wrong shape (an unknown phase, a missing field) is a 422, as with `Json`.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let msg = format!("invalid JSON body: {e}");
        if e.is_data() {
            ApiError::unprocessable(msg)
        } else {
            ApiError::bad_request(msg)
        }
    })
}
