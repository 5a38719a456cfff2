//! History and flag-state queries against a real Postgres: time travel from the audit log, the
//! flag-state filter, the effective ON counts. Each test gets a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use store::tenants::TenantQuery;

const FLAG: &str = "multi_workspace_enabled";

async fn ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

/// What evaluation says right now, from a fresh snapshot.
async fn on_now(pool: &PgPool) -> BTreeSet<String> {
    let snap = store::snapshot::load(pool).await.unwrap();
    ids(pool)
        .await
        .into_iter()
        .filter(|t| snap.evaluate(FLAG, t).on)
        .collect()
}

async fn on_at(pool: &PgPool, at: DateTime<Utc>) -> BTreeSet<String> {
    store::audit::flag_at(pool, FLAG, at)
        .await
        .unwrap()
        .tenants_on
        .into_iter()
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn time_travel_rebuilds_who_had_the_flag_on(pool: PgPool) {
    store::demo::seed_tenants(&pool, 20).await.unwrap();
    let all: BTreeSet<String> = ids(&pool).await.into_iter().collect();
    let a = all.iter().next().unwrap().clone();
    let b = all.iter().nth(1).unwrap().clone();

    let t0 = now(&pool).await;
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{a}', true)"
        ),
    )
    .await;
    let t1 = now(&pool).await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = true WHERE key = '{FLAG}' AND tenant_id IS NULL"
        ),
    )
    .await;
    let t2 = now(&pool).await;
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, excluded) VALUES ('{FLAG}', '{b}', true)"
        ),
    )
    .await;
    let t3 = now(&pool).await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = false WHERE key = '{FLAG}' AND tenant_id IS NULL"
        ),
    )
    .await;
    let t4 = now(&pool).await;

    let before = store::audit::flag_at(&pool, FLAG, t0).await.unwrap();
    assert!(before.existed && !before.global);
    assert!(before.tenants_on.is_empty());
    assert_eq!(on_at(&pool, t1).await, BTreeSet::from([a.clone()]));
    assert!(store::audit::flag_at(&pool, FLAG, t2).await.unwrap().global);
    assert_eq!(on_at(&pool, t2).await, all);
    let mut without_b = all.clone();
    without_b.remove(&b);
    assert_eq!(on_at(&pool, t3).await, without_b);
    assert_eq!(on_at(&pool, t4).await, BTreeSet::from([a.clone()]));
    // The present, rebuilt from history, is what evaluation says.
    assert_eq!(on_at(&pool, now(&pool).await).await, on_now(&pool).await);

    // Before the flag existed: nothing, and it says so.
    let ancient: DateTime<Utc> = "2000-01-01T00:00:00Z".parse().unwrap();
    let gone = store::audit::flag_at(&pool, FLAG, ancient).await.unwrap();
    assert!(!gone.existed && gone.tenants_on.is_empty());
    // An unknown flag never existed.
    let none = store::audit::flag_at(&pool, "no_such_flag", t4)
        .await
        .unwrap();
    assert!(!none.existed);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn flag_state_filter_and_counts_follow_the_evaluation_rule(pool: PgPool) {
    store::demo::seed_tenants(&pool, 30).await.unwrap();
    let all = ids(&pool).await;
    let (a, b, c) = (&all[0], &all[1], &all[2]);
    exec(&pool, &format!(
        "INSERT INTO feature_flags (key, tenant_id, enabled, excluded) VALUES \
         ('{FLAG}', '{a}', true, false), ('{FLAG}', '{b}', true, false), ('{FLAG}', '{c}', true, true)"
    ))
    .await;
    let list = |on: bool| TenantQuery {
        flag_state: Some((FLAG.to_string(), on)),
        page: 1,
        per_page: 500,
        ..Default::default()
    };
    let check = |expected_on: usize| {
        let pool = pool.clone();
        let all = all.clone();
        async move {
            let on = store::tenants::list(&pool, &list(true)).await.unwrap();
            let off = store::tenants::list(&pool, &list(false)).await.unwrap();
            assert_eq!(on.total as usize, expected_on);
            assert_eq!(off.total as usize, all.len() - expected_on);
            let listed: BTreeSet<String> = on.items.into_iter().map(|t| t.id).collect();
            assert_eq!(listed, on_now(&pool).await);
            let among: BTreeSet<String> = store::tenants::on_among(&pool, FLAG, &all)
                .await
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(among, listed);
            let (live, counts) = store::flags::effective_on(&pool).await.unwrap();
            assert_eq!(live as usize, all.len());
            assert_eq!(counts, vec![(FLAG.to_string(), expected_on as i64)]);
        }
    };
    // a and b ON by their rows; c's row is enabled but excluded.
    check(2).await;
    // Global ON: everyone but the excluded tenant.
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = true WHERE key = '{FLAG}' AND tenant_id IS NULL"
        ),
    )
    .await;
    check(all.len() - 1).await;
    // Archived tenants are not counted.
    exec(
        &pool,
        &format!("UPDATE tenants SET archived_at = now() WHERE id = '{a}'"),
    )
    .await;
    let (live, counts) = store::flags::effective_on(&pool).await.unwrap();
    assert_eq!(live as usize, all.len() - 1);
    assert_eq!(counts[0].1 as usize, all.len() - 2);

    // Bad filter input is refused with a clear message.
    let e = store::tenants::flag_state_filter(FLAG, "maybe")
        .unwrap_err()
        .to_string();
    assert!(e.contains("maybe"), "{e}");
    assert!(store::tenants::flag_state_filter("", "on").is_err());
    assert_eq!(store::tenants::flag_state_filter(FLAG, "").unwrap(), None);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_tenant_snapshot_decides_like_the_full_one(pool: PgPool) {
    store::demo::seed_tenants(&pool, 40).await.unwrap();
    let all = ids(&pool).await;
    exec(&pool, &format!(
        "INSERT INTO feature_flags (key, tenant_id, enabled, excluded) \
         SELECT '{FLAG}', id, (row_number() OVER (ORDER BY id)) % 3 = 0, (row_number() OVER (ORDER BY id)) % 7 = 0 \
         FROM tenants"
    ))
    .await;
    let full = store::snapshot::load(&pool).await.unwrap();
    for t in &all {
        let one = store::snapshot::for_tenant(&pool, t).await.unwrap();
        assert_eq!(one.evaluate(FLAG, t), full.evaluate(FLAG, t), "tenant {t}");
    }
}
