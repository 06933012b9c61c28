//! The token server (Docker token-auth spec, "Token Authentication Specification" and the OAuth2
//! variant): `GET /v2/token` with Basic credentials or none, and `POST /v2/token` with the
//! password or refresh-token grant. A token lists only the actions the rules grant, so a caller
//! without permission still gets a token, and the registry answers the request itself with a
//! DENIED message that names the failed rule.

use super::{json_response, App, Resp};
use crate::access::rules::{decide, Caller, RegistryAction};
use crate::access::store::UserRecord;
use crate::auth::jwt::AccessEntry;
use crate::auth::{parse_basic, AuthError};
use crate::error::{ApiError, Code};
use crate::oci::RepositoryName;
use crate::router::percent_decode;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use std::net::IpAddr;
use time::format_description::well_known::Rfc3339;

/// Most scopes one token request may ask for.
const MAX_SCOPES: usize = 32;

/// Who a token is being issued to.
struct Subject {
    caller: Caller,
    user: Option<UserRecord>,
    /// The access token the login used, if any: registry tokens carry its id so revoking it acts.
    pat: Option<String>,
}

impl App {
    /// `GET /v2/token?service=&scope=...` (Basic or anonymous).
    pub(super) async fn token_get(&self, req: Request<Incoming>, peer: IpAddr) -> Result<Resp, ApiError> {
        let params = form_pairs(req.uri().query().unwrap_or(""));
        self.check_service(&params)?;
        let subject = match req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            Some(v) => {
                let b = v
                    .strip_prefix("Basic ")
                    .ok_or_else(|| unauthorized("the token endpoint takes Basic credentials"))?;
                let (u, p) = parse_basic(b).ok_or_else(|| unauthorized("malformed Basic credentials"))?;
                self.login_subject(&u, &p, peer).await?
            }
            None => Subject { caller: Caller::anonymous(), user: None, pat: None },
        };
        self.token_response(&subject, &params, false)
    }

    /// `POST /v2/token` (OAuth2 form: `grant_type=password` or `refresh_token`).
    pub(super) async fn token_post(&self, req: Request<Incoming>, peer: IpAddr) -> Result<Resp, ApiError> {
        let body = self.read_small_body(req.into_body(), 64 * 1024).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request(Code::Unsupported, "the form body is not UTF-8"))?;
        let params = form_pairs(text);
        self.check_service(&params)?;
        let get = |k: &str| params.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        let subject = match get("grant_type") {
            Some("password") => {
                let u = get("username").unwrap_or("");
                let p = get("password").ok_or_else(|| unauthorized("password grant needs a password"))?;
                self.login_subject(u, p, peer).await?
            }
            Some("refresh_token") => {
                let t = get("refresh_token").ok_or_else(|| unauthorized("refresh_token grant needs refresh_token"))?;
                match self.auth.verify_refresh(t) {
                    Ok((caller, user, pat)) => Subject { caller, user: Some(user), pat },
                    Err(AuthError::Store(e)) => return Err(e.into()),
                    Err(_) => return Err(unauthorized("refresh token is invalid or expired; log in again")),
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    Code::Unsupported,
                    format!("grant_type {other:?} is not supported; use password or refresh_token"),
                ))
            }
        };
        self.token_response(&subject, &params, true)
    }

    /// A `service` parameter, when given, must name this registry (Docker token spec: the
    /// service the token is for); anything else is a client pointed at the wrong server.
    fn check_service(&self, params: &[(String, String)]) -> Result<(), ApiError> {
        for (_, s) in params.iter().filter(|(k, _)| k == "service") {
            if s != &self.auth.service {
                return Err(ApiError::bad_request(
                    Code::Unsupported,
                    format!("service {s:?} is not served here; this registry's service is {:?}", self.auth.service),
                ));
            }
        }
        Ok(())
    }

    async fn login_subject(&self, user: &str, secret: &str, peer: IpAddr) -> Result<Subject, ApiError> {
        match self.auth.login(user, secret, peer).await {
            Ok(login) => {
                let pat = login.token.as_ref().map(|t| t.id.clone());
                let caller = self.auth.store.caller_for(&login.user, login.token.map(|t| t.scopes))?;
                Ok(Subject { caller, user: Some(login.user), pat })
            }
            Err(e) => Err(self.auth_failure(e)),
        }
    }

    fn token_response(&self, subject: &Subject, params: &[(String, String)], oauth: bool) -> Result<Resp, ApiError> {
        let scopes: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' '))
            .filter(|s| !s.is_empty())
            .collect();
        if scopes.len() > MAX_SCOPES {
            return Err(ApiError::bad_request(
                Code::Unsupported,
                format!("{} scopes asked for; at most {MAX_SCOPES} in one token request", scopes.len()),
            ));
        }
        let mut access = Vec::new();
        for scope in scopes {
            if let Some(entry) = self.grant(&subject.caller, scope)? {
                access.push(entry);
            }
        }
        let (token, claims) = self
            .auth
            .issue(subject.user.as_ref(), subject.pat.clone(), access, false)
            .map_err(|e| ApiError::internal("token signing failed", &e))?;
        self.metrics.token_issued();
        let issued = time::OffsetDateTime::from_unix_timestamp(claims.iat)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let expires_in = claims.exp - claims.iat;
        let mut body =
            serde_json::json!({ "token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued });
        if oauth && subject.user.is_some() {
            let (refresh, _) = self
                .auth
                .issue(subject.user.as_ref(), subject.pat.clone(), Vec::new(), true)
                .map_err(|e| ApiError::internal("token signing failed", &e))?;
            body["refresh_token"] = serde_json::json!(refresh);
        }
        Ok(json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()))
    }

    /// The actions of one requested scope (`repository:<name>:<actions>` or
    /// `registry:catalog:*`) that the rules grant. A scope that does not parse is the client's
    /// mistake and gets 400 naming it; a well-formed scope the caller may not use yields an
    /// entry with fewer (or no) actions, as the token spec asks.
    fn grant(&self, caller: &Caller, scope: &str) -> Result<Option<AccessEntry>, ApiError> {
        let malformed = |why: &str| {
            ApiError::bad_request(
                Code::Unsupported,
                format!("scope {scope:?} is malformed: {why}; use repository:<projectId>/<name>:pull,push or registry:catalog:*"),
            )
        };
        let (kind, rest) = scope.split_once(':').ok_or_else(|| malformed("no resource type"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| malformed("no actions"))?;
        match kind {
            "registry" => {
                if name != "catalog" || actions != "*" {
                    return Err(malformed("the only registry scope is registry:catalog:*"));
                }
                return Ok(caller.user.is_some().then(|| AccessEntry {
                    kind: kind.into(),
                    name: name.into(),
                    actions: vec!["*".into()],
                }));
            }
            "repository" => {}
            _ => return Err(malformed("the resource type must be repository or registry")),
        }
        let repo = name.parse::<RepositoryName>().map_err(|e| malformed(&e.to_string()))?;
        let mut wanted: Vec<(&str, RegistryAction)> = Vec::new();
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
                _ => return Err(malformed(&format!("unknown action {a:?} (use pull, push, delete or *)"))),
            };
            wanted.extend_from_slice(list);
        }
        let facts = self.auth.store.repo_facts(repo.as_str(), repo.project())?;
        let mut granted: Vec<String> = Vec::new();
        for (n, act) in wanted {
            if decide(caller, act, &facts).is_ok() && !granted.iter().any(|g| g == n) {
                granted.push(n.to_string());
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
