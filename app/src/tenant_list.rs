//! `/tenants`: the tenant list — search, plan/region/flag-state filters, sort and server-side
//! paging. Interactive (a Leptos component hydrated in the browser), so its view code is in the
//! wasm; only the data comes from the server.
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    hooks::{use_navigate, use_query_map},
    NavigateOptions,
};
use serde::{Deserialize, Serialize};

use crate::AppError;

/// The flag whose bucket the list shows next to every tenant.
pub const SHOWN_FLAG: &str = "multi_workspace_enabled";

/// Rows per page of the tenant list.
pub const PER_PAGE: u32 = 25;

/// A tenant as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Region.
    pub region: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// One page of the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPage {
    /// Rows.
    pub items: Vec<TenantView>,
    /// Matches over all pages.
    pub total: i64,
    /// 1-based page.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
    /// The flag whose state the list shows.
    pub flag: String,
    /// Ids of this page's tenants that have `flag` ON.
    pub on: Vec<String>,
    /// Every flag key (for the filter).
    pub flags: Vec<String>,
}

impl TenantPage {
    /// Number of pages (at least 1).
    pub fn pages(&self) -> u32 {
        let per = i64::from(self.per_page.max(1));
        u32::try_from((self.total + per - 1) / per)
            .unwrap_or(u32::MAX)
            .max(1)
    }
}

/// What the list asks for; also the URL query string of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantFilter {
    /// Search in name and id.
    pub q: String,
    /// Plan filter, empty for all.
    pub plan: String,
    /// Region filter, empty for all.
    pub region: String,
    /// The flag whose state is shown (and filtered on); empty means [`SHOWN_FLAG`].
    pub flag: String,
    /// `on`, `off` or empty (any).
    pub state: String,
    /// `name`, `newest`, `plan` or `region`.
    pub sort: String,
    /// 1-based page.
    pub page: u32,
}

impl TenantFilter {
    /// The flag shown.
    pub fn shown_flag(&self) -> &str {
        if self.flag.trim().is_empty() {
            SHOWN_FLAG
        } else {
            self.flag.trim()
        }
    }

    /// The `/tenants?…` URL for this filter.
    pub fn href(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", self.q.as_str()),
            ("plan", self.plan.as_str()),
            ("region", self.region.as_str()),
            ("flag", self.flag.as_str()),
            ("state", self.state.as_str()),
            ("sort", self.sort.as_str()),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", crate::url::encode(v)));
            }
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        if parts.is_empty() {
            "/tenants".to_string()
        } else {
            format!("/tenants?{}", parts.join("&"))
        }
    }
}

/// Shows the list for `f` by replacing the URL (no new history entry, no scrolling).
fn show(navigate: &impl Fn(&str, NavigateOptions), f: &TenantFilter) {
    navigate(
        &f.href(),
        NavigateOptions {
            replace: true,
            scroll: false,
            ..Default::default()
        },
    );
}

/// Lists live tenants matching the filter, a page at a time.
#[server(prefix = "/rpc", endpoint = "list_tenants")]
pub async fn list_tenants(filter: TenantFilter) -> Result<TenantPage, AppError> {
    use store::tenants::{TenantQuery, TenantSort};
    crate::auth::require(&crate::auth::Role::ALL).await?;
    let ctx = crate::server_context()?;
    let flag = filter.shown_flag().to_string();
    let page = store::tenants::list(
        &ctx.pool,
        &TenantQuery {
            search: Some(filter.q),
            plan: Some(filter.plan),
            region: Some(filter.region),
            flag_state: store::tenants::flag_state_filter(&flag, &filter.state)?,
            sort: TenantSort::parse(&filter.sort)?,
            page: filter.page.max(1),
            per_page: PER_PAGE,
        },
    )
    .await?;
    let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
    let on = store::tenants::on_among(&ctx.pool, &flag, &ids).await?;
    let flags = store::flags::keys(&ctx.pool).await?;
    Ok(TenantPage {
        items: page.items.into_iter().map(TenantView::from).collect(),
        total: page.total,
        page: page.page,
        per_page: page.per_page,
        flag,
        on,
        flags,
    })
}

/// `/tenants`: the searchable, filterable, paginated list.
#[component]
pub fn TenantsPage() -> impl IntoView {
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        query.with(|q| TenantFilter {
            q: q.get("q").unwrap_or_default(),
            plan: q.get("plan").unwrap_or_default(),
            region: q.get("region").unwrap_or_default(),
            flag: q.get("flag").unwrap_or_default(),
            state: q.get("state").unwrap_or_default(),
            sort: q.get("sort").unwrap_or_default(),
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
        })
    });
    let changes = crate::live::use_changes();
    let tenants = Resource::new(
        move || (filter.get(), changes.get()),
        |(f, _)| list_tenants(f),
    );
    let navigate = use_navigate();
    // Every control edits one field of the filter, goes back to page 1 and replaces the URL.
    let set = move |field: fn(&mut TenantFilter, String)| {
        let navigate = navigate.clone();
        move |ev: leptos::ev::Event| {
            let mut f = filter.get_untracked();
            field(&mut f, event_target_value(&ev));
            f.page = 1;
            show(&navigate, &f);
        }
    };
    let on_search = set(|f, v| f.q = v);
    let on_plan = set(|f, v| f.plan = v);
    let on_region = set(|f, v| f.region = v);
    let on_sort = set(|f, v| f.sort = v);
    let on_state = set(|f, v| f.state = v);

    view! {
        <Title text="Tenants" />
        <section class="page">
            <div class="page-head">
                <h1>"Tenants"</h1>
                <p class="muted">
                    "Every live tenant of the SaaS with the state of one flag. The bucket is the tenant's sticky position (1–100) \
                     for that flag: a tenant is in a p% rollout when its bucket ≤ p."
                </p>
            </div>
            // A plain GET form: without JavaScript it reloads the page with the query; once
            // hydrated, typing updates the list in place.
            <form class="filters" method="get" action="/tenants" role="search">
                <label class="field grow">
                    <span>"Search"</span>
                    <input
                        type="search"
                        name="q"
                        placeholder="Name or id"
                        autocomplete="off"
                        data-testid="tenant-search"
                        prop:value=move || filter.get().q
                        on:input=on_search
                    />
                </label>
                <label class="field">
                    <span>"Plan"</span>
                    <select name="plan" data-testid="plan-filter" on:change=on_plan>
                        <option value="" selected=move || filter.get().plan.is_empty()>"All plans"</option>
                        {flags::PLANS
                            .iter()
                            .map(|p| {
                                let p = *p;
                                view! { <option value=p selected=move || filter.get().plan == p>{p}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Region"</span>
                    <select name="region" data-testid="region-filter" on:change=on_region>
                        <option value="" selected=move || filter.get().region.is_empty()>"All regions"</option>
                        {flags::REGIONS
                            .iter()
                            .map(|r| {
                                let r = *r;
                                view! { <option value=r selected=move || filter.get().region == r>{r}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>{move || format!("State of {}", filter.get().shown_flag())}</span>
                    <select name="state" data-testid="state-filter" on:change=on_state>
                        {[("", "Any"), ("on", "ON"), ("off", "OFF")]
                            .into_iter()
                            .map(|(v, label)| view! { <option value=v selected=move || filter.get().state == v>{label}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Sort"</span>
                    <select name="sort" data-testid="sort" on:change=on_sort>
                        {[("name", "Name"), ("newest", "Newest"), ("plan", "Plan"), ("region", "Region")]
                            .into_iter()
                            .map(|(v, label)| {
                                view! {
                                    <option
                                        value=v
                                        selected=move || {
                                            let s = filter.get().sort;
                                            s == v || (s.is_empty() && v == "name")
                                        }
                                    >
                                        {label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <noscript>
                    <button type="submit" class="btn">"Apply"</button>
                </noscript>
            </form>
            <Transition fallback=|| view! { <p class="loading">"Loading tenants…"</p> }>
                {move || Suspend::new(async move {
                    match tenants.await {
                        Ok(page) => view! { <TenantTable page filter=filter.get_untracked() /> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TenantTable(page: TenantPage, filter: TenantFilter) -> impl IntoView {
    let navigate = leptos_router::hooks::use_navigate();
    let picker_filter = filter.clone();
    let on_flag = move |ev: leptos::ev::Event| {
        let f = TenantFilter {
            flag: event_target_value(&ev),
            page: 1,
            ..picker_filter.clone()
        };
        show(&navigate, &f);
    };
    // Which flag's state and bucket the list shows (a GET form, so it works without JavaScript).
    let picker = view! {
        <form class="inline-form" method="get" action="/tenants">
            {[("q", &filter.q), ("plan", &filter.plan), ("region", &filter.region), ("state", &filter.state), ("sort", &filter.sort)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| view! { <input type="hidden" name=k value=v.clone() /> })
                .collect_view()}
            <label>
                "Flag shown "
                <select name="flag" data-testid="flag-picker" on:change=on_flag>
                    {page.flags.iter().map(|k| {
                        let sel = *k == page.flag;
                        view! { <option value=k.clone() selected=sel>{k.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
            <noscript><button type="submit" class="btn small">"Show"</button></noscript>
        </form>
    };
    if page.items.is_empty() {
        return view! {
            {picker}
            <div class="empty" data-testid="tenant-empty">
                <p>"No tenant matches these filters."</p>
                <a href="/tenants">"Clear the filters"</a>
            </div>
        }
        .into_any();
    }
    let first = (page.page.saturating_sub(1)) * page.per_page + 1;
    let last = first + u32::try_from(page.items.len()).unwrap_or(0) - 1;
    let pages = page.pages();
    let prev = (page.page > 1).then(|| {
        TenantFilter {
            page: page.page - 1,
            ..filter.clone()
        }
        .href()
    });
    let next = (page.page < pages).then(|| {
        TenantFilter {
            page: page.page + 1,
            ..filter.clone()
        }
        .href()
    });
    let flag = page.flag.clone();
    let on: std::collections::HashSet<String> = page.on.iter().cloned().collect();
    view! {
        <div class="list-head">
            <p class="count" data-testid="tenant-count">
                {format!("Showing {first}–{last} of {} tenants", page.total)}
            </p>
            {picker}
        </div>
        <div class="table-wrap">
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Id"</th>
                        <th scope="col">"Plan"</th>
                        <th scope="col">"Region"</th>
                        <th scope="col">"Tags"</th>
                        <th scope="col">{flag.clone()}</th>
                        <th scope="col" class="num" title=format!("bucket({flag}, id): in a p% rollout when ≤ p")>"Bucket"</th>
                    </tr>
                </thead>
                <tbody>
                    {page
                        .items
                        .into_iter()
                        .map(|t| {
                            let bucket = flags::bucket(&flag, &t.id);
                            let is_on = on.contains(&t.id);
                            let href = format!("/tenants/{}", crate::url::encode(&t.id));
                            view! {
                                <tr data-testid="tenant-row">
                                    <td class="name"><a href=href>{t.name}</a></td>
                                    <td><code>{t.id}</code></td>
                                    <td><span class=format!("pill plan-{}", t.plan)>{t.plan.clone()}</span></td>
                                    <td>{t.region}</td>
                                    <td>{t.tags.join(", ")}</td>
                                    <td data-testid="tenant-state">{if is_on {
                                        view! { <span class="pill on">"ON"</span> }.into_any()
                                    } else {
                                        view! { <span class="pill off">"off"</span> }.into_any()
                                    }}</td>
                                    <td class="num">{bucket}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            {match prev {
                Some(href) => view! { <a class="btn" href=href rel="prev" data-testid="prev-page">"← Previous"</a> }.into_any(),
                None => view! { <span class="btn disabled" aria-disabled="true">"← Previous"</span> }.into_any(),
            }}
            <span class="muted">{format!("Page {} of {pages}", page.page)}</span>
            {match next {
                Some(href) => view! { <a class="btn" href=href rel="next" data-testid="next-page">"Next →"</a> }.into_any(),
                None => view! { <span class="btn disabled" aria-disabled="true">"Next →"</span> }.into_any(),
            }}
        </nav>
    }
    .into_any()
}

/// Server-only: a stored tenant as the pages show it.
#[cfg(feature = "ssr")]
mod ssr {
    use super::TenantView;

    impl From<store::tenants::TenantRow> for TenantView {
        fn from(t: store::tenants::TenantRow) -> Self {
            TenantView {
                id: t.id,
                name: t.name,
                plan: t.plan,
                region: t.region,
                tags: t.tags,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn href_encodes_and_skips_defaults() {
        let f = TenantFilter {
            q: "a&b c".into(),
            page: 1,
            ..Default::default()
        };
        assert_eq!(f.href(), "/tenants?q=a%26b%20c");
        let f = TenantFilter {
            plan: "pro".into(),
            page: 3,
            ..Default::default()
        };
        assert_eq!(f.href(), "/tenants?plan=pro&page=3");
        assert_eq!(TenantFilter::default().href(), "/tenants");
    }

    #[test]
    fn pages_round_up() {
        let p = TenantPage {
            items: vec![],
            total: 51,
            page: 1,
            per_page: 25,
            ..Default::default()
        };
        assert_eq!(p.pages(), 3);
        let p = TenantPage {
            items: vec![],
            total: 0,
            page: 1,
            per_page: 25,
            ..Default::default()
        };
        assert_eq!(p.pages(), 1);
    }
}
