//! Backups and restores with the Postgres tools: `pg_dump` piped through gzip into
//! `backup_<db>_YYYYMMDD_HHMMSS.sql.gz` (the seed plan's naming), and a restore that checks the
//! whole file before it touches the database.
use std::io::{BufRead, BufReader, Write};
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
    // Process id, counter and the clock's nanoseconds: unique even for two containers that are
    // both pid 1 on one backup volume (and `create_new` refuses a clash rather than share a file).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        ".{name}.{}.{n}.{nanos:09}.partial",
        std::process::id()
    ))
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

/// One line of a plain `pg_dump` script, as the restore sees it.
enum Line<'a> {
    /// SQL text (statements may span lines).
    Sql(&'a str),
    /// `COPY … FROM stdin;`: the data lines follow, up to `\.`.
    CopyStart(&'a str),
    /// A data line of the current `COPY`.
    CopyData(&'a str),
    /// The `\.` that ends a `COPY`.
    CopyEnd,
    /// pg_dump's own `\restrict` / `\unrestrict` guard lines: nothing to run.
    Guard,
}

/// Reads a plain `pg_dump` script line by line. Outside `COPY` data no line may be a psql
/// meta-command (`\!`, `\o |…`, `\i`, …): the restore runs no psql and no shell, and a file that
/// carries one is refused before anything runs.
struct Scanner {
    in_copy: bool,
    line_no: usize,
    /// Inside a dollar-quoted body (`$$ … $$`, `$_$ … $_$`): its tag.
    dollar: Option<String>,
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            in_copy: false,
            line_no: 0,
            dollar: None,
        }
    }

    /// Follows dollar quotes through an SQL line (outside single quotes and comments).
    fn track_dollars(&mut self, line: &str) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut quoted = false;
        while let Some(&c) = chars.get(i) {
            if self.dollar.is_none() && !quoted && c == '-' && chars.get(i + 1) == Some(&'-') {
                return;
            }
            if self.dollar.is_none() && c == '\'' {
                quoted = !quoted;
            } else if !quoted && c == '$' {
                let tag: String = chars
                    .iter()
                    .skip(i + 1)
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                if chars.get(i + 1 + tag.chars().count()) == Some(&'$') {
                    match &self.dollar {
                        None => self.dollar = Some(tag.clone()),
                        Some(open) if *open == tag => self.dollar = None,
                        Some(_) => {}
                    }
                    i += tag.chars().count() + 1;
                }
            }
            i += 1;
        }
    }

    fn next<'a>(&mut self, line: &'a str, file: &Path) -> Result<Line<'a>, Error> {
        self.line_no += 1;
        let l = line.trim_end_matches(['\n', '\r']);
        if self.in_copy {
            if l == "\\." {
                self.in_copy = false;
                return Ok(Line::CopyEnd);
            }
            return Ok(Line::CopyData(l));
        }
        let t = l.trim_start();
        if t.starts_with("\\restrict ") || t.starts_with("\\unrestrict ") {
            return Ok(Line::Guard);
        }
        if t.contains('\\') && psql_meta(t) {
            return Err(Error::Invalid(format!(
                "{} line {}: a psql meta-command ({:?}) is not part of a pg_dump backup; refused",
                file.display(),
                self.line_no,
                t.chars().take(40).collect::<String>()
            )));
        }
        let in_body = self.dollar.is_some();
        self.track_dollars(t);
        if let Some(what) = forbidden(t, in_body) {
            return Err(Error::Invalid(format!(
                "{} line {}: {what} is not part of a pg_dump backup; refused",
                file.display(),
                self.line_no
            )));
        }
        if l.starts_with("COPY ") && l.ends_with(" FROM stdin;") {
            self.in_copy = true;
            return Ok(Line::CopyStart(l));
        }
        Ok(Line::Sql(l))
    }
}

/// What a plain pg_dump of Tenantry's database never holds and a planted file could use: the
/// restore runs the file's SQL with the connection's privileges, so statements that reach the
/// server's files or programs, change roles or end the restore's transaction are refused outright
/// (defence in depth: run Tenantry with a role that is not a superuser, as docs/operations.md says).
fn forbidden(line: &str, in_body: bool) -> Option<&'static str> {
    let upper = line.to_ascii_uppercase();
    let starts = |w: &str| {
        upper.starts_with(w)
            && upper
                .get(w.len()..)
                .is_none_or(|rest| rest.starts_with([' ', ';', '\t']) || rest.is_empty())
    };
    // (Inside a function body `BEGIN` and `END` are PL/pgSQL blocks, not transactions.)
    if !in_body
        && [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "END",
            "ABORT",
            "START TRANSACTION",
            "SAVEPOINT",
            "RELEASE",
            "PREPARE TRANSACTION",
        ]
        .iter()
        .any(|w| starts(w))
    {
        return Some("a transaction statement");
    }
    [
        ("PROGRAM", "COPY … PROGRAM (a shell command)"),
        ("LO_IMPORT", "lo_import (a server file)"),
        ("LO_EXPORT", "lo_export (a server file)"),
        ("PG_READ_FILE", "pg_read_file (a server file)"),
        ("PG_READ_BINARY_FILE", "pg_read_binary_file (a server file)"),
        ("PG_LS_DIR", "pg_ls_dir (a server directory)"),
        ("ALTER SYSTEM", "ALTER SYSTEM"),
        ("CREATE ROLE", "CREATE ROLE"),
        ("ALTER ROLE", "ALTER ROLE"),
        ("CREATE USER", "CREATE USER"),
        ("ALTER USER", "ALTER USER"),
        ("SET ROLE", "SET ROLE"),
        ("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION"),
        ("DBLINK", "dblink"),
        ("PLPYTHON", "an untrusted language"),
        ("PLPERLU", "an untrusted language"),
        ("PLTCLU", "an untrusted language"),
        ("LANGUAGE C", "a C-language function"),
    ]
    .iter()
    .find(|(w, _)| upper.contains(w))
    .map(|(_, what)| *what)
}

/// Whether an SQL line holds a backslash outside quotes and comments: psql would run what follows
/// it as a meta-command. pg_dump never writes one (its string literals are standard-conforming,
/// backslashes only inside quotes or `E'…'`).
fn psql_meta(line: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '-') if chars.peek() == Some(&'-') => return false,
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => return true,
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    false
}

/// Reads the whole file: it must be a complete gzip stream holding a complete `pg_dump` script,
/// with no psql meta-command.
pub fn check(file: &Path) -> Result<BackupCheck, Error> {
    let f = std::fs::File::open(file).map_err(|e| io(&format!("opening {}", file.display()), e))?;
    let mut reader = BufReader::new(GzDecoder::new(f));
    let mut line = String::new();
    let mut scanner = Scanner::new();
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
        match scanner.next(&line, file)? {
            Line::CopyStart(_) => tables += 1,
            Line::Sql(s) if s == FOOTER => complete = true,
            _ => {}
        }
    }
    if first {
        return Err(Error::Invalid(format!("{} is empty", file.display())));
    }
    if !complete || scanner.in_copy {
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

/// Restores `file` into the database: checks the whole file first, then runs it in one
/// transaction over Tenantry's own connection — the SQL as it is, each `COPY` through the COPY
/// protocol — so a failed restore changes nothing and no psql (and no shell) is involved.
pub async fn restore(database_url: &str, file: &Path) -> Result<BackupCheck, Error> {
    use sqlx::Connection;
    let checked = {
        let f = file.to_path_buf();
        tokio::task::spawn_blocking(move || check(&f))
            .await
            .map_err(|e| Error::Invalid(format!("checking the backup: {e}")))??
    };
    let failed = |e: sqlx::Error| match e.as_database_error() {
        Some(d) => Error::Invalid(format!(
            "restore failed and was rolled back: {}",
            d.message()
        )),
        None => Error::from(e),
    };
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    let mut tx = conn.begin().await?;
    let f = std::fs::File::open(file).map_err(|e| io(&format!("opening {}", file.display()), e))?;
    let mut reader = BufReader::new(GzDecoder::new(f));
    let mut scanner = Scanner::new();
    let mut sql = String::new();
    let mut line = String::new();
    let mut row = String::new();
    // Checked again on the pass that runs it: a file changed since the check, cut short, commits
    // nothing.
    let mut complete = false;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| io("reading the backup", e))?;
        if n == 0 {
            break;
        }
        match scanner.next(&line, file)? {
            Line::Guard | Line::CopyData(_) | Line::CopyEnd => {}
            Line::Sql(s) => {
                complete |= s == FOOTER;
                sql.push_str(s);
                sql.push('\n');
            }
            Line::CopyStart(statement) => {
                if !sql.trim().is_empty() {
                    sqlx::raw_sql(&sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
                sql.clear();
                let mut copy = tx.copy_in_raw(statement).await.map_err(failed)?;
                let mut data: Vec<u8> = Vec::new();
                loop {
                    row.clear();
                    let n = reader
                        .read_line(&mut row)
                        .map_err(|e| io("reading the backup", e))?;
                    let d = match (n, scanner.next(&row, file)?) {
                        (0, _) | (_, Line::CopyEnd) => break,
                        (_, Line::CopyData(d)) => d,
                        _ => continue,
                    };
                    data.extend_from_slice(d.as_bytes());
                    data.push(b'\n');
                    if data.len() >= 1 << 20 {
                        copy.send(std::mem::take(&mut data)).await.map_err(failed)?;
                    }
                }
                if !data.is_empty() {
                    copy.send(data).await.map_err(failed)?;
                }
                copy.finish().await.map_err(failed)?;
            }
        }
    }
    if !complete || scanner.in_copy {
        return Err(Error::Invalid(format!(
            "{} changed since it was checked: its closing line is missing; nothing was restored",
            file.display()
        )));
    }
    if !sql.trim().is_empty() {
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    Ok(checked)
}

/// Takes a backup now — the one way to, for the web app's DBA page and `tenantry backup` alike:
/// [`create`] (off the async workers: `pg_dump` and gzip are blocking and CPU-heavy), then one
/// audit row `backup.create` by `actor` with the file's name and size, so every backup reads the
/// same in the log whoever took it.
pub async fn take(
    pool: &PgPool,
    actor: &Actor,
    database_url: &str,
    dir: &Path,
) -> Result<BackupFile, Error> {
    let (url, d) = (database_url.to_string(), dir.to_path_buf());
    let path = tokio::task::spawn_blocking(move || create(&url, &d))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the backup task failed");
            Error::Invalid("the backup stopped unexpectedly; see the server log".into())
        })??;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta =
        std::fs::metadata(&path).map_err(|e| io(&format!("reading {}", path.display()), e))?;
    let file = BackupFile {
        name,
        bytes: meta.len(),
        modified: meta
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now()),
    };
    record(
        pool,
        actor,
        "backup.create",
        serde_json::json!({ "file": file.name, "bytes": file.bytes }),
    )
    .await?;
    Ok(file)
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
            file_name("tenantry", at),
            "backup_tenantry_20261125_090501.sql.gz"
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
