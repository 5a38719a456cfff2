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

/// A whole number from the environment (unset or unparsable: `None`).
fn number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// A switch from the environment: `1` or `true`.
pub fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

/// A non-empty text from the environment.
pub fn text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `ROLLGATE_BACKUP_MAX_AGE_HOURS` (default 24): how recent a backup must be to count as taken.
pub fn backup_max_age() -> std::time::Duration {
    let hours = number("ROLLGATE_BACKUP_MAX_AGE_HOURS")
        .filter(|h| *h > 0)
        .unwrap_or(24);
    std::time::Duration::from_secs(hours * 3600)
}

/// `ROLLGATE_AUTO_ADVANCE_INTERVAL_SECS` (default 60): how often plans with automatic advance are
/// checked; `0` turns the job off.
pub fn auto_advance_interval() -> Option<std::time::Duration> {
    let secs = number("ROLLGATE_AUTO_ADVANCE_INTERVAL_SECS").unwrap_or(60);
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// `PROMETHEUS_URL` (e.g. `http://127.0.0.1:9090`): the Prometheus the guards query. Unset: no
/// guard monitor (guards hold). A malformed value stops the server at start.
pub fn prometheus() -> anyhow::Result<Option<app::prom::Prometheus>> {
    text("PROMETHEUS_URL")
        .map(|url| app::prom::Prometheus::new(&url, std::time::Duration::from_secs(10)))
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// The variable naming the proxies whose `X-Forwarded-For` entries are believed.
pub const TRUSTED_PROXIES: &str = "ROLLGATE_TRUSTED_PROXIES";

/// `ROLLGATE_TRUSTED_PROXIES` (comma-separated IP addresses or CIDR networks; default: loopback
/// only): the proxies whose `X-Forwarded-For` entries are believed when `ROLLGATE_TRUST_PROXY`
/// is on. A malformed value stops the server at start, with an error naming the variable.
pub fn trusted_proxies() -> anyhow::Result<app::proxy::TrustedProxies> {
    parse_trusted_proxies(text(TRUSTED_PROXIES).as_deref())
}

/// [`trusted_proxies`] from the variable's value (`None`: unset or blank).
pub fn parse_trusted_proxies(value: Option<&str>) -> anyhow::Result<app::proxy::TrustedProxies> {
    match value {
        None => Ok(app::proxy::TrustedProxies::loopback()),
        Some(v) => app::proxy::TrustedProxies::parse(v)
            .map_err(|e| anyhow::anyhow!("{TRUSTED_PROXIES}: {e}")),
    }
}

/// `ROLLGATE_GUARD_INTERVAL_SECS` (default 30, at least 1): how often the guard monitor reads the
/// guards of every flag in a monitoring window.
pub fn guard_interval() -> std::time::Duration {
    let secs = number("ROLLGATE_GUARD_INTERVAL_SECS")
        .filter(|s| *s > 0)
        .unwrap_or(30);
    std::time::Duration::from_secs(secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_default_to_loopback_and_a_bad_value_names_the_variable() {
        let local = parse_trusted_proxies(None).unwrap();
        assert!(local.contains("127.0.0.1".parse().unwrap()));
        assert!(local.contains("::1".parse().unwrap()));
        assert!(!local.contains("10.0.0.1".parse().unwrap()));
        let tens = parse_trusted_proxies(Some("10.0.0.0/8")).unwrap();
        assert!(tens.contains("10.0.0.1".parse().unwrap()));
        let e = parse_trusted_proxies(Some("10.0.0.0/8, proxy.internal"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ROLLGATE_TRUSTED_PROXIES: "), "{e}");
        assert!(e.contains("proxy.internal"), "{e}");
    }
}
