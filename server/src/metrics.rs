//! Prometheus metrics through the `metrics` facade and its Prometheus exporter.
//!
//! * `http_requests_total{path,method,status}` — `path` is the route template (`/api/admin/tenants/{id}`),
//!   never the raw path, so label sets stay bounded;
//! * `http_request_duration_seconds` (histogram, same labels minus status);
//! * `feature_flag_evaluations_total{flag,result}` and `feature_flag_check_failures_total{reason}`;
//! * `tenantry_snapshot_version`, `tenantry_snapshot_age_seconds`, `tenantry_listen_up`;
//! * `tenantry_db_pool_connections{state}`.
use std::{cell::RefCell, sync::OnceLock, time::Instant};

use rustc_hash::FxHashMap;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, Method},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder once per process and returns its handle.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
                        5.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // The series alerts and dashboards ask for exist from the start, at 0: `rate()` and
            // `absent()` over them mean something on a healthy system (the seed's
            // FeatureFlagCheck alert watches this counter).
            for reason in [flags::Reason::UnknownFlag, flags::Reason::UnknownTenant] {
                metrics::counter!("feature_flag_check_failures_total", "reason" => reason.code())
                    .absolute(0);
            }
            // Histogram samples wait in a buffer until they are folded into the buckets, which
            // happens on a scrape or on upkeep: without a scraper the buffer would grow with every
            // request (the soak showed ~1 MB/s at 57k req/s). Fold them every 5 s.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            Some(handle)
        })
        .as_ref()
}

/// HELP text for every metric (`promtool check metrics` runs on `/metrics` in scripts/test).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request duration by route template and method."
    );
    describe_counter!(
        "feature_flag_evaluations_total",
        "Flag evaluations by flag and result (unknown flags are labelled _unknown)."
    );
    describe_counter!(
        "feature_flag_check_failures_total",
        "Evaluations that failed closed (unknown flag or tenant), by reason."
    );
    describe_gauge!(
        "tenantry_snapshot_version",
        "Version of the snapshot being served."
    );
    describe_gauge!(
        "tenantry_snapshot_age_seconds",
        Unit::Seconds,
        "Age of the snapshot being served."
    );
    describe_gauge!("tenantry_listen_up", "1 while LISTEN/NOTIFY is connected.");
    describe_counter!(
        "tenantry_snapshot_loads_total",
        "Snapshot updates by kind: delta (a catch-up from the change outbox) or full (everything loaded)."
    );
    describe_histogram!(
        "tenantry_snapshot_catch_up_seconds",
        Unit::Seconds,
        "Time of each catch-up from the change outbox (read and apply)."
    );
    describe_gauge!(
        "tenantry_db_pool_connections",
        "Database pool connections by state."
    );
    describe_gauge!(
        "tenantry_db_pool_max_connections",
        "Database pool size limit."
    );
    describe_gauge!(
        "tenantry_guard_level",
        "Latest level of each guard: 0 ok, 1 warning, 2 alert, 3 hold."
    );
    describe_gauge!("tenantry_guard_value", "Latest value of each guard.");
}

/// Per-thread handles of the request series, by route template: registering a labelled series
/// through the `metrics` macros allocates its key and takes the registry's lock, which every
/// request paid twice (and once per flag on `/api/features`). The handles are the registry's own,
/// so a cached one counts into the same series.
#[derive(Default)]
struct RouteSeries {
    /// (method, status) → requests counter.
    counters: Vec<(Method, u16, metrics::Counter)>,
    /// method → duration histogram.
    histograms: Vec<(Method, metrics::Histogram)>,
}

thread_local! {
    static ROUTES: RefCell<FxHashMap<Box<str>, RouteSeries>> = RefCell::new(FxHashMap::default());
    static EVALUATIONS: RefCell<FxHashMap<Box<str>, [metrics::Counter; 2]>> = RefCell::new(FxHashMap::default());
}

/// Records every request by route template: a tower layer (`route_layer(Track)`) rather than
/// `middleware::from_fn`, whose `Next` clones a boxed service and boxes a future on every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Track;

impl<S> tower::Layer<S> for Track {
    type Service = TrackService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TrackService { inner }
    }
}

/// The service of [`Track`].
#[derive(Debug, Clone)]
pub struct TrackService<S> {
    inner: S,
}

impl<S> tower::Service<Request> for TrackService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let path = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        TrackFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
            path,
            method,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`TrackService`]: records when the response is ready.
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        path: Option<MatchedPath>,
        method: Method,
    }
}

impl<F, E> std::future::Future for TrackFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &out {
            let path = this.path.as_ref().map_or("unmatched", MatchedPath::as_str);
            record(path, this.method, res.status().as_u16(), *this.start);
        }
        std::task::Poll::Ready(out)
    }
}

fn record(path: &str, method: &Method, status: u16, start: Instant) {
    ROUTES.with_borrow_mut(|routes| {
        if !routes.contains_key(path) {
            routes.insert(path.into(), RouteSeries::default());
        }
        let Some(series) = routes.get_mut(path) else {
            return;
        };
        match series
            .counters
            .iter()
            .find(|(m, s, _)| m == method && *s == status)
        {
            Some((_, _, c)) => c.increment(1),
            None => {
                let c = metrics::counter!("http_requests_total", "path" => path.to_owned(),
                    "method" => method.as_str().to_owned(), "status" => status.to_string());
                c.increment(1);
                series.counters.push((method.clone(), status, c));
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        match series.histograms.iter().find(|(m, _)| m == method) {
            Some((_, h)) => h.record(elapsed),
            None => {
                let h = metrics::histogram!("http_request_duration_seconds",
                    "path" => path.to_owned(), "method" => method.as_str().to_owned());
                h.record(elapsed);
                series.histograms.push((method.clone(), h));
            }
        }
    });
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("tenantry_snapshot_age_seconds").set(state.live.age().as_secs_f64());
    metrics::gauge!("tenantry_listen_up").set(if state.live.is_listening() { 1.0 } else { 0.0 });
    let size = state.pool.size() as f64;
    let idle = state.pool.num_idle() as f64;
    metrics::gauge!("tenantry_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("tenantry_db_pool_connections", "state" => "in_use").set(size - idle);
    metrics::gauge!("tenantry_db_pool_max_connections")
        .set(f64::from(state.pool.options().get_max_connections()));
    let body = handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Counts one evaluation.
pub fn evaluation(flag: &str, decision: &flags::Decision) {
    // Unknown keys come from callers: never let them grow the label set.
    let flag = if decision.reason == flags::Reason::UnknownFlag {
        "_unknown"
    } else {
        flag
    };
    EVALUATIONS.with_borrow_mut(|cache| {
        if !cache.contains_key(flag) {
            let series = |result: &'static str| {
                metrics::counter!("feature_flag_evaluations_total", "flag" => flag.to_owned(), "result" => result)
            };
            cache.insert(flag.into(), [series("off"), series("on")]);
        }
        if let Some(counters) = cache.get(flag) {
            let [off, on] = counters;
            if decision.on { on } else { off }.increment(1);
        }
    });
    if decision.reason.is_error() {
        metrics::counter!("feature_flag_check_failures_total", "reason" => decision.reason.code())
            .increment(1);
    }
}

/// Records a guard reading: `tenantry_guard_level{flag,guard}` (0 ok, 1 warning, 2 alert, 3 hold)
/// and `tenantry_guard_value{flag,guard}`. Flags and guards come from plans (bounded).
pub fn guard(flag: &str, guard: &str, reading: &flags::guard::Reading) {
    metrics::gauge!("tenantry_guard_level", "flag" => flag.to_owned(), "guard" => guard.to_owned())
        .set(reading.level.gauge());
    if let Some(v) = reading.value {
        metrics::gauge!("tenantry_guard_value", "flag" => flag.to_owned(), "guard" => guard.to_owned())
            .set(v);
    }
}

#[cfg(test)]
mod tests {
    /// The alerting series exist at 0 before any evaluation fails.
    #[test]
    fn check_failures_are_exported_at_zero_from_the_start() {
        let text = super::handle().map(|h| h.render()).unwrap_or_default();
        for reason in ["unknown_flag", "unknown_tenant"] {
            let series = format!("feature_flag_check_failures_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&series), "{series} missing from:\n{text}");
        }
    }
}
