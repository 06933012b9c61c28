//! Web sessions of the portal: a random id in an `HttpOnly`, `SameSite=Lax` cookie (plus
//! `Secure` when the registry is served over https), the session itself kept server side in a
//! bounded in-memory table with an idle and an absolute expiry, and a CSRF token per session that
//! every form carries and every POST must send back.
//!
//! Why in memory, not in the index: a session is a short-lived cache of one password check, and
//! an index record would cost a flushed write per sign-in and per expiry. A restart signs everyone
//! out, which is the safe direction. The table is bounded ([`MAX_SESSIONS`] in all,
//! [`MAX_SESSIONS_PER_USER`] per user), and a session is only honoured while its user's
//! credential generation is the one it was made at, so a password change, disabling or deleting
//! the user ends it at the next request, like every other credential.
//!
//! This module never decides what a session may do: it yields an [`Authenticated`] of kind
//! `Password` (see the portal's note) and the REST route table and access rules decide.

use crate::access::store::UserRecord;
use crate::auth::{secrets, Authenticated, CredentialKind};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The session cookie.
pub const COOKIE: &str = "stowage_session";
/// The cookie of the sign-in form's CSRF token (double submit: there is no session yet).
pub const LOGIN_COOKIE: &str = "stowage_login";
/// A session unused this long ends.
pub const IDLE_TTL: Duration = Duration::from_secs(2 * 3600);
/// A session ends this long after sign-in however much it is used.
pub const ABSOLUTE_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; past it the oldest go first.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions of one user; signing in once more ends that user's oldest.
pub const MAX_SESSIONS_PER_USER: usize = 32;

#[derive(Clone, Debug)]
pub struct Session {
    pub username: String,
    /// The user id and credential generation at sign-in: the session fails once either moves.
    pub user_id: u64,
    pub generation: u64,
    /// The CSRF token of every form of this session.
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

/// The server-side table, keyed by the SHA-256 of the cookie value, so the table never holds a
/// usable cookie.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(cookie: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl Sessions {
    /// Starts a session for `user`; returns the cookie value and the session.
    pub fn create(&self, user: &UserRecord) -> (String, Session) {
        let id = secrets::random_token::<32>();
        let now = Instant::now();
        let s = Session {
            username: user.username.clone(),
            user_id: user.id,
            generation: user.generation,
            csrf: secrets::random_token::<24>(),
            created: now,
            last_used: now,
        };
        let mut map = self.map.lock();
        map.retain(|_, s| !s.expired(now));
        let mine: Vec<([u8; 32], Instant)> =
            map.iter().filter(|(_, x)| x.username == user.username).map(|(k, x)| (*k, x.created)).collect();
        if mine.len() >= MAX_SESSIONS_PER_USER {
            if let Some((k, _)) = mine.iter().min_by_key(|(_, c)| *c) {
                map.remove(k);
            }
        }
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, x)| x.last_used).map(|(k, _)| *k) else { break };
            map.remove(&oldest);
        }
        map.insert(key(&id), s.clone());
        (id, s)
    }

    /// The live session of a cookie value, its idle clock restarted.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        if cookie.is_empty() || cookie.len() > 128 {
            return None;
        }
        let k = key(cookie);
        let now = Instant::now();
        let mut map = self.map.lock();
        let s = map.get_mut(&k)?;
        if s.expired(now) {
            map.remove(&k);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    pub fn end(&self, cookie: &str) {
        self.map.lock().remove(&key(cookie));
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_used) >= IDLE_TTL || now.duration_since(self.created) >= ABSOLUTE_TTL
    }

    /// Does `token` (from a form or header) match this session's CSRF token?
    pub fn csrf_ok(&self, token: &str) -> bool {
        secrets::constant_time_eq(token.as_bytes(), self.csrf.as_bytes())
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, `Secure` when `secure`; an empty
/// value with `Max-Age=0` ends the cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    let age = if value.is_empty() { "; Max-Age=0".to_string() } else { String::new() };
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}")
}

impl crate::app::App {
    /// Cookies get `Secure` when clients reach the registry over https (the public URL says so).
    /// The TLS listener, when configured, is the other source of this fact.
    pub fn secure_cookies(&self) -> bool {
        self.auth.realm.starts_with("https://")
    }

    /// The session of a request and the caller it stands for. A session whose user changed
    /// password, was disabled or deleted is ended here. Errors are storage errors.
    pub fn session_of(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<(Session, Authenticated)>, stowage_engine::Error> {
        let Some(c) = cookie(headers, COOKIE) else { return Ok(None) };
        let Some(s) = self.portal.sessions.get(c) else { return Ok(None) };
        let user = self.auth.store.user(&s.username)?;
        let Some(user) = user.filter(|u| u.accepts(s.user_id, s.generation)) else {
            self.portal.sessions.end(c);
            return Ok(None);
        };
        let caller = self.auth.store.caller_for(&user, None)?;
        Ok(Some((s, Authenticated { caller, kind: CredentialKind::Password, claims: None, token: None })))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user(name: &str) -> UserRecord {
        UserRecord {
            id: 7,
            username: name.into(),
            password_hash: String::new(),
            certified: true,
            admin: false,
            created: 0,
            disabled: false,
            generation: 3,
        }
    }

    #[test]
    fn sessions_are_random_bounded_per_user_and_ended() {
        let t = Sessions::default();
        let (a, sa) = t.create(&user("alice"));
        let (b, _) = t.create(&user("alice"));
        assert_ne!(a, b);
        assert!(a.len() >= 40, "32 random bytes, base64");
        assert_eq!(t.get(&a).unwrap().csrf, sa.csrf);
        assert!(sa.csrf_ok(&sa.csrf) && !sa.csrf_ok("x") && !sa.csrf_ok(""));
        assert!(t.get("nope").is_none() && t.get("").is_none() && t.get(&"x".repeat(200)).is_none());
        t.end(&a);
        assert!(t.get(&a).is_none());
        for _ in 0..(MAX_SESSIONS_PER_USER * 2) {
            t.create(&user("alice"));
        }
        assert_eq!(t.len(), MAX_SESSIONS_PER_USER);
        assert!(t.get(&b).is_none(), "the oldest session of the user went first");
    }

    #[test]
    fn cookies_are_parsed_and_set_with_their_attributes() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; stowage_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(set_cookie(COOKIE, "v", false), "stowage_session=v; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(set_cookie(COOKIE, "v", true), "stowage_session=v; Path=/; HttpOnly; SameSite=Lax; Secure");
        assert_eq!(set_cookie(COOKIE, "", false), "stowage_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    }
}
