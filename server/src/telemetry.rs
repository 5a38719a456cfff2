//! Logging: `RUST_LOG` filters (default `info`), human-readable lines on stderr. A second layer
//! takes sqlx's per-statement events (target `sqlx::query`, debug level, never printed) and
//! records each statement's duration for the DBA health page (`store::dba::record_timing`), which
//! uses them when `pg_stat_statements` is not available.
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{
    filter::Targets,
    layer::{Context, SubscriberExt},
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let timings = QueryTimings.with_filter(Targets::new().with_target("sqlx::query", Level::DEBUG));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(timings)
        .try_init();
}

/// Records the duration of every statement sqlx reports.
struct QueryTimings;

impl<S: Subscriber> Layer<S> for QueryTimings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = StatementVisit::default();
        event.record(&mut v);
        if let Some(secs) = v.elapsed_secs {
            let statement = if v.statement.trim().is_empty() {
                &v.summary
            } else {
                &v.statement
            };
            store::dba::record_timing(statement, secs * 1000.0);
        }
    }
}

#[derive(Default)]
struct StatementVisit {
    summary: String,
    statement: String,
    elapsed_secs: Option<f64>,
}

impl tracing::field::Visit for StatementVisit {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `summary` and `db.statement` may arrive as Debug (String values) depending on the
        // tracing macro; take them without the quotes.
        match field.name() {
            "summary" if self.summary.is_empty() => {
                self.summary = format!("{value:?}").trim_matches('"').to_string()
            }
            "db.statement" if self.statement.is_empty() => {
                self.statement = format!("{value:?}").trim_matches('"').replace("\\n", " ")
            }
            _ => {}
        }
    }
}
