//! Sign-in, sign-out and roles. Every server function that reads or changes protected data calls
//! [`require`] first: the UI hides what a role may not do, but hiding is never the protection.
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// What a signed-in person may do: the rollout vocabulary's role, shared with `store` and the
/// plan's owners and approvers.
pub use flags::change::Role;

/// The signed-in person as the browser sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
}

#[cfg(feature = "ssr")]
mod ssr {
    use tower_sessions::Session;

    use super::{Role, UserView};
    use crate::AppError;

    /// Session key of the signed-in user's id.
    pub const USER_ID: &str = "user_id";

    /// Session key of the user's session epoch at sign-in (see `store::users::UserRow`).
    pub const SESSION_EPOCH: &str = "session_epoch";

    /// The client's address: with `trust_proxy`, the right-most `X-Forwarded-For` address that
    /// is not one of the `trusted` proxies (`infra::proxy::client_address`), else the peer of the
    /// connection (unspecified when neither is known, e.g. in-process tests).
    pub async fn client_ip(
        trust_proxy: bool,
        trusted: &infra::proxy::TrustedProxies,
    ) -> std::net::IpAddr {
        let unknown = std::net::IpAddr::from([0, 0, 0, 0]);
        let Ok(parts) = leptos_axum::extract::<http::request::Parts>().await else {
            return unknown;
        };
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if trust_proxy {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            if let Some(ip) = infra::proxy::client_address(forwarded, peer, trusted) {
                return ip;
            }
        }
        peer.unwrap_or(unknown)
    }

    /// The session of the current request.
    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer");
            AppError::Internal
        })
    }

    /// The user `session` belongs to, with their current role — or `None` (and the session is
    /// ended) when it names no user, the user was disabled or deleted since, or the user's
    /// session epoch moved on (password or role reset, disabling, revoked sessions). The one
    /// check of every session-authenticated request: server functions through [`current_user`],
    /// axum handlers through the server's `SignedIn` extractor.
    pub async fn session_user(
        session: &Session,
        pool: &store::PgPool,
    ) -> Result<Option<UserView>, AppError> {
        let read = |e: tower_sessions::session::Error| {
            tracing::error!(error = %e, "reading the session failed");
            AppError::Internal
        };
        let Some(id) = session.get::<i64>(USER_ID).await.map_err(read)? else {
            return Ok(None);
        };
        let epoch = session.get::<i64>(SESSION_EPOCH).await.map_err(read)?;
        let user = store::users::get(pool, id).await?;
        let live = user.and_then(|row| {
            let role = Role::parse(&row.role)?;
            (epoch == Some(row.session_epoch)).then_some(UserView {
                username: row.username,
                role,
            })
        });
        if live.is_none() {
            tracing::info!(
                user = id,
                "session refused: the user is disabled, deleted or was signed out everywhere"
            );
            if let Err(e) = session.flush().await {
                tracing::warn!(error = %e, "ending a refused session failed");
            }
        }
        Ok(live)
    }

    /// The signed-in user, if any (see [`session_user`]: a disabled user, or a session from before
    /// a password or role reset, is signed out).
    pub async fn current_user() -> Result<Option<UserView>, AppError> {
        let session = session().await?;
        let ctx = crate::server_context()?;
        session_user(&session, &ctx.pool).await
    }

    /// The signed-in user if their role is one of `roles`; `Unauthenticated` or `Forbidden`
    /// otherwise.
    pub async fn require(roles: &[Role]) -> Result<UserView, AppError> {
        let refuse = |status: http::StatusCode, e: AppError| {
            // The HTTP status of the server function's answer says it too (401 / 403, not 500).
            if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                res.set_status(status);
            }
            Err(e)
        };
        let Some(user) = current_user().await? else {
            return refuse(http::StatusCode::UNAUTHORIZED, AppError::Unauthenticated);
        };
        if roles.contains(&user.role) {
            Ok(user)
        } else {
            refuse(http::StatusCode::FORBIDDEN, AppError::Forbidden)
        }
    }

    /// The audit actor for a signed-in user.
    pub fn actor(user: &UserView) -> store::Actor {
        store::Actor::new(user.username.clone(), store::Source::Ui)
    }

    /// How `user`'s change is gated: now, with the break-glass reason when one was written — which
    /// only an admin may give.
    pub fn gating(
        user: &UserView,
        override_reason: Option<String>,
    ) -> Result<store::rollout::Gating, AppError> {
        let gating = store::rollout::Gating::with_override(override_reason);
        if gating.override_reason.is_some() && user.role != Role::Admin {
            return Err(AppError::Invalid(
                "only an admin may override the gates".into(),
            ));
        }
        Ok(gating)
    }

    /// The longest user name there can be; longer sign-in attempts are refused before they are
    /// throttled, stored or logged.
    pub const MAX_USERNAME: usize = 64;

    /// Where to go after signing in: `next` when it is a local path made of safe characters — a `/`
    /// not followed by `/` or `\` (browsers read `/\evil.example` as `//evil.example`), no
    /// whitespace or control characters (`/%09/evil` decodes to a tab that browsers drop) — else the
    /// flags page.
    pub fn safe_next(next: Option<String>) -> String {
        let safe = |n: &str| {
            let mut chars = n.chars();
            chars.next() == Some('/')
                && !matches!(chars.next(), Some('/') | Some('\\'))
                && n.len() <= 2000
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_.~?=&%+,:;@!$'()*".contains(c))
        };
        next.filter(|n| safe(n)).unwrap_or_else(|| "/flags".into())
    }

    #[cfg(test)]
    mod redirect_tests {
        use super::safe_next;

        #[test]
        fn only_local_paths_of_safe_characters() {
            let go = |n: &str| safe_next(Some(n.to_string()));
            assert_eq!(go("/tenants?q=acme&page=2"), "/tenants?q=acme&page=2");
            assert_eq!(
                go("/flags/multi_workspace_enabled"),
                "/flags/multi_workspace_enabled"
            );
            for evil in [
                "//evil.example",
                "/\\evil.example",
                "/\t/evil.example",
                "/\n/evil.example",
                "/ /evil.example",
                "https://evil.example",
                "evil.example",
                "/\u{0}x",
                "",
            ] {
                assert_eq!(go(evil), "/flags", "{evil:?}");
            }
            assert_eq!(safe_next(None), "/flags");
        }
    }
}

#[cfg(feature = "ssr")]
pub use ssr::{actor, current_user, gating, require, session_user};

/// Who is signed in.
#[server(prefix = "/rpc", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<UserView>, AppError> {
    ssr::current_user().await
}

/// Signs in; on success the browser goes to `next` (a local path) or the flags page.
#[server(prefix = "/rpc", endpoint = "login")]
pub async fn login(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<UserView, AppError> {
    let ctx = crate::server_context()?;
    // Before anything stores or logs it: a name longer than any account's is no account.
    if username.chars().count() > ssr::MAX_USERNAME {
        return Err(AppError::Invalid("Unknown user or wrong password.".into()));
    }
    let username = username.trim().to_lowercase();
    let ip = ssr::client_ip(ctx.trust_proxy, &ctx.trusted_proxies).await;
    let now = std::time::Instant::now();
    // The attempt is reserved (counted as a failure) before anything awaits, so concurrent
    // attempts cannot all pass the check; a success gives it back.
    if let Err(wait) = ctx.login_throttle.reserve(&username, ip, now) {
        tracing::warn!(user = %username, %ip, wait_secs = wait.as_secs(), "sign-in throttled");
        return Err(AppError::Invalid(format!(
            "Too many failed sign-ins for this user from your address; try again in {} s.",
            wait.as_secs().max(1)
        )));
    }
    let found = store::users::credentials(&ctx.pool, &username).await?;
    let (row, hash) = match found {
        Some((row, hash)) => (Some(row), Some(hash)),
        None => (None, None),
    };
    // Argon2 takes tens of milliseconds of CPU by design: off the async workers, and on at most
    // half the cores at once, so a burst of sign-ins cannot starve flag evaluations.
    let _slot = infra::password::verify_slots()
        .acquire()
        .await
        .map_err(|_| AppError::Internal)?;
    let ok = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| infra::password::dummy_hash().to_string());
        infra::password::verify(&password, &hash)
    })
    .await
    .unwrap_or(false);
    let (Some(row), true) = (row, ok) else {
        tracing::info!(user = %username, %ip, "sign-in refused");
        return Err(AppError::Invalid("Unknown user or wrong password.".into()));
    };
    ctx.login_throttle.succeeded(&username, ip);
    let role = Role::parse(&row.role).ok_or(AppError::Internal)?;
    let session = ssr::session().await?;
    session.cycle_id().await.map_err(|_| AppError::Internal)?;
    session
        .insert(ssr::USER_ID, row.id)
        .await
        .map_err(|_| AppError::Internal)?;
    session
        .insert(ssr::SESSION_EPOCH, row.session_epoch)
        .await
        .map_err(|_| AppError::Internal)?;
    tracing::info!(user = %row.username, "signed in");
    leptos_axum::redirect(&ssr::safe_next(next));
    Ok(UserView {
        username: row.username,
        role,
    })
}

/// Signs out.
#[server(prefix = "/rpc", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let session = ssr::session().await?;
    session.flush().await.map_err(|_| AppError::Internal)?;
    leptos_axum::redirect("/login");
    Ok(())
}
