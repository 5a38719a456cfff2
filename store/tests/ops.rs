//! Database operations against a real Postgres: backup → restore round trips into a fresh
//! database, refused restores, drifted and pending migrations, the health figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use sqlx::PgPool;

/// The URL of the test's own database (`#[sqlx::test]` makes one per test from DATABASE_URL).
async fn url_of(pool: &PgPool, db: Option<&str>) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{}", db.unwrap_or(&current))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every public table with its row count and a digest of its rows.
async fn fingerprint(url: &str) -> Vec<(String, i64, String)> {
    let pool = PgPool::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let (n, digest): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM \"{t}\" r"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        out.push((t, n, digest));
    }
    pool.close().await;
    out
}

/// Sets the file's modification time `secs` into the past (as if the backup were older).
fn filetime_minus(file: &Path, secs: u64) -> std::time::SystemTime {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(t)
        .unwrap();
    t
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The SQL text of a gzip backup.
fn read_gz(path: &Path) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    text
}

/// Writes `text` as a gzip file.
fn write_gz(path: &Path, text: &str) {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
}

async fn backup(url: &str, dir: &Path) -> PathBuf {
    let (u, d) = (url.to_string(), dir.to_path_buf());
    blocking(move || store::backup::create(&u, &d))
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn backup_then_restore_into_a_fresh_database_keeps_every_row(pool: PgPool) {
    store::demo::seed_tenants(&pool, 60).await.unwrap();
    sqlx::query(
        "INSERT INTO feature_flags (key, tenant_id, enabled) \
         SELECT 'multi_workspace_enabled', id, true FROM tenants ORDER BY id LIMIT 7",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE tenants SET tags = ARRAY['it''s', 'quoted|pipe'] WHERE id = (SELECT min(id) FROM tenants)")
        .execute(&pool)
        .await
        .unwrap();
    let url = url_of(&pool, None).await;
    let dir = scratch("roundtrip");
    let file = backup(&url, &dir).await;
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("backup_") && name.ends_with(".sql.gz"),
        "{name}"
    );
    assert_eq!(store::backup::list(&dir).unwrap()[0].name, name);
    // The "backup taken" gate: a backup younger than the configured age.
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(
        store::backup::fresh(&dir, hour).unwrap().map(|b| b.name),
        Some(name.clone())
    );
    let old = filetime_minus(&file, 2 * 3600);
    assert!(
        store::backup::fresh(&dir, hour).unwrap().is_none(),
        "{old:?}"
    );
    assert!(store::backup::fresh(&scratch("empty"), hour)
        .unwrap()
        .is_none());
    let f = file.clone();
    let checked = blocking(move || store::backup::check(&f)).await.unwrap();
    assert!(checked.tables >= 8, "{checked:?}");

    // Into a fresh, empty database.
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // (Database names stop at 63 bytes: a short, unique one.)
    let fresh = format!("rg_restore_{}_{}", std::process::id(), current.len());
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{fresh}\""))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{fresh}\""))
        .execute(&pool)
        .await
        .unwrap();
    let fresh_url = url_of(&pool, Some(&fresh)).await;
    let (u, f) = (fresh_url.clone(), file.clone());
    store::backup::restore(&u, &f).await.unwrap();
    let original = fingerprint(&url).await;
    assert!(original.iter().any(|(t, n, _)| t == "tenants" && *n == 60));
    assert!(original.iter().any(|(t, n, _)| t == "audit_log" && *n > 0));
    assert_eq!(fingerprint(&fresh_url).await, original);

    // Restoring over a database that has moved on puts it back as it was.
    sqlx::query("DELETE FROM tenants WHERE id IN (SELECT id FROM tenants ORDER BY id LIMIT 5)")
        .execute(&pool)
        .await
        .unwrap();
    let (u, f) = (url.clone(), file.clone());
    store::backup::restore(&u, &f).await.unwrap();
    assert_eq!(fingerprint(&url).await, original);

    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{fresh}\" WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_backups_are_refused_before_the_database_is_touched(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let url = url_of(&pool, None).await;
    let dir = scratch("refused");
    let gz = write_gz;
    let not_gzip = dir.join("backup_x_20260101_000000.sql.gz");
    std::fs::write(&not_gzip, b"DROP TABLE tenants;").unwrap();
    let not_dump = dir.join("backup_y_20260101_000000.sql.gz");
    gz(&not_dump, "DROP TABLE tenants;\n");
    // A real dump cut short: its closing line is missing.
    let real = backup(&url, &dir).await;
    let text = read_gz(&real);
    let truncated = dir.join("backup_z_20260101_000000.sql.gz");
    gz(&truncated, &text[..text.len() / 2]);

    // A planted file: a real dump with a psql shell escape added. Refused before anything runs
    // (and the restore runs no psql, so the line could never reach a shell).
    let planted = dir.join("backup_planted_20261129_000000.sql.gz");
    let marker = dir.join("pwned");
    let evil = text.replacen(
        "SET statement_timeout = 0;",
        &format!("SET statement_timeout = 0;\n\\! touch {}", marker.display()),
        1,
    );
    assert_ne!(evil, text);
    gz(&planted, &evil);
    // Statements a dump never holds that reach the server's programs or end the transaction.
    let program = dir.join("backup_program_20261129_000000.sql.gz");
    gz(
        &program,
        &text.replacen(
            "SET statement_timeout = 0;",
            &format!(
                "SET statement_timeout = 0;\nCOPY (SELECT 1) TO PROGRAM 'touch {}';",
                marker.display()
            ),
            1,
        ),
    );
    let commit = dir.join("backup_commit_20261129_000000.sql.gz");
    gz(
        &commit,
        &text.replacen(
            "SET statement_timeout = 0;",
            "SET statement_timeout = 0;\nCOMMIT;",
            1,
        ),
    );
    for (file, expected) in [
        (&not_gzip, "not a readable gzip"),
        (&not_dump, "not a pg_dump script"),
        (&truncated, "truncated"),
        (&planted, "psql meta-command"),
        (&program, "PROGRAM"),
        (&commit, "a transaction statement"),
    ] {
        let (u, f) = (url.clone(), file.clone());
        let err = store::backup::restore(&u, &f)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{}: {err}", file.display());
    }
    assert!(!marker.exists(), "the planted shell command ran");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tenants, 10);
    let missing = dir.join("nope.sql.gz");
    let err = blocking(move || store::backup::check(&missing))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("opening"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn drifted_and_pending_migrations_are_reported(pool: PgPool) {
    let first = store::MIGRATOR.iter().next().unwrap().version;
    let last = store::MIGRATOR.iter().last().unwrap().version;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = $1")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(last)
        .execute(&pool)
        .await
        .unwrap();
    let status = store::migrations::status(&pool).await.unwrap();
    let state = |v: i64| {
        serde_json::to_value(status.iter().find(|m| m.version == v).unwrap().state).unwrap()
    };
    assert_eq!(state(first), "drifted");
    assert_eq!(state(last), "pending");
    let counts = store::migrations::counts(&pool).await.unwrap();
    assert_eq!((counts.drifted, counts.pending), (1, 1));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn health_reports_size_tables_and_thresholds(pool: PgPool) {
    store::demo::seed_tenants(&pool, 30).await.unwrap();
    let h = store::dba::health(&pool).await.unwrap();
    assert!(h.size_bytes > 0);
    assert!(h.connections >= 1);
    assert!(h.tables.iter().any(|t| t.name == "public.tenants"));
    assert!(h
        .tables
        .windows(2)
        .all(|w| w[0].total_bytes >= w[1].total_bytes));
    // The test database has no pg_stat_statements: Tenantry's own timings stand in.
    store::dba::record_timing("SELECT  1\n FROM tenants", 4.0);
    store::dba::record_timing("SELECT 1 FROM tenants", 6.0);
    store::dba::record_timing("UPDATE flags SET x = 1", 30.0);
    let h = store::dba::health(&pool).await.unwrap();
    assert_eq!(h.statements_source.as_deref(), Some("tenantry"));
    let st = h.statements.unwrap();
    assert_eq!(st[0].query, "UPDATE flags SET x = 1");
    let select = st
        .iter()
        .find(|s| s.query == "SELECT 1 FROM tenants")
        .unwrap();
    assert_eq!((select.calls, select.mean_ms), (2, 5.0));
    assert!((h.avg_query_ms.unwrap() - 40.0 / 3.0).abs() < 1e-9);
    assert_eq!(store::dba::query_time_status(20.0), "normal");
    assert_eq!(store::dba::query_time_status(250.0), "elevated");
    assert_eq!(store::dba::query_time_status(600.0), "alert");
}

/// Backups are readable by their owner only (file 0600, a new directory 0700), two taken at once
/// never share a file (both complete and valid), and no session row — a bearer secret — is in
/// them.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn backups_are_private_distinct_and_hold_no_sessions(pool: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    store::demo::seed_tenants(&pool, 5).await.unwrap();
    let secret = "session-id-that-must-not-leak-7f3a9c";
    sqlx::query("INSERT INTO sessions (id, data, expiry_date) VALUES ($1, '\\x00', now() + interval '1 day')")
        .bind(secret)
        .execute(&pool)
        .await
        .unwrap();
    let url = url_of(&pool, None).await;
    let dir = scratch("private").join("nested");
    let (a, b) = tokio::join!(backup(&url, &dir), backup(&url, &dir));
    assert_ne!(a, b, "two backups at once wrote the same file");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in [&a, &b] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        let g = f.clone();
        let checked = blocking(move || store::backup::check(&g)).await.unwrap();
        assert!(checked.tables >= 8, "{checked:?}");
        let text = read_gz(f);
        assert!(!text.contains(secret), "a session id is in {}", f.display());
        assert!(
            text.contains("CREATE TABLE public.sessions"),
            "the table itself stays"
        );
    }
    assert_eq!(store::backup::list(&dir).unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// A restore that fails halfway — after its DROPs and some COPY data ran — changes nothing: it is
/// one transaction.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_restore_that_fails_halfway_changes_nothing(pool: PgPool) {
    store::demo::seed_tenants(&pool, 12).await.unwrap();
    let url = url_of(&pool, None).await;
    let dir = scratch("halfway");
    let text = read_gz(&backup(&url, &dir).await);
    let footer = "-- PostgreSQL database dump complete";
    let broken = text.replacen(footer, &format!("SELECT 1/0;\n{footer}"), 1);
    assert_ne!(broken, text);
    let file = dir.join("backup_broken_20261129_000000.sql.gz");
    write_gz(&file, &broken);
    // The database moves on after the backup; the failed restore must not take it back.
    sqlx::query("DELETE FROM tenants WHERE id IN (SELECT id FROM tenants ORDER BY id LIMIT 2)")
        .execute(&pool)
        .await
        .unwrap();
    let before = fingerprint(&url).await;
    let err = store::backup::restore(&url, &file)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(fingerprint(&url).await, before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The web app and the CLI take backups through `store::backup::take`: the file, and one audit row
/// `backup.create` naming the file and its size, the same whoever took it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn taking_a_backup_writes_the_file_and_one_audit_row(pool: PgPool) {
    let url = url_of(&pool, None).await;
    let dir = scratch("take");
    for (who, source) in [("dora", store::Source::Ui), ("cli:ops", store::Source::Cli)] {
        let actor = store::Actor::new(who, source);
        let taken = store::backup::take(&pool, &actor, &url, &dir)
            .await
            .unwrap();
        assert!(dir.join(&taken.name).is_file(), "{taken:?}");
        assert_eq!(
            std::fs::metadata(dir.join(&taken.name)).unwrap().len(),
            taken.bytes
        );
        let rows: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT actor, source, after FROM audit_log WHERE action = 'backup.create' AND actor = $1",
        )
        .bind(who)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![(
                who.to_string(),
                source.as_str().to_string(),
                serde_json::json!({ "file": taken.name, "bytes": taken.bytes }),
            )]
        );
    }
    assert_eq!(store::backup::list(&dir).unwrap().len(), 2);
}
