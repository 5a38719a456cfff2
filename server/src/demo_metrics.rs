//! `tenantry demo-metrics`: the demo's stand-in for the SaaS, so that a demo's guards have data.
//!
//! The seed plan's guards ("Metrics to Watch", `flags::guard::seed_guards`) query the SaaS's own
//! metrics: `http_requests_total{status}`, `http_request_duration_seconds`,
//! `db_query_duration_seconds` and `login_attempts_total{result}`. A demo has no SaaS, so
//! `scripts/run` starts this exporter on loopback and a Prometheus that scrapes it: the guards
//! read healthy figures, and `POST /error-rate?ratio=0.02` makes the API error rate bad on demand
//! (watch the guard warn, then pause or roll back the rollout as its plan says). Synthetic data
//! for demos only: never point a production Prometheus at it.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

/// Requests the pretend SaaS serves per 100 ms tick.
const PER_TICK: f64 = 50.0;
/// Upper bounds of the latency histogram (seconds) and the share of requests at or under each.
const LATENCY: [(f64, f64); 6] = [
    (0.05, 0.60),
    (0.1, 0.90),
    (0.25, 0.995),
    (0.5, 0.999),
    (1.0, 1.0),
    (2.5, 1.0),
];

#[derive(Debug, Default)]
struct Counters {
    ok: f64,
    errors: f64,
    buckets: [f64; 6],
    latency_sum: f64,
    db_count: f64,
    db_sum: f64,
    logins_ok: f64,
    logins_failed: f64,
}

#[derive(Debug)]
struct Demo {
    counters: Counters,
    /// Share of requests answered 500 (0.0002 = 0.02%, the default).
    error_ratio: f64,
}

type Shared = Arc<Mutex<Demo>>;

impl Demo {
    fn tick(&mut self) {
        let c = &mut self.counters;
        let errors = PER_TICK * self.error_ratio;
        c.errors += errors;
        c.ok += PER_TICK - errors;
        for (i, (_, share)) in LATENCY.iter().enumerate() {
            if let Some(b) = c.buckets.get_mut(i) {
                *b += PER_TICK * share;
            }
        }
        c.latency_sum += PER_TICK * 0.045;
        c.db_count += PER_TICK * 3.0;
        c.db_sum += PER_TICK * 3.0 * 0.012;
        c.logins_ok += 0.996;
        c.logins_failed += 0.004;
    }

    fn render(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.counters;
        let mut out = String::with_capacity(2048);
        let _ = write!(
            out,
            "# HELP http_requests_total Requests the SaaS served (tenantry demo-metrics: synthetic).\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{{status=\"200\"}} {}\n\
             http_requests_total{{status=\"500\"}} {}\n\
             # HELP http_request_duration_seconds Request latency (synthetic).\n\
             # TYPE http_request_duration_seconds histogram\n",
            c.ok.floor(),
            c.errors.floor()
        );
        for ((le, _), n) in LATENCY.iter().zip(c.buckets.iter()) {
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                n.floor()
            );
        }
        let total = (c.ok + c.errors).floor();
        let _ = write!(
            out,
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}\n\
             http_request_duration_seconds_sum {}\n\
             http_request_duration_seconds_count {total}\n\
             # HELP db_query_duration_seconds Database query time (synthetic).\n\
             # TYPE db_query_duration_seconds summary\n\
             db_query_duration_seconds_sum {}\n\
             db_query_duration_seconds_count {}\n\
             # HELP login_attempts_total Sign-ins (synthetic).\n\
             # TYPE login_attempts_total counter\n\
             login_attempts_total{{result=\"success\"}} {}\n\
             login_attempts_total{{result=\"failure\"}} {}\n",
            c.latency_sum,
            c.db_sum,
            c.db_count.floor(),
            c.logins_ok.floor(),
            c.logins_failed.floor()
        );
        out
    }
}

#[derive(Debug, serde::Deserialize)]
struct Ratio {
    ratio: f64,
}

async fn metrics(State(s): State<Shared>) -> Result<String, StatusCode> {
    let d = s.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(d.render())
}

async fn set_error_rate(
    State(s): State<Shared>,
    Query(q): Query<Ratio>,
) -> Result<String, (StatusCode, String)> {
    if !(0.0..=1.0).contains(&q.ratio) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "ratio must be between 0 and 1 (0.02 = 2% of requests fail)\n".into(),
        ));
    }
    let mut d = s
        .lock()
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, String::new()))?;
    d.error_ratio = q.ratio;
    Ok(format!("error rate now {}%\n", q.ratio * 100.0))
}

/// The exporter's routes over fresh counters (`error_ratio` to start with).
fn router(error_ratio: f64) -> (Router, Shared) {
    let shared = Arc::new(Mutex::new(Demo {
        counters: Counters::default(),
        error_ratio,
    }));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/error-rate", post(set_error_rate))
        .with_state(shared.clone());
    (app, shared)
}

/// Serves the exporter on `addr` until the process stops.
pub async fn serve(addr: SocketAddr, error_ratio: f64) -> anyhow::Result<()> {
    let (app, shared) = router(error_ratio);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            if let Ok(mut d) = shared.lock() {
                d.tick();
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "demo metrics (synthetic SaaS metrics for the demo's guards)");
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn healthy_by_default_and_bad_on_demand() {
        let (_, shared) = router(0.0002);
        let mut d = shared.lock().unwrap();
        for _ in 0..600 {
            d.tick();
        }
        let text = d.render();
        let ok = value(&text, "http_requests_total{status=\"200\"}");
        let err = value(&text, "http_requests_total{status=\"500\"}");
        // Under the seed's warning threshold (0.1%), with the counts Prometheus can rate.
        assert!(err / (ok + err) < 0.001, "{err} of {}", ok + err);
        assert!((ok + err - 30_000.0).abs() <= 2.0, "{}", ok + err);
        let logins = value(&text, "login_attempts_total{result=\"success\"}");
        assert!(logins / 600.0 > 0.99);
        d.error_ratio = 0.02;
        for _ in 0..600 {
            d.tick();
        }
        let text = d.render();
        let err2 = value(&text, "http_requests_total{status=\"500\"}") - err;
        assert!((err2 / 30_000.0 - 0.02).abs() < 0.001, "{err2}");
        // Every histogram bucket is cumulative and ends at the count.
        let inf = value(&text, "http_request_duration_seconds_bucket{le=\"+Inf\"}");
        assert_eq!(inf, value(&text, "http_request_duration_seconds_count"));
    }
}
