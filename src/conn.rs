//! Connection limits that hold before any authentication: caps on open connections (overall and
//! per client address), and a watchdog per connection that closes it when a complete request head
//! does not arrive in time and shuts it down gracefully when it has stayed idle too long.
//!
//! This module only counts (connections, bytes read, requests in flight) and says when a
//! connection must end; [`crate::server`] acts on that. It never reads, parses or answers a
//! request, and it never blocks: everything here is a few atomic operations or a short lock.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// At most one log line about refused connections this often, so a flood does not flood the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `server.max_connections` are open.
    Total,
    /// `server.max_connections_per_ip` are open from the client's address.
    PerClient,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections reached",
            Refusal::PerClient => "max_connections_per_ip reached for this address",
        }
    }
}

/// Open connections, overall and per client address, and what became of the ones that ended.
pub struct ConnLimits {
    max_total: usize,
    max_per_client: usize,
    /// (open connections, open connections by [`client_key`]). Keys leave the map at zero, so it
    /// never holds more than `max_total` entries.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: AtomicU64,
    closed_no_head: AtomicU64,
    closed_idle: AtomicU64,
    /// (when the last refusal line was logged, refusals not logged since).
    refusal_log: Mutex<(Option<Instant>, u64)>,
}

/// One open connection's place under the caps; dropping it frees the place.
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    key: IpAddr,
}

impl ConnLimits {
    pub fn new(max_total: usize, max_per_client: usize) -> ConnLimits {
        ConnLimits {
            max_total,
            max_per_client,
            open: Mutex::new((0, HashMap::new())),
            refused: AtomicU64::new(0),
            closed_no_head: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            refusal_log: Mutex::new((None, 0)),
        }
    }

    /// Takes a place for a connection from `ip`, or says which cap is full.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refusal> {
        let key = client_key(ip);
        let mut g = self.open.lock();
        if g.0 >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = g.1.entry(key).or_insert(0);
        if *n >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        g.0 += 1;
        Ok(ConnSlot { limits: self.clone(), key })
    }

    /// Counts a refused connection and logs it, at most once per [`REFUSAL_LOG_EVERY`] with the
    /// number left unlogged meanwhile.
    pub fn note_refusal(&self, ip: IpAddr, why: Refusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut g = self.refusal_log.lock();
        if g.0.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY) {
            g.1 += 1;
            return;
        }
        let unlogged = std::mem::take(&mut g.1);
        g.0 = Some(now);
        drop(g);
        tracing::info!(peer = %ip, reason = why.as_str(), refused_unlogged = unlogged, "connection refused");
    }

    /// Counts a connection the watchdog ended.
    pub fn note_expiry(&self, e: Expiry) {
        let c = match e {
            Expiry::NoHead => &self.closed_no_head,
            Expiry::Idle => &self.closed_idle,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().0
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections closed since start because no complete request head arrived in time.
    pub fn closed_no_head(&self) -> u64 {
        self.closed_no_head.load(Ordering::Relaxed)
    }

    /// Connections shut down since start because they stayed idle.
    pub fn closed_idle(&self) -> u64 {
        self.closed_idle.load(Ordering::Relaxed)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.limits.open.lock();
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.key);
            }
        }
    }
}

/// The address a per-client cap counts against: an IPv4 address (IPv4-mapped IPv6 included) or
/// an IPv6 /64, since one host usually holds a whole /64 and could otherwise step around the cap.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why the watchdog ends a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within `header_timeout`: closed at once, since a client that
    /// has not finished a head has nothing in flight to lose.
    NoHead,
    /// No request in flight for `idle_timeout`: shut down gracefully.
    Idle,
}

/// No time recorded.
const NEVER: u64 = u64::MAX;

/// What one connection has done, shared by its I/O wrapper ([`CountedIo`]), its service (which
/// takes an [`InFlight`] per request) and the task that drives it. Times are milliseconds after
/// `opened`, so they fit in atomics.
pub struct ConnWatch {
    opened: Instant,
    /// Requests whose response has not ended yet (body sent, or dropped).
    in_flight: AtomicU32,
    /// Requests begun on this connection.
    started: AtomicU64,
    http2: AtomicBool,
    /// When `in_flight` last fell to zero.
    idle_since_ms: AtomicU64,
    /// When the first byte arrived after `idle_since_ms`, or [`NEVER`].
    head_started_ms: AtomicU64,
    /// Woken when a request starts or ends, or a head starts on an idle connection, so the driving
    /// task recomputes its deadline.
    pub changed: Notify,
}

impl Default for ConnWatch {
    fn default() -> Self {
        ConnWatch::new()
    }
}

impl ConnWatch {
    pub fn new() -> ConnWatch {
        ConnWatch {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            started: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NEVER),
            changed: Notify::new(),
        }
    }

    /// When the connection was accepted.
    pub fn opened(&self) -> Instant {
        self.opened
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Called by hyper's service for each request, once its head is complete. The request counts
    /// as in flight until the returned guard drops (with the response body).
    pub fn request_started(self: &Arc<Self>, http2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Bytes arrived. On an idle connection the first of them starts the head timer.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == NEVER
            && self.head_started_ms.compare_exchange(NEVER, self.now_ms(), Ordering::SeqCst, Ordering::Relaxed).is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// When the connection must end and why, if nothing changes meanwhile; `None` while a request
    /// is in flight (request bodies have deadlines of their own, in the handlers).
    ///
    /// Before the first request the head timer runs from the opening: hyper calls the service
    /// only once a head is complete, so this bounds slow HTTP/1 heads, the wait to tell HTTP/1
    /// from HTTP/2, and a half-sent HTTP/2 preface alike. Between HTTP/1 requests it runs from the
    /// next head's first byte. HTTP/2 sends frames while idle (pings, window updates), so there
    /// only the idle timer applies.
    pub fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.started.load(Ordering::SeqCst) == 0 {
            return Some((self.opened + header_timeout, Expiry::NoHead));
        }
        let idle = self.at(self.idle_since_ms.load(Ordering::SeqCst)) + idle_timeout;
        let head = self.head_started_ms.load(Ordering::SeqCst);
        if head != NEVER && !self.http2.load(Ordering::Relaxed) {
            let d = self.at(head) + header_timeout;
            if d < idle {
                return Some((d, Expiry::NoHead));
            }
        }
        Some((idle, Expiry::Idle))
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// When the last request in flight ended (or the connection opened, if none has).
    pub fn idle_since(&self) -> Instant {
        self.at(self.idle_since_ms.load(Ordering::SeqCst))
    }
}

/// A request in flight on a connection; dropping it ends the request for the watchdog.
pub struct InFlight(Arc<ConnWatch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let w = &self.0;
        // Reset the idle marks before the count falls, so a byte read in between cannot start a
        // head timer that the reset would then lose.
        w.idle_since_ms.store(w.now_ms(), Ordering::SeqCst);
        w.head_started_ms.store(NEVER, Ordering::SeqCst);
        if w.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            w.changed.notify_one();
        }
    }
}

/// Largest data frame handed to hyper at once. Hyper asks a body for its next frame only when it
/// has room to write it, so a body split this fine ends (and its request stops being in flight) at
/// most this much, plus hyper's own buffer, before its last byte reaches the socket. A blob handed
/// over as one frame would otherwise count as sent while a slow reader is still receiving it, and
/// the watchdog could cut its tail.
const MAX_FRAME_BYTES: usize = 256 * 1024;

/// A response body that keeps its request in flight until it has been handed to the socket (or
/// dropped), so a long download is never taken for an idle connection.
pub struct Tracked<B> {
    inner: B,
    /// The rest of a data frame larger than [`MAX_FRAME_BYTES`].
    pending: Bytes,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked { inner, pending: Bytes::new(), _in_flight: in_flight }
    }

    /// The next piece of `data` to hand over; the rest waits in `pending`.
    fn piece(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > MAX_FRAME_BYTES {
            self.pending = data.split_off(MAX_FRAME_BYTES);
        }
        Frame::data(data)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            return Poll::Ready(Some(Ok(self.piece(rest))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(self.piece(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let extra = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + extra);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

/// A socket that tells its [`ConnWatch`] when bytes arrive. Writes pass straight through.
pub struct CountedIo<S> {
    inner: S,
    watch: Arc<ConnWatch>,
}

impl<S> CountedIo<S> {
    pub fn new(inner: S, watch: Arc<ConnWatch>) -> CountedIo<S> {
        CountedIo { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_client_and_free_on_drop() {
        let l = Arc::new(ConnLimits::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = l.try_open(a);
        let s2 = l.try_open(a);
        assert!(s1.is_ok() && s2.is_ok());
        assert_eq!(l.try_open(a).err(), Some(Refusal::PerClient));
        let s3 = l.try_open(b);
        assert!(s3.is_ok());
        assert_eq!(l.try_open(b).err(), Some(Refusal::Total));
        assert_eq!(l.open(), 3);
        drop(s1);
        assert!(l.try_open(a).is_ok(), "a freed place can be taken again");
        drop((s2, s3));
        assert_eq!(l.open(), 0);
        assert!(l.open.lock().1.is_empty(), "no per-client entries are left behind");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::2"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
    }

    #[test]
    fn large_frames_are_handed_over_in_pieces() {
        use http_body_util::BodyExt;
        let data = Bytes::from(vec![7u8; 2 * MAX_FRAME_BYTES + 10]);
        let w = Arc::new(ConnWatch::new());
        let body = http_body_util::Full::new(data.clone());
        let mut t = Tracked::new(body, w.request_started(false));
        assert_eq!(t.size_hint().exact(), Some(data.len() as u64));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while let Some(f) = rt.block_on(t.frame()) {
            let d = f.unwrap().into_data().unwrap();
            sizes.push(d.len());
            got.extend_from_slice(&d);
            assert_eq!(w.in_flight(), 1, "in flight until the body is dropped");
        }
        assert_eq!(sizes, [MAX_FRAME_BYTES, MAX_FRAME_BYTES, 10]);
        assert_eq!(got, data);
        assert!(t.is_end_stream());
        drop(t);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn watchdog_deadlines_follow_requests() {
        let (head, idle) = (Duration::from_secs(10), Duration::from_secs(120));
        let w = Arc::new(ConnWatch::new());
        assert_eq!(w.deadline(head, idle), Some((w.opened + head, Expiry::NoHead)));
        let r = w.request_started(false);
        assert_eq!(w.deadline(head, idle), None, "no deadline while a request is in flight");
        w.on_read();
        drop(r);
        let Some((d, Expiry::Idle)) = w.deadline(head, idle) else { panic!("idle after the response") };
        assert!(d >= w.opened + idle);
        w.on_read();
        let Some((d, Expiry::NoHead)) = w.deadline(head, idle) else { panic!("a new head started") };
        assert!(d < w.opened + idle);
        // HTTP/2 reads frames while idle: only the idle timer applies.
        drop(w.request_started(true));
        w.on_read();
        assert!(matches!(w.deadline(head, idle), Some((_, Expiry::Idle))));
    }
}
