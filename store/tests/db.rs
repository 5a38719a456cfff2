//! The store against a real Postgres: each test gets a fresh database from `#[sqlx::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use sqlx::{postgres::PgListener, PgPool};
use store::tenants::{TenantQuery, TenantSort};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn migration_deploys_the_seed_flag_off(pool: PgPool) {
    // The seed's own check: SELECT COUNT(*) FROM feature_flags WHERE key = 'multi_workspace_enabled';
    let (count, enabled): (i64, bool) = sqlx::query_as(
        "SELECT COUNT(*), bool_or(enabled) FROM feature_flags WHERE key = 'multi_workspace_enabled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 1);
    assert!(!enabled);
    let global: Option<String> = sqlx::query_scalar(
        "SELECT tenant_id FROM feature_flags WHERE key = 'multi_workspace_enabled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(global, None);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn one_global_row_per_key(pool: PgPool) {
    let err = sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', NULL, true)")
        .execute(&pool)
        .await
        .unwrap_err();
    let err = store::Error::from(err);
    assert!(
        matches!(err, store::Error::Conflict(ref c) if c == "feature_flags_key_tenant_unique"),
        "{err:?}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn raw_sql_is_audited_versioned_and_notified(pool: PgPool) {
    store::demo::seed_tenants(&pool, 5).await.unwrap();
    let tenant = store::demo::demo_tenant(0).id;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("rollgate_changes").await.unwrap();
    let v0: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&pool)
        .await
        .unwrap();

    // A DBA enables a pilot by hand, then runs the seed's "Quick Rollback".
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), listener.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(payload["table"], "feature_flags");
    assert_eq!(payload["version"].as_i64().unwrap(), v0 + 1);

    sqlx::query("UPDATE feature_flags SET enabled = false WHERE key = 'multi_workspace_enabled';")
        .execute(&pool)
        .await
        .unwrap();

    let rows: Vec<(
        String,
        String,
        String,
        Option<String>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    )> = sqlx::query_as(
        "SELECT actor, source, action, tenant_id, before, after FROM audit_log \
             WHERE flag_key = 'multi_workspace_enabled' AND source = 'sql' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let db_user: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    // One insert, then one update: the global row was already off, so only the tenant row changed.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, db_user);
    assert_eq!(rows[0].2, "feature_flag.insert");
    assert_eq!(rows[1].2, "feature_flag.update");
    assert_eq!(rows[1].3.as_deref(), Some(tenant.as_str()));
    assert_eq!(rows[1].4.as_ref().unwrap()["enabled"], true);
    assert_eq!(rows[1].5.as_ref().unwrap()["enabled"], false);

    let updated_by: String =
        sqlx::query_scalar("SELECT updated_by FROM feature_flags WHERE tenant_id = $1")
            .bind(&tenant)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(updated_by, db_user);
    let v2: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(v2, v0 + 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn application_actor_is_recorded(pool: PgPool) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('rollgate.actor', 'alice', true), set_config('rollgate.source', 'ui', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE feature_flags SET enabled = true WHERE key = 'multi_workspace_enabled' AND tenant_id IS NULL")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (actor, source): (String, String) =
        sqlx::query_as("SELECT actor, source FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((actor.as_str(), source.as_str()), ("alice", "ui"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn demo_data_is_idempotent_and_realistic(pool: PgPool) {
    assert_eq!(store::demo::seed_tenants(&pool, 240).await.unwrap(), 240);
    assert_eq!(store::demo::seed_tenants(&pool, 240).await.unwrap(), 0);
    let plans: i64 = sqlx::query_scalar("SELECT count(DISTINCT plan) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    let regions: i64 = sqlx::query_scalar("SELECT count(DISTINCT region) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(plans, 4);
    assert!(regions >= 5);
    // Seeding tenants does not touch the flag: the seed's check still counts 1 row.
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM feature_flags WHERE key = 'multi_workspace_enabled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tenant_list_searches_filters_sorts_and_pages(pool: PgPool) {
    store::demo::seed_tenants(&pool, 240).await.unwrap();
    let all = store::tenants::list(
        &pool,
        &TenantQuery {
            page: 1,
            per_page: 25,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.total, 240);
    assert_eq!(all.items.len(), 25);
    let names: Vec<String> = all.items.iter().map(|t| t.name.to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let last = store::tenants::list(
        &pool,
        &TenantQuery {
            page: 10,
            per_page: 25,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(last.items.len(), 15);

    let acme = store::tenants::list(
        &pool,
        &TenantQuery {
            search: Some("  ACME ".into()),
            page: 1,
            per_page: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(acme.total > 0 && acme.total < 240);
    assert!(acme
        .items
        .iter()
        .all(|t| t.name.to_lowercase().contains("acme")));

    // LIKE wildcards in the search are literal.
    let pct = store::tenants::list(
        &pool,
        &TenantQuery {
            search: Some("%".into()),
            page: 1,
            per_page: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pct.total, 0);

    let pro_eu = store::tenants::list(
        &pool,
        &TenantQuery {
            plan: Some("pro".into()),
            region: Some("eu-west".into()),
            sort: TenantSort::Newest,
            page: 1,
            per_page: 500,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pro_eu.total > 0);
    assert!(pro_eu
        .items
        .iter()
        .all(|t| t.plan == "pro" && t.region == "eu-west"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn snapshot_reflects_the_rows(pool: PgPool) {
    store::demo::seed_tenants(&pool, 20).await.unwrap();
    let a = store::demo::demo_tenant(3).id;
    let b = store::demo::demo_tenant(4).id;
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&a)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled, excluded) VALUES ('multi_workspace_enabled', $1, false, true)")
        .bind(&b)
        .execute(&pool)
        .await
        .unwrap();
    let snap = store::snapshot::load(&pool).await.unwrap();
    assert_eq!(snap.tenants.len(), 20);
    assert!(snap.evaluate("multi_workspace_enabled", &a).on);
    assert_eq!(
        snap.evaluate("multi_workspace_enabled", &b).reason,
        flags::Reason::Excluded
    );
    assert_eq!(snap.evaluate("nope", &a).reason, flags::Reason::UnknownFlag);
    let version: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(snap.version, version as u64);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn migration_status_is_complete(pool: PgPool) {
    let counts = store::migrations::counts(&pool).await.unwrap();
    assert_eq!(counts.pending, 0);
    assert_eq!(counts.drifted, 0);
    assert_eq!(counts.applied, store::MIGRATOR.iter().count());
}

/// Tokens minted over REST before token owners existed get the person at the root of their
/// `created_by` chain, so an old child token still counts as its minter when approving.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn old_minted_tokens_get_their_minters_person(pool: PgPool) {
    sqlx::query(
        "INSERT INTO api_tokens (name, scope, token_hash, prefix, created_by, created_at) VALUES \
         ('admin', 'admin', '\\x01', 'p', 'cli:root', now() - interval '3 hours'), \
         ('child', 'admin', '\\x02', 'p', 'token:admin', now() - interval '2 hours'), \
         ('grandchild', 'admin', '\\x03', 'p', 'token:child', now() - interval '1 hour'), \
         ('orphan', 'admin', '\\x04', 'p', 'token:gone', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let n: i32 = sqlx::query_scalar("SELECT rollgate_backfill_token_owners()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let owners: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, owner FROM api_tokens ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        owners,
        [
            ("admin".to_string(), None),
            ("child".to_string(), Some("token:admin".to_string())),
            ("grandchild".to_string(), Some("token:admin".to_string())),
            ("orphan".to_string(), Some("token:gone".to_string())),
        ]
    );
}

/// `flags::PLANS` is the one list of plans: the database accepts each of them and nothing else,
/// and the demo data uses only them and the known regions.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_plan_list_is_the_databases(pool: PgPool) {
    let actor = store::Actor::new("test", store::Source::Cli);
    for (i, plan) in flags::PLANS.iter().chain(&["platinum"]).enumerate() {
        let t = store::tenants::NewTenant {
            id: format!("plan-{i}"),
            name: format!("Plan {plan}"),
            plan: plan.to_string(),
            region: flags::REGIONS[0].to_string(),
            tags: Vec::new(),
        };
        let made = store::tenants::create(&pool, &actor, &t).await;
        assert_eq!(
            made.is_ok(),
            flags::PLANS.contains(plan),
            "{plan}: {made:?}"
        );
    }
    for n in 0..200 {
        let t = store::demo::demo_tenant(n);
        assert!(flags::PLANS.contains(&t.plan), "{t:?}");
        assert!(flags::REGIONS.contains(&t.region), "{t:?}");
    }
}
