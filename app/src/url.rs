//! URL helpers shared by the pages and the server.

/// Percent-encodes a query value (everything but unreserved characters).
///
/// ```
/// assert_eq!(app::url::encode("a&b c/d"), "a%26b%20c%2Fd");
/// ```
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
