//! Blob bodies streamed in bounded pieces. A response maps the span it sends once (address
//! space only, see [`stowage_engine::blob_store::Span`]); a blocking thread populates the next
//! stretch of it ahead of the sender (`MADV_POPULATE_READ`: the disk wait and the page faults
//! never land on a reactor thread), and the body hands out slices of what is populated. Every
//! piece holds permits of two byte budgets until hyper has written and dropped it: one per
//! response (the read-ahead window) and one for the whole process; dropping a piece also drops
//! its pages from the mapping (`MADV_DONTNEED`, the page cache keeps them). So resident memory
//! stays bounded however many and however large the pulls are. The body itself drives the
//! reads (no producer task): when the client goes away hyper drops the body and nothing more is
//! read beyond the one stretch that may be in flight.
//!
//! The interface with the handlers is a `(start, len)` pair, whatever the `Range` header said.
//! This module never decides a status or reads a header.

use crate::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use stowage_engine::blob_store::Span;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// The size of every piece but the first while a response's window is narrow (its first
/// [`WIDEN_AFTER_BYTES`], or whenever the process budget is more than half taken).
pub const PIECE_BYTES: usize = 1 << 20;
/// The first piece is smaller, so the first byte of a cold blob waits for less disk.
pub const FIRST_PIECE_BYTES: usize = 256 << 10;
/// Read-ahead per response (bytes read and not yet written to the client) in its first
/// [`WIDEN_AFTER_BYTES`]: a client that hangs up early costs little reading.
pub const START_WINDOW_BYTES: usize = 4 << 20;
/// After this many bytes a response's window widens to [`WINDOW_BYTES`].
pub const WIDEN_AFTER_BYTES: u64 = 16 << 20;
/// The widest read-ahead of one response.
pub const WINDOW_BYTES: usize = 32 << 20;
/// Stretch populated by one blocking job once the window is wide and the process budget at least
/// half free; also the largest piece handed to hyper.
pub const WIDE_PIECE_BYTES: usize = 8 << 20;
/// Stretches of one response populated at the same time, so a blocking thread that is slow to
/// run does not stall the sender.
const JOBS_AHEAD: usize = 2;
/// Read-ahead over all responses together.
pub const BUDGET_BYTES: usize = 48 << 20;
/// Bodies up to this size are read at once (one mapping or read, no task): manifests, configs
/// and small layers keep the short path.
pub const SINGLE_READ_BYTES: u64 = 1 << 20;

/// Shared budget and counters of all streamed bodies.
pub struct Streams {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
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
            budget_bytes,
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

    /// A body of `len` bytes of `span` from `start` (the span maps at least that), read ahead at
    /// most `window` bytes in pieces of at most `piece` bytes (`piece <= window`) until
    /// [`WIDEN_AFTER_BYTES`] are read, then up to [`WINDOW_BYTES`] and [`WIDE_PIECE_BYTES`].
    pub fn body(self: &Arc<Self>, span: Span, start: u64, len: u64, piece: usize, window: usize) -> Body {
        let window = window.clamp(1, u32::MAX as usize);
        let piece = piece.clamp(1, window);
        let wide_window = WINDOW_BYTES.max(window);
        let own = Arc::new(Semaphore::new(wide_window));
        // Held back from the window until it widens.
        let reserve = own.clone().try_acquire_many_owned((wide_window - window) as u32).ok();
        let mut body = BlobBody {
            streams: self.clone(),
            span: Arc::new(span),
            own,
            reserve,
            window,
            wide_window,
            piece,
            start,
            sent: start,
            ready: start,
            end: start + len,
            stock: None,
            acquiring: None,
            jobs: VecDeque::new(),
            planned: start,
            failed: None,
        };
        // Start reading the first piece now, while the response head is being written: the
        // wakers that matter are set again when hyper polls the body.
        if let Poll::Ready(Err(e)) = body.poll_read_ahead(&mut Context::from_waker(std::task::Waker::noop())) {
            body.failed = Some(e);
        }
        body.boxed_unsync()
    }
}

/// Permits of both budgets for the same number of bytes.
struct Permits {
    own: OwnedSemaphorePermit,
    all: OwnedSemaphorePermit,
}

impl Permits {
    fn merge(&mut self, other: Permits) {
        self.own.merge(other.own);
        self.all.merge(other.all);
    }

    /// The first `n` bytes' permits; `None` when fewer are held.
    fn split(&mut self, n: usize) -> Option<Permits> {
        if n > self.own.num_permits() {
            return None;
        }
        Some(Permits { own: self.own.split(n)?, all: self.all.split(n)? })
    }
}

type Acquire = Pin<Box<dyn Future<Output = Option<Permits>> + Send>>;
type Populated = (u64, Permits, stowage_engine::Result<()>);

/// A streamed blob body: populated slices of its span, with an exact size hint so hyper sends
/// `Content-Length` framing.
struct BlobBody {
    streams: Arc<Streams>,
    span: Arc<Span>,
    /// This response's window, `WINDOW_BYTES` permits of which `reserve` holds back the part
    /// beyond `window` until the window widens.
    own: Arc<Semaphore>,
    reserve: Option<OwnedSemaphorePermit>,
    window: usize,
    wide_window: usize,
    piece: usize,
    start: u64,
    /// File offsets: handed to hyper up to `sent`, populated up to `ready`, the body ends at `end`.
    sent: u64,
    ready: u64,
    end: u64,
    /// Permits of the populated bytes `sent..ready`.
    stock: Option<Permits>,
    /// Permits being acquired for the next stretch.
    acquiring: Option<Acquire>,
    /// Blocking jobs populating the next stretches (in order, up to `planned`), each up to the
    /// offset it returns.
    jobs: VecDeque<JoinHandle<Populated>>,
    planned: u64,
    /// A read that failed before the body could report it.
    failed: Option<std::io::Error>,
}

impl BlobBody {
    /// Size of the next stretch to populate: the first piece is small; wide stretches only when
    /// the window is wide and the process budget at least half free.
    fn next_stretch(&mut self) -> usize {
        if self.planned == self.start {
            return self.piece.min(FIRST_PIECE_BYTES.max(1));
        }
        if self.planned - self.start >= WIDEN_AFTER_BYTES {
            // Widening gives the held-back permits to the window for good.
            self.reserve = None;
            let budget = self.streams.budget_bytes;
            if self.streams.budget.available_permits() >= budget / 2 {
                return WIDE_PIECE_BYTES.min(self.wide_window).min(budget).max(self.piece);
            }
        }
        self.piece
    }

    /// The largest piece handed to hyper now.
    fn piece_now(&self) -> usize {
        if self.reserve.is_some() {
            self.piece
        } else {
            WIDE_PIECE_BYTES.min(self.wide_window).max(self.piece)
        }
    }

    /// Starts acquiring permits for the next stretch, or the blocking job once they are held.
    /// `Ready(Err)` when the job failed.
    fn poll_read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        loop {
            // Collect finished stretches in order.
            while let Some(job) = self.jobs.front_mut() {
                let Poll::Ready(done) = Pin::new(job).poll(cx) else { break };
                self.jobs.pop_front();
                let (to, permits, result) = match done {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(error = %e, "blob read task failed mid-stream");
                        return Poll::Ready(Err(std::io::Error::other("blob read task failed")));
                    }
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "blob read failed mid-stream; the response is cut short");
                    return Poll::Ready(Err(std::io::Error::other("blob read failed")));
                }
                self.ready = to;
                match self.stock.as_mut() {
                    Some(stock) => stock.merge(permits),
                    None => self.stock = Some(permits),
                }
            }
            if self.ready == self.end {
                return Poll::Ready(Ok(()));
            }
            if self.planned == self.end || self.jobs.len() >= JOBS_AHEAD {
                // The front job's waker is set.
                return Poll::Pending;
            }
            if self.acquiring.is_none() {
                let stretch = self.next_stretch() as u64;
                // Stretches end on page edges (the span starts on one), so pieces never share a
                // page and each releases exactly its own.
                let page = stowage_engine::blob_store::page_size() as u64;
                let to = ((self.planned + stretch) / page * page).max(self.planned + 1).min(self.end);
                let n = (to - self.planned) as u32;
                let (own, all) = (self.own.clone(), self.streams.budget.clone());
                self.acquiring = Some(Box::pin(async move {
                    let own = own.acquire_many_owned(n).await.ok()?;
                    let all = all.acquire_many_owned(n).await.ok()?;
                    Some(Permits { own, all })
                }));
            }
            let Some(acquiring) = self.acquiring.as_mut() else { continue };
            let permits = std::task::ready!(acquiring.as_mut().poll(cx));
            self.acquiring = None;
            let Some(permits) = permits else {
                return Poll::Ready(Err(std::io::Error::other("blob read budget closed")));
            };
            let n = permits.own.num_permits() as u64;
            let (from, to) = (self.planned, self.planned + n);
            self.planned = to;
            let window = if self.reserve.is_some() { self.window } else { self.wide_window };
            let held = (window - self.own.available_permits().min(window)) as u64;
            self.streams.peak_window_bytes.fetch_max(held, Ordering::Relaxed);
            self.streams.read_bytes.fetch_add(n, Ordering::Relaxed);
            let span = self.span.clone();
            self.jobs.push_back(tokio::task::spawn_blocking(move || {
                let result = span.populate(from, to);
                (to, permits, result)
            }));
        }
    }
}

impl http_body::Body for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let me = &mut *self;
        if me.sent == me.end {
            return Poll::Ready(None);
        }
        // Keep the next stretch coming while hyper writes this piece.
        if let Poll::Ready(Err(e)) = me.poll_read_ahead(cx) {
            return Poll::Ready(Some(Err(e)));
        }
        if me.sent == me.ready {
            // Wakers are set: the job's, or the budgets'. (`ready == end` with `sent < end`
            // cannot happen: every populated byte is in `sent..ready`.)
            return Poll::Pending;
        }
        let to = me.ready.min(me.sent + me.piece_now() as u64);
        let n = (to - me.sent) as usize;
        let keep = me.stock.as_mut().and_then(|s| s.split(n));
        let Some(keep) = keep else {
            return Poll::Ready(Some(Err(std::io::Error::other("blob stream lost its permits"))));
        };
        match me.span.piece(me.sent, to, keep) {
            Ok(b) => {
                me.sent = to;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Err(e) => Poll::Ready(Some(Err(std::io::Error::other(e.to_string())))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.sent)
    }
}

impl Drop for BlobBody {
    fn drop(&mut self) {
        if self.sent < self.end {
            self.streams.abandoned.fetch_add(1, Ordering::Relaxed);
        }
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
            let mut body =
                streams.body(engine.open_blob(&d).unwrap().span(start, len).unwrap(), start, len, 65_536, 262_144);
            assert_eq!(body.size_hint().exact(), Some(len));
            // Copied out piece by piece and each piece dropped, as hyper does once it is written
            // (a reader that keeps every piece would stall the stream at the window).
            let mut got = Vec::new();
            while let Some(f) = body.frame().await {
                got.extend_from_slice(&f.unwrap().into_data().unwrap());
            }
            assert_eq!(&got[..], &data[start as usize..(start + len) as usize], "span {start}+{len}");
            drop(body);
            assert_eq!(streams.budget.available_permits(), 1 << 20, "every piece gave its budget back");
        }
        assert_eq!(streams.abandoned(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_never_holds_more_than_the_window() {
        let (_dir, engine, d, _data) = stored(1 << 20).await;
        let streams = Arc::new(Streams::new(8 << 20));
        let (piece, window) = (16 << 10, 64 << 10);
        let mut body = streams.body(engine.open_blob(&d).unwrap().span(0, 1 << 20).unwrap(), 0, 1 << 20, piece, window);
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
        let mut body =
            streams.body(engine.open_blob(&d).unwrap().span(0, 4 << 20).unwrap(), 0, 4 << 20, 64 << 10, 256 << 10);
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
        // Stretches in flight at the hang-up give their budget back when they finish.
        while streams.budget.available_permits() != 8 << 20 {
            assert!(std::time::Instant::now() < deadline, "budget not returned after the hang-up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
