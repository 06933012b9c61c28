//! The REST API under `/api/v1/` (DESIGN.md section 3): JSON in and out, errors as
//! `{"error":{"code","message"}}`, described by `openapi.json` served at `/api/v1/openapi.json`.
//! Callers authenticate with Basic (password or access token), `Bearer <access token>`, or a
//! registry token. Permission checks use the same rules as the registry.

mod entities;
mod users;

use crate::access::rules::Caller;
use crate::auth::AuthError;
use crate::handlers::App;
use crate::server::{full, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest JSON request body.
const MAX_JSON_BYTES: usize = 64 * 1024;
/// Deepest JSON nesting accepted.
const MAX_JSON_DEPTH: usize = 16;

/// A REST error: status, a stable code, and a message saying what to do.
#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult = Result<(StatusCode, Value), ApiErr>;

pub fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiErr {
    ApiErr { status, code, message: message.into() }
}

pub fn bad_request(m: impl Into<String>) -> ApiErr {
    err(StatusCode::BAD_REQUEST, "bad_request", m)
}

pub fn not_found(m: impl Into<String>) -> ApiErr {
    err(StatusCode::NOT_FOUND, "not_found", m)
}

pub fn forbidden(m: impl Into<String>) -> ApiErr {
    err(StatusCode::FORBIDDEN, "forbidden", m)
}

impl From<stowage_engine::Error> for ApiErr {
    fn from(e: stowage_engine::Error) -> ApiErr {
        tracing::error!(error = %e, "storage error in REST API");
        err(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the registry log has the details")
    }
}

/// The request as handlers see it.
pub struct Call {
    pub method: Method,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub caller: Caller,
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
        if name.is_empty() || name.len() > max {
            return Err(bad_request(format!("{what} name must be 1 to {max} characters")));
        }
        Ok(name.to_string())
    }

    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    /// The caller's user name, or 401.
    pub fn user(&self) -> Result<&str, ApiErr> {
        self.caller.user.as_ref().map(|u| u.name.as_str()).ok_or_else(|| {
            err(StatusCode::UNAUTHORIZED, "unauthorized", "log in: use Basic credentials or an access token")
        })
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
    pub async fn api(&self, req: Request<Incoming>) -> Response<Body> {
        match self.api_inner(req).await {
            Ok((status, v)) => respond(status, &v),
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::error!(status = e.status.as_u16(), message = %e.message, "REST request failed");
                } else {
                    tracing::info!(status = e.status.as_u16(), message = %e.message, "REST request refused");
                }
                let mut r =
                    respond(e.status, &serde_json::json!({ "error": { "code": e.code, "message": e.message } }));
                if e.status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"stowage\""));
                }
                r
            }
        }
    }

    async fn api_inner(&self, req: Request<Incoming>) -> ApiResult {
        let path = req.uri().path().to_string();
        let segs: Vec<String> = path
            .trim_start_matches("/api/v1/")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(crate::router::percent_decode)
            .collect();
        let query = crate::handlers::form_pairs(req.uri().query().unwrap_or(""));
        let method = req.method().clone();
        if method == Method::GET && segs == ["openapi.json"] {
            let v: Value = serde_json::from_str(OPENAPI).map_err(|e| bad_request(e.to_string()))?;
            return Ok((StatusCode::OK, v));
        }
        let caller = match self.auth.authenticate(req.headers()).await {
            Ok(a) => a.caller,
            Err(AuthError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(err(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())),
        };
        let body = read_json_body(req.into_body(), self.small_body_deadline(MAX_JSON_BYTES)).await?;
        let call = Call { method, segs, query, caller, body };
        let s: Vec<&str> = call.segs.iter().map(String::as_str).collect();
        let m = call.method.clone();
        match (m, s.as_slice()) {
            (Method::POST, ["users"]) => self.create_user(&call).await,
            (Method::GET, ["users", u]) => self.get_user(&call, u),
            (Method::PUT, ["users", u, "certified"]) => self.certify(&call, u),
            (Method::POST, ["teams"]) => self.create_team(&call),
            (Method::GET, ["teams", id]) => self.get_team(&call, id),
            (Method::PUT, ["teams", id, "members", u]) => self.team_member(&call, id, u, true),
            (Method::DELETE, ["teams", id, "members", u]) => self.team_member(&call, id, u, false),
            (Method::POST, ["tokens"]) => self.create_token(&call),
            (Method::GET, ["tokens"]) => self.list_tokens(&call),
            (Method::DELETE, ["tokens", id]) => self.revoke_token(&call, id),
            (Method::POST, ["projects"]) => self.create_project(&call),
            (Method::GET, ["projects"]) => self.list_projects(&call),
            (Method::GET, ["projects", id]) => self.get_project(&call, id),
            (Method::GET, ["projects", id, "repositories"]) => self.project_repositories(&call, id),
            (Method::POST, ["projects", id, "external-repositories"]) => self.create_external(&call, id),
            (Method::GET, ["projects", id, "usage"]) => self.usage(&call, id),
            (Method::GET, ["entities", id, "acl"]) => self.get_acl(&call, id),
            (Method::PUT, ["entities", id, "acl"]) => self.put_acl(&call, id),
            (Method::DELETE, ["entities", id, "acl"]) => self.delete_acl(&call, id),
            (Method::DELETE, ["entities", id]) => self.trash_entity(&call, id),
            (Method::GET, ["repositories"]) => self.find_repository(&call),
            (Method::GET, ["repositories", id]) => self.get_repository(&call, id),
            (Method::GET, ["repositories", id, "tags"]) => self.repository_tags(&call, id),
            (Method::GET, ["repositories", id, "commits"]) => self.repository_commits(&call, id),
            (Method::POST, ["repositories", id, "commits"]) => self.add_commit(&call, id),
            (Method::GET, ["trash"]) => self.list_trash(&call),
            (Method::POST, ["trash", id, "restore"]) => self.restore(&call, id),
            (Method::DELETE, ["trash", id]) => self.purge(&call, id),
            (Method::POST, ["gc"]) => self.gc(&call).await,
            _ => Err(not_found(format!("{} {path} is not an API route; see /api/v1/openapi.json", call.method))),
        }
    }
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
            "request_timeout",
            format!("the request body did not arrive within {} s", deadline.as_secs_f64()),
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(err(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("request body is over {MAX_JSON_BYTES} bytes")))
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
