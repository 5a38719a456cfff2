//! Live pages: the browser follows the server's change stream (`/api/ui/stream`, Server-Sent
//! Events through gloo-net). Every change anywhere — the UI, the REST API, the CLI or a DBA's raw
//! SQL — bumps the snapshot version the stream carries; pages that show flag state refetch when
//! it moves.
use leptos::prelude::*;

/// A counter that starts at 0 and goes up each time the server reports a change made after the
/// page subscribed. Use it as a resource source (`move || (filter.get(), changes.get())`) to
/// refetch on change; on the server it stays 0, so server rendering and hydration agree.
pub fn use_changes() -> ReadSignal<u64> {
    let changes = RwSignal::new(0_u64);
    subscribe(changes);
    changes.read_only()
}

/// Parses `{"version":N}` (the stream's event data).
pub fn parse_version(data: &str) -> Option<u64> {
    data.split(':')
        .nth(1)?
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

#[cfg(feature = "hydrate")]
fn subscribe(changes: RwSignal<u64>) {
    use futures::StreamExt;
    leptos::task::spawn_local(async move {
        let Ok(mut source) = gloo_net::eventsource::futures::EventSource::new("/api/ui/stream")
        else {
            return;
        };
        let Ok(mut events) = source.subscribe("snapshot") else {
            return;
        };
        // The first event is the version the page was rendered at (or close to it).
        let mut seen = None::<u64>;
        while let Some(Ok((_, msg))) = events.next().await {
            let Some(v) = msg.data().as_string().as_deref().and_then(parse_version) else {
                continue;
            };
            let moved = seen.is_some_and(|s| s != v);
            seen = Some(v);
            if moved && changes.try_update(|n| *n += 1).is_none() {
                // The page is gone: stop listening.
                source.close();
                return;
            }
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn subscribe(_changes: RwSignal<u64>) {}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_stream_payload() {
        assert_eq!(super::parse_version(r#"{"version":42}"#), Some(42));
        assert_eq!(super::parse_version("garbage"), None);
    }
}
