//! Backups and restores with the Postgres tools: `pg_dump` piped through gzip into
//! `backup_<db>_YYYYMMDD_HHMMSS.sql.gz` (the seed plan's naming), and a restore that checks the
//! whole file before it touches the database.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use serde::Serialize;

use crate::{Actor, Error, PgPool};

/// A backup file in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification.
    pub modified: DateTime<Utc>,
}

const HEADER: &str = "-- PostgreSQL database dump";
const FOOTER: &str = "-- PostgreSQL database dump complete";

/// The database name of a `postgres://…/NAME?…` URL.
pub fn database_name(url: &str) -> Result<String, Error> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| Error::Invalid("DATABASE_URL is not a postgres:// URL".into()))?;
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or_default();
    let name = path.split(['?', '#']).next().unwrap_or_default();
    if name.is_empty() {
        return Err(Error::Invalid("DATABASE_URL names no database".into()));
    }
    Ok(name.to_string())
}

/// Splits the password out of a connection URL, so it travels to `pg_dump`/`psql` in the
/// environment (`PGPASSWORD`) and never on a command line other users can read.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_string(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `pg_dump` / `psql` pointed at `database_url`, the password in the environment.
fn pg_command(program: &str, database_url: &str) -> Command {
    let (url, password) = split_password(database_url);
    let mut cmd = Command::new(program);
    cmd.arg("--dbname").arg(url);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

/// `backup_<db>_YYYYMMDD_HHMMSS.sql.gz`.
pub fn file_name(db: &str, at: DateTime<Utc>) -> String {
    let safe: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("backup_{safe}_{}.sql.gz", at.format("%Y%m%d_%H%M%S"))
}

fn is_backup_name(name: &str) -> bool {
    name.starts_with("backup_") && name.ends_with(".sql.gz")
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}

/// A temporary file name no other backup uses, in this process or another.
fn partial_name(dir: &Path, name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.partial", std::process::id()))
}

/// Gives the finished `partial` its final name in `dir` without overwriting anything: a second
/// backup in the same second becomes `…_2.sql.gz`.
fn publish(partial: &Path, dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let stem = name.trim_end_matches(".sql.gz");
    for n in 1..1000 {
        let target = if n == 1 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}_{n}.sql.gz"))
        };
        // A hard link fails when the target exists: atomic, never clobbers.
        match std::fs::hard_link(partial, &target) {
            Ok(()) => {
                let _ = std::fs::remove_file(partial);
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("naming the backup", e)),
        }
    }
    Err(Error::Conflict(format!("too many backups named {name}")))
}

/// Dumps the database into `dir` (created if missing, mode 0700). The file (mode 0600: a dump
/// holds password and token hashes) appears under its final name only once `pg_dump` has
/// succeeded and the gzip stream is complete; concurrent backups never share a file. Session rows
/// are left out (their ids are bearer secrets): a restore signs everyone out.
pub fn create(database_url: &str, dir: &Path) -> Result<PathBuf, Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let db = database_name(database_url)?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(&format!("creating {}", dir.display()), e))?;
    }
    let name = file_name(&db, Utc::now());
    let partial = partial_name(dir, &name);
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| io(&format!("creating {}", partial.display()), e))?;
        let mut child = pg_command("pg_dump", database_url)
            .args([
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exclude-table-data=sessions",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io("starting pg_dump (is the PostgreSQL client installed?)", e))?;
        let mut gz = GzEncoder::new(file, Compression::default());
        if let Some(mut out) = child.stdout.take() {
            std::io::copy(&mut out, &mut gz).map_err(|e| io("writing the backup", e))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| io("waiting for pg_dump", e))?;
        if !output.status.success() {
            return Err(Error::Invalid(format!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        gz.finish()
            .and_then(|mut f| f.flush())
            .map_err(|e| io("finishing the backup", e))?;
        publish(&partial, dir, &name)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// What [`check`] found in a backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupCheck {
    /// Uncompressed size.
    pub sql_bytes: u64,
    /// Tables whose data the dump carries (`COPY … FROM stdin`).
    pub tables: usize,
}

/// Reads the whole file: it must be a complete gzip stream holding a complete `pg_dump` script.
pub fn check(file: &Path) -> Result<BackupCheck, Error> {
    let f = std::fs::File::open(file).map_err(|e| io(&format!("opening {}", file.display()), e))?;
    let mut reader = BufReader::new(GzDecoder::new(f));
    let mut line = String::new();
    let (mut first, mut complete, mut tables, mut bytes) = (true, false, 0usize, 0u64);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a readable gzip backup: {e}",
                file.display()
            ))
        })?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let l = line.trim_end();
        if first && !l.is_empty() && l != "--" {
            if !l.starts_with(HEADER) {
                return Err(Error::Invalid(format!(
                    "{} is not a pg_dump script",
                    file.display()
                )));
            }
            first = false;
        }
        if l.starts_with("COPY ") && l.ends_with("FROM stdin;") {
            tables += 1;
        }
        if l == FOOTER {
            complete = true;
        }
    }
    if first {
        return Err(Error::Invalid(format!("{} is empty", file.display())));
    }
    if !complete {
        return Err(Error::Invalid(format!(
            "{} is truncated: the dump's closing line is missing",
            file.display()
        )));
    }
    Ok(BackupCheck {
        sql_bytes: bytes,
        tables,
    })
}

/// Restores `file` into the database: checks the file first, then runs it through `psql` in one
/// transaction that stops at the first error (so a failed restore changes nothing).
pub fn restore(database_url: &str, file: &Path) -> Result<BackupCheck, Error> {
    let checked = check(file)?;
    let f = std::fs::File::open(file).map_err(|e| io(&format!("opening {}", file.display()), e))?;
    let mut child = pg_command("psql", database_url)
        .args([
            "--quiet",
            "--no-psqlrc",
            "--set",
            "ON_ERROR_STOP=1",
            "--single-transaction",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("starting psql (is the PostgreSQL client installed?)", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut gz = GzDecoder::new(f);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = gz.read(&mut buf).map_err(|e| io("reading the backup", e))?;
            if n == 0 {
                break;
            }
            stdin
                .write_all(buf.get(..n).unwrap_or_default())
                .map_err(|e| io("feeding psql", e))?;
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| io("waiting for psql", e))?;
    if !output.status.success() {
        return Err(Error::Invalid(format!(
            "restore failed and was rolled back: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(checked)
}

/// Writes an audit row for a database operation (`backup.create`, `backup.restore`).
pub async fn record(
    pool: &PgPool,
    actor: &Actor,
    action: &str,
    details: serde_json::Value,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    actor
        .audit(&mut tx, action, None, None, None, Some(details))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The newest backup in `dir` if it is younger than `max_age`: the "backup taken" gate.
pub fn fresh(dir: &Path, max_age: std::time::Duration) -> Result<Option<BackupFile>, Error> {
    let now = Utc::now();
    let limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    Ok(list(dir)?
        .into_iter()
        .next()
        .filter(|b| now - b.modified <= limit))
}

/// The backups in `dir`, newest first (a missing directory has none).
pub fn list(dir: &Path) -> Result<Vec<BackupFile>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&format!("reading {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !is_backup_name(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        out.push(BackupFile {
            name,
            bytes: meta.len(),
            modified,
        });
    }
    out.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_seed() {
        let at: DateTime<Utc> = "2026-11-25T09:05:01Z".parse().unwrap_or_default();
        assert_eq!(
            file_name("rollgate", at),
            "backup_rollgate_20261125_090501.sql.gz"
        );
        assert_eq!(
            database_name("postgres://u@h:5432/crm?sslmode=require").ok(),
            Some("crm".into())
        );
        assert!(database_name("postgres://u@h:5432").is_err());
        assert!(database_name("nonsense").is_err());
        assert_eq!(
            split_password("postgres://app:s%40cret@db:5432/crm?sslmode=require"),
            (
                "postgres://app@db:5432/crm?sslmode=require".into(),
                Some("s@cret".into())
            )
        );
        assert_eq!(
            split_password("postgres://app@db/crm"),
            ("postgres://app@db/crm".into(), None)
        );
    }
}
