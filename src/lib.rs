//! Stowage: an on-prem container image registry. `run` starts the whole daemon on a listener;
//! `main.rs` only parses the command line and calls it.

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod blob_stream;
pub mod body;
pub mod bootstrap;
pub mod cache;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod handlers;
pub mod oci;
pub mod process;
pub mod router;
pub mod server;

use std::future::Future;

/// Makes the data directory private (see [`bootstrap`]), opens the engine in it, creates the
/// `admin` user on first start, and serves the registry on `listener` until
/// `shutdown` resolves. Background upkeep (expiring idle uploads) runs while it serves.
pub async fn run(
    settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    bootstrap::prepare_data_dir(&settings.engine.data_dir)?;
    let engine_cfg = settings.engine.clone();
    let engine = tokio::task::spawn_blocking(move || stowage_engine::Engine::open(engine_cfg)).await??;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, io = engine.io_backend(), "stowage serving");
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let keys = auth::jwt::Keys::load_or_create(&settings.engine.data_dir)?;
    let store = access::store::Store::new(engine.clone());
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.build_indexes()).await??;
    bootstrap::bootstrap_admin(&store, &settings.engine.data_dir, settings.admin_password.clone()).await?;
    let mut auth = auth::Auth::new(keys, store, settings.service.clone(), format!("{public_url}/v2/token"));
    auth.token_ttl = settings.token_ttl;
    auth.refresh_ttl = settings.refresh_ttl;
    let app = app::App::new(settings, engine.clone(), auth);
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
