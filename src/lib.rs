//! Stowage: an on-prem container image registry. `run` starts the whole daemon on a listener;
//! `main.rs` only parses the command line and calls it.

pub mod config;
pub mod error;
pub mod handlers;
pub mod oci;
pub mod router;
pub mod server;

use std::future::Future;
use std::sync::Arc;

/// Opens the engine in `settings.engine.data_dir` and serves the registry on `listener` until
/// `shutdown` resolves. Background upkeep (expiring idle uploads) runs while it serves.
pub async fn run(
    settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let engine_cfg = settings.engine.clone();
    let engine = tokio::task::spawn_blocking(move || stowage_engine::Engine::open(engine_cfg)).await??;
    tracing::info!(addr = %listener.local_addr()?, io = engine.io_backend(), "stowage serving");
    let app = Arc::new(handlers::App::new(settings, engine.clone()));
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let e = engine.clone();
            match tokio::task::spawn_blocking(move || e.expire_uploads()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(expired = n, "removed idle uploads"),
                Ok(Err(err)) => tracing::warn!(error = %err, "expiring uploads failed"),
                _ => {}
            }
        }
    });
    let res = server::serve(app, listener, shutdown).await;
    upkeep.abort();
    Ok(res?)
}
