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
pub mod certs;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod handlers;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod oci;
pub mod process;
pub mod public_url;
pub mod router;
pub mod server;
pub mod tls;
pub mod web;

use std::future::Future;

/// Makes the data directory private (see [`bootstrap`]), opens the engine in it, creates the
/// `admin` user on first start, and serves the registry on `listener` (over TLS when the
/// settings name a certificate) until `shutdown` resolves. Background upkeep (expiring idle
/// uploads, reloading a changed certificate, systemd watchdog pings) runs while it serves.
pub async fn run(
    settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    bootstrap::prepare_data_dir(&settings.engine.data_dir)?;
    let tls = match settings.tls.clone() {
        Some(files) => {
            let resolver = tokio::task::spawn_blocking(move || tls::CertResolver::load(&files)).await??;
            Some(std::sync::Arc::new(resolver))
        }
        None => None,
    };
    let engine_cfg = settings.engine.clone();
    let engine = tokio::task::spawn_blocking(move || stowage_engine::Engine::open(engine_cfg)).await??;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, io = engine.io_backend(), tls = tls.is_some(), "stowage serving");
    if let Some(w) = plain_http_warning(local, tls.is_some()) {
        tracing::warn!(addr = %local, "{w}");
    }
    let public_url = public_url::PublicUrl::new(
        settings.public_url.clone(),
        tls.is_some(),
        settings.trusted_proxies.clone(),
        local.to_string(),
    );
    let keys = auth::jwt::Keys::load_or_create(&settings.engine.data_dir)?;
    let store = access::store::Store::new(engine.clone());
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.build_indexes()).await??;
    bootstrap::bootstrap_admin(&store, &settings.engine.data_dir, settings.admin_password.clone()).await?;
    let realm = format!("{}/v2/token", public_url.default_base());
    let mut auth = auth::Auth::new(keys, store, settings.service.clone(), realm);
    auth.token_ttl = settings.token_ttl;
    auth.refresh_ttl = settings.refresh_ttl;
    let app = app::App::new(settings, engine.clone(), auth, public_url);
    let mut background = vec![tokio::spawn(async move {
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
    })];
    if let Some(every) = app.settings.scrub_interval {
        let app = app.clone();
        background.push(tokio::spawn(async move { api::ops::background_scrub(app, every).await }));
    }
    let tls_config = match &tls {
        Some(resolver) => {
            background.push(tokio::spawn(tls::watch(resolver.clone(), app.settings.tls_reload_poll)?));
            Some(tls::server_config(resolver.clone())?)
        }
        None => None,
    };
    if let Some(w) = notify::watchdog(app.clone()) {
        background.push(tokio::spawn(w));
    }
    notify::ready();
    let shutdown = async move {
        shutdown.await;
        notify::stopping();
    };
    let res = server::serve(app, listener, tls_config, shutdown).await;
    for task in background {
        task.abort();
    }
    Ok(res?)
}

/// The start-up warning for plain HTTP on an address other machines can reach, if it applies.
pub fn plain_http_warning(addr: std::net::SocketAddr, tls: bool) -> Option<&'static str> {
    (!tls && !addr.ip().is_loopback()).then_some(
        "serving plain HTTP on a non-loopback address: passwords and tokens travel in clear. \
         Set server.tls_cert and server.tls_key (stowage certs init makes them), or serve only \
         behind a TLS-terminating proxy",
    )
}
