//! The REST API under `/api/v1/` (DESIGN.md section 3): JSON in and out, errors as
//! `{"error":{"code","message"}}`, described by `openapi.json` served at `/api/v1/openapi.json`.
//! Callers authenticate with Basic (password or access token) or `Bearer <access token>`;
//! registry tokens from `/v2/token` are refused here. What each route needs of the credential is
//! in the route table ([`routes::ROUTES`]) and checked before the handler runs; per-entity
//! permissions use the same rules as the registry.

mod audit;
mod entities;
pub mod ops;
pub mod routes;
#[cfg(test)]
mod routes_props;
mod users;

use crate::access::rules::Caller;
use crate::app::App;
use crate::auth::{AuthError, CredentialKind};
use crate::body::{full, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use routes::{Need, Op};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::IpAddr;
use users::TeamRole;

pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest JSON request body.
const MAX_JSON_BYTES: usize = 64 * 1024;
/// Deepest JSON nesting accepted.
const MAX_JSON_DEPTH: usize = 16;

/// A REST error is the daemon's one error type: [`crate::error`] maps and renders it (the REST
/// body names the status: `not_found`, `forbidden`, ...), so storage errors get the same 503/507
/// here as on the registry, and every error is logged once.
pub type ApiErr = crate::error::ApiError;

pub type ApiResult = Result<(StatusCode, Value), ApiErr>;

/// A REST error with this status and a message saying what to do.
pub fn err(status: StatusCode, message: impl Into<String>) -> ApiErr {
    crate::error::ApiError::new(status, crate::error::Code::for_status(status), message)
}

pub fn bad_request(m: impl Into<String>) -> ApiErr {
    err(StatusCode::BAD_REQUEST, m)
}

pub fn not_found(m: impl Into<String>) -> ApiErr {
    err(StatusCode::NOT_FOUND, m)
}

pub fn forbidden(m: impl Into<String>) -> ApiErr {
    err(StatusCode::FORBIDDEN, m)
}

/// The request as handlers see it.
pub struct Call {
    pub method: Method,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub caller: Caller,
    pub kind: CredentialKind,
    /// The client's address, for the audit log.
    pub peer: IpAddr,
    pub body: Bytes,
}

impl Call {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiErr> {
        if crate::oci::manifest::nesting_exceeds(&self.body, MAX_JSON_DEPTH) {
            return Err(bad_request(format!("JSON nests deeper than {MAX_JSON_DEPTH} levels")));
        }
        serde_json::from_slice(&self.body).map_err(|e| bad_request(format!("request body: {e}")))
    }

    /// The trimmed `name` of a `{"name": ...}` body, 1 to `max` bytes; `what` names the thing
    /// in the error ("project", "team").
    pub fn name_body(&self, what: &str, max: usize) -> Result<String, ApiErr> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            name: String,
        }
        let b: Body = self.json()?;
        let name = b.name.trim();
        // Characters, as the OpenAPI `maxLength` counts them.
        if name.is_empty() || name.chars().count() > max {
            return Err(bad_request(format!("{what} name must be 1 to {max} characters")));
        }
        Ok(name.to_string())
    }

    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    /// The caller's user name, or 401.
    pub fn user(&self) -> Result<&str, ApiErr> {
        self.caller
            .user
            .as_ref()
            .map(|u| u.name.as_str())
            .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "log in: use Basic credentials or an access token"))
    }

    /// Appends an audit event by the caller.
    pub fn audit(&self, app: &App, action: &str, target: &str, detail: Option<&str>) {
        app.auth.record(self.caller.name(), self.peer, action, target, true, detail);
    }

    pub fn require_admin(&self) -> Result<(), ApiErr> {
        self.user()?;
        if self.caller.is_admin() {
            Ok(())
        } else {
            Err(forbidden("only administrators may do this"))
        }
    }
}

impl App {
    /// Serves `/api/v1/...`.
    pub async fn api(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        match self.api_inner(req, peer).await {
            Ok((status, v)) => {
                let mut r = respond(status, &v);
                // A listing with a next page names it in its body and, as RFC 8288 says, in a
                // `Link` header.
                if let Some(next) = v.get("next").and_then(Value::as_str) {
                    if let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
                        r.headers_mut().insert(header::LINK, link);
                    }
                }
                r
            }
            Err(e) => e.into_rest_response(),
        }
    }

    async fn api_inner(&self, req: Request<Incoming>, peer: IpAddr) -> ApiResult {
        let path = req.uri().path().to_string();
        let segs: Vec<String> = path
            .trim_start_matches("/api/v1/")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(crate::router::percent_decode)
            .collect();
        let method = req.method().clone();
        let (route, params) = match routes::find(&method, &segs) {
            routes::Match::Found(r, p) => (r, p),
            routes::Match::WrongMethod(allowed) => {
                let allow = allowed.join(", ");
                return Err(err(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not allowed on {path}; use {allow}"),
                )
                .with_header(header::ALLOW, &allow));
            }
            routes::Match::NotFound => {
                return Err(not_found(format!("{method} {path} is not an API route; see /api/v1/openapi.json")))
            }
        };
        if route.op == Op::GetOpenApi {
            return Ok((StatusCode::OK, openapi_document().clone()));
        }
        let mut who = match self.auth.authenticate(req.headers(), peer).await {
            Ok(a) => a,
            Err(AuthError::Store(e)) => return Err(e.into()),
            Err(e @ AuthError::Busy) => return Err(err(StatusCode::TOO_MANY_REQUESTS, e.to_string())),
            Err(e) => return Err(err(StatusCode::UNAUTHORIZED, e.to_string())),
        };
        if who.kind == CredentialKind::Anonymous {
            // No Authorization header: the portal's session cookie may stand in (DESIGN.md
            // section 3). A change made with it must carry the session's CSRF token in a header,
            // which a cross-site form cannot send.
            if let Some((session, by_cookie)) = self.session_of(req.headers())? {
                let safe = method == Method::GET || method == Method::HEAD;
                let token = req.headers().get(crate::web::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !safe && !session.csrf_ok(token) {
                    return Err(forbidden(format!(
                        "a change made with the web session cookie needs the session's CSRF token in the {} header",
                        crate::web::CSRF_HEADER
                    )));
                }
                who = by_cookie;
            }
        }
        if who.kind == CredentialKind::RegistryToken {
            return Err(err(StatusCode::UNAUTHORIZED, AuthError::RegistryTokenElsewhere.to_string()));
        }
        match routes::check(route, who.kind, &who.caller.scopes, who.caller.is_admin()) {
            Ok(()) => {}
            Err(routes::Refusal::LoginRequired) => {
                return Err(err(
                    StatusCode::UNAUTHORIZED,
                    "log in: use Basic credentials (a password, or an access token) or Bearer <access token>",
                ))
            }
            Err(routes::Refusal::Lacks(m)) => return Err(forbidden(m)),
        }
        let query = crate::handlers::form_pairs(req.uri().query().unwrap_or(""));
        let body = read_json_body(req.into_body(), self.small_body_deadline(MAX_JSON_BYTES)).await?;
        let call = Call { method, segs, query, caller: who.caller, kind: who.kind, peer, body };
        self.dispatch(route.op, call, params).await
    }

    /// Runs the REST operation at `segs` (the path after `/api/v1/`, decoded) for a caller that
    /// is already authenticated (the portal's session): the same route table, credential check
    /// and handler as a request to `/api/v1/`, so a page can do nothing the API would refuse.
    pub async fn invoke(
        &self,
        who: &crate::auth::Authenticated,
        peer: IpAddr,
        method: Method,
        segs: Vec<String>,
        query: Vec<(String, String)>,
        body: Value,
    ) -> ApiResult {
        let (route, params) = match routes::find(&method, &segs) {
            routes::Match::Found(r, p) => (r, p),
            _ => return Err(not_found(format!("{method} /api/v1/{} is not an API route", segs.join("/")))),
        };
        match routes::check(route, who.kind, &who.caller.scopes, who.caller.is_admin()) {
            Ok(()) => {}
            Err(routes::Refusal::LoginRequired) => return Err(err(StatusCode::UNAUTHORIZED, "sign in first")),
            Err(routes::Refusal::Lacks(m)) => return Err(forbidden(m)),
        }
        let body =
            if body.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(&body).unwrap_or_default()) };
        let call = Call { method, segs, query, caller: who.caller.clone(), kind: who.kind, peer, body };
        self.dispatch(route.op, call, params).await
    }

    /// Runs an operation. The few that wait for a password hash or the garbage collector are
    /// async and hand their index work to blocking threads themselves; every other handler reads
    /// and writes the index directly, so it runs whole on a blocking thread, where its writes may
    /// wait for their group flush without holding up the reactor.
    async fn dispatch(&self, op: Op, call: Call, params: Vec<String>) -> ApiResult {
        match op {
            Op::GetOpenApi => Ok((StatusCode::OK, openapi_document().clone())),
            Op::CreateUser => self.create_user(&call).await,
            Op::SetPassword => self.set_password(&call, params.first().map(String::as_str).unwrap_or("")).await,
            Op::CollectGarbage => self.gc(&call).await,
            Op::Backup => self.backup(&call).await,
            Op::Scrub => self.scrub(&call).await,
            _ => self.blocking(move |app| app.dispatch_blocking(op, &call, &params)).await?,
        }
    }

    /// One arm per operation of the route table.
    fn dispatch_blocking(&self, op: Op, call: &Call, params: &[String]) -> ApiResult {
        let p = |i: usize| params.get(i).map(String::as_str).unwrap_or("");
        match op {
            Op::GetOpenApi | Op::CreateUser | Op::SetPassword | Op::CollectGarbage | Op::Backup | Op::Scrub => {
                Err(crate::error::ApiError::internal("REST dispatch", &format!("{op:?} is async")))
            }
            Op::ListUsers => self.list_users(call),
            Op::GetUser => self.get_user(call, p(0)),
            Op::DeleteUser => self.delete_user(call, p(0)),
            Op::CertifyUser => self.certify(call, p(0)),
            Op::DisableUser => self.disable_user(call, p(0)),
            Op::CreateTeam => self.create_team(call),
            Op::GetTeam => self.get_team(call, p(0)),
            Op::AddTeamMember => self.team_change(call, p(0), p(1), TeamRole::Member, true),
            Op::RemoveTeamMember => self.team_change(call, p(0), p(1), TeamRole::Member, false),
            Op::AddTeamManager => self.team_change(call, p(0), p(1), TeamRole::Manager, true),
            Op::RemoveTeamManager => self.team_change(call, p(0), p(1), TeamRole::Manager, false),
            Op::CreateToken => self.create_token(call),
            Op::ListTokens => self.list_tokens(call),
            Op::RevokeToken => self.revoke_token(call, p(0)),
            Op::CreateProject => self.create_project(call),
            Op::ListProjects => self.list_projects(call),
            Op::GetProject => self.get_project(call, p(0)),
            Op::ProjectRepositories => self.project_repositories(call, p(0)),
            Op::CreateExternalRepository => self.create_external(call, p(0)),
            Op::ProjectUsage => self.usage(call, p(0)),
            Op::GetAcl => self.get_acl(call, p(0)),
            Op::PutAcl => self.put_acl(call, p(0)),
            Op::DeleteAcl => self.delete_acl(call, p(0)),
            Op::TrashEntity => self.trash_entity(call, p(0)),
            Op::FindRepository => self.find_repository(call),
            Op::GetRepository => self.get_repository(call, p(0)),
            Op::RepositoryTags => self.repository_tags(call, p(0)),
            Op::RepositoryCommits => self.repository_commits(call, p(0)),
            Op::AddCommit => self.add_commit(call, p(0)),
            Op::ListTrash => self.list_trash(call),
            Op::RestoreTrash => self.restore(call, p(0)),
            Op::PurgeTrash => self.purge(call, p(0)),
            Op::ListAudit => self.list_audit(call),
            Op::SetQuota => self.set_quota(call, p(0)),
            Op::ListQuarantine => self.quarantine(call),
        }
    }
}

/// The served OpenAPI document: `openapi.json` with, on every operation, the credential the
/// route table says it needs (`x-stowage-credential`: none, view, modify or password;
/// `x-stowage-admin`), also spelled out in its description, and the 401 and 403 answers of the
/// credential check on every operation that needs a credential. Built once.
pub fn openapi_document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(OPENAPI).unwrap_or_else(|_| serde_json::json!({}));
        for route in routes::ROUTES {
            let Some(op) = doc.pointer_mut(&format!(
                "/paths/{}/{}",
                route.path.replace('~', "~0").replace('/', "~1"),
                route.method.to_ascii_lowercase()
            )) else {
                continue;
            };
            op["x-stowage-credential"] = Value::from(route.need.as_str());
            op["x-stowage-admin"] = Value::from(route.admin);
            if route.need != Need::Nothing {
                // The credential check answers these on every route that needs a credential
                // (no credential: 401; a token without the scope, or not an administrator: 403).
                let responses = &mut op["responses"];
                for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")] {
                    if responses.get(status).is_none() {
                        responses[status] = serde_json::json!({ "$ref": format!("#/components/responses/{name}") });
                    }
                }
            }
            let needs = match route.need {
                Need::Nothing => "No credential needed.".to_string(),
                Need::Password => "Needs a password login (access tokens are refused).".to_string(),
                n => format!("Needs the `{}` scope (a password login has every scope).", n.as_str()),
            };
            let needs = if route.admin { format!("{needs} Administrators only.") } else { needs };
            let old = op.get("description").and_then(Value::as_str).unwrap_or("").to_string();
            op["description"] = Value::from(if old.is_empty() { needs } else { format!("{old} {needs}") });
        }
        doc
    })
}

/// Reads a JSON request body of at most [`MAX_JSON_BYTES`], which must arrive whole within
/// `deadline` (the body is read before the caller's rights are known, so a trickling client must
/// not hold the request open); past it the answer is 408 and hyper closes the connection, since
/// the rest of the body was never read.
async fn read_json_body(body: Incoming, deadline: std::time::Duration) -> Result<Bytes, ApiErr> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BYTES);
    let Ok(collected) = tokio::time::timeout(deadline, limited.collect()).await else {
        return Err(err(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s", deadline.as_secs_f64()),
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(err(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is over {MAX_JSON_BYTES} bytes")))
        }
        Err(e) => Err(bad_request(format!("request body broke off: {e}"))),
    }
}

fn respond(status: StatusCode, v: &Value) -> Response<Body> {
    let body = if status == StatusCode::NO_CONTENT { Vec::new() } else { serde_json::to_vec(v).unwrap_or_default() };
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}
