//! systemd service notifications (`Type=notify`): `READY=1` once the listener is bound and the
//! engine open, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` while the registry is healthy (storage accepts writes). A stuck reactor sends
//! no pings, so systemd restarts it. Outside systemd (`NOTIFY_SOCKET` unset) all of this does
//! nothing.
//!
//! A notification is one `sendto` on a local datagram socket that never waits for the peer's
//! answer: cheap enough for the reactor. A failure is logged, never fatal.

use crate::app::App;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

fn send(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// Tells systemd the registry is serving.
pub fn ready() {
    send(NotifyState::Ready);
}

/// Tells systemd the registry is shutting down.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// The watchdog pinger when systemd asked for one (`WatchdogSec=`), else `None`.
pub fn watchdog(app: Arc<App>) -> Option<impl std::future::Future<Output = ()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(10));
    tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog enabled");
    Some(async move {
        let mut tick = tokio::time::interval(every);
        let mut was_healthy = true;
        loop {
            tick.tick().await;
            let healthy = app.engine.check_writable().is_ok();
            if healthy {
                send(NotifyState::Watchdog);
            } else if was_healthy {
                tracing::error!("storage refuses writes; no more watchdog pings, so systemd restarts the registry");
            }
            was_healthy = healthy;
        }
    })
}
