//! The accept loop: HTTP/1.1 and HTTP/2 on one listener (hyper-util's auto builder; over TLS
//! when [`crate::tls`] gives a configuration, h2c otherwise), bounded headers,
//! the connection caps and per-connection watchdog of [`crate::conn`] (head timeout, idle
//! timeout), HTTP/2 keep-alive pings, and graceful shutdown that lets in-flight requests finish
//! within the configured grace period. Everything else happens in [`crate::handlers`]; this module
//! never looks into a request.

use crate::app::App;
use crate::conn::{ConnWatch, CountedIo, Expiry, Tracked};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, then waits for
/// open connections to finish their requests (at most `shutdown_grace`).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let settings = &app.settings;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog below enforces `header_timeout`, including during protocol detection and
        // for HTTP/2, which hyper's own HTTP/1 timer cannot. Hyper's timer is off because it also
        // runs while a keep-alive connection waits for its next request, which would make
        // `header_timeout` the idle timeout of HTTP/1 connections.
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(settings.http2_keepalive_interval)
        .keep_alive_timeout(settings.http2_keepalive_timeout);
    let builder = Arc::new(builder);
    let timeouts = Timeouts { header: settings.header_timeout, idle: settings.idle_timeout };
    // Tells connections to shut down gracefully.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once all have ended.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over a cap the connection is accepted and closed at once rather than left in the
        // backlog, where it would hold a place that well-behaved clients are queued for.
        let slot = match app.conns.try_open(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                app.conns.note_refusal(peer.ip(), why);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(ConnWatch::new());
        let svc = Svc { app: app.clone(), watch: watch.clone(), peer };
        let (app, stop, alive, builder, tls) =
            (app.clone(), stop_rx.clone(), alive_tx.clone(), builder.clone(), tls.clone());
        tokio::spawn(async move {
            let held = (slot, alive);
            let metered = crate::metrics::MeteredIo::new(stream, app.metrics.clone());
            let Some(tls) = tls else {
                let io = TokioIo::new(CountedIo::new(metered, watch.clone()));
                let conn = builder.serve_connection_with_upgrades(io, svc);
                return drive(conn, held, &app, &watch, peer, stop, timeouts).await;
            };
            // The handshake is part of delivering the first request head: it gets what is left
            // of `header_timeout` from the connection's opening, and a peer that stalls in it is
            // dropped like one that stalls in its head.
            let handshake_deadline = Instant::from(watch.opened()) + timeouts.header;
            let stream = match tokio::time::timeout_at(handshake_deadline, tls.accept(metered)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    app.metrics.tls_handshake_failed();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    app.conns.note_expiry(Expiry::NoHead);
                    app.metrics.tls_handshake_failed();
                    tracing::debug!(%peer, "no TLS handshake within header_timeout; closing the connection");
                    return;
                }
            };
            let io = TokioIo::new(CountedIo::new(stream, watch.clone()));
            let conn = builder.serve_connection_with_upgrades(io, svc);
            drive(conn, held, &app, &watch, peer, stop, timeouts).await
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    drop(alive_tx);
    tokio::select! {
        _ = alive_rx.recv() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(settings.shutdown_grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Runs one connection under the watchdog until it ends: closes it when no request head arrives
/// in time, shuts it down gracefully when idle or when the server stops.
async fn drive<I>(
    conn: auto::UpgradeableConnection<'_, I, Svc, TokioExecutor>,
    held: impl Send,
    app: &App,
    watch: &ConnWatch,
    peer: std::net::SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
    timeouts: Timeouts,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    // Declared after `conn`, so dropped before it: the place under the caps is free by the time
    // the peer sees the connection close.
    let _held = held;
    // Set once a graceful shutdown has begun (server shutdown or idle connection).
    let mut closing: Option<Instant> = None;
    loop {
        let deadline = match closing {
            // A graceful shutdown lets requests in flight finish. With none left, hyper
            // flushes the last response and closes; a peer that holds the connection
            // open (or does not read) gets `header_timeout` more, counted from the end
            // of the last response so its tail is never cut, then is dropped.
            Some(since) => {
                (watch.in_flight() == 0).then(|| Instant::from(watch.idle_since()).max(since) + timeouts.header)
            }
            None => watch.deadline(timeouts.header, timeouts.idle).map(|(d, _)| d.into()),
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = watch.changed.notified() => {}
            _ = stop.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                if closing.is_some() {
                    tracing::debug!(%peer, "connection did not close after a graceful shutdown; dropping it");
                    return;
                }
                // Recheck: a request may have started as the timer fired.
                match watch.deadline(timeouts.header, timeouts.idle) {
                    Some((d, Expiry::NoHead)) if Instant::from(d) <= Instant::now() => {
                        app.conns.note_expiry(Expiry::NoHead);
                        tracing::debug!(%peer, "no complete request head in time; closing the connection");
                        return;
                    }
                    Some((d, Expiry::Idle)) if Instant::from(d) <= Instant::now() => {
                        app.conns.note_expiry(Expiry::Idle);
                        tracing::debug!(%peer, "connection idle; shutting it down");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The service of one connection: each request counts as in flight on its [`ConnWatch`] until
/// its response body ends, and goes to [`App::handle`].
#[derive(Clone)]
struct Svc {
    app: Arc<App>,
    watch: Arc<ConnWatch>,
    peer: std::net::SocketAddr,
}

type SvcFuture = Pin<Box<dyn Future<Output = Result<http::Response<Tracked<crate::body::Body>>, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Svc {
    type Response = http::Response<Tracked<crate::body::Body>>;
    type Error = Infallible;
    type Future = SvcFuture;

    fn call(&self, req: http::Request<Incoming>) -> SvcFuture {
        let in_flight = self.watch.request_started(req.version() == http::Version::HTTP_2);
        let (app, peer) = (self.app.clone(), self.peer);
        Box::pin(async move { Ok(app.handle(req, peer).await.map(|b| Tracked::new(b, in_flight))) })
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// Sleeps until `deadline`; the caller guards the `None` case.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
