//! Configuration from the environment (and the command line, which wins).
use std::net::SocketAddr;

use anyhow::Context;
use leptos::config::LeptosOptions;

/// The Leptos site options: where the compiled assets are and where to listen. Read from the
/// `LEPTOS_*` variables cargo-leptos sets, with Rollgate's defaults.
pub fn leptos_options(addr: Option<SocketAddr>) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the LEPTOS_* environment")?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "rollgate".into();
    }
    if let Some(addr) = addr {
        options.site_addr = addr;
    }
    Ok(options)
}

/// The backup directory: `ROLLGATE_BACKUP_DIR`, else `backups` under the working directory.
pub fn backup_dir() -> std::path::PathBuf {
    std::env::var_os("ROLLGATE_BACKUP_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || std::path::PathBuf::from("backups"),
            std::path::PathBuf::from,
        )
}

/// `ROLLGATE_BACKUP_MAX_AGE_HOURS` (default 24): how recent a backup must be to count as taken.
pub fn backup_max_age() -> std::time::Duration {
    let hours = std::env::var("ROLLGATE_BACKUP_MAX_AGE_HOURS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|h| *h > 0)
        .unwrap_or(24);
    std::time::Duration::from_secs(hours * 3600)
}

/// `ROLLGATE_AUTO_ADVANCE_INTERVAL_SECS` (default 60): how often plans with automatic advance are
/// checked; `0` turns the job off.
pub fn auto_advance_interval() -> Option<std::time::Duration> {
    let secs = std::env::var("ROLLGATE_AUTO_ADVANCE_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(60);
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// `PROMETHEUS_URL` (e.g. `http://127.0.0.1:9090`): the Prometheus the guards query. Unset: no
/// guard monitor (guards hold). A malformed value stops the server at start.
pub fn prometheus() -> anyhow::Result<Option<app::prom::Prometheus>> {
    match std::env::var("PROMETHEUS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            app::prom::Prometheus::new(&url, std::time::Duration::from_secs(10))
                .map(Some)
                .map_err(anyhow::Error::msg)
        }
        _ => Ok(None),
    }
}

/// `ROLLGATE_GUARD_INTERVAL_SECS` (default 30, at least 1): how often the guard monitor reads the
/// guards of every flag in a monitoring window.
pub fn guard_interval() -> std::time::Duration {
    let secs = std::env::var("ROLLGATE_GUARD_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(30);
    std::time::Duration::from_secs(secs)
}
