//! Configuration from the environment (and the command line, which wins).
use std::net::SocketAddr;

use anyhow::Context;
use leptos::config::LeptosOptions;

/// The Leptos site options: where the compiled assets are and where to listen. Read from the
/// `LEPTOS_*` variables cargo-leptos sets, with Tenantry's defaults.
pub fn leptos_options(addr: Option<SocketAddr>) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the LEPTOS_* environment")?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "tenantry".into();
    }
    if let Some(addr) = addr {
        options.site_addr = addr;
    }
    Ok(options)
}

/// Every setting the server reads from its environment, parsed once at start. A value that does
/// not parse stops the server with the variable's name and the accepted values: it never runs on a
/// guess (`TENANTRY_SECURE_COOKIES=yes` used to leave cookies without `Secure`, silently).
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `TENANTRY_SECURE_COOKIES`: mark the session cookie `Secure` (behind TLS).
    pub secure_cookies: bool,
    /// `TENANTRY_TRUST_PROXY`: take the client address from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// `TENANTRY_TRUSTED_PROXIES` (comma-separated addresses or CIDR networks; default loopback):
    /// the proxies whose `X-Forwarded-For` entries are believed when `trust_proxy` is on.
    pub trusted_proxies: infra::proxy::TrustedProxies,
    /// `TENANTRY_PUBLIC_ORIGIN`: the origin browsers use, when a proxy rewrites `Host`.
    pub public_origin: Option<String>,
    /// `TENANTRY_BACKUP_DIR` (default `backups`).
    pub backup_dir: std::path::PathBuf,
    /// `TENANTRY_BACKUP_MAX_AGE_HOURS` (default 24, at least 1).
    pub backup_max_age: std::time::Duration,
    /// `TENANTRY_AUTO_ADVANCE_INTERVAL_SECS` (default 60; `0`: off).
    pub auto_advance_interval: Option<std::time::Duration>,
    /// `TENANTRY_GUARD_INTERVAL_SECS` (default 30, at least 1).
    pub guard_interval: std::time::Duration,
    /// `PROMETHEUS_URL` (unset: no guard monitor; guards hold).
    pub prometheus_url: Option<String>,
    /// `TENANTRY_OUTBOX_RETENTION_SECS` (default 900, at least 60): how long the change outbox
    /// keeps a version. An instance or SDK further behind loads everything.
    pub outbox_retention: std::time::Duration,
}

/// Shows every setting, the Prometheus URL without its credentials.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secure_cookies", &self.secure_cookies)
            .field("trust_proxy", &self.trust_proxy)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("public_origin", &self.public_origin)
            .field("backup_dir", &self.backup_dir)
            .field("backup_max_age", &self.backup_max_age)
            .field("auto_advance_interval", &self.auto_advance_interval)
            .field("guard_interval", &self.guard_interval)
            .field(
                "prometheus_url",
                &self.prometheus_url.as_deref().map(infra::prom::redact),
            )
            .field("outbox_retention", &self.outbox_retention)
            .finish()
    }
}

impl Default for Config {
    /// Every default, as documented in the README.
    fn default() -> Self {
        Config {
            secure_cookies: false,
            trust_proxy: false,
            trusted_proxies: infra::proxy::TrustedProxies::loopback(),
            public_origin: None,
            backup_dir: std::path::PathBuf::from("backups"),
            backup_max_age: std::time::Duration::from_secs(24 * 3600),
            auto_advance_interval: Some(std::time::Duration::from_secs(60)),
            guard_interval: std::time::Duration::from_secs(30),
            prometheus_url: None,
            outbox_retention: store::outbox::DEFAULT_RETENTION,
        }
    }
}

impl Config {
    /// The configuration of this process's environment.
    pub fn from_env() -> anyhow::Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `get` describes (`get(name)`: the variable's value, if set).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let boolean = |name: &str| -> anyhow::Result<bool> {
            match set(name) {
                None => Ok(false),
                Some(v) => parse_bool(&v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name}={v:?} is not a switch: use 1, true, yes or on (case does not matter), or 0, false, no or off"
                    )
                }),
            }
        };
        let whole = |name: &str, default: u64, least: u64| -> anyhow::Result<u64> {
            match set(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n >= least => Ok(n),
                    _ => anyhow::bail!("{name}={v:?} is not a whole number of at least {least}"),
                },
            }
        };
        if set(TRUSTED_PROXIES).is_some() && !boolean("TENANTRY_TRUST_PROXY")? {
            tracing::warn!(
                "TENANTRY_TRUSTED_PROXIES is set but TENANTRY_TRUST_PROXY is not: X-Forwarded-For is ignored"
            );
        }
        let d = Config::default();
        let advance = whole("TENANTRY_AUTO_ADVANCE_INTERVAL_SECS", 60, 0)?;
        Ok(Config {
            secure_cookies: boolean("TENANTRY_SECURE_COOKIES")?,
            trust_proxy: boolean("TENANTRY_TRUST_PROXY")?,
            trusted_proxies: parse_trusted_proxies(set(TRUSTED_PROXIES).as_deref())?,
            public_origin: set("TENANTRY_PUBLIC_ORIGIN").map(|v| v.trim().to_string()),
            backup_dir: set("TENANTRY_BACKUP_DIR").map_or(d.backup_dir, std::path::PathBuf::from),
            backup_max_age: std::time::Duration::from_secs(
                whole("TENANTRY_BACKUP_MAX_AGE_HOURS", 24, 1)?
                    .checked_mul(3600)
                    .ok_or_else(|| anyhow::anyhow!("TENANTRY_BACKUP_MAX_AGE_HOURS is too large"))?,
            ),
            auto_advance_interval: (advance > 0).then(|| std::time::Duration::from_secs(advance)),
            guard_interval: std::time::Duration::from_secs(whole(
                "TENANTRY_GUARD_INTERVAL_SECS",
                30,
                1,
            )?),
            prometheus_url: set("PROMETHEUS_URL").map(|v| v.trim().to_string()),
            outbox_retention: std::time::Duration::from_secs(whole(
                "TENANTRY_OUTBOX_RETENTION_SECS",
                d.outbox_retention.as_secs(),
                60,
            )?),
        })
    }

    /// The Prometheus client for `prometheus_url`; a malformed URL stops the server at start.
    pub fn prometheus(&self) -> anyhow::Result<Option<infra::prom::Prometheus>> {
        self.prometheus_url
            .as_deref()
            .map(|url| infra::prom::Prometheus::new(url, std::time::Duration::from_secs(10)))
            .transpose()
            .map_err(|e| anyhow::anyhow!("PROMETHEUS_URL: {e}"))
    }
}

/// The variable naming the proxies whose `X-Forwarded-For` entries are believed.
pub const TRUSTED_PROXIES: &str = "TENANTRY_TRUSTED_PROXIES";

/// `TENANTRY_TRUSTED_PROXIES` from its value (`None`: unset or blank, loopback only). A malformed
/// value stops the server at start, with an error naming the variable.
pub fn parse_trusted_proxies(value: Option<&str>) -> anyhow::Result<infra::proxy::TrustedProxies> {
    match value {
        None => Ok(infra::proxy::TrustedProxies::loopback()),
        Some(v) => infra::proxy::TrustedProxies::parse(v)
            .map_err(|e| anyhow::anyhow!("{TRUSTED_PROXIES}: {e}")),
    }
}

/// A switch: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, in any case.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn switches_in_any_case_and_a_clear_error_otherwise() {
        for yes in ["1", "true", "TRUE", "Yes", "on", " On "] {
            assert!(
                with(&[("TENANTRY_SECURE_COOKIES", yes)])
                    .unwrap()
                    .secure_cookies,
                "{yes}"
            );
        }
        for no in ["0", "false", "No", "OFF", ""] {
            assert!(
                !with(&[("TENANTRY_SECURE_COOKIES", no)])
                    .unwrap()
                    .secure_cookies,
                "{no}"
            );
        }
        let e = with(&[("TENANTRY_SECURE_COOKIES", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("TENANTRY_SECURE_COOKIES=\"maybe\" is not a switch"),
            "{e}"
        );
        let e = with(&[("TENANTRY_TRUST_PROXY", "y")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TENANTRY_TRUST_PROXY"), "{e}");
    }

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
        assert!(e.starts_with("TENANTRY_TRUSTED_PROXIES: "), "{e}");
        assert!(e.contains("proxy.internal"), "{e}");
        let e = with(&[(TRUSTED_PROXIES, "nope")]).unwrap_err().to_string();
        assert!(e.starts_with("TENANTRY_TRUSTED_PROXIES: "), "{e}");
    }

    #[test]
    fn numbers_parse_or_stop_the_server() {
        assert_eq!(with(&[]).unwrap(), Config::default());
        let c = with(&[
            ("TENANTRY_GUARD_INTERVAL_SECS", "5"),
            ("TENANTRY_AUTO_ADVANCE_INTERVAL_SECS", "0"),
            ("TENANTRY_BACKUP_MAX_AGE_HOURS", "48"),
            ("TENANTRY_OUTBOX_RETENTION_SECS", "3600"),
        ])
        .unwrap();
        assert_eq!(c.outbox_retention.as_secs(), 3600);
        assert_eq!(c.guard_interval.as_secs(), 5);
        assert_eq!(c.auto_advance_interval, None);
        assert_eq!(c.backup_max_age.as_secs(), 48 * 3600);
        for (name, bad) in [
            ("TENANTRY_GUARD_INTERVAL_SECS", "30s"),
            ("TENANTRY_GUARD_INTERVAL_SECS", "0"),
            ("TENANTRY_BACKUP_MAX_AGE_HOURS", "-1"),
            ("TENANTRY_AUTO_ADVANCE_INTERVAL_SECS", "1.5"),
            ("TENANTRY_BACKUP_MAX_AGE_HOURS", "18446744073709551615"),
            ("TENANTRY_OUTBOX_RETENTION_SECS", "10"),
        ] {
            let e = with(&[(name, bad)]).unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
        }
    }
}
