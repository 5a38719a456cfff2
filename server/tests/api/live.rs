//! How changes reach running instances: `LISTEN`, and polling when it cannot listen.

use server::AppState;
use sqlx::PgPool;

use crate::helpers::{options, FLAG};

/// A DBA's raw SQL reaches two running instances on one database in under a second.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn raw_sql_propagates_to_two_instances_in_under_a_second(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let tenant = store::demo::demo_tenant(3).id;
    let instances: Vec<AppState> = (0..2)
        .map(|_| AppState::new(options(), pool.clone()))
        .collect();
    for s in &instances {
        server::live::spawn(s.pool.clone(), s.live.clone());
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !instances
        .iter()
        .all(|s| s.live.is_listening() && s.live.is_loaded())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances did not start listening"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let start = std::time::Instant::now();
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    for s in &instances {
        while !s.live.current().evaluate(FLAG, &tenant).on {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "change not seen within a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// An instance whose `LISTEN` connection cannot be opened while ordinary queries work keeps
/// polling: a raw-SQL change (a kill switch, say) still reaches it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_instance_that_cannot_listen_still_follows_changes(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let tenant = store::demo::demo_tenant(3).id;
    let s = AppState::new(options(), pool.clone());
    server::live::spawn_with(s.pool.clone(), s.live.clone(), |_| async {
        Err(store::Error::Invalid("LISTEN refused (test)".into()))
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !s.live.is_loaded() {
        assert!(std::time::Instant::now() < deadline, "never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!s.live.is_listening());
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let limit = server::live::DEAF_REFRESH + std::time::Duration::from_secs(5);
    while !s.live.current().evaluate(FLAG, &tenant).on {
        assert!(
            start.elapsed() < limit,
            "change never reached the deaf instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
