//! Prometheus metrics the daemon keeps itself: request durations per endpoint kind and status
//! class (fixed buckets, exact counts), bytes in and out, GC, token and TLS counters, and the
//! Everything is a relaxed atomic owned by one
//! [`Metrics`] value in [`crate::app::App`]: no global registry, no locks, and a label set
//! bounded by construction (an [`EndpointKind`] is never a path or a name).
//!
//! Gauges read from storage (index size, open uploads) are gathered by `GET /metrics` on a
//! blocking thread; this module only formats them. It never reads a request.

use crate::router::Endpoint;
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a request was for: the label of the duration histogram. Never a path or a name, so the
/// number of series stays fixed whatever clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    Base,
    Token,
    Catalog,
    BlobGet,
    BlobHead,
    BlobDelete,
    UploadStart,
    UploadStatus,
    UploadPatch,
    UploadFinish,
    UploadCancel,
    ManifestGet,
    ManifestHead,
    ManifestPut,
    ManifestDelete,
    TagsList,
    Referrers,
    /// `/healthz`, `/readyz`, `/metrics`.
    Probe,
    /// `/api/v1/...`.
    Api,
    /// Anything that matched no route (including requests refused while parsing).
    Unmatched,
}

impl EndpointKind {
    pub const ALL: [EndpointKind; 20] = [
        EndpointKind::Base,
        EndpointKind::Token,
        EndpointKind::Catalog,
        EndpointKind::BlobGet,
        EndpointKind::BlobHead,
        EndpointKind::BlobDelete,
        EndpointKind::UploadStart,
        EndpointKind::UploadStatus,
        EndpointKind::UploadPatch,
        EndpointKind::UploadFinish,
        EndpointKind::UploadCancel,
        EndpointKind::ManifestGet,
        EndpointKind::ManifestHead,
        EndpointKind::ManifestPut,
        EndpointKind::ManifestDelete,
        EndpointKind::TagsList,
        EndpointKind::Referrers,
        EndpointKind::Probe,
        EndpointKind::Api,
        EndpointKind::Unmatched,
    ];

    pub fn of(ep: &Endpoint) -> EndpointKind {
        match ep {
            Endpoint::Base => EndpointKind::Base,
            Endpoint::Token { .. } => EndpointKind::Token,
            Endpoint::Catalog(_) => EndpointKind::Catalog,
            Endpoint::BlobGet { head: false, .. } => EndpointKind::BlobGet,
            Endpoint::BlobGet { head: true, .. } => EndpointKind::BlobHead,
            Endpoint::BlobDelete { .. } => EndpointKind::BlobDelete,
            Endpoint::UploadStart { .. } => EndpointKind::UploadStart,
            Endpoint::UploadStatus { .. } => EndpointKind::UploadStatus,
            Endpoint::UploadPatch { .. } => EndpointKind::UploadPatch,
            Endpoint::UploadFinish { .. } => EndpointKind::UploadFinish,
            Endpoint::UploadCancel { .. } => EndpointKind::UploadCancel,
            Endpoint::ManifestGet { head: false, .. } => EndpointKind::ManifestGet,
            Endpoint::ManifestGet { head: true, .. } => EndpointKind::ManifestHead,
            Endpoint::ManifestPut { .. } => EndpointKind::ManifestPut,
            Endpoint::ManifestDelete { .. } => EndpointKind::ManifestDelete,
            Endpoint::TagsList { .. } => EndpointKind::TagsList,
            Endpoint::Referrers { .. } => EndpointKind::Referrers,
            Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics => EndpointKind::Probe,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Base => "base",
            EndpointKind::Token => "token",
            EndpointKind::Catalog => "catalog",
            EndpointKind::BlobGet => "blob_get",
            EndpointKind::BlobHead => "blob_head",
            EndpointKind::BlobDelete => "blob_delete",
            EndpointKind::UploadStart => "upload_start",
            EndpointKind::UploadStatus => "upload_status",
            EndpointKind::UploadPatch => "upload_patch",
            EndpointKind::UploadFinish => "upload_finish",
            EndpointKind::UploadCancel => "upload_cancel",
            EndpointKind::ManifestGet => "manifest_get",
            EndpointKind::ManifestHead => "manifest_head",
            EndpointKind::ManifestPut => "manifest_put",
            EndpointKind::ManifestDelete => "manifest_delete",
            EndpointKind::TagsList => "tags_list",
            EndpointKind::Referrers => "referrers",
            EndpointKind::Probe => "probe",
            EndpointKind::Api => "api",
            EndpointKind::Unmatched => "unmatched",
        }
    }
}

/// Upper bounds of the duration buckets, in seconds (`+Inf` follows). From a cached manifest
/// (sub-millisecond) to a multi-GiB layer upload.
pub const BUCKETS_SECONDS: [f64; 14] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

/// A Prometheus histogram with fixed buckets; exact (every observation lands in one counter).
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the last is `+Inf` only).
    buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS_SECONDS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS_SECONDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = BUCKETS_SECONDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count.load(Relaxed));
    }
}

/// The daemon's own counters. One per [`crate::app::App`].
pub struct Metrics {
    /// `[kind][status class 1..=5 at 0..=4]`.
    requests: Vec<[Histogram; 5]>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    tls_handshake_failures: AtomicU64,
    tokens_issued: AtomicU64,
    gc_runs: AtomicU64,
    gc_bytes_freed: AtomicU64,
    gc_blobs_deleted: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Gauges read from storage at scrape time.
pub struct StorageGauges {
    pub index_bytes: u64,
    pub uploads_open: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: EndpointKind::ALL.iter().map(|_| Default::default()).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            gc_runs: AtomicU64::new(0),
            gc_bytes_freed: AtomicU64::new(0),
            gc_blobs_deleted: AtomicU64::new(0),
        }
    }

    /// A request answered: `took` is the time to the response head.
    pub fn request(&self, kind: EndpointKind, status: u16, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(h) = self.requests.get(kind as usize) {
            h[class].observe(took);
        }
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Relaxed);
    }

    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Relaxed);
    }

    pub fn gc_run(&self, blobs_deleted: u64, bytes_freed: u64) {
        self.gc_runs.fetch_add(1, Relaxed);
        self.gc_blobs_deleted.fetch_add(blobs_deleted, Relaxed);
        self.gc_bytes_freed.fetch_add(bytes_freed, Relaxed);
    }

    /// Appends these metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self, out: &mut String, login_failures: u64, storage: &StorageGauges) {
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let name = "stowage_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a complete request head to the response head, by endpoint kind and status class.\n# TYPE {name} histogram"
        );
        for (kind, classes) in EndpointKind::ALL.iter().zip(&self.requests) {
            for (i, h) in classes.iter().enumerate() {
                // Series appear once used; a scrape of a fresh server stays short.
                if h.count.load(Relaxed) > 0 {
                    h.render(out, name, &format!("endpoint=\"{}\",class=\"{}xx\"", kind.as_str(), i + 1));
                }
            }
        }
        counter(
            out,
            "stowage_http_received_bytes_total",
            "HTTP bytes read from clients (after TLS).",
            self.bytes_in.load(Relaxed),
        );
        counter(
            out,
            "stowage_http_sent_bytes_total",
            "HTTP bytes written to clients (before TLS).",
            self.bytes_out.load(Relaxed),
        );
        counter(
            out,
            "stowage_tls_handshake_failures_total",
            "TLS handshakes that failed or did not finish within header_timeout.",
            self.tls_handshake_failures.load(Relaxed),
        );
        counter(
            out,
            "stowage_tokens_issued_total",
            "Registry tokens issued by /v2/token.",
            self.tokens_issued.load(Relaxed),
        );
        counter(
            out,
            "stowage_login_failures_total",
            "Failed logins (wrong password or token, unknown or disabled user).",
            login_failures,
        );
        counter(out, "stowage_gc_runs_total", "Garbage collections finished.", self.gc_runs.load(Relaxed));
        counter(
            out,
            "stowage_gc_blobs_deleted_total",
            "Blobs deleted by garbage collection.",
            self.gc_blobs_deleted.load(Relaxed),
        );
        counter(
            out,
            "stowage_gc_freed_bytes_total",
            "Bytes freed by garbage collection.",
            self.gc_bytes_freed.load(Relaxed),
        );
        gauge(
            out,
            "stowage_uploads_in_progress",
            "Uploads started and not yet finished, cancelled or expired.",
            storage.uploads_open,
        );
        gauge(out, "stowage_index_size_bytes", "Size of the index files on disk.", storage.index_bytes);
    }
}

/// Total size of the files under `dir` (not following links): the index size gauge. Blocking.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: the index directory holds a handful of files and at most a few levels.
    let mut budget = 10_000;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            budget -= 1;
            if budget == 0 {
                return total;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Counts the bytes that pass through a connection's I/O into [`Metrics`].
pub struct MeteredIo<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> MeteredIo<S> {
    pub fn new(inner: S, metrics: Arc<Metrics>) -> MeteredIo<S> {
        MeteredIo { inner, metrics }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.metrics.bytes_in.fetch_add(n as u64, Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_exact() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(1000));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.01\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"300\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 1000.0075\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn endpoint_kinds_are_listed_in_order() {
        for (i, k) in EndpointKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }
}
