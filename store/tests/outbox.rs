//! The change outbox against a real Postgres: every kind of change, from raw SQL and from the write
//! path, lands in it; catching up from it gives exactly what a full load gives; a pruned outbox, a
//! TRUNCATE or an older database says "load everything"; the compact full load decides like the
//! version-1 one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flags::compact::CompactSnapshot;
use flags::delta::Changes;
use sqlx::PgPool;
use store::rollout::{Gating, Spec};

const FLAG: &str = "multi_workspace_enabled";

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn tenant(n: usize) -> String {
    store::demo::demo_tenant(n).id
}

/// Catches `snap` up from the outbox and checks it against a full load.
async fn catch_up_equals_full_load(pool: &PgPool, snap: &mut CompactSnapshot, what: &str) {
    let changes = store::outbox::since(pool, snap.version())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: the outbox should reach back"));
    assert_eq!(changes.from, snap.version(), "{what}");
    snap.apply(&changes).unwrap();
    let full = store::snapshot::load_compact(pool).await.unwrap();
    assert_eq!(snap.version(), full.version(), "{what}");
    assert_eq!(
        snap.to_json().unwrap(),
        full.to_json().unwrap(),
        "{what}: catching up differs from a full load"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_change_lands_in_the_outbox_and_catching_up_equals_a_full_load(pool: PgPool) {
    store::demo::seed_tenants(&pool, 30).await.unwrap();
    let start = store::snapshot::load_compact(&pool).await.unwrap();
    assert_eq!(start.tenant_count(), 30);
    let mut snap = start.clone();
    let (a, b, c, d) = (tenant(1), tenant(2), tenant(3), tenant(4));

    // Raw SQL on feature_flags: insert, update, delete.
    exec(&pool, &format!("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{a}', true), ('{FLAG}', '{b}', true), ('{FLAG}', '{d}', true)")).await;
    catch_up_equals_full_load(&pool, &mut snap, "insert rows").await;
    assert!(snap.evaluate(FLAG, &a).on);
    exec(
        &pool,
        &format!("UPDATE feature_flags SET excluded = true WHERE tenant_id = '{b}'"),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "exclude").await;
    assert_eq!(snap.evaluate(FLAG, &b).reason, flags::Reason::Excluded);
    exec(
        &pool,
        &format!("DELETE FROM feature_flags WHERE tenant_id = '{a}'"),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "delete a row").await;
    assert!(!snap.evaluate(FLAG, &a).on);

    // Raw SQL on a rollout: the target changes, the rows stay.
    exec(&pool, &format!("UPDATE flags SET rollout = '{{\"phase\": \"50%\", \"pilots\": [\"{c}\"], \"constraints\": []}}' WHERE key = '{FLAG}'")).await;
    catch_up_equals_full_load(&pool, &mut snap, "rollout by raw SQL").await;
    assert_eq!(
        snap.flag(FLAG).unwrap().target().unwrap().percentage.get(),
        50
    );

    // A flag created by its global row, then deleted with its rows.
    exec(
        &pool,
        "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('dba_flag', NULL, true)",
    )
    .await;
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, excluded) VALUES ('dba_flag', '{c}', true)"
        ),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "a flag created by raw SQL").await;
    assert!(snap.evaluate("dba_flag", &a).on);
    exec(&pool, "DELETE FROM flags WHERE key = 'dba_flag'").await;
    catch_up_equals_full_load(&pool, &mut snap, "a flag deleted").await;
    assert!(snap.flag("dba_flag").is_none());

    // Tenants: attributes, archive (its rows stay in the table), back from the archive.
    exec(
        &pool,
        &format!("UPDATE tenants SET plan = 'enterprise', tags = ARRAY['beta'] WHERE id = '{a}'"),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "tenant attributes").await;
    assert_eq!(snap.tenant(&a).unwrap().plan, "enterprise");
    exec(
        &pool,
        &format!("UPDATE tenants SET archived_at = now() WHERE id = '{d}'"),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "archive").await;
    assert_eq!(snap.evaluate(FLAG, &d).reason, flags::Reason::UnknownTenant);
    exec(
        &pool,
        &format!("UPDATE tenants SET archived_at = NULL WHERE id = '{d}'"),
    )
    .await;
    catch_up_equals_full_load(&pool, &mut snap, "back from the archive").await;
    assert!(snap.evaluate(FLAG, &d).on, "it comes back with its row");
    let before = store::outbox::current_version(&pool).await.unwrap();
    exec(
        &pool,
        &format!("UPDATE tenants SET name = 'Renamed' WHERE id = '{d}'"),
    )
    .await;
    let renamed = store::outbox::since(&pool, before).await.unwrap().unwrap();
    assert!(
        renamed.is_empty() && renamed.version == before + 1,
        "a rename bumps the version but changes nothing evaluation reads: {renamed:?}"
    );
    catch_up_equals_full_load(&pool, &mut snap, "rename").await;
    exec(&pool, "UPDATE flags SET description = 'said differently'").await;
    assert_eq!(
        store::outbox::current_version(&pool).await.unwrap(),
        before + 1,
        "a flag's description is not a change of evaluation"
    );

    // The application's doors: a tenant created during a 50% rollout gets its bucket's row; the
    // write path's per-tenant switch and a rollback.
    let actor = store::Actor::new("test", store::Source::Cli);
    store::tenants::create(
        &pool,
        &actor,
        &store::tenants::NewTenant {
            id: "fresh-tenant".into(),
            name: "Fresh".into(),
            plan: "pro".into(),
            region: "eu-west".into(),
            tags: vec![],
        },
    )
    .await
    .unwrap();
    catch_up_equals_full_load(&pool, &mut snap, "tenant created").await;
    assert!(snap.tenant("fresh-tenant").is_some());
    let override_ = Gating::with_override(Some("test".into()));
    store::rollout::change(
        &pool,
        &actor,
        FLAG,
        &Spec::Tenant {
            tenant: tenant(7),
            enabled: true,
            excluded: None,
        },
        None,
        &override_,
    )
    .await
    .unwrap();
    catch_up_equals_full_load(&pool, &mut snap, "per-tenant switch").await;
    assert!(snap.evaluate(FLAG, &tenant(7)).on);
    store::rollout::change(
        &pool,
        &actor,
        FLAG,
        &Spec::Rollback(flags::change::RollbackTarget::Off),
        None,
        &Gating::now(),
    )
    .await
    .unwrap();
    catch_up_equals_full_load(&pool, &mut snap, "rollback").await;
    assert!(!snap.evaluate(FLAG, &tenant(7)).on);
    store::tenants::archive(&pool, &actor, "fresh-tenant")
        .await
        .unwrap();
    exec(&pool, &format!("DELETE FROM tenants WHERE id = '{c}'")).await;
    catch_up_equals_full_load(&pool, &mut snap, "archived and deleted tenants").await;

    // Everything at once, from the start: one read.
    let mut again = start.clone();
    let all = store::outbox::since(&pool, start.version())
        .await
        .unwrap()
        .unwrap();
    again.apply(&all).unwrap();
    assert_eq!(again, snap);
    // Nothing after the current version: no changes, same version.
    let none = store::outbox::since(&pool, snap.version())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none, Changes::new(snap.version(), snap.version()));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_pruned_outbox_a_truncate_or_an_older_database_asks_for_a_full_load(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let v0 = store::outbox::current_version(&pool).await.unwrap();
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(1)
        ),
    )
    .await;
    let v1 = store::outbox::current_version(&pool).await.unwrap();
    assert!(store::outbox::since(&pool, v0).await.unwrap().is_some());
    // Kept while young.
    assert_eq!(
        store::outbox::prune(&pool, std::time::Duration::from_secs(600))
            .await
            .unwrap(),
        0
    );
    assert!(store::outbox::since(&pool, v0).await.unwrap().is_some());
    // Pruned: whoever is behind loads everything; whoever is current catches up from here.
    let gone = store::outbox::prune(&pool, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(gone >= 1, "{gone}");
    assert_eq!(store::outbox::horizon(&pool).await.unwrap(), v1);
    assert!(store::outbox::since(&pool, v0).await.unwrap().is_none());
    assert_eq!(
        store::outbox::since(&pool, v1).await.unwrap(),
        Some(Changes::new(v1, v1))
    );
    // A database at an older version than the reader (a restored backup).
    assert!(store::outbox::since(&pool, v1 + 5).await.unwrap().is_none());
    // A TRUNCATE: no row says what went, so everyone loads everything.
    exec(&pool, "TRUNCATE feature_flags").await;
    let v2 = store::outbox::current_version(&pool).await.unwrap();
    assert!(v2 > v1, "a TRUNCATE bumps the version");
    assert!(store::outbox::since(&pool, v1).await.unwrap().is_none());
    let full = store::snapshot::load_compact(&pool).await.unwrap();
    assert_eq!(full.version(), v2);
    assert!(!full.evaluate(FLAG, &tenant(1)).on);
    assert!(store::outbox::since(&pool, v2).await.unwrap().is_some());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_compact_load_decides_like_the_version_1_load(pool: PgPool) {
    store::demo::seed_tenants(&pool, 200).await.unwrap();
    // A 50% rollout over the pro and enterprise plans with a pilot, materialised by raw SQL from
    // the same rule, then perturbed by hand: an extra row, a dropped one, an exclusion, an
    // archived tenant with rows.
    let rollout = serde_json::json!({"phase": "50%", "pilots": [tenant(0)], "constraints": [
        {"attribute": "plan", "operator": "IN", "values": ["pro", "enterprise"]}]});
    let target = serde_json::from_value::<flags::Rollout>(rollout.clone())
        .unwrap()
        .target();
    let records: Vec<flags::Tenant> = (0..200)
        .map(|n| {
            let t = store::demo::demo_tenant(n);
            flags::Tenant {
                id: t.id,
                plan: t.plan.to_string(),
                region: t.region.to_string(),
                tags: t.tags.iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect();
    let on: Vec<String> = records
        .iter()
        .filter(|t| target.includes(FLAG, t))
        .map(|t| t.id.clone())
        .collect();
    assert!(on.len() > 10 && on.len() < 150, "{}", on.len());
    sqlx::query("UPDATE flags SET rollout = $1 WHERE key = $2")
        .bind(&rollout)
        .bind(FLAG)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO feature_flags (key, tenant_id, enabled) SELECT $1, unnest($2::text[]), true",
    )
    .bind(FLAG)
    .bind(&on)
    .execute(&pool)
    .await
    .unwrap();
    let off = records.iter().find(|t| !on.contains(&t.id)).unwrap();
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            off.id
        ),
    )
    .await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = false WHERE tenant_id = '{}'",
            on[1]
        ),
    )
    .await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET excluded = true WHERE tenant_id = '{}'",
            on[2]
        ),
    )
    .await;
    exec(
        &pool,
        &format!(
            "UPDATE tenants SET archived_at = now() WHERE id = '{}'",
            on[3]
        ),
    )
    .await;
    let v1 = store::snapshot::load(&pool).await.unwrap();
    let v2 = store::snapshot::load_compact(&pool).await.unwrap();
    assert_eq!(v2.version(), v1.version);
    assert_eq!(v2.tenant_count(), 199);
    let e = v2.exceptions(FLAG).unwrap();
    assert_eq!(
        (e.on, e.off, e.excluded),
        (
            vec![off.id.as_str()],
            vec![on[1].as_str()],
            vec![on[2].as_str()]
        ),
        "only the rows that differ from the rollout are listed"
    );
    for t in records.iter().map(|t| t.id.as_str()).chain(["nobody"]) {
        assert_eq!(v2.evaluate(FLAG, t), v1.evaluate(FLAG, t), "{t}");
    }
    assert_eq!(v2.tenant(&tenant(5)).unwrap().plan, records[5].plan);
    // The version-1 document the server still serves is the expansion of the compact one.
    let expanded = flags::Snapshot::from_json(v2.to_v1_json().unwrap().as_bytes()).unwrap();
    let mut without_archived = v1.clone();
    for state in without_archived.flags.values_mut() {
        state.on.remove(&on[3]);
    }
    assert_eq!(expanded, without_archived);
}

/// The plan views cache the change advancing would make per flag, keyed by what it depends on:
/// a change to another flag keeps it, while a new tenant or a row of this flag — even by raw
/// SQL — gives a new change (new hash) at once, on the flag page and on the dashboard alike.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_cached_advance_follows_tenants_and_the_flags_own_rows(pool: PgPool) {
    store::demo::seed_tenants(&pool, 30).await.unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    store::rollout::change(
        &pool,
        &actor,
        FLAG,
        &Spec::Tenant {
            tenant: tenant(7),
            enabled: true,
            excluded: None,
        },
        None,
        &Gating::with_override(Some("test".into())),
    )
    .await
    .unwrap();
    let advance = |pool: PgPool| async move {
        let now = chrono::Utc::now();
        let p = store::rollout::plan_state(&pool, FLAG, now)
            .await
            .unwrap()
            .proposal
            .unwrap();
        let list = store::flags::list(&pool).await.unwrap();
        let gates = store::rollout::next_gates(&pool, &list, now).await.unwrap();
        (p.hash, p.tenants, gates.len())
    };
    let (first, tenants, _) = advance(pool.clone()).await;
    assert_eq!(tenants, 30);
    exec(
        &pool,
        "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('another_flag', NULL, true)",
    )
    .await;
    let (same, _, listed) = advance(pool.clone()).await;
    assert_eq!(
        same, first,
        "another flag's change does not change this flag's advance"
    );
    assert_eq!(listed, 2);
    exec(&pool, "INSERT INTO tenants (id, name, plan, region) VALUES ('late-tenant', 'Late', 'pro', 'eu-west')").await;
    let (after_tenant, tenants, _) = advance(pool.clone()).await;
    assert_eq!(tenants, 31, "a new tenant is counted at once");
    exec(&pool, &format!("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true) ON CONFLICT DO NOTHING", tenant(9))).await;
    let (after_row, _, _) = advance(pool.clone()).await;
    assert_ne!(
        after_row, after_tenant,
        "a raw-SQL row of this flag gives a new change"
    );
}

/// `change_marks` — what keys the plan views' cache — follows every change of a flag's rows and
/// of the tenants, by raw SQL too, and pruning the outbox leaves it where it was.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn change_marks_follow_changes_and_survive_pruning(pool: PgPool) {
    store::demo::seed_tenants(&pool, 5).await.unwrap();
    let marks = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT subject, version FROM change_marks ORDER BY subject",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = marks(pool.clone()).await;
    let tenants_before = before
        .iter()
        .find(|(s, _)| s == "tenants")
        .map(|(_, v)| *v)
        .unwrap();
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(1)
        ),
    )
    .await;
    let v = store::outbox::current_version(&pool).await.unwrap() as i64;
    let after = marks(pool.clone()).await;
    assert!(after.contains(&(format!("flag:{FLAG}"), v)), "{after:?}");
    assert!(
        after.contains(&("tenants".into(), tenants_before)),
        "a flag's row leaves the tenants' mark: {after:?}"
    );
    exec(
        &pool,
        &format!(
            "UPDATE tenants SET plan = 'enterprise' WHERE id = '{}'",
            tenant(2)
        ),
    )
    .await;
    let v2 = store::outbox::current_version(&pool).await.unwrap() as i64;
    let after = marks(pool.clone()).await;
    assert!(after.contains(&("tenants".into(), v2)), "{after:?}");
    assert!(after.contains(&(format!("flag:{FLAG}"), v)), "{after:?}");
    store::outbox::prune(&pool, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(marks(pool.clone()).await, after, "pruning moves no mark");
}
