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
