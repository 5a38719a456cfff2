//! Formatting for people, shared by the pages. Server-only: dates are formatted on the server, so
//! the browser build carries no date library (`chrono` is an ssr-only dependency).
use chrono::{DateTime, Utc};

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn display_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Bytes for people: `12.3 MB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let u = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} {u}")
    } else {
        format!("{v:.1} {u}")
    }
}

/// Seconds for people: `3 h 5 min`.
pub fn human_age(s: i64) -> String {
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
        assert_eq!(human_age(42), "42 s");
        assert_eq!(human_age(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(human_age(2 * 86_400 + 7200), "2 d 2 h");
    }
}
