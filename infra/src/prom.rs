//! A small Prometheus HTTP API client (instant and range queries), used by the guard monitor and
//! the guard charts. Server-only.
use std::time::Duration;

use chrono::{DateTime, Utc};
use flags::guard::Sample;
use serde::Deserialize;

/// A configured Prometheus (`PROMETHEUS_URL`). Its `Debug` shows the redacted URL only.
#[derive(Clone)]
pub struct Prometheus {
    base: String,
    /// `base` with any user-info (`user:password@`) replaced by `***@`: what is shown and logged.
    shown: String,
    http: reqwest::Client,
}

/// `url` with its user-info part (`https://user:secret@host/…`) replaced by `***`, so a URL with
/// credentials can be shown and logged. Parsed as a URL (a password may hold `/`, `?` or `#`);
/// text that is not a URL is cut at its last `@` before the host.
pub fn redact(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
        }
        let shown = u.to_string();
        // `Url` adds a trailing slash to a bare origin; keep the text as it was given.
        return if !url.ends_with('/') && shown.ends_with('/') && u.path() == "/" {
            shown.trim_end_matches('/').to_string()
        } else {
            shown
        };
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorItem>),
    Matrix(Vec<MatrixItem>),
    Scalar((f64, String)),
    #[serde(rename = "string")]
    Text(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// One series of a range query: its `tenant` label and its points (Unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The `tenant` label.
    pub tenant: Option<String>,
    /// Points.
    pub points: Vec<(i64, f64)>,
}

fn number(s: &str) -> f64 {
    // Prometheus writes NaN, +Inf and -Inf as such; `parse` reads them.
    s.parse().unwrap_or(f64::NAN)
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.shown)
            .finish()
    }
}

impl Prometheus {
    /// A client for the Prometheus at `base` (`http://prometheus:9090`), each request limited to
    /// `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        let shown = redact(&base);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "PROMETHEUS_URL must start with http:// or https://, got {shown:?}"
            ));
        }
        if url::Url::parse(&base).is_err() {
            return Err(format!("PROMETHEUS_URL is not a URL: {shown:?}"));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Prometheus { base, shown, http })
    }

    /// Where it is, without credentials.
    pub fn url(&self) -> &str {
        &self.shown
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Data, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Prometheus at {} unreachable: {}",
                    self.shown,
                    e.without_url()
                )
            })?;
        let status = res.status();
        let answer: Answer = res.json().await.map_err(|e| {
            format!(
                "Prometheus answered {status} without its JSON: {}",
                e.without_url()
            )
        })?;
        if answer.status != "success" {
            return Err(format!(
                "Prometheus refused the query: {}",
                answer.error.unwrap_or_else(|| status.to_string())
            ));
        }
        answer
            .data
            .ok_or_else(|| "Prometheus answered without data".to_string())
    }

    /// An instant query: one sample per series (a scalar is one sample without labels).
    pub async fn instant(&self, query: &str) -> Result<Vec<Sample>, String> {
        match self
            .get("/api/v1/query", &[("query", query.to_string())])
            .await?
        {
            Data::Vector(items) => Ok(items
                .into_iter()
                .map(|i| Sample {
                    tenant: i.metric.get("tenant").cloned(),
                    value: number(&i.value.1),
                })
                .collect()),
            Data::Scalar((_, v)) => Ok(vec![Sample {
                tenant: None,
                value: number(&v),
            }]),
            Data::Matrix(_) | Data::Text(_) => {
                Err("the query must return an instant vector or a scalar".into())
            }
        }
    }

    /// A range query from `start` to `end` every `step`.
    pub async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, String> {
        let params = [
            ("query", query.to_string()),
            ("start", start.timestamp().to_string()),
            ("end", end.timestamp().to_string()),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        match self.get("/api/v1/query_range", &params).await? {
            Data::Matrix(items) => Ok(items
                .into_iter()
                .map(|i| Series {
                    tenant: i.metric.get("tenant").cloned(),
                    points: i
                        .values
                        .into_iter()
                        .map(|(t, v)| (t as i64, number(&v)))
                        .filter(|(_, v)| v.is_finite())
                        .collect(),
                })
                .collect()),
            _ => Err("a range query must return a matrix".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("https://user:s3cret@prom.example:9090/prefix"),
            "https://***@prom.example:9090/prefix"
        );
        assert_eq!(
            redact("http://token@10.0.0.1:9090"),
            "http://***@10.0.0.1:9090"
        );
        assert_eq!(
            redact("http://127.0.0.1:9090/a@b"),
            "http://127.0.0.1:9090/a@b"
        );
        assert_eq!(redact("not a url"), "not a url");
        // Unreachable with credentials: the error names the redacted URL only.
        let p = super::Prometheus::new(
            "http://admin:hunter2@127.0.0.1:9",
            std::time::Duration::from_millis(200),
        );
        let p = match p {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        let err = rt.block_on(p.instant("up")).err().unwrap_or_default();
        assert!(
            err.contains("***@127.0.0.1:9") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(!p.url().contains("hunter2"));
        let bad = super::Prometheus::new("ftp://a:hunter2@x", std::time::Duration::from_secs(1));
        assert!(bad.err().is_some_and(|e| !e.contains("hunter2")));
    }
}
