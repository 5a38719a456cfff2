//! Guard charts: a guard's series against its thresholds, as SVG markup built on the server.
use flags::guard::GuardSpec;

use infra::prom::Series;

/// The lines a guard chart draws: the main one (the ON cohort for per-tenant guards) and, per
/// tenant, the others.
pub struct Lines {
    /// The value the thresholds apply to, over time.
    pub main: Vec<(i64, f64)>,
    /// Per tenant: the tenants without the flag.
    pub others: Vec<(i64, f64)>,
}

fn mean_by_time<'a>(series: impl Iterator<Item = &'a Series>) -> Vec<(i64, f64)> {
    let mut acc: std::collections::BTreeMap<i64, (f64, u32)> = Default::default();
    for s in series {
        for (t, v) in &s.points {
            let e = acc.entry(*t).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(t, (sum, n))| (t, sum / f64::from(n.max(1))))
        .collect()
}

/// Splits a range query's series into the chart's lines: per tenant, the mean of the ON tenants
/// and of the others at each time; otherwise the first series (guards aggregate to one).
pub fn split(per_tenant: bool, series: &[Series], is_on: &dyn Fn(&str) -> bool) -> Lines {
    if per_tenant {
        let on = |s: &&Series| s.tenant.as_deref().is_some_and(is_on);
        Lines {
            main: mean_by_time(series.iter().filter(on)),
            others: mean_by_time(series.iter().filter(|s| !on(s))),
        }
    } else {
        Lines {
            main: series.first().map(|s| s.points.clone()).unwrap_or_default(),
            others: Vec::new(),
        }
    }
}

const W: f64 = 360.0;
const H: f64 = 110.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG: the series as lines, the normal-range edge (amber, dashed) and the alert threshold
/// (red), the time axis from `start` to `end` (Unix seconds).
pub fn guard_svg(g: &GuardSpec, lines: &Lines, start: i64, end: i64) -> String {
    let values = lines
        .main
        .iter()
        .chain(&lines.others)
        .map(|(_, v)| *v)
        .chain([g.warn, g.alert]);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let lo = lo.min(0.0);
    let hi = if hi > lo { hi * 1.1 } else { lo + 1.0 };
    // Readings that began inside the window (a guard added, Prometheus started): the axis starts
    // at the first one, so a few minutes of data are not a speck at the right edge.
    let first = lines
        .main
        .iter()
        .chain(&lines.others)
        .map(|(t, _)| *t)
        .min();
    let start = match first {
        Some(f) if f > start && f < end => f,
        _ => start,
    };
    let span = (end - start).max(1) as f64;
    let x = |t: i64| ((t - start) as f64 / span * W).clamp(0.0, W);
    let y = |v: f64| H - ((v - lo) / (hi - lo) * H).clamp(0.0, H);
    let path = |pts: &[(i64, f64)]| {
        pts.iter()
            .enumerate()
            .map(|(i, (t, v))| {
                format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { " L" },
                    x(*t),
                    y(*v)
                )
            })
            .collect::<String>()
    };
    let mut svg = format!(
        "<svg class=\"chart guard-chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\" data-guard=\"{}\">",
        H + 16.0,
        escape(&format!("{} over the monitoring window", g.title)),
        escape(&g.name)
    );
    for (v, class, label) in [(g.warn, "warn", "normal"), (g.alert, "alert", "alert")] {
        svg.push_str(&format!(
            "<line class=\"threshold {class}\" x1=\"0\" x2=\"{W}\" y1=\"{0:.1}\" y2=\"{0:.1}\"/><text class=\"threshold-label\" x=\"{1}\" y=\"{2:.1}\">{3} {4}</text>",
            y(v),
            W - 2.0,
            (y(v) - 2.0).max(8.0),
            label,
            escape(&flags::guard::show(&g.unit, v)),
        ));
    }
    if !lines.others.is_empty() {
        svg.push_str(&format!(
            "<path class=\"series others\" d=\"{}\"/>",
            path(&lines.others)
        ));
    }
    if lines.main.is_empty() {
        svg.push_str(&format!(
            "<text class=\"empty\" x=\"{}\" y=\"{}\">no data in this window</text>",
            W / 2.0,
            H / 2.0
        ));
    } else {
        svg.push_str(&format!(
            "<path class=\"series main\" d=\"{}\" data-points=\"{}\"/>",
            path(&lines.main),
            lines.main.len()
        ));
    }
    let secs = end - start;
    let back = if secs >= 3600 {
        format!("−{} h", secs / 3600)
    } else {
        format!("−{} min", (secs / 60).max(1))
    };
    svg.push_str(&format!(
        "<text class=\"axis\" x=\"0\" y=\"{}\">{back}</text><text class=\"axis end\" x=\"{W}\" y=\"{}\">now</text></svg>",
        H + 13.0,
        H + 13.0
    ));
    svg
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn per_tenant_lines_split_the_cohort_from_the_others() {
        let s = |t: &str, pts: Vec<(i64, f64)>| Series {
            tenant: Some(t.into()),
            points: pts,
        };
        let series = vec![
            s("a", vec![(0, 0.02), (60, 0.04)]),
            s("b", vec![(0, 0.0), (60, 0.02)]),
            s("c", vec![(0, 0.001)]),
        ];
        let lines = split(true, &series, &|t| t != "c");
        assert_eq!(lines.main, vec![(0, 0.01), (60, 0.03)]);
        assert_eq!(lines.others, vec![(0, 0.001)]);
        let g = flags::guard::seed_guards().remove(0);
        let svg = guard_svg(&g, &lines, 0, 60);
        assert!(svg.contains("data-points=\"2\""), "{svg}");
        assert!(svg.contains("alert 1%"), "{svg}");
        assert!(svg.contains("class=\"series others\""));
        let empty = guard_svg(&g, &split(false, &[], &|_| false), 0, 60);
        assert!(empty.contains("no data in this window"));
        // A day's window with ten minutes of readings: the axis starts at the first reading.
        let recent = Lines {
            main: vec![
                (86_400 - 600, 0.001),
                (86_400 - 300, 0.002),
                (86_400, 0.001),
            ],
            others: Vec::new(),
        };
        let svg = guard_svg(&g, &recent, 0, 86_400);
        assert!(svg.contains("−10 min"), "{svg}");
        assert!(
            svg.contains("M0.0,"),
            "the line starts at the left edge: {svg}"
        );
        let day = Lines {
            main: vec![(-86_400, 0.001), (60, 0.001)],
            others: Vec::new(),
        };
        assert!(guard_svg(&g, &day, -86_400, 60).contains("−24 h"));
    }
}
