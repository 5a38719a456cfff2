//! Demo data for `scripts/run`: realistic tenants with plans, regions and tags. Idempotent.
use crate::{Actor, Error, PgPool, Source};

const FIRST: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Oceanic",
    "Massive",
    "Dunder",
    "Monarch",
    "Aperture",
    "Blue Sun",
    "Nakatomi",
    "Pendant",
    "Prestige",
    "Sterling",
    "Virtucon",
    "Zorg",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adatum",
    "Woodgrove",
    "Lucerne",
    "Proseware",
    "Wingtip",
    "Fourth Coffee",
    "Alpine",
    "Bellows",
    "Cobalt",
    "Driftwood",
    "Evergreen",
    "Foxglove",
    "Granite",
    "Harbor",
    "Ironbark",
    "Juniper",
    "Kestrel",
    "Lakeside",
    "Meridian",
    "Nimbus",
    "Orchard",
    "Pinnacle",
    "Quarry",
    "Redwood",
    "Summit",
    "Tidewater",
    "Upland",
    "Vantage",
    "Willow",
    "Yellowstone",
];

const SECOND: &[&str] = &[
    "Logistics",
    "Health",
    "Labs",
    "Foods",
    "Legal",
    "Realty",
    "Capital",
    "Studios",
    "Motors",
    "Energy",
    "Dental",
    "Analytics",
    "Insurance",
    "Outfitters",
    "Consulting",
];

/// How the demo's plans are mixed, in sixths: indices into [`flags::PLANS`] (free once, starter
/// twice, pro twice, enterprise once).
const PLAN_MIX: [usize; 6] = [0, 1, 1, 2, 2, 3];

/// A demo tenant: id, name, plan, region, tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTenant {
    /// Slug of the name, unique.
    pub id: String,
    /// Company name.
    pub name: String,
    /// Plan.
    pub plan: &'static str,
    /// Region.
    pub region: &'static str,
    /// Tags.
    pub tags: Vec<String>,
}

fn slug(name: &str, n: usize) -> String {
    let base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if n == 0 {
        base
    } else {
        format!("{base}-{n}")
    }
}

/// The `n`-th demo tenant. Names repeat with a numeric suffix after the first 900.
pub fn demo_tenant(n: usize) -> DemoTenant {
    let pairs = FIRST.len() * SECOND.len();
    let k = n % pairs;
    // Walk the pairs with a stride co-prime to their count so neighbours differ in both words.
    let idx = (k * 7919) % pairs;
    let first = FIRST.get(idx / SECOND.len()).copied().unwrap_or("Acme");
    let second = SECOND.get(idx % SECOND.len()).copied().unwrap_or("Labs");
    let round = n / pairs;
    let name = if round == 0 {
        format!("{first} {second}")
    } else {
        format!("{first} {second} {}", round + 1)
    };
    let h = n.wrapping_mul(2_654_435_761) >> 7;
    let mut tags = Vec::new();
    if h.is_multiple_of(5) {
        tags.push("beta".to_string());
    }
    if h.is_multiple_of(11) {
        tags.push("strategic".to_string());
    }
    DemoTenant {
        id: slug(&format!("{first} {second}"), round),
        name,
        plan: PLAN_MIX
            .get(h % PLAN_MIX.len())
            .and_then(|&i| flags::PLANS.get(i))
            .copied()
            .unwrap_or("starter"),
        region: flags::REGIONS
            .get((h / 7) % flags::REGIONS.len())
            .copied()
            .unwrap_or("eu-west"),
        tags,
    }
}

/// Inserts the first `count` demo tenants that are missing. Returns how many were inserted.
pub async fn seed_tenants(pool: &PgPool, count: usize) -> Result<u64, Error> {
    let mut inserted = 0;
    let mut start = 0;
    while start < count {
        let end = (start + 5_000).min(count);
        let batch: Vec<DemoTenant> = (start..end).map(demo_tenant).collect();
        let ids: Vec<&str> = batch.iter().map(|t| t.id.as_str()).collect();
        let names: Vec<&str> = batch.iter().map(|t| t.name.as_str()).collect();
        let plans: Vec<&str> = batch.iter().map(|t| t.plan).collect();
        let regions: Vec<&str> = batch.iter().map(|t| t.region).collect();
        let tags: Vec<String> = batch.iter().map(|t| t.tags.join(",")).collect();
        let mut tx = pool.begin().await?;
        Actor::new("demo-seed", Source::Cli).apply(&mut tx).await?;
        let r = sqlx::query(
            "INSERT INTO tenants (id, name, plan, region, tags) \
             SELECT id, name, plan, region, \
                    CASE WHEN tags = '' THEN '{}'::text[] ELSE string_to_array(tags, ',') END \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                  AS t(id, name, plan, region, tags) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&plans)
        .bind(&regions)
        .bind(&tags)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        inserted += r.rows_affected();
        start = end;
    }
    Ok(inserted)
}

/// Actions the demo activity uses, most frequent first.
const DEMO_ACTIONS: &[&str] = &[
    "workspace.switch",
    "workspace.view",
    "workspace.create",
    "workspace.invite",
    "workspace.rename",
    "workspace.switch_error",
    "workspace.create_error",
];

/// Demo activity for `tenants` and the first 25 live tenants over the last 48 hours (deterministic; only into an empty table).
/// Returns the events inserted.
pub async fn seed_activity(pool: &PgPool, tenants: &[&str]) -> Result<u64, Error> {
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workspace_activity_logs)")
        .fetch_one(pool)
        .await?;
    if any {
        return Ok(0);
    }
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE archived_at IS NULL AND (id = ANY($1) \
             OR id IN (SELECT id FROM tenants WHERE archived_at IS NULL ORDER BY id LIMIT 25)) \
             ORDER BY id",
    )
    .bind(tenants)
    .fetch_all(pool)
    .await?;
    let (mut ids, mut actions, mut actors, mut ago) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for tenant in &live {
        for _ in 0..120 {
            // xorshift: a fixed sequence, so the demo looks the same on every machine.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pick = (x % 100) as usize;
            let action = match pick {
                0..=34 => 0,
                35..=59 => 1,
                60..=74 => 2,
                75..=86 => 3,
                87..=95 => 4,
                96..=98 => 5,
                _ => 6,
            };
            ids.push(tenant.clone());
            actions.push(
                DEMO_ACTIONS
                    .get(action)
                    .copied()
                    .unwrap_or("workspace.view"),
            );
            actors.push(format!("user-{}", (x >> 8) % 40));
            ago.push(((x >> 16) % (48 * 3600)) as f64);
        }
    }
    let done = sqlx::query(
        "INSERT INTO workspace_activity_logs (tenant_id, action, actor, details, created_at) \
         SELECT t, a, u, jsonb_build_object('demo', true), now() - make_interval(secs => s) \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS x(t, a, u, s)",
    )
    .bind(&ids)
    .bind(&actions)
    .bind(&actors)
    .bind(&ago)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn demo_ids_are_unique_and_valid() {
        let ids: HashSet<String> = (0..5_000).map(|n| demo_tenant(n).id).collect();
        assert_eq!(ids.len(), 5_000);
        for id in &ids {
            assert!(id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
    }
}
