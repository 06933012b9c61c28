//! The web portal (DESIGN.md section 3): server-rendered pages on the registry's own listener, at
//! addresses people can guess: `/<projectId>` is a project, `/<projectId>/<repo path>` a
//! repository (its Docker name), plus `/login`, `/logout`, `/projects`, `/trash`, `/tokens`,
//! `/teams`, `/admin/users` and `/audit`. Actions on an entity live under `/<id>/-/...` (`-` can
//! never be a Docker name component), the stylesheet and script under `/-/`.
//!
//! The portal is one more credential path, never a new hole: a session stands for the password
//! login that made it (see [`session`]), and every read and change a page makes goes through
//! [`App::invoke`], the REST API's own route table, credential check and handlers. Every POST
//! carries the session's CSRF token and is refused when it comes from another origin. This module
//! never decides a permission itself and never writes the index directly.

mod layout;
mod pages;
mod project;
mod repo;
pub mod session;
pub mod tags;

use crate::app::App;
use crate::auth::{Authenticated, CredentialKind};
use crate::body::{full, Resp};
use crate::error::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use maud::Markup;
use serde_json::Value;
use session::Session;
use std::net::IpAddr;

/// The header a REST call authenticated by the session cookie must carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest form body.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The portal's state in [`App`].
#[derive(Default)]
pub struct Portal {
    pub sessions: session::Sessions,
}

/// Is `path` the portal's? Everything but the registry (`/v2`), the REST API (`/api/`) and the
/// operations endpoints, which the router claims first.
pub fn serves(path: &str) -> bool {
    !(path == "/api" || path.starts_with("/api/") || path == "/v2" || path.starts_with("/v2/"))
}

/// What a page handler knows about its request.
pub struct Ctx {
    pub session: Option<Session>,
    pub who: Authenticated,
    pub peer: IpAddr,
    pub method: Method,
    /// The request path, as sent.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The decoded fields of a POSTed form, in order.
    pub form: Vec<(String, String)>,
    /// The session cookie as sent (to end it at sign-out).
    pub cookie: Option<String>,
    /// The sign-in form's CSRF cookie as sent.
    pub login_cookie: Option<String>,
}

impl Ctx {
    pub fn user(&self) -> Option<&str> {
        self.who.caller.user.as_ref().map(|u| u.name.as_str())
    }

    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    pub fn f(&self, k: &str) -> &str {
        self.form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Every value of a repeated form field, in order.
    pub fn fs(&self, k: &str) -> Vec<&str> {
        self.form.iter().filter(|(a, _)| a == k).map(|(_, v)| v.as_str()).collect()
    }

    /// The confirmation checkbox of a destructive form was ticked.
    pub fn confirmed(&self) -> Result<(), ApiError> {
        if self.f("confirm") == "yes" {
            Ok(())
        } else {
            Err(page_err(StatusCode::BAD_REQUEST, "tick the confirmation box to do this"))
        }
    }
}

/// An error a page shows with this status.
pub fn page_err(status: StatusCode, message: impl Into<String>) -> ApiError {
    crate::api::err(status, message)
}

type PageResult = Result<Resp, ApiError>;

/// A page: HTML, never cached, never framed, scripts and forms only from this origin.
pub fn html(status: StatusCode, m: Markup) -> Resp {
    let body = m.into_string();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

/// 303 See Other to `to` (a path on this server), after a POST or for a page that moved.
pub fn redirect(to: &str) -> Resp {
    let mut r = Response::new(crate::body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Resp {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

impl App {
    /// Serves a portal page. Errors become pages a person can act on.
    pub async fn portal(&self, req: Request<Incoming>, peer: IpAddr) -> Resp {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/-/style.css" => return asset("text/css; charset=utf-8", layout::STYLE),
            "/-/portal.js" => return asset("text/javascript; charset=utf-8", layout::SCRIPT),
            _ => {}
        }
        let mut ctx = Ctx {
            session: None,
            who: Authenticated {
                caller: crate::access::rules::Caller::anonymous(),
                kind: CredentialKind::Anonymous,
                claims: None,
                token: None,
            },
            peer,
            method: req.method().clone(),
            query: crate::handlers::form_pairs(req.uri().query().unwrap_or("")),
            path,
            form: Vec::new(),
            cookie: session::cookie(req.headers(), session::COOKIE).map(str::to_string),
            login_cookie: session::cookie(req.headers(), session::LOGIN_COOKIE).map(str::to_string),
        };
        let res = self.portal_inner(req, &mut ctx).await;
        let mut resp = match res {
            Ok(r) => r,
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::error!(path = %ctx.path, status = e.status.as_u16(), error = %e.message, "portal page failed");
                } else {
                    tracing::info!(path = %ctx.path, status = e.status.as_u16(), error = %e.message, "portal page refused");
                }
                let message = if e.status.is_server_error() && e.status != StatusCode::SERVICE_UNAVAILABLE {
                    "the registry could not finish this request".to_string()
                } else {
                    e.message.clone()
                };
                html(e.status, layout::error_page(&ctx, e.status, &message))
            }
        };
        if ctx.method == Method::HEAD {
            *resp.body_mut() = crate::body::empty();
        }
        resp
    }

    async fn portal_inner(&self, req: Request<Incoming>, ctx: &mut Ctx) -> PageResult {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD && method != Method::POST {
            return Err(page_err(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not used by the portal")));
        }
        if let Some((s, who)) = self.session_of(req.headers())? {
            ctx.session = Some(s);
            ctx.who = who;
        }
        if method == Method::POST {
            self.check_origin(req.headers())?;
            let body = read_form(req.into_body(), self.small_body_deadline(MAX_FORM_BYTES)).await?;
            let text = std::str::from_utf8(&body)
                .map_err(|_| page_err(StatusCode::BAD_REQUEST, "the form was not sent as UTF-8 text"))?;
            ctx.form = crate::handlers::form_pairs(text);
            let sent = ctx.f("csrf").to_string();
            let ok = if ctx.path == "/login" {
                ctx.login_cookie
                    .as_deref()
                    .is_some_and(|c| crate::auth::secrets::constant_time_eq(c.as_bytes(), sent.as_bytes()))
            } else {
                ctx.session.as_ref().is_some_and(|s| s.csrf_ok(&sent))
            };
            if !ok {
                return Err(page_err(
                    StatusCode::FORBIDDEN,
                    if ctx.session.is_none() && ctx.path != "/login" {
                        "you are not signed in (or your session ended); sign in and send the form again"
                    } else {
                        "this form is out of date or did not come from this site; reload the page and try again"
                    },
                ));
            }
        }
        let segs: Vec<String> =
            ctx.path.split('/').filter(|s| !s.is_empty()).map(crate::router::percent_decode).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let post = method == Method::POST;
        match (post, segs.as_slice()) {
            (false, []) => Ok(redirect("/projects")),
            (false, ["login"]) => Ok(self.web_login_page(ctx, None)),
            (true, ["login"]) => self.web_login_post(ctx).await,
            (false, ["logout"]) => Ok(self.web_logout_page(ctx)),
            (true, ["logout"]) => Ok(self.web_logout(ctx)),
            (false, ["projects"]) => self.web_projects_page(ctx).await,
            (true, ["projects"]) => self.web_create_project(ctx).await,
            (false, ["trash"]) => self.web_trash_page(ctx).await,
            (true, ["trash", id, action]) => self.web_trash_action(ctx, id, action).await,
            (false, ["tokens"]) => self.web_tokens_page(ctx, None).await,
            (true, ["tokens"]) => self.web_create_token(ctx).await,
            (true, ["tokens", id, "revoke"]) => self.web_revoke_token(ctx, id).await,
            (false, ["teams"]) => self.web_teams_page(ctx).await,
            (true, ["teams"]) => self.web_create_team(ctx).await,
            (true, ["teams", id, "members"]) => self.web_team_member(ctx, id, None).await,
            (true, ["teams", id, "members", user, "remove"]) => self.web_team_member(ctx, id, Some(user)).await,
            (false, ["admin", "users"]) => self.web_users_page(ctx).await,
            (true, ["admin", "users"]) => self.web_create_user(ctx).await,
            (true, ["admin", "users", user, what]) => self.web_user_flag(ctx, user, what).await,
            (false, ["audit"]) => self.web_audit_page(ctx).await,
            (_, [first, ..]) if first.starts_with("syn") => self.entity_route(ctx, post, &segs).await,
            _ => Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at {}", ctx.path))),
        }
    }

    /// `/<id>[/-/action]` and `/<projectId>/<repo path>[/-/...]`.
    async fn entity_route(&self, ctx: &Ctx, post: bool, segs: &[&str]) -> PageResult {
        let split = segs.iter().position(|s| *s == "-").unwrap_or(segs.len());
        let (name, action) = (&segs[..split], segs.get(split + 1..).unwrap_or(&[]));
        if name.len() == 1 {
            let id = name[0];
            return match (post, action) {
                (false, []) => self.web_entity_page(ctx, id).await,
                (false, ["sharing"]) => self.web_sharing_page(ctx, id).await,
                (true, ["sharing"]) => self.web_sharing_set(ctx, id).await,
                (true, ["sharing", "local"]) => self.web_sharing_local(ctx, id).await,
                (true, ["sharing", "inherit"]) => self.web_sharing_inherit(ctx, id).await,
                (true, ["trash"]) => self.web_trash_entity(ctx, id).await,
                (true, ["external"]) => self.web_add_external(ctx, id).await,
                (true, ["commits"]) => self.web_add_commit(ctx, id).await,
                _ => Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at {}", ctx.path))),
            };
        }
        let repo = name.join("/");
        match (post, action) {
            (false, []) => self.web_repository_page(ctx, &repo).await,
            (false, ["tags", tag]) => self.web_tag_history_page(ctx, &repo, tag).await,
            _ => Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at {}", ctx.path))),
        }
    }

    /// A REST operation as the page's caller (see [`App::invoke`]); the JSON answer.
    pub(crate) async fn rest(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Value,
    ) -> Result<Value, ApiError> {
        let segs = path.iter().map(|s| s.to_string()).collect();
        let query = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (_, v) = self.invoke(&ctx.who, ctx.peer, method, segs, query, body).await?;
        Ok(v)
    }

    /// Refuses a POST whose `Origin` (or, without one, `Referer`) is another site's: a form on
    /// another site must not act here even if a browser sent the cookie along.
    fn check_origin(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let from = headers
            .get(header::ORIGIN)
            .or_else(|| headers.get(header::REFERER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(from) = from else { return Ok(()) };
        let public = self.settings.public_url.clone().unwrap_or_default();
        let origin_of = |u: &str| -> String {
            let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
            format!("{scheme}://{}", rest.split('/').next().unwrap_or(""))
        };
        let from = origin_of(&from);
        let same = from == format!("http://{host}")
            || from == format!("https://{host}")
            || (!public.is_empty() && from == origin_of(&public));
        if same {
            Ok(())
        } else {
            Err(page_err(
                StatusCode::FORBIDDEN,
                "this form was sent from another site; the portal accepts forms only from its own pages",
            ))
        }
    }
}

/// Reads a form body of at most [`MAX_FORM_BYTES`] that must arrive within `deadline`.
async fn read_form(body: Incoming, deadline: std::time::Duration) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_FORM_BYTES);
    let Ok(collected) = tokio::time::timeout(deadline, limited.collect()).await else {
        return Err(page_err(StatusCode::REQUEST_TIMEOUT, "the form did not arrive in time; send it again"));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(page_err(StatusCode::PAYLOAD_TOO_LARGE, format!("the form is over {MAX_FORM_BYTES} bytes")))
        }
        Err(e) => Err(page_err(StatusCode::BAD_REQUEST, format!("the form broke off: {e}"))),
    }
}

/// A JSON string field, or "".
pub fn js<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A JSON number field, or 0.
pub fn jn(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// A JSON array field, or empty.
pub fn ja<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_never_claims_registry_or_api_paths() {
        for p in ["/v2/", "/v2", "/v2/syn1/app/tags/list", "/api/v1/projects", "/api", "/api/x"] {
            assert!(!serves(p), "{p}");
        }
        for p in ["/", "/login", "/projects", "/syn1", "/syn1/app/x", "/admin/users", "/audit", "/-/style.css"] {
            assert!(serves(p), "{p}");
        }
    }
}
