//! A small Prometheus HTTP API client (instant and range queries), used by the guard monitor and
//! the guard charts. Server-only.
use std::time::Duration;

use chrono::{DateTime, Utc};
use flags::guard::Sample;
use serde::Deserialize;

/// A configured Prometheus (`PROMETHEUS_URL`).
#[derive(Debug, Clone)]
pub struct Prometheus {
    base: String,
    http: reqwest::Client,
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

impl Prometheus {
    /// A client for the Prometheus at `base` (`http://prometheus:9090`), each request limited to
    /// `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "PROMETHEUS_URL must start with http:// or https://, got {base:?}"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Prometheus { base, http })
    }

    /// Where it is.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Data, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} unreachable: {e}", self.base))?;
        let status = res.status();
        let answer: Answer = res
            .json()
            .await
            .map_err(|e| format!("Prometheus answered {status} without its JSON: {e}"))?;
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
