//! Request handling: one async fn per Distribution API endpoint (named by its spec id), all
//! reached from [`App::handle`], which parses the request into an [`Endpoint`] first and adds the
//! headers every `/v2/` response carries. Handlers speak HTTP; the engine below them does not.

mod blobs;
mod listing;
mod manifests;
mod request_body;
mod token;
mod uploads;

pub use token::form_pairs;

use crate::access::reads::DecisionReads;
use crate::access::rules::{decide, RegistryAction};
pub use crate::app::App;
use crate::auth::{AuthError, Authenticated};
pub use crate::body::{bare, json_response, text_response, Resp};
use crate::error::{ApiError, Code};
use crate::metrics::EndpointKind;
use crate::router::{Action, Endpoint};
use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use std::net::{IpAddr, SocketAddr};
use stowage_engine::RepoRecord;

impl App {
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Resp {
        use tracing::Instrument;
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = std::time::Instant::now();
        let id = crate::logging::request_id(req.headers());
        // Every line logged while this request is handled carries its id.
        let span = tracing::info_span!("request", request_id = %id);
        let mut kind = EndpointKind::Unmatched;
        let mut resp = match self.route(req, peer.ip(), &mut kind).instrument(span.clone()).await {
            Ok(r) => r,
            Err(e) => span.in_scope(|| e.into_response()),
        };
        let class = usize::from(resp.status().as_u16() / 100).min(5);
        self.responses[class].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.request(kind, resp.status().as_u16(), started.elapsed());
        if path.starts_with("/v2") {
            resp.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(crate::logging::REQUEST_ID, v);
        }
        span.in_scope(|| {
            tracing::debug!(%peer, %method, %path, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request")
        });
        resp
    }

    async fn route(&self, req: Request<Incoming>, peer: IpAddr, kind: &mut EndpointKind) -> Result<Resp, ApiError> {
        let Some(ep) = Endpoint::parse(req.method(), req.uri().path(), req.uri().query())? else {
            return match req.uri().path().strip_prefix("/api/v1/") {
                Some(_) => {
                    *kind = EndpointKind::Api;
                    Ok(self.api(req, peer).await)
                }
                None if crate::web::serves(req.uri().path()) => Ok(self.portal(req, peer).await),
                None => Err(ApiError::not_found(Code::Unsupported, format!("{} is not served here", req.uri().path()))),
            };
        };
        *kind = EndpointKind::of(&ep);
        if let Endpoint::Token { post } = ep {
            return if post { self.token_post(req, peer).await } else { self.token_get(req, peer).await };
        }
        let authority = req.uri().authority().map(|a| a.as_str());
        let who = self.authorize(&ep, req.headers(), authority, peer).await?;
        match ep {
            Endpoint::Token { .. } => Err(ApiError::internal("token endpoint reached dispatch", &"unreachable")),
            Endpoint::Base => Ok(json_response(StatusCode::OK, b"{}".to_vec())),
            Endpoint::Healthz => Ok(text_response(StatusCode::OK, "ok\n")),
            Endpoint::Metrics => self.metrics().await,
            Endpoint::Readyz => match self.engine.check_writable() {
                Ok(()) => Ok(text_response(StatusCode::OK, "ready\n")),
                // The reason (it may name files) goes to the log; anyone may ask /readyz.
                Err(e) => {
                    tracing::warn!(error = %e, "readiness check: storage refuses writes");
                    Ok(text_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: storage refuses writes; see the registry log\n",
                    ))
                }
            },
            Endpoint::Catalog(page) => self.catalog(page, &who).await,
            Endpoint::BlobGet { name, digest, head } => self.blob_get(&name, &digest, head, req).await,
            Endpoint::BlobDelete { name, digest } => self.blob_delete(&name, &digest).await,
            Endpoint::UploadStart { name, digest, mount, from } => {
                // The token realm of a mount's challenge: where this client reaches us.
                let base = self.public_url.base(req.headers(), req.uri().authority().map(|a| a.as_str()), peer);
                self.upload_start(&name, digest, mount.map(|m| (m, from)), req, &who, &base).await
            }
            Endpoint::UploadStatus { name, id } => self.upload_status(&name, &id, &who).await,
            Endpoint::UploadPatch { name, id } => self.upload_patch(&name, &id, req, &who).await,
            Endpoint::UploadFinish { name, id, digest } => self.upload_finish(&name, &id, &digest, req, &who).await,
            Endpoint::UploadCancel { name, id } => self.upload_cancel(&name, &id, &who).await,
            Endpoint::ManifestGet { name, reference, head } => self.manifest_get(&name, &reference, head).await,
            Endpoint::ManifestPut { name, reference, tags, algorithm } => {
                self.manifest_put(&name, &reference, &tags, algorithm, req, &who).await
            }
            Endpoint::ManifestDelete { name, reference } => self.manifest_delete(&name, &reference).await,
            Endpoint::TagsList { name, page } => self.tags_list(&name, page).await,
            Endpoint::Referrers { name, digest, artifact_type } => self.referrers(&name, &digest, artifact_type).await,
        }
    }

    /// Authenticates the request and applies the rules of DESIGN.md section 2 to the endpoint's
    /// action, at request time (so trash and revocation act at once). Anonymous callers, and
    /// tokens that lack an action the rules would allow, get a 401 challenge naming the scope to
    /// ask for; a known caller the rules refuse gets 403 DENIED naming the failed rule.
    async fn authorize(
        &self,
        ep: &Endpoint,
        headers: &http::HeaderMap,
        authority: Option<&str>,
        peer: IpAddr,
    ) -> Result<Authenticated, ApiError> {
        // Decisions read parts of the access model (`access::reads`): an entry is stamped with
        // their generation, and the fence around the read makes sure no write was missed.
        let scopes = self.engine.catalog().scopes();
        let fence = scopes.access();
        // Keyed by a hash of the whole header: fixed size whatever the client sends.
        let credential = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        let mut credential_hash = [0u8; 32];
        credential_hash.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, credential).as_ref());
        // `/v2/` has no action but answers anonymous callers differently from `/healthz` and the
        // other action-less endpoints (a 401 challenge, which docker login relies on): its own key.
        let action = if matches!(ep, Endpoint::Base) { u8::MAX } else { ep.action() as u8 };
        let key = (credential_hash, ep.name().map(|n| n.as_str().to_string()).unwrap_or_default(), action);
        if let Some((who, _)) = self.decisions.get(&key, |(_, reads)| reads.stamp(scopes)) {
            return Ok(who);
        }
        let (who, repo_id) = self.authorize_uncached(ep, headers, authority, peer, &key).await?;
        let reads = DecisionReads::of(&who, ep.name().map(|n| (n, repo_id)));
        let stamp = reads.stamp(scopes);
        // An access write during the read (anywhere: rare) may have been missed; the next
        // request decides afresh.
        if scopes.access() == fence {
            self.decisions.put(key, stamp, (who.clone(), reads));
        }
        Ok(who)
    }

    async fn authorize_uncached(
        &self,
        ep: &Endpoint,
        headers: &http::HeaderMap,
        authority: Option<&str>,
        peer: IpAddr,
        key: &([u8; 32], String, u8),
    ) -> Result<(Authenticated, Option<u64>), ApiError> {
        // Where this client reaches us: the token realm of any challenge below.
        let base = || self.public_url.base(headers, authority, peer);
        let scope_of = |name: &str, act: RegistryAction| match act {
            RegistryAction::Pull => format!("repository:{name}:pull"),
            RegistryAction::Push => format!("repository:{name}:pull,push"),
            RegistryAction::Delete => format!("repository:{name}:delete"),
        };
        let who = match self.auth.authenticate(headers, peer).await {
            Ok(w) => w,
            Err(e @ (AuthError::Store(_) | AuthError::Busy)) => return Err(self.auth_failure(e)),
            Err(e) => {
                let scope = ep.name().zip(registry_action(ep.action())).map(|(n, a)| scope_of(n.as_str(), a));
                return Err(self.challenge(&base(), scope.as_deref(), &e.to_string()));
            }
        };
        let anonymous = who.caller.user.is_none();
        match ep.action() {
            Action::None => {
                if matches!(ep, Endpoint::Base) && anonymous && who.claims.is_none() {
                    return Err(self.challenge(
                        &base(),
                        None,
                        "authentication required; run docker login or ask for a token",
                    ));
                }
            }
            Action::Catalog => {
                if anonymous {
                    return Err(self.challenge(&base(), Some("registry:catalog:*"), "log in to list repositories"));
                }
                // A registry token does only what it lists.
                if who.claims.as_ref().is_some_and(|c| !c.grants_catalog()) {
                    return Err(self.challenge(
                        &base(),
                        Some("registry:catalog:*"),
                        "the token does not grant registry:catalog:*; ask for a new token",
                    ));
                }
            }
            action => {
                let (Some(name), Some(act)) = (ep.name(), registry_action(action)) else { return Ok((who, None)) };
                let (facts, repo_id) = self.auth.store.repo_facts_and_id(name.as_str(), name.project())?;
                if let Err(d) = decide(&who.caller, act, &facts) {
                    if d.wants_login() {
                        return Err(self.challenge(&base(), Some(&scope_of(name.as_str(), act)), &d.to_string()));
                    }
                    return Err(ApiError::new(StatusCode::FORBIDDEN, Code::Denied, d.to_string()));
                }
                if let Some(c) = &who.claims {
                    if !c.grants(name.as_str(), act.as_str()) {
                        return Err(self.insufficient_scope(&base(), key, &scope_of(name.as_str(), act), name, act));
                    }
                }
                return Ok((who, repo_id));
            }
        }
        Ok((who, None))
    }

    /// The answer to a registry token that lacks an action the rules allow its holder.
    ///
    /// The first time: 401 with the Bearer challenge naming the scope, which docker, containerd
    /// and the other clients that follow challenges answer by fetching a new token (so they
    /// never send this token for this again). A client that sends the very same token for the
    /// same action again within [`RECHALLENGE_WINDOW`] has not followed the challenge: some
    /// (oras-py 0.2) only fetch a new token after a 403, as GHCR answers a token with too few
    /// scopes. It gets RFC 6750 §3.1's answer to insufficient scope: 403 with the same challenge
    /// and `error="insufficient_scope"`. Either answer grants nothing; the new token is decided
    /// by the token endpoint under the same rules.
    fn insufficient_scope(
        &self,
        base: &str,
        key: &([u8; 32], String, u8),
        scope: &str,
        name: &crate::oci::RepositoryName,
        act: RegistryAction,
    ) -> ApiError {
        let message = format!("the token does not grant {} on {name}; ask for a new token", act.as_str());
        if self.challenged.get(key, |_| 0).is_some() {
            let challenge = format!(r#"{},error="insufficient_scope""#, self.auth.challenge(base, Some(scope)));
            return ApiError::new(StatusCode::FORBIDDEN, Code::Denied, message)
                .with_header(header::WWW_AUTHENTICATE, &challenge);
        }
        self.challenged.put(key.clone(), 0, ());
        self.challenge(base, Some(scope), &message)
    }

    /// The answer to a failed login at the registry: 429 when the login queue is full, the
    /// storage error's own mapping, else 401 (vague on purpose; the log has the reason).
    pub(crate) fn auth_failure(&self, e: AuthError) -> ApiError {
        match e {
            AuthError::Store(e) => e.into(),
            AuthError::Busy => ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::TooManyRequests, e.to_string())
                .with_header(header::RETRY_AFTER, "2"),
            other => ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, other.to_string()),
        }
    }

    /// 401 with the Bearer challenge that sends the client to the token endpoint.
    fn challenge(&self, base: &str, scope: Option<&str>, message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
            .with_header(header::WWW_AUTHENTICATE, &self.auth.challenge(base, scope))
    }

    /// `GET /metrics`: Prometheus text format. Counts and sizes only, nothing about who or what.
    async fn metrics(&self) -> Result<Resp, ApiError> {
        use std::fmt::Write;
        let storage = self
            .blocking(|app| -> Result<_, ApiError> {
                Ok(crate::metrics::StorageGauges {
                    index_bytes: crate::metrics::dir_bytes(&app.settings.engine.data_dir.join("index")),
                    uploads_open: app.engine.catalog().uploads()?.len() as u64,
                })
            })
            .await??;
        let mut out = String::new();
        out.push_str("# HELP stowage_http_responses_total Responses sent, by status class.\n");
        out.push_str("# TYPE stowage_http_responses_total counter\n");
        for (class, n) in self.responses.iter().enumerate().skip(1) {
            let n = n.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(out, "stowage_http_responses_total{{class=\"{class}xx\"}} {n}");
        }
        out.push_str("# HELP stowage_connections_open Client connections open now.\n");
        out.push_str("# TYPE stowage_connections_open gauge\n");
        let _ = writeln!(out, "stowage_connections_open {}", self.conns.open());
        out.push_str("# HELP stowage_connections_refused_total Connections closed at once for being over a cap.\n");
        out.push_str("# TYPE stowage_connections_refused_total counter\n");
        let _ = writeln!(out, "stowage_connections_refused_total {}", self.conns.refused());
        out.push_str("# HELP stowage_connections_expired_total Connections ended by the watchdog, by reason.\n");
        out.push_str("# TYPE stowage_connections_expired_total counter\n");
        let _ =
            writeln!(out, "stowage_connections_expired_total{{reason=\"no_head\"}} {}", self.conns.closed_no_head());
        let _ = writeln!(out, "stowage_connections_expired_total{{reason=\"idle\"}} {}", self.conns.closed_idle());
        out.push_str("# HELP stowage_stored_bytes Unique blob bytes stored over all repositories.\n");
        out.push_str("# TYPE stowage_stored_bytes gauge\n");
        let _ = writeln!(out, "stowage_stored_bytes {}", self.engine.physical_bytes()?);
        out.push_str("# HELP stowage_index_writes_total Index write batches since start.\n");
        out.push_str("# TYPE stowage_index_writes_total counter\n");
        let _ = writeln!(out, "stowage_index_writes_total {}", self.engine.catalog().generation() / 2);
        out.push_str("# HELP stowage_blob_stream_read_bytes_total Blob bytes read for streamed bodies.\n");
        out.push_str("# TYPE stowage_blob_stream_read_bytes_total counter\n");
        let _ = writeln!(out, "stowage_blob_stream_read_bytes_total {}", self.streams.read_bytes());
        out.push_str(
            "# HELP stowage_blob_streams_abandoned_total Streamed bodies stopped because the client went away.\n",
        );
        out.push_str("# TYPE stowage_blob_streams_abandoned_total counter\n");
        let _ = writeln!(out, "stowage_blob_streams_abandoned_total {}", self.streams.abandoned());
        out.push_str("# HELP stowage_blob_stream_window_peak_bytes Most bytes one response held read and unsent.\n");
        out.push_str("# TYPE stowage_blob_stream_window_peak_bytes gauge\n");
        let _ = writeln!(out, "stowage_blob_stream_window_peak_bytes {}", self.streams.peak_window_bytes());
        out.push_str("# HELP stowage_cache_hits_total Hot-path cache lookups answered from the cache.\n");
        out.push_str("# TYPE stowage_cache_hits_total counter\n");
        out.push_str("# HELP stowage_cache_misses_total Hot-path cache lookups that read the index.\n");
        out.push_str("# TYPE stowage_cache_misses_total counter\n");
        for (name, (hits, misses)) in [
            ("authorization", self.decisions.hits_and_misses()),
            ("manifest_by_reference", self.resolved.hits_and_misses()),
            ("blob_size", self.blob_sizes.hits_and_misses()),
        ] {
            let _ = writeln!(out, "stowage_cache_hits_total{{cache=\"{name}\"}} {hits}");
            let _ = writeln!(out, "stowage_cache_misses_total{{cache=\"{name}\"}} {misses}");
        }
        out.push_str("# HELP stowage_storage_writable 1 while storage accepts writes, 0 after a failed fsync.\n");
        out.push_str("# TYPE stowage_storage_writable gauge\n");
        let _ = writeln!(out, "stowage_storage_writable {}", u8::from(self.engine.check_writable().is_ok()));
        out.push_str("# HELP stowage_io_backend The I/O backend in use.\n");
        out.push_str("# TYPE stowage_io_backend gauge\n");
        let _ = writeln!(out, "stowage_io_backend{{backend=\"{}\"}} 1", self.engine.io_backend());
        self.metrics.render(&mut out, self.auth.failed_logins(), &storage);
        let sc = self.engine.scrub_counters();
        for (name, kind, help, v) in [
            ("stowage_scrub_runs_total", "counter", "Scrubs finished since start.", sc.runs),
            ("stowage_scrub_blobs_checked_total", "counter", "Blobs whose digest scrub checked.", sc.blobs_checked),
            ("stowage_scrub_bytes_checked_total", "counter", "Bytes scrub read and hashed.", sc.bytes_checked),
            ("stowage_scrub_quarantined_total", "counter", "Blobs scrub moved to quarantine.", sc.quarantined_total),
            ("stowage_quarantined_blobs", "gauge", "Blobs in quarantine now.", sc.quarantined_now),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        if let Some(t) = stowage_engine::scrub::last_finished(self.engine.catalog())? {
            out.push_str(
                "# HELP stowage_scrub_last_finished_timestamp_seconds When the last complete scrub finished.\n",
            );
            out.push_str("# TYPE stowage_scrub_last_finished_timestamp_seconds gauge\n");
            let _ = writeln!(out, "stowage_scrub_last_finished_timestamp_seconds {t}");
        }
        let mut r = text_response(StatusCode::OK, &out);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
        Ok(r)
    }

    /// The repository record, or NAME_UNKNOWN.
    fn repo(&self, name: &crate::oci::RepositoryName) -> Result<RepoRecord, ApiError> {
        self.engine.catalog().repo_by_name(name.as_str())?.ok_or_else(|| {
            ApiError::not_found(
                Code::NameUnknown,
                format!("repository {name} does not exist; push an image to create it"),
            )
        })
    }
}

/// How long a 401 challenge for a token's missing action is remembered (see
/// `App::insufficient_scope`).
pub const RECHALLENGE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

fn registry_action(a: Action) -> Option<RegistryAction> {
    match a {
        Action::Pull => Some(RegistryAction::Pull),
        Action::Push => Some(RegistryAction::Push),
        Action::Delete => Some(RegistryAction::Delete),
        Action::None | Action::Catalog => None,
    }
}

/// The value of a header as text, if present and visible ASCII.
pub fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
