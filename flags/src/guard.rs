//! Guards: metrics watched during a rollout's monitoring windows, each classified against the
//! plan's thresholds — pure functions over the samples the caller fetched (no IO, no clock).
use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way a metric goes bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is worse (error rate, latency).
    HigherIsWorse,
    /// Lower is worse (success rate).
    LowerIsWorse,
}

/// One guard: a PromQL query and its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardSpec {
    /// Stable name (`api_error_rate`), used by the gates.
    pub name: String,
    /// For people (`API error rate`).
    pub title: String,
    /// PromQL, evaluated as an instant query. With `per_tenant`, it must return one series per
    /// tenant with a `tenant` label.
    pub query: String,
    /// The edge of the normal range (outside it: warning).
    pub warn: f64,
    /// The alert threshold.
    pub alert: f64,
    /// Which way is bad.
    pub direction: Direction,
    /// Compare the tenants that have the flag ON against the others (by the `tenant` label); the
    /// thresholds apply to the ON cohort.
    #[serde(default)]
    pub per_tenant: bool,
    /// How values are shown: `ratio` (as %), `seconds` (as ms) or anything else (as is).
    #[serde(default)]
    pub unit: String,
}

/// The level of a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Inside the normal range.
    Ok,
    /// Outside the normal range, not yet at the alert threshold.
    Warning,
    /// Past the alert threshold.
    Alert,
    /// Too little data to judge: never a pass.
    Hold,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Alert => "alert",
            Level::Hold => "hold",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Level> {
        [Level::Ok, Level::Warning, Level::Alert, Level::Hold]
            .into_iter()
            .find(|l| l.as_str() == s)
    }

    /// The value of the `tenantry_guard_level` gauge: 0 ok, 1 warning, 2 alert, 3 hold.
    pub fn gauge(self) -> f64 {
        match self {
            Level::Ok => 0.0,
            Level::Warning => 1.0,
            Level::Alert => 2.0,
            Level::Hold => 3.0,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One series of an instant query: its `tenant` label, if any, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The `tenant` label.
    pub tenant: Option<String>,
    /// The value (may be NaN, e.g. 0/0).
    pub value: f64,
}

/// What a guard says now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Level.
    pub level: Level,
    /// The value the thresholds were applied to (the ON cohort's with `per_tenant`).
    pub value: Option<f64>,
    /// With `per_tenant`: the same metric over the tenants without the flag.
    pub others: Option<f64>,
    /// In words: `1.8% > 1% (alert)`, or why it holds.
    pub detail: String,
}

/// The seed plan's "Metrics to Watch", as guards over conventional metric names of the SaaS:
/// API error rate (normal < 0.1%, alert > 1%), p99 latency (< 500 ms / > 2 s), DB query time
/// (< 100 ms avg / > 500 ms avg), login success rate (> 99% / < 95%). The queries are meant to be
/// edited to the SaaS's own metrics.
pub fn seed_guards() -> Vec<GuardSpec> {
    let g = |name: &str, title: &str, query: &str, warn, alert, direction, unit: &str| GuardSpec {
        name: name.into(),
        title: title.into(),
        query: query.into(),
        warn,
        alert,
        direction,
        per_tenant: false,
        unit: unit.into(),
    };
    vec![
        g(
            "api_error_rate",
            "API error rate",
            r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
            0.001,
            0.01,
            Direction::HigherIsWorse,
            "ratio",
        ),
        g(
            "p99_latency",
            "p99 latency",
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
            0.5,
            2.0,
            Direction::HigherIsWorse,
            "seconds",
        ),
        g(
            "db_query_time",
            "DB query time (avg)",
            "sum(rate(db_query_duration_seconds_sum[5m])) / sum(rate(db_query_duration_seconds_count[5m]))",
            0.1,
            0.5,
            Direction::HigherIsWorse,
            "seconds",
        ),
        g(
            "login_success_rate",
            "Login success rate",
            r#"sum(rate(login_attempts_total{result="success"}[5m])) / sum(rate(login_attempts_total[5m]))"#,
            0.99,
            0.95,
            Direction::LowerIsWorse,
            "ratio",
        ),
    ]
}

/// A value as people read it: ratios in %, seconds in ms.
pub fn show(unit: &str, v: f64) -> String {
    match unit {
        "ratio" => format!("{}%", trim(v * 100.0)),
        "seconds" => format!("{} ms", trim(v * 1000.0)),
        _ => trim(v),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The level of `value` against the guard's thresholds. A missing or non-finite value holds.
pub fn classify(spec: &GuardSpec, value: Option<f64>) -> Level {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return Level::Hold;
    };
    let (past_alert, outside_normal) = match spec.direction {
        Direction::HigherIsWorse => (v > spec.alert, v >= spec.warn),
        Direction::LowerIsWorse => (v < spec.alert, v <= spec.warn),
    };
    if past_alert {
        Level::Alert
    } else if outside_normal {
        Level::Warning
    } else {
        Level::Ok
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// Evaluates a guard on the samples of its query. Without `per_tenant` the query must return one
/// series (more than one holds: the query is ambiguous). With it, the series of tenants for which
/// `is_on` holds are the cohort; the others are the comparison.
pub fn evaluate(spec: &GuardSpec, samples: &[Sample], is_on: &dyn Fn(&str) -> bool) -> Reading {
    let hold = |detail: String| Reading {
        level: Level::Hold,
        value: None,
        others: None,
        detail,
    };
    let (value, others) = if spec.per_tenant {
        let cohort = mean(
            samples
                .iter()
                .filter(|s| s.tenant.as_deref().is_some_and(is_on))
                .map(|s| s.value),
        );
        let rest = mean(
            samples
                .iter()
                .filter(|s| !s.tenant.as_deref().is_some_and(is_on))
                .map(|s| s.value),
        );
        if cohort.is_none() {
            return hold("no data from the tenants that have the flag ON".into());
        }
        (cohort, rest)
    } else {
        match samples {
            [] => return hold("no data: the query returned nothing".into()),
            [one] if one.value.is_finite() => (Some(one.value), None),
            [_] => return hold("no data: the value is not a number (0/0?)".into()),
            _ => {
                return hold(format!(
                    "the query returned {} series; aggregate it to one (sum, avg, max)",
                    samples.len()
                ))
            }
        }
    };
    let level = classify(spec, value);
    let v = value.unwrap_or(f64::NAN);
    let (op_alert, op_warn) = match spec.direction {
        Direction::HigherIsWorse => (">", "≥"),
        Direction::LowerIsWorse => ("<", "≤"),
    };
    let mut detail = match level {
        Level::Alert => format!(
            "{} {op_alert} {} (alert)",
            show(&spec.unit, v),
            show(&spec.unit, spec.alert)
        ),
        Level::Warning => format!(
            "{} {op_warn} {} (outside the normal range)",
            show(&spec.unit, v),
            show(&spec.unit, spec.warn)
        ),
        _ => format!("{} (normal)", show(&spec.unit, v)),
    };
    if let Some(o) = others {
        detail.push_str(&format!(
            "; tenants without the flag: {}",
            show(&spec.unit, o)
        ));
    }
    Reading {
        level,
        value,
        others,
        detail,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn error_rate() -> GuardSpec {
        seed_guards().remove(0)
    }

    fn one(v: f64) -> Vec<Sample> {
        vec![Sample {
            tenant: None,
            value: v,
        }]
    }

    #[test]
    fn thresholds_table() {
        let err = error_rate();
        let login = seed_guards().pop().unwrap();
        let cases: &[(&GuardSpec, f64, Level)] = &[
            (&err, 0.0, Level::Ok),
            (&err, 0.0009, Level::Ok),
            (&err, 0.001, Level::Warning),
            (&err, 0.01, Level::Warning),
            (&err, 0.0101, Level::Alert),
            (&login, 1.0, Level::Ok),
            (&login, 0.995, Level::Ok),
            (&login, 0.99, Level::Warning),
            (&login, 0.95, Level::Warning),
            (&login, 0.949, Level::Alert),
        ];
        for (spec, v, want) in cases {
            assert_eq!(classify(spec, Some(*v)), *want, "{} at {v}", spec.name);
            assert_eq!(evaluate(spec, &one(*v), &|_| false).level, *want);
        }
    }

    #[test]
    fn too_little_data_holds_never_passes() {
        let err = error_rate();
        assert_eq!(classify(&err, None), Level::Hold);
        assert_eq!(classify(&err, Some(f64::NAN)), Level::Hold);
        assert_eq!(evaluate(&err, &[], &|_| true).level, Level::Hold);
        assert_eq!(evaluate(&err, &one(f64::NAN), &|_| true).level, Level::Hold);
        let two = [one(0.0), one(0.0)].concat();
        let r = evaluate(&err, &two, &|_| true);
        assert_eq!(r.level, Level::Hold);
        assert!(r.detail.contains("2 series"), "{}", r.detail);
    }

    #[test]
    fn per_tenant_compares_the_cohort_with_the_others() {
        let mut spec = error_rate();
        spec.per_tenant = true;
        let s = |t: &str, v| Sample {
            tenant: Some(t.into()),
            value: v,
        };
        let samples = vec![s("a", 0.03), s("b", 0.01), s("c", 0.0), s("d", 0.0002)];
        let on = |t: &str| t == "a" || t == "b";
        let r = evaluate(&spec, &samples, &on);
        assert_eq!(r.level, Level::Alert);
        assert!((r.value.unwrap() - 0.02).abs() < 1e-12);
        assert!((r.others.unwrap() - 0.0001).abs() < 1e-12);
        assert_eq!(r.detail, "2% > 1% (alert); tenants without the flag: 0.01%");
        // No series from the cohort: hold.
        assert_eq!(evaluate(&spec, &samples, &|_| false).level, Level::Hold);
    }

    #[test]
    fn values_read_like_the_seed_table() {
        assert_eq!(show("ratio", 0.001), "0.1%");
        assert_eq!(show("seconds", 2.0), "2000 ms");
        assert_eq!(show("seconds", 0.5), "500 ms");
        assert_eq!(show("", 12.5), "12.5");
        for l in [Level::Ok, Level::Warning, Level::Alert, Level::Hold] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
    }
}
