//! Blob bodies streamed in bounded pieces. A blocking task maps one window of the blob at a time
//! (see [`stowage_engine::blob_store::BlobFile`]) and hands it to the response body through a
//! small channel. Every piece holds permits of two byte budgets until hyper has written and
//! dropped it: one per response (the read-ahead window) and one for the whole process, so
//! resident memory stays bounded however many and however large the pulls are. When the client
//! goes away hyper drops the body, the channel closes and no further piece is read.
//!
//! The interface with the handlers is a `(start, len)` pair, whatever the `Range` header said.
//! This module never decides a status or reads a header.

use crate::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use stowage_engine::blob_store::BlobFile;
use tokio::sync::{mpsc, Semaphore};

/// The size of every piece but the first.
pub const PIECE_BYTES: usize = 1 << 20;
/// The first piece is smaller, so the first byte of a cold blob waits for less disk.
pub const FIRST_PIECE_BYTES: usize = 256 << 10;
/// Read-ahead per response: bytes read and not yet written to the client.
pub const WINDOW_BYTES: usize = 4 << 20;
/// Read-ahead over all responses together.
pub const BUDGET_BYTES: usize = 64 << 20;
/// Bodies up to this size are read at once (one mapping or read, no task): manifests, configs
/// and small layers keep the short path.
pub const SINGLE_READ_BYTES: u64 = 1 << 20;

/// Shared budget and counters of all streamed bodies.
pub struct Streams {
    budget: Arc<Semaphore>,
    /// Blob bytes read for streamed bodies.
    read_bytes: AtomicU64,
    /// Streams that ended before their last byte because the client went away.
    abandoned: AtomicU64,
    /// The most bytes one response ever held read and unsent.
    peak_window_bytes: AtomicU64,
}

impl Default for Streams {
    fn default() -> Self {
        Streams::new(BUDGET_BYTES)
    }
}

impl Streams {
    pub fn new(budget_bytes: usize) -> Streams {
        Streams {
            budget: Arc::new(Semaphore::new(budget_bytes)),
            read_bytes: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            peak_window_bytes: AtomicU64::new(0),
        }
    }

    pub fn read_bytes(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }

    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    pub fn peak_window_bytes(&self) -> u64 {
        self.peak_window_bytes.load(Ordering::Relaxed)
    }

    /// A body of `len` bytes of `file` from `start`, read ahead at most `window` bytes (pieces of
    /// at most `piece` bytes, `piece <= window`). The caller has checked the span against the
    /// file's length.
    pub fn body(self: &Arc<Self>, file: BlobFile, start: u64, len: u64, piece: usize, window: usize) -> Body {
        let piece = piece.clamp(1, window.max(1));
        let (tx, rx) = mpsc::channel(window.div_ceil(piece).max(1));
        let me = self.clone();
        tokio::spawn(me.produce(Arc::new(file), start, len, piece, window, tx));
        BlobBody { rx, remaining: len }.boxed_unsync()
    }

    async fn produce(
        self: Arc<Self>,
        file: Arc<BlobFile>,
        start: u64,
        len: u64,
        piece: usize,
        window: usize,
        tx: mpsc::Sender<std::io::Result<Bytes>>,
    ) {
        let own = Arc::new(Semaphore::new(window));
        let mut at = start;
        let end = start + len;
        let mut first = true;
        while at < end {
            let want = if first { piece.min(FIRST_PIECE_BYTES.max(1)) } else { piece };
            first = false;
            let n = (end - at).min(want as u64) as usize;
            // Permits are bytes; `n <= piece <= window`, and both budgets exceed a piece, so the
            // casts cannot truncate for the sizes configured here.
            let permits = n as u32;
            let acquired = tokio::select! {
                _ = tx.closed() => None,
                p = async {
                    let mine = own.clone().acquire_many_owned(permits).await.ok()?;
                    let all = self.budget.clone().acquire_many_owned(permits).await.ok()?;
                    Some((mine, all))
                } => p,
            };
            let Some(keep) = acquired else { break };
            let held = (window - own.available_permits()) as u64;
            self.peak_window_bytes.fetch_max(held, Ordering::Relaxed);
            let f = file.clone();
            let read = tokio::task::spawn_blocking(move || f.window(at, n, keep)).await;
            let piece = match read {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "blob read failed mid-stream; the response is cut short");
                    Err(std::io::Error::other("blob read failed"))
                }
                Err(e) => {
                    tracing::error!(error = %e, "blob read task failed mid-stream");
                    Err(std::io::Error::other("blob read task failed"))
                }
            };
            let failed = piece.is_err();
            if piece.is_ok() {
                self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            if tx.send(piece).await.is_err() || failed {
                break;
            }
            at += n as u64;
        }
        if at < end {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The response side of a streamed blob: pieces as they arrive, with an exact size hint so hyper
/// sends `Content-Length` framing.
struct BlobBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The producer stopped before the last byte without saying why: never end a body
            // short silently, or a client would read a truncated blob as complete.
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other("blob stream ended early")))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body::Body as _;
    use std::time::Duration;
    use stowage_engine::{Algorithm, Digest, Engine, EngineConfig};

    async fn stored(len: usize) -> (tempfile::TempDir, Engine, Digest, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let d = Digest::of(Algorithm::Sha256, &data);
        engine.catalog().ensure_repo("p/r", "p").unwrap();
        let mut w = engine.put_blob_writer("p/r").await.unwrap();
        w.write(Bytes::from(data.clone())).await.unwrap();
        w.finish(&d).await.unwrap();
        (dir, engine, d, data)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pieces_add_up_to_exactly_the_span_asked_for() {
        let (_dir, engine, d, data) = stored(300_000).await;
        let streams = Arc::new(Streams::new(1 << 20));
        for (start, len) in [(0u64, 300_000u64), (1, 299_999), (4095, 70_001), (299_999, 1)] {
            let mut body = streams.body(engine.open_blob(&d).unwrap(), start, len, 65_536, 262_144);
            assert_eq!(body.size_hint().exact(), Some(len));
            // Copied out piece by piece and each piece dropped, as hyper does once it is written
            // (a reader that keeps every piece would stall the stream at the window).
            let mut got = Vec::new();
            while let Some(f) = body.frame().await {
                got.extend_from_slice(&f.unwrap().into_data().unwrap());
            }
            assert_eq!(&got[..], &data[start as usize..(start + len) as usize], "span {start}+{len}");
        }
        assert_eq!(streams.abandoned(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_never_holds_more_than_the_window() {
        let (_dir, engine, d, _data) = stored(1 << 20).await;
        let streams = Arc::new(Streams::new(8 << 20));
        let (piece, window) = (16 << 10, 64 << 10);
        let mut body = streams.body(engine.open_blob(&d).unwrap(), 0, 1 << 20, piece, window);
        let mut got = 0;
        let mut held = Vec::new();
        while let Some(f) = body.frame().await {
            let b = f.unwrap().into_data().unwrap();
            got += b.len();
            // Hold a few pieces, as hyper's write queue would, and give the producer time to
            // run ahead as far as it is allowed.
            held.push(b);
            if held.len() > 2 {
                held.remove(0);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(got, 1 << 20);
        let peak = streams.peak_window_bytes();
        assert!(peak <= window as u64, "peak read-ahead {peak} passed the window {window}");
        assert!(peak >= 3 * piece as u64, "the producer should run ahead while the reader is slow: {peak}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_body_stops_the_reads() {
        let (_dir, engine, d, _data) = stored(4 << 20).await;
        let streams = Arc::new(Streams::new(8 << 20));
        let mut body = streams.body(engine.open_blob(&d).unwrap(), 0, 4 << 20, 64 << 10, 256 << 10);
        body.frame().await.unwrap().unwrap();
        drop(body);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while streams.abandoned() == 0 {
            assert!(std::time::Instant::now() < deadline, "the producer did not notice the hang-up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let read = streams.read_bytes();
        assert!(read <= (64 << 10) + (256 << 10), "read {read} bytes of a body whose reader went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(streams.read_bytes(), read, "no reads after the hang-up was noticed");
    }
}
