//! The token server (Docker token-auth spec, "Token Authentication Specification" and the OAuth2
//! variant): `GET /v2/token` with Basic credentials or none, and `POST /v2/token` with the
//! password or refresh-token grant. A token lists only the actions the rules grant, so a caller
//! without permission still gets a token, and the registry answers the request itself with a
//! DENIED message that names the failed rule.

use super::{json_response, App, Resp};
use crate::access::rules::{decide, Caller, RegistryAction};
use crate::auth::jwt::AccessEntry;
use crate::auth::{parse_basic, AuthError};
use crate::error::{ApiError, Code};
use crate::oci::RepositoryName;
use crate::router::percent_decode;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use time::format_description::well_known::Rfc3339;

/// Most scopes one token request may ask for.
const MAX_SCOPES: usize = 32;

impl App {
    /// `GET /v2/token?service=&scope=...` (Basic or anonymous).
    pub(super) async fn token_get(&self, req: Request<Incoming>) -> Result<Resp, ApiError> {
        let params = form_pairs(req.uri().query().unwrap_or(""));
        let (caller, pat) = match req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            Some(v) => {
                let b = v
                    .strip_prefix("Basic ")
                    .ok_or_else(|| unauthorized("the token endpoint takes Basic credentials"))?;
                let (u, p) = parse_basic(b).ok_or_else(|| unauthorized("malformed Basic credentials"))?;
                self.login_caller(&u, &p).await?
            }
            None => (Caller::anonymous(), None),
        };
        self.token_response(&caller, pat, &params, false)
    }

    /// `POST /v2/token` (OAuth2 form: `grant_type=password` or `refresh_token`).
    pub(super) async fn token_post(&self, req: Request<Incoming>) -> Result<Resp, ApiError> {
        let body = self.read_small_body(req.into_body(), 64 * 1024).await?;
        let params = form_pairs(std::str::from_utf8(&body).map_err(|_| unauthorized("form body is not UTF-8"))?);
        let get = |k: &str| params.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        let (caller, pat) = match get("grant_type") {
            Some("password") => {
                let u = get("username").unwrap_or("");
                let p = get("password").ok_or_else(|| unauthorized("password grant needs a password"))?;
                self.login_caller(u, p).await?
            }
            Some("refresh_token") => {
                let t = get("refresh_token").ok_or_else(|| unauthorized("refresh_token grant needs refresh_token"))?;
                let (sub, pat) = self
                    .auth
                    .verify_refresh(t)
                    .map_err(|_| unauthorized("refresh token is invalid or expired; log in again"))?;
                let user = self.auth.store.user(&sub)?.ok_or_else(|| unauthorized("user no longer exists"))?;
                let scopes = match &pat {
                    Some(id) => self.auth.store.token(id)?.map(|t| t.scopes),
                    None => None,
                };
                (self.auth.store.caller_for(&user, scopes)?, pat)
            }
            other => {
                return Err(ApiError::bad_request(
                    Code::Unsupported,
                    format!("grant_type {other:?} is not supported; use password or refresh_token"),
                ))
            }
        };
        self.token_response(&caller, pat, &params, true)
    }

    async fn login_caller(&self, user: &str, secret: &str) -> Result<(Caller, Option<String>), ApiError> {
        match self.auth.login(user, secret).await {
            Ok((u, pat)) => {
                let id = pat.as_ref().map(|t| t.id.clone());
                Ok((self.auth.store.caller_for(&u, pat.map(|t| t.scopes))?, id))
            }
            Err(AuthError::Store(e)) => Err(e.into()),
            Err(_) => Err(unauthorized("incorrect username or password")),
        }
    }

    fn token_response(
        &self,
        caller: &Caller,
        pat: Option<String>,
        params: &[(String, String)],
        oauth: bool,
    ) -> Result<Resp, ApiError> {
        let mut access = Vec::new();
        let scopes: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' '))
            .filter(|s| !s.is_empty())
            .take(MAX_SCOPES)
            .collect();
        for scope in scopes {
            if let Some(entry) = self.grant(caller, scope)? {
                access.push(entry);
            }
        }
        let sub = caller.user.as_ref().map(|u| u.name.as_str()).unwrap_or("");
        let (token, claims) = self
            .auth
            .issue(sub, pat.clone(), access, false)
            .map_err(|e| ApiError::internal("token signing failed", &e))?;
        let issued = time::OffsetDateTime::from_unix_timestamp(claims.iat)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let expires_in = claims.exp - claims.iat;
        let mut body =
            serde_json::json!({ "token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued });
        if oauth && caller.user.is_some() {
            let (refresh, _) = self
                .auth
                .issue(sub, pat, Vec::new(), true)
                .map_err(|e| ApiError::internal("token signing failed", &e))?;
            body["refresh_token"] = serde_json::json!(refresh);
        }
        Ok(json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()))
    }

    /// The actions of one requested scope (`repository:<name>:<actions>` or
    /// `registry:catalog:*`) that the rules grant.
    fn grant(&self, caller: &Caller, scope: &str) -> Result<Option<AccessEntry>, ApiError> {
        let Some((kind, rest)) = scope.split_once(':') else { return Ok(None) };
        let Some((name, actions)) = rest.rsplit_once(':') else { return Ok(None) };
        if kind == "registry" && name == "catalog" {
            return Ok(caller.user.is_some().then(|| AccessEntry {
                kind: kind.into(),
                name: name.into(),
                actions: vec!["*".into()],
            }));
        }
        if kind != "repository" {
            return Ok(None);
        }
        let Ok(repo) = name.parse::<RepositoryName>() else { return Ok(None) };
        let facts = self.auth.store.repo_facts(repo.as_str(), repo.project())?;
        let mut granted = Vec::new();
        for a in actions.split(',') {
            let list: &[(&str, RegistryAction)] = match a {
                "pull" => &[("pull", RegistryAction::Pull)],
                "push" => &[("push", RegistryAction::Push)],
                "delete" => &[("delete", RegistryAction::Delete)],
                "*" => &[
                    ("pull", RegistryAction::Pull),
                    ("push", RegistryAction::Push),
                    ("delete", RegistryAction::Delete),
                ],
                _ => &[],
            };
            for (n, act) in list {
                if decide(caller, *act, &facts).is_ok() && !granted.iter().any(|g| g == n) {
                    granted.push(n.to_string());
                }
            }
        }
        Ok(Some(AccessEntry { kind: "repository".into(), name: repo.as_str().to_string(), actions: granted }))
    }
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, msg)
}

/// `a=b&c=d` pairs, percent-decoded (form encoding).
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}
