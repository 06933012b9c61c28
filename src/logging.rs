//! Log output (human text or one JSON object per line) and the request id that ties the lines
//! of one request together: taken from the client's `X-Request-Id` when it is short and plain,
//! else made here, put on a tracing span around the request (so every line logged while
//! handling it carries it), and echoed in the response's `X-Request-Id`.
//!
//! This module never logs request contents: ids, methods, paths and statuses only.

use http::HeaderMap;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the enclosing spans (the request id).
    Json,
}

/// The response (and request) header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// Longest client-given request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// Installs the global subscriber writing to stderr; `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().with_current_span(true).with_span_list(false).init(),
    }
}

/// The client's request id if it is 1 to [`MAX_REQUEST_ID_CHARS`] of `[A-Za-z0-9._:-]` (safe in
/// a log line and a header), else a new random one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=MAX_REQUEST_ID_CHARS).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, http::HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn client_ids_are_kept_only_when_short_and_plain() {
        assert_eq!(request_id(&with(b"abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in [&b"has space"[..], b"quote\"d", b"{json}", &[b'a'; 65][..], b"\xc3\xa9"] {
            let id = request_id(&with(bad));
            assert_eq!(id.len(), 32, "{bad:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
