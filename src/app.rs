//! The shared state of the running registry: settings, the engine, authentication, connection
//! caps and the hot-path caches. Handlers (`handlers`, `api`) add their methods to [`App`] in
//! their own modules; this module only holds and builds the state. It never answers a request.

use crate::auth::{Auth, Authenticated};
use crate::cache;
use crate::config::Settings;
use crate::error::{ApiError, Code};
use http::StatusCode;
use std::sync::{Arc, Weak};
use stowage_engine::{Digest, Engine};

/// Shared state of the running registry.
pub struct App {
    pub settings: Settings,
    pub engine: Engine,
    pub auth: Auth,
    /// Where clients reach the registry (token realm), per request.
    pub public_url: crate::public_url::PublicUrl,
    /// Request durations, bytes, GC and token counters (see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Open connections and the caps on them (see [`crate::conn`]).
    pub conns: std::sync::Arc<crate::conn::ConnLimits>,
    pub(crate) manifest_cache: cache::ManifestCache,
    /// Responses sent, by status class (index 1 = 1xx ... 5 = 5xx).
    pub(crate) responses: [std::sync::atomic::AtomicU64; 6],
    /// (Authorization header, repository, action) -> the authorized caller, and what deciding
    /// read (its invalidation scope).
    pub(crate) decisions: cache::GenCache<([u8; 32], String, u8), (Authenticated, crate::access::reads::DecisionReads)>,
    /// (Authorization header, repository, action) already answered with a 401 challenge for a
    /// registry token that lacks the action (see `handlers::insufficient_scope`).
    pub(crate) challenged: cache::GenCache<([u8; 32], String, u8), ()>,
    /// (repository, reference) -> (repository id, manifest digest, record).
    pub(crate) resolved: cache::GenCache<(String, String), (u64, Digest, stowage_engine::ManifestRecord)>,
    /// (repository, blob) -> (repository id, blob size), for blobs the repository references.
    pub(crate) blob_sizes: cache::GenCache<(String, Digest), (u64, u64)>,
    /// Read-ahead budget and counters of streamed blob bodies.
    pub(crate) streams: Arc<crate::blob_stream::Streams>,
    /// The web portal's sessions.
    pub(crate) portal: crate::web::Portal,
    /// This App itself, for work handed to blocking threads (see [`App::blocking`]).
    me: Weak<App>,
}

/// Entries of each hot-path cache.
const HOT_CACHE_ENTRIES: usize = 16_384;

/// Manifest bytes kept in memory.
const MANIFEST_CACHE_BYTES: usize = 64 << 20;

impl App {
    pub fn new(settings: Settings, engine: Engine, auth: Auth, public_url: crate::public_url::PublicUrl) -> Arc<App> {
        let conns = crate::conn::ConnLimits::new(settings.max_connections, settings.max_connections_per_ip);
        let decision_max_age = settings.decision_max_age;
        Arc::new_cyclic(|me| App {
            me: me.clone(),
            settings,
            engine,
            auth,
            public_url,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            conns: std::sync::Arc::new(conns),
            manifest_cache: cache::ManifestCache::new(MANIFEST_CACHE_BYTES),
            responses: Default::default(),
            decisions: cache::GenCache::new(HOT_CACHE_ENTRIES, decision_max_age),
            challenged: cache::GenCache::new(HOT_CACHE_ENTRIES, crate::handlers::RECHALLENGE_WINDOW),
            resolved: cache::GenCache::new(HOT_CACHE_ENTRIES, std::time::Duration::from_secs(3600)),
            blob_sizes: cache::GenCache::new(HOT_CACHE_ENTRIES, std::time::Duration::from_secs(3600)),
            portal: Default::default(),
            streams: Arc::default(),
        })
    }

    /// Runs `f` on a blocking thread: index writes wait there for their group flush, so no
    /// reactor thread ever waits on a disk. The answer is 503 if the runtime is shutting down.
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&App) -> T + Send + 'static) -> Result<T, ApiError> {
        let Some(app) = self.me.upgrade() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                "the registry is shutting down",
            ));
        };
        // Lines logged over there still belong to the request (its id, see `crate::logging`).
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&app)))
            .await
            .map_err(|e| ApiError::internal("a blocking task failed", &e))
    }

    /// Runs engine work that may write the index (and so wait for its group flush) on a
    /// blocking thread; its error goes through the one mapping.
    pub async fn index<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> stowage_engine::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(self.engine.blocking(f).await?)
    }
}
