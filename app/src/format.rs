//! Formatting for people, shared by the pages. Server-only: dates are formatted on the server, so
//! the browser build carries no date library (`chrono` is an ssr-only dependency).
use chrono::{DateTime, Utc};

/// The cookie the browser sets with its IANA time zone (`App` does, once hydrated).
pub const TZ_COOKIE: &str = "tz";

/// The viewer's time zone: the [`TZ_COOKIE`] of the request being answered, when it names a zone
/// chrono-tz knows; UTC otherwise (no cookie yet, JavaScript off, or not in a request).
pub fn viewer_tz() -> chrono_tz::Tz {
    let parts = leptos::prelude::use_context::<http::request::Parts>();
    parts
        .as_ref()
        .and_then(|p| tz_from_cookies(&p.headers))
        .unwrap_or(chrono_tz::Tz::UTC)
}

fn tz_from_cookies(headers: &http::HeaderMap) -> Option<chrono_tz::Tz> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == TZ_COOKIE).then(|| value.replace("%2F", "/").parse().ok())?
        })
}

/// `YYYY-MM-DD HH:MM:SS ZONE (HH:MM UTC)` — with the UTC date too when it is another day: the
/// viewer's time zone with UTC beside it, for times inside sentences and cells that have no
/// hover; `… UTC` alone until the browser has said which zone it is in.
pub fn display_time(t: DateTime<Utc>) -> String {
    both(t, viewer_tz())
}

/// `YYYY-MM-DD HH:MM:SS ZONE` in the viewer's time zone, for cells that carry the UTC moment in
/// their `title` (the audit rows).
pub fn zone_time(t: DateTime<Utc>) -> String {
    in_zone(t, viewer_tz())
}

fn both(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    if tz == chrono_tz::Tz::UTC {
        return utc_time(t);
    }
    let local = t.with_timezone(&tz);
    let utc = if local.date_naive() == t.date_naive() {
        t.format("%H:%M")
    } else {
        t.format("%Y-%m-%d %H:%M")
    };
    format!("{} ({utc} UTC)", in_zone(t, tz))
}

fn in_zone(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    if tz == chrono_tz::Tz::UTC {
        return utc_time(t);
    }
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC`: the same moment for the title (shown on hover).
pub fn utc_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_viewer_zone_with_utc_beside() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T01:16:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=b; tz=Europe/Berlin".parse().unwrap(),
        );
        let tz = tz_from_cookies(&h).unwrap();
        assert_eq!(in_zone(t, tz), "2026-11-30 02:16:00 CET");
        assert_eq!(both(t, tz), "2026-11-30 02:16:00 CET (01:16 UTC)");
        assert_eq!(both(t, chrono_tz::Tz::UTC), "2026-11-30 01:16:00 UTC");
        // Across midnight the UTC side carries its own date.
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            both(t, ny),
            "2026-11-29 20:16:00 EST (2026-11-30 01:16 UTC)"
        );
        assert_eq!(utc_time(t), "2026-11-30 01:16:00 UTC");
        h.insert(http::header::COOKIE, "tz=Not/AZone".parse().unwrap());
        assert_eq!(tz_from_cookies(&h), None);
        // Outside a request: UTC.
        assert_eq!(display_time(t), "2026-11-30 01:16:00 UTC");
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
        assert_eq!(human_age(42), "42 s");
        assert_eq!(human_age(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(human_age(2 * 86_400 + 7200), "2 d 2 h");
    }
}
