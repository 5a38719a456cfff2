//! `/tenants/{id}`: one tenant — each flag's decision and reason from `flags`, its bucket, and the
//! tenant's history. Read-only: the body is rendered on the server (see [`crate::html`]).
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::tenant_list::TenantView;
use crate::AppError;

/// A flag as one tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantFlagView {
    /// Flag key.
    pub key: String,
    /// ON or OFF for this tenant.
    pub on: bool,
    /// The stable reason code (`pilot`, `cohort`, …).
    pub reason_code: String,
    /// The reason in words.
    pub reason: String,
    /// The tenant's bucket for this flag.
    pub bucket: u32,
}

/// The tenant page's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDetailData {
    /// The tenant.
    pub tenant: TenantView,
    /// When it was created (`YYYY-MM-DD`, UTC).
    pub created_at: String,
    /// Every flag, with the decision and reason `flags` gives.
    pub flags: Vec<TenantFlagView>,
    /// The newest changes that concern this tenant.
    pub history: Vec<crate::audit::AuditView>,
}

/// History rows the tenant page shows.
pub const HISTORY: i64 = 100;

/// The tenant page's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "tenant_detail")]
pub async fn tenant_detail(id: String) -> Result<String, AppError> {
    let d = ssr::tenant_detail_data(id).await?;
    Ok(crate::html::render(
        move || view! { <ssr::TenantDetailBody d /> },
    ))
}

/// `/tenants/{id}`.
#[component]
pub fn TenantDetailPage() -> impl IntoView {
    let params = leptos_router::hooks::use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // Read once (see the flag page: titles may render after the route's owner is gone).
    let title = params.with_untracked(|p| p.get("id").unwrap_or_default());
    let changes = crate::live::use_changes();
    let data = Resource::new(move || (id(), changes.get()), |(id, _)| tenant_detail(id));
    view! {
        <Title text=title />
        <section class="page">
            <p class="crumbs"><a href="/tenants">"← Tenants"</a></p>
            <crate::html::ServerBody data loading="Loading the tenant…" error_testid="tenant-error" />
        </section>
    }
}

/// Server-only: the tenant page's data and its HTML.
#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use super::{TenantDetailData, TenantFlagView, HISTORY};
    use crate::components::{FlagLink, Timeline};
    use crate::tenant_list::TenantView;
    use crate::AppError;

    /// One tenant, each flag's decision and reason, and its history.
    pub async fn tenant_detail_data(id: String) -> Result<TenantDetailData, AppError> {
        crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        let row = store::tenants::get(&ctx.pool, &id).await?;
        let created_at = row.created_at.format("%Y-%m-%d").to_string();
        let snapshot = store::snapshot::for_tenant(&ctx.pool, &id).await?;
        let mut keys: Vec<&String> = snapshot.flags.keys().collect();
        keys.sort();
        let flags = keys
            .into_iter()
            .map(|k| {
                let d = snapshot.evaluate(k, &id);
                TenantFlagView {
                    key: k.clone(),
                    on: d.on,
                    reason_code: d.reason.code().to_string(),
                    reason: d.reason.to_string(),
                    bucket: flags::bucket(k, &id),
                }
            })
            .collect();
        let history = store::audit::query(
            &ctx.pool,
            &store::audit::AuditQuery {
                tenant: Some(id.clone()),
                limit: HISTORY,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(crate::audit::AuditView::from)
        .collect();
        Ok(TenantDetailData {
            tenant: TenantView::from(row),
            created_at,
            flags,
            history,
        })
    }

    #[component]
    pub fn TenantDetailBody(d: TenantDetailData) -> impl IntoView {
        let t = d.tenant;
        let audit_href = format!("/audit?tenant={}", crate::url::encode(&t.id));
        view! {
            <div class="page-head">
                <h1 data-testid="tenant-name">{t.name.clone()}</h1>
                <p class="muted">
                    <code>{t.id.clone()}</code>" · "<span class=format!("pill plan-{}", t.plan)>{t.plan.clone()}</span>
                    {format!(" · {} · created {}", t.region, d.created_at)}
                    {(!t.tags.is_empty()).then(|| format!(" · tags: {}", t.tags.join(", ")))}
                </p>
            </div>
            <div class="panel">
                <h2>"Flags"</h2>
                <div class="table-wrap">
                    <table class="table">
                        <thead><tr><th scope="col">"Flag"</th><th scope="col">"State"</th><th scope="col">"Why"</th><th scope="col" class="num">"Bucket"</th></tr></thead>
                        <tbody>
                            {d.flags.into_iter().map(|f| {
                                view! {
                                    <tr data-testid="tenant-flag" data-flag=f.key.clone()>
                                        <td><FlagLink key=f.key.clone() /></td>
                                        <td data-testid="tenant-flag-state">{if f.on {
                                            view! { <span class="pill on">"ON"</span> }.into_any()
                                        } else {
                                            view! { <span class="pill off">"off"</span> }.into_any()
                                        }}</td>
                                        <td data-testid="tenant-flag-reason" data-reason=f.reason_code.clone()>{f.reason}</td>
                                        <td class="num">{f.bucket}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
            <div class="panel">
                <h2>"History"</h2>
                {if d.history.is_empty() {
                    view! { <p class="muted" data-testid="tenant-history-empty">"No change has concerned this tenant yet."</p> }.into_any()
                } else {
                    view! {
                        <Timeline rows=d.history testid="tenant-history" />
                    }.into_any()
                }}
                <p><a href=audit_href>"This tenant in the audit log →"</a></p>
            </div>
        }
    }
}
