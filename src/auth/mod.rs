//! Authentication: who is calling. Credentials are a Bearer registry token (JWT), Basic
//! (username + password, or any username + personal access token), or nothing (anonymous).
//! Password checks are argon2id (slow on purpose) so results are cached briefly, and repeated
//! failures for a username are slowed down. Authorization is `access::rules`' job, not this one's.

pub mod jwt;
pub mod secrets;

use crate::access::rules::{Caller, Scope};
use crate::access::store::{Store, TokenRecord, UserRecord};
use base64::Engine as _;
use http::HeaderMap;
use jwt::{AccessEntry, Claims, Keys};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
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
    #[error("storage error while checking credentials")]
    Store(#[from] stowage_engine::Error),
}

/// The result of authenticating a request.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub caller: Caller,
    /// Present when the request carried a registry token: it limits what the request may do.
    pub claims: Option<Claims>,
}

pub struct Auth {
    pub keys: Keys,
    pub store: Store,
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// Where clients get tokens: `<public url>/v2/token`.
    pub realm: String,
    pub token_ttl: Duration,
    /// sha256(user, secret) -> (username, when verified).
    basic_cache: Mutex<HashMap<String, (String, Instant)>>,
    failures: Mutex<HashMap<String, u32>>,
}

/// How long a verified Basic credential is trusted without re-hashing.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
/// Refresh tokens of the OAuth2 flow live this long.
pub const REFRESH_TTL_SECS: i64 = 30 * 86400;

impl Auth {
    pub fn new(keys: Keys, store: Store, service: String, realm: String) -> Auth {
        Auth {
            keys,
            store,
            service,
            realm,
            token_ttl: Duration::from_secs(900),
            basic_cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The `WWW-Authenticate` challenge for a scope like `repository:syn1/app:pull,push`.
    pub fn challenge(&self, scope: Option<&str>) -> String {
        let mut c = format!(r#"Bearer realm="{}",service="{}""#, self.realm, self.service);
        if let Some(s) = scope {
            c.push_str(&format!(r#",scope="{s}""#));
        }
        c
    }

    /// Checks a username and a password or personal access token. A token's username part is
    /// ignored (as with `docker login -u anything -p <token>`).
    pub async fn login(&self, username: &str, secret: &str) -> Result<(UserRecord, Option<TokenRecord>), AuthError> {
        if let Some((id, token_secret)) = secrets::parse_access_token(secret) {
            let rec = self.check_access_token(id, token_secret)?;
            let user = self.store.user(&rec.username)?.ok_or(AuthError::BadCredentials)?;
            return Ok((user, Some(rec)));
        }
        let key = secrets::sha256_hex(format!("{username}\0{secret}").as_bytes());
        if let Some((u, at)) = self.basic_cache.lock().get(&key).cloned() {
            if at.elapsed() < BASIC_CACHE_TTL {
                if let Some(user) = self.store.user(&u)? {
                    return Ok((user, None));
                }
            }
        }
        let user = self.store.user(username)?;
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let pw = secret.to_string();
        // Hash even for unknown users, so timing does not reveal which names exist.
        let ok = tokio::task::spawn_blocking(move || match phc {
            Some(h) => secrets::verify_password(&pw, &h),
            None => {
                let _ = secrets::hash_password(&pw);
                false
            }
        })
        .await
        .unwrap_or(false);
        match (ok, user) {
            (true, Some(u)) => {
                self.failures.lock().remove(username);
                let mut cache = self.basic_cache.lock();
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(key, (u.username.clone(), Instant::now()));
                Ok((u, None))
            }
            _ => {
                let n = {
                    let mut f = self.failures.lock();
                    let n = f.entry(username.to_string()).or_insert(0);
                    *n = n.saturating_add(1);
                    *n
                };
                tracing::info!(username, failures = n, "failed login");
                // Slow down guessing: 100 ms per recent failure, at most 3 s.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(n.min(30)))).await;
                Err(AuthError::BadCredentials)
            }
        }
    }

    fn check_access_token(&self, id: &str, secret: &str) -> Result<TokenRecord, AuthError> {
        let rec = self.store.token(id)?.ok_or(AuthError::BadCredentials)?;
        let hash = secrets::sha256_hex(secret.as_bytes());
        if !secrets::constant_time_eq(hash.as_bytes(), rec.secret_sha256.as_bytes()) {
            return Err(AuthError::BadCredentials);
        }
        if rec.revoked || rec.expires <= now_secs() {
            tracing::info!(token = id, "revoked or expired access token used");
            return Err(AuthError::BadCredentials);
        }
        Ok(rec)
    }

    /// The caller described by a request's `Authorization` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(Authenticated { caller: Caller::anonymous(), claims: None });
        };
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        if let Some(token) = value.strip_prefix("Bearer ").map(str::trim) {
            if token.starts_with("stw_") {
                // A personal access token used directly as a bearer credential (REST clients).
                let (id, secret) = secrets::parse_access_token(token).ok_or(AuthError::BadCredentials)?;
                let rec = self.check_access_token(id, secret)?;
                let user = self.store.user(&rec.username)?.ok_or(AuthError::BadCredentials)?;
                let caller = self.store.caller_for(&user, Some(rec.scopes))?;
                return Ok(Authenticated { caller, claims: None });
            }
            let claims = self.keys.verify(token, &self.service).map_err(|e| {
                tracing::info!(error = %e, "registry token refused");
                AuthError::BadToken
            })?;
            if claims.typ.is_some() {
                return Err(AuthError::BadToken);
            }
            let caller = self.caller_from_claims(&claims)?;
            return Ok(Authenticated { caller, claims: Some(claims) });
        }
        if let Some(b) = value.strip_prefix("Basic ") {
            let (user, pass) = parse_basic(b).ok_or(AuthError::Malformed)?;
            let (u, pat) = self.login(&user, &pass).await?;
            let caller = self.store.caller_for(&u, pat.map(|t| t.scopes))?;
            return Ok(Authenticated { caller, claims: None });
        }
        Err(AuthError::Malformed)
    }

    /// Rebuilds the caller from a token's subject, reading the user afresh so uncertifying or a
    /// revoked access token acts at once.
    pub fn caller_from_claims(&self, claims: &Claims) -> Result<Caller, AuthError> {
        if claims.sub.is_empty() {
            return Ok(Caller::anonymous());
        }
        let user = self.store.user(&claims.sub)?.ok_or(AuthError::BadToken)?;
        let scopes = match &claims.pat {
            Some(id) => {
                let rec = self.store.token(id)?.ok_or(AuthError::BadToken)?;
                if rec.revoked || rec.expires <= now_secs() {
                    return Err(AuthError::BadToken);
                }
                Some(rec.scopes)
            }
            None => None,
        };
        Ok(self.store.caller_for(&user, scopes)?)
    }

    /// Signs a registry token for `sub` granting `access`.
    pub fn issue(
        &self,
        sub: &str,
        pat: Option<String>,
        access: Vec<AccessEntry>,
        refresh: bool,
    ) -> anyhow::Result<(String, Claims)> {
        let now = now_secs();
        let ttl = if refresh { REFRESH_TTL_SECS } else { self.token_ttl.as_secs() as i64 };
        let claims = Claims {
            iss: jwt::ISSUER.to_string(),
            sub: sub.to_string(),
            aud: self.service.clone(),
            exp: now + ttl,
            nbf: now - 5,
            iat: now,
            jti: secrets::random_token::<12>(),
            access,
            pat,
            typ: refresh.then(|| "refresh".to_string()),
        };
        Ok((self.keys.sign(&claims)?, claims))
    }

    /// Verifies an OAuth2 refresh token and returns its subject and access-token id.
    pub fn verify_refresh(&self, token: &str) -> Result<(String, Option<String>), AuthError> {
        let c = self.keys.verify(token, &self.service).map_err(|_| AuthError::BadToken)?;
        if c.typ.as_deref() != Some("refresh") {
            return Err(AuthError::BadToken);
        }
        self.caller_from_claims(&c)?;
        Ok((c.sub, c.pat))
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
