//! Authentication: who is calling. Credentials are a Bearer registry token (JWT), Basic
//! (username + password, or any username + personal access token), or nothing (anonymous).
//! Password checks are argon2id (slow on purpose): they run on a small bounded pool so a flood of
//! guesses cannot take the server, results are cached briefly (keyed by a hash of the credential,
//! and checked against the user's credential generation on every use), and repeated failures are
//! slowed per (user name, client address), so a stranger cannot lock a user out. Authorization
//! is `access::rules`' job, not this one's.

pub mod jwt;
pub mod secrets;

use crate::access::rules::{Caller, Scope};
use crate::access::store::{AuditRecord, Store, TokenRecord, UserRecord};
use base64::Engine as _;
use http::HeaderMap;
use jwt::{AccessEntry, Claims, Keys};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stowage_engine::index::catalog::now_secs;

/// Why credentials were refused. Vague on purpose for the client; precise in the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("the registry token is invalid or expired; log in again")]
    BadToken,
    #[error("malformed Authorization header; use Basic or Bearer")]
    Malformed,
    /// A registry token (from `/v2/token`) presented to the REST API.
    #[error("registry tokens from /v2/token are good only for the registry; use a password or an access token")]
    RegistryTokenElsewhere,
    /// A refresh token presented anywhere but `/v2/token`.
    #[error("refresh tokens are accepted only at /v2/token; use a password or an access token")]
    RefreshTokenElsewhere,
    /// Too many password checks are queued: the client should retry shortly.
    #[error("too many logins at once; retry in a few seconds")]
    Busy,
    #[error("storage error while checking credentials")]
    Store(#[from] stowage_engine::Error),
}

/// What kind of credential a request carried. Scopes say what it may do; the kind says where it
/// is accepted (registry tokens only on `/v2/`) and whether it may change the account (only a
/// password login may).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    Anonymous,
    /// Username and password (Basic), or a web session made from one.
    Password,
    /// A personal access token, by Basic (any username) or Bearer.
    AccessToken,
    /// A registry token (JWT) from `/v2/token`.
    RegistryToken,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Anonymous => "anonymous",
            CredentialKind::Password => "password",
            CredentialKind::AccessToken => "access token",
            CredentialKind::RegistryToken => "registry token",
        }
    }
}

/// The result of authenticating a request.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub caller: Caller,
    pub kind: CredentialKind,
    /// Present when the request carried a registry token: it limits what the request may do.
    pub claims: Option<Claims>,
    /// The id of the personal access token the credential rests on (used directly, or the one a
    /// registry token was issued for): revoking it ends the credential.
    pub token: Option<String>,
}

/// A user checked by [`Auth::login`], with the access token used, if any.
pub struct Login {
    pub user: UserRecord,
    pub token: Option<TokenRecord>,
}

pub struct Auth {
    pub keys: Keys,
    pub store: Store,
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// Where clients get tokens when no request says otherwise: `<public url>/v2/token`
    /// (challenges use the URL of each request, see [`crate::public_url`]).
    pub realm: String,
    pub token_ttl: Duration,
    /// Lifetime of OAuth2 refresh tokens.
    pub refresh_ttl: Duration,
    /// sha256(user, secret) -> (user id, credential generation, when verified). Shared with the
    /// hashing threads, which look again just before hashing (see [`Auth::login`]).
    basic_cache: std::sync::Arc<Mutex<BasicCache>>,
    /// (user name, client address) -> (recent failures, last failure).
    failures: Mutex<HashMap<(String, IpAddr), (u32, Instant)>>,
    /// Password hashes run here: a few at once, on blocking threads, so a flood of logins takes
    /// at most these cores and never the reactor or the upload writers.
    hash_permits: tokio::sync::Semaphore,
    /// The threads that run them (as many as there are permits). Dedicated threads, not the
    /// shared blocking pool: argon2 takes 19 MiB per hash, and the allocator keeps that memory
    /// in the arena of whichever thread ran it, so hashes spread over the blocking pool's many
    /// threads left hundreds of MiB resident after a burst of logins.
    hashers: HashPool,
    /// Password hashes run (checks and new hashes), for tests and metrics.
    hashes_run: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Logins waiting for a permit; past [`MAX_HASH_WAITERS`] a login is refused at once (429).
    hash_waiters: AtomicUsize,
    /// Failed logins since start (the `stowage_login_failures_total` metric).
    failed_logins: std::sync::atomic::AtomicU64,
}

/// sha256(user, secret) -> (user id, credential generation, when verified).
type BasicCache = HashMap<[u8; 32], (u64, u64, Instant)>;

/// A job for the hashing threads.
type HashJob = Box<dyn FnOnce() + Send>;

/// A fixed set of threads running password hashes, fed through a channel. The threads end
/// when the pool (the sending side) is dropped.
struct HashPool {
    jobs: Mutex<std::sync::mpsc::Sender<HashJob>>,
}

impl HashPool {
    fn new(threads: usize) -> HashPool {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name("stowage-hash".into()).spawn(move || loop {
                let job = rx.lock().recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        HashPool { jobs: Mutex::new(tx) }
    }

    /// Runs `f` on a hashing thread; None if no thread is left to run it.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || drop(tx.send(f())));
        self.jobs.lock().send(job).ok()?;
        rx.await.ok()
    }
}

/// How long a verified Basic credential is trusted without re-hashing.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most cached password checks.
const BASIC_CACHE_ENTRIES: usize = 10_000;
/// Most (user, address) pairs whose failures are remembered.
const FAILURE_ENTRIES: usize = 10_000;
/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Logins that may wait for a hashing permit.
const MAX_HASH_WAITERS: usize = 64;
/// Default lifetime of refresh tokens: 7 days.
pub const REFRESH_TTL: Duration = Duration::from_secs(7 * 86400);

impl Auth {
    pub fn new(keys: Keys, store: Store, service: String, realm: String) -> Auth {
        // Half the cores (at least one) may hash passwords at once; the rest serve traffic.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Auth {
            keys,
            store,
            service,
            realm,
            token_ttl: Duration::from_secs(900),
            refresh_ttl: REFRESH_TTL,
            basic_cache: Default::default(),
            failures: Mutex::new(HashMap::new()),
            hash_permits: tokio::sync::Semaphore::new((cores / 2).max(1)),
            hashers: HashPool::new((cores / 2).max(1)),
            hashes_run: Default::default(),
            hash_waiters: AtomicUsize::new(0),
            failed_logins: Default::default(),
        }
    }

    /// The `WWW-Authenticate` challenge for a scope like `repository:syn1/app:pull,push`, sending
    /// the client to the token endpoint under `base` (the URL it reached us at).
    pub fn challenge(&self, base: &str, scope: Option<&str>) -> String {
        let mut c = format!(r#"Bearer realm="{base}/v2/token",service="{}""#, self.service);
        if let Some(s) = scope {
            c.push_str(&format!(r#",scope="{s}""#));
        }
        c
    }

    /// Failed logins since start.
    pub fn failed_logins(&self) -> u64 {
        self.failed_logins.load(Ordering::Relaxed)
    }

    /// Password hashes run since start.
    pub fn hashes_run(&self) -> u64 {
        self.hashes_run.load(Ordering::Relaxed)
    }

    /// Runs `f` (a password hash or check) on a hashing thread once a hashing permit is free.
    pub async fn hash<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, AuthError> {
        if self.hash_waiters.fetch_add(1, Ordering::AcqRel) >= MAX_HASH_WAITERS {
            self.hash_waiters.fetch_sub(1, Ordering::AcqRel);
            return Err(AuthError::Busy);
        }
        let permit = self.hash_permits.acquire().await;
        self.hash_waiters.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| AuthError::Busy)?;
        self.hashers.run(f).await.ok_or(AuthError::Busy)
    }

    /// Checks a username and a password or personal access token, from client address `ip`.
    /// A token's username part is ignored (as with `docker login -u anything -p <token>`).
    pub async fn login(&self, username: &str, secret: &str, ip: IpAddr) -> Result<Login, AuthError> {
        if let Some((id, token_secret)) = secrets::parse_access_token(secret) {
            let (user, rec) = self.check_access_token(id, token_secret).inspect_err(|e| {
                if !matches!(e, AuthError::Store(_)) {
                    self.failed_logins.fetch_add(1, Ordering::Relaxed);
                }
            })?;
            return Ok(Login { user, token: Some(rec) });
        }
        let key = ring::digest::digest(&ring::digest::SHA256, format!("{username}\0{secret}").as_bytes());
        let mut key_bytes = [0u8; 32];
        key_bytes.copy_from_slice(key.as_ref());
        let cached = self.basic_cache.lock().get(&key_bytes).copied();
        if let Some((uid, generation, at)) = cached {
            if at.elapsed() < BASIC_CACHE_TTL {
                if let Some(user) = self.store.user(username)? {
                    if user.accepts(uid, generation) {
                        return Ok(Login { user, token: None });
                    }
                }
            }
        }
        let user = self.store.user(username)?;
        let checked = user.as_ref().map(|u| (u.password_hash.clone(), u.id, u.generation));
        let pw = secret.to_string();
        let (cache, runs) = (self.basic_cache.clone(), self.hashes_run.clone());
        // Hash even for unknown users, so timing does not reveal which names exist. Just before
        // hashing, look in the cache again: many requests with the same credential arriving at
        // once (64 `docker pull`s starting together) all missed it and queued here, and the
        // first one's check is what the rest are waiting for.
        let ok = self
            .hash(move || match checked {
                Some((phc, uid, generation)) => {
                    let verified = cache.lock().get(&key_bytes).copied();
                    if let Some((id, g, at)) = verified {
                        if (id, g) == (uid, generation) && at.elapsed() < BASIC_CACHE_TTL {
                            return true;
                        }
                    }
                    runs.fetch_add(1, Ordering::Relaxed);
                    secrets::verify_password(&pw, &phc)
                }
                None => {
                    runs.fetch_add(1, Ordering::Relaxed);
                    let _ = secrets::hash_password(&pw);
                    false
                }
            })
            .await?;
        let failure_key = (failure_name(username), ip);
        match user {
            Some(u) if ok && !u.disabled => {
                self.failures.lock().remove(&failure_key);
                let mut cache = self.basic_cache.lock();
                if cache.len() >= BASIC_CACHE_ENTRIES {
                    cache.retain(|_, (_, _, at)| at.elapsed() < BASIC_CACHE_TTL);
                    if cache.len() >= BASIC_CACHE_ENTRIES {
                        cache.clear();
                    }
                }
                cache.insert(key_bytes, (u.id, u.generation, Instant::now()));
                drop(cache);
                self.record(&u.username, ip, "login", &u.username, true, None);
                Ok(Login { user: u, token: None })
            }
            other => {
                let n = self.note_failure(failure_key);
                self.failed_logins.fetch_add(1, Ordering::Relaxed);
                let why = match &other {
                    Some(u) if u.disabled => "user is disabled",
                    Some(_) => "wrong password",
                    None => "no such user",
                };
                tracing::info!(username = %failure_name(username), %ip, failures = n, why, "failed login");
                self.record(&failure_name(username), ip, "login", &failure_name(username), false, Some(why));
                // Slow down guessing from this address for this name: 100 ms per recent failure,
                // at most 3 s. Other addresses, and the user itself, are not slowed.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(n.min(30)))).await;
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// Counts a failure of `key`; returns the recent count. Memory stays bounded: stale entries
    /// go first, then (under a flood of distinct pairs) everything.
    fn note_failure(&self, key: (String, IpAddr)) -> u32 {
        let mut f = self.failures.lock();
        if f.len() >= FAILURE_ENTRIES && !f.contains_key(&key) {
            f.retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
            if f.len() >= FAILURE_ENTRIES {
                f.clear();
            }
        }
        let e = f.entry(key).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_MEMORY {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
        e.0
    }

    /// Appends an audit event without waiting for it; a failure is logged, never fatal.
    pub fn record(&self, actor: &str, ip: IpAddr, action: &str, target: &str, ok: bool, detail: Option<&str>) {
        let rec = AuditRecord {
            seq: 0,
            time: 0,
            actor: actor.to_string(),
            address: ip.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: if ok { "ok" } else { "failed" }.to_string(),
            detail: detail.map(str::to_string),
        };
        let store = self.store.clone();
        let span = tracing::Span::current();
        let write = move || {
            if let Err(e) = store.audit(rec) {
                span.in_scope(|| tracing::error!(error = %e, "could not append to the audit log"));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(write)),
            Err(_) => write(),
        }
    }

    /// An access token by id and secret, with its owner; refused when revoked, expired, or made
    /// for another incarnation or credential generation of the user.
    fn check_access_token(&self, id: &str, secret: &str) -> Result<(UserRecord, TokenRecord), AuthError> {
        let rec = self.store.token(id)?.ok_or(AuthError::BadCredentials)?;
        let hash = secrets::sha256_hex(secret.as_bytes());
        if !secrets::constant_time_eq(hash.as_bytes(), rec.secret_sha256.as_bytes()) {
            return Err(AuthError::BadCredentials);
        }
        if rec.revoked || rec.expires <= now_secs() {
            tracing::info!(token = id, "revoked or expired access token used");
            return Err(AuthError::BadCredentials);
        }
        let user = self.store.user(&rec.username)?.ok_or(AuthError::BadCredentials)?;
        if !user.accepts(rec.user_id, rec.generation) {
            tracing::info!(token = id, user = %rec.username, "access token of a changed, disabled or deleted user");
            return Err(AuthError::BadCredentials);
        }
        Ok((user, rec))
    }

    /// The caller described by a request's `Authorization` header, from client address `ip`.
    /// Registry tokens are accepted here; the REST API refuses them by their kind.
    pub async fn authenticate(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Authenticated, AuthError> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(Authenticated {
                caller: Caller::anonymous(),
                kind: CredentialKind::Anonymous,
                claims: None,
                token: None,
            });
        };
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        if let Some(token) = value.strip_prefix("Bearer ").map(str::trim) {
            if token.starts_with("stw_") {
                // A personal access token used directly as a bearer credential (REST clients).
                let (id, secret) = secrets::parse_access_token(token).ok_or(AuthError::BadCredentials)?;
                let (user, rec) = self.check_access_token(id, secret)?;
                let caller = self.store.caller_for(&user, Some(rec.scopes))?;
                return Ok(Authenticated {
                    caller,
                    kind: CredentialKind::AccessToken,
                    claims: None,
                    token: Some(rec.id),
                });
            }
            let claims = self.keys.verify(token, &self.service).map_err(|e| {
                tracing::info!(error = %e, "registry token refused");
                AuthError::BadToken
            })?;
            if claims.typ.is_some() {
                return Err(AuthError::RefreshTokenElsewhere);
            }
            let caller = self.caller_from_claims(&claims)?;
            let token = claims.pat.clone();
            return Ok(Authenticated { caller, kind: CredentialKind::RegistryToken, claims: Some(claims), token });
        }
        if let Some(b) = value.strip_prefix("Basic ") {
            let (user, pass) = parse_basic(b).ok_or(AuthError::Malformed)?;
            let login = self.login(&user, &pass, ip).await?;
            let kind = if login.token.is_some() { CredentialKind::AccessToken } else { CredentialKind::Password };
            let token = login.token.as_ref().map(|t| t.id.clone());
            let caller = self.store.caller_for(&login.user, login.token.map(|t| t.scopes))?;
            return Ok(Authenticated { caller, kind, claims: None, token });
        }
        Err(AuthError::Malformed)
    }

    /// Rebuilds the caller from a token's subject, reading the user afresh so uncertifying, a
    /// revoked access token, a password change or a disabled user act at once.
    pub fn caller_from_claims(&self, claims: &Claims) -> Result<Caller, AuthError> {
        if claims.sub.is_empty() {
            return Ok(Caller::anonymous());
        }
        let user = self.store.user(&claims.sub)?.ok_or(AuthError::BadToken)?;
        if !user.accepts(claims.uid, claims.gen) {
            return Err(AuthError::BadToken);
        }
        let scopes = match &claims.pat {
            Some(id) => {
                let rec = self.store.token(id)?.ok_or(AuthError::BadToken)?;
                if rec.revoked || rec.expires <= now_secs() || !user.accepts(rec.user_id, rec.generation) {
                    return Err(AuthError::BadToken);
                }
                Some(rec.scopes)
            }
            None => None,
        };
        Ok(self.store.caller_for(&user, scopes)?)
    }

    /// Signs a registry token (or, with `refresh`, an OAuth2 refresh token) for `user` (None:
    /// anonymous) granting `access`.
    pub fn issue(
        &self,
        user: Option<&UserRecord>,
        pat: Option<String>,
        access: Vec<AccessEntry>,
        refresh: bool,
    ) -> anyhow::Result<(String, Claims)> {
        let now = now_secs();
        let ttl = if refresh { self.refresh_ttl } else { self.token_ttl };
        let claims = Claims {
            iss: jwt::ISSUER.to_string(),
            sub: user.map(|u| u.username.clone()).unwrap_or_default(),
            aud: self.service.clone(),
            exp: now + ttl.as_secs() as i64,
            nbf: now - 5,
            iat: now,
            jti: secrets::random_token::<12>(),
            access,
            pat,
            typ: refresh.then(|| "refresh".to_string()),
            uid: user.map(|u| u.id).unwrap_or(0),
            gen: user.map(|u| u.generation).unwrap_or(0),
        };
        Ok((self.keys.sign(&claims)?, claims))
    }

    /// Verifies an OAuth2 refresh token; returns the caller it stands for, with the user record
    /// and the access-token id the original login used.
    pub fn verify_refresh(&self, token: &str) -> Result<(Caller, UserRecord, Option<String>), AuthError> {
        let c = self.keys.verify(token, &self.service).map_err(|_| AuthError::BadToken)?;
        if c.typ.as_deref() != Some("refresh") || c.sub.is_empty() {
            return Err(AuthError::BadToken);
        }
        let caller = self.caller_from_claims(&c)?;
        let user = self.store.user(&c.sub)?.ok_or(AuthError::BadToken)?;
        Ok((caller, user, c.pat))
    }
}

/// The name part of a failure key, bounded: names longer than any real user name are hashed.
fn failure_name(username: &str) -> String {
    if username.len() <= 64 {
        username.to_string()
    } else {
        format!("#{}", &secrets::sha256_hex(username.as_bytes())[..16])
    }
}

/// Decodes the base64 `user:password` of a Basic header.
pub fn parse_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Every scope, for password logins.
pub fn all_scopes() -> BTreeSet<Scope> {
    [Scope::View, Scope::Download, Scope::Modify].into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn test_auth(dir: &std::path::Path) -> Auth {
        let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir)).unwrap();
        let keys = Keys::load_or_create(dir).unwrap();
        Auth::new(keys, Store::new(engine), "stowage".into(), "http://x/v2/token".into())
    }

    #[test]
    fn failure_memory_is_bounded_and_keyed_by_a_bounded_name() {
        let dir = tempfile::tempdir().unwrap();
        let auth = test_auth(dir.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for i in 0..(FAILURE_ENTRIES * 2 + 7) {
            auth.note_failure((format!("user{i}"), ip));
            assert!(auth.failures.lock().len() <= FAILURE_ENTRIES);
        }
        // Repeated failures of one pair count up; another address of the same name does not.
        assert_eq!(auth.note_failure(("alice".into(), ip)), 1);
        assert_eq!(auth.note_failure(("alice".into(), ip)), 2);
        assert_eq!(auth.note_failure(("alice".into(), "127.0.0.2".parse().unwrap())), 1);
        let long = "x".repeat(60_000);
        assert!(failure_name(&long).len() <= 64);
        assert_ne!(failure_name(&long), failure_name(&"y".repeat(60_000)));
        assert_eq!(failure_name("alice"), "alice");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_arriving_together_with_one_credential_hash_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let auth = std::sync::Arc::new(test_auth(dir.path()));
        let phc = secrets::hash_password("right-password").unwrap();
        auth.store.create_user("alice", phc, false).unwrap().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let a = auth.clone();
            set.spawn(async move { a.login("alice", "right-password", ip).await.map(|l| l.user.username) });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap(), "alice");
        }
        assert_eq!(auth.hashes_run(), 1, "32 logins with one credential, arriving together");
        // A wrong password is never taken from the cache: each is hashed.
        for _ in 0..2 {
            assert!(matches!(auth.login("alice", "wrong-password", ip).await, Err(AuthError::BadCredentials)));
        }
        assert_eq!(auth.hashes_run(), 3);
        // Nor is the right one once the user's credentials changed (a new generation).
        let mut u = auth.store.user("alice").unwrap().unwrap();
        u.generation += 1;
        auth.store.put_user(&u).unwrap();
        assert!(auth.login("alice", "right-password", ip).await.is_ok());
        assert_eq!(auth.hashes_run(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_run_on_the_dedicated_hashing_threads() {
        let dir = tempfile::tempdir().unwrap();
        let auth = test_auth(dir.path());
        for _ in 0..4 {
            let name = auth.hash(|| std::thread::current().name().map(str::to_string)).await.unwrap();
            assert_eq!(name.as_deref(), Some("stowage-hash"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hashing_queue_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let auth = std::sync::Arc::new(test_auth(dir.path()));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..(MAX_HASH_WAITERS * 3) {
            let a = auth.clone();
            set.spawn(async move { a.hash(|| std::thread::sleep(Duration::from_millis(20))).await.is_ok() });
        }
        let mut refused = 0;
        while let Some(ok) = set.join_next().await {
            refused += usize::from(!ok.unwrap());
        }
        assert!(refused > 0, "some of {} simultaneous hashes must be refused", MAX_HASH_WAITERS * 3);
        assert_eq!(auth.hash_waiters.load(Ordering::Acquire), 0, "the waiter count returns to zero");
    }
}
