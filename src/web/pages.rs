//! The portal's account pages: sign in and out, access tokens, teams, and for administrators users
//! and the audit log. Each reads and changes through the REST operations ([`App::rest`]) as the signed-in
//! caller; it never checks a permission itself beyond choosing what to show.

use super::layout::{confirm_form, copyable, csrf, encode, page, time};
use super::session::{self, set_cookie};
use super::{html, ja, jn, js, page_err, redirect, Ctx, PageResult};
use crate::app::App;
use crate::error::ApiError;
use http::{header, HeaderValue, Method, StatusCode};
use maud::html;
use serde_json::{json, Value};

/// A page that needs a signed-in user: anonymous callers are sent to sign in first.
pub(super) fn need_user(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.user().is_some() {
        Ok(())
    } else {
        Err(page_err(StatusCode::UNAUTHORIZED, "sign in to see this page"))
    }
}

/// Where to go after signing in: a path on this site only.
pub(super) fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && next.len() <= 2048 {
        next
    } else {
        "/projects"
    }
}

impl App {
    // ---- sign in and out ----

    pub(super) fn web_login_page(&self, ctx: &Ctx, error: Option<&str>) -> crate::body::Resp {
        let token = crate::auth::secrets::random_token::<24>();
        let next = safe_next(ctx.q("next").unwrap_or(ctx.f("next"))).to_string();
        let body = html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                fieldset {
                    legend { "Your Stowage account" }
                    div.field {
                        label for="username" { "User name" }
                        input type="text" id="username" name="username" autocomplete="username" required autofocus;
                    }
                    div.field {
                        label for="password" { "Password" }
                        input type="password" id="password" name="password" autocomplete="current-password" required;
                    }
                    p { button type="submit" { "Sign in" } }
                }
            }
            p.muted { "Access tokens are for docker login and the REST API; sign in here with your password." }
        };
        let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
        let mut r = html(status, page(ctx, "Sign in", body));
        if let Ok(v) = HeaderValue::from_str(&set_cookie(session::LOGIN_COOKIE, &token, self.secure_cookies())) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }

    pub(super) async fn web_login_post(&self, ctx: &Ctx) -> PageResult {
        let (user, pw) = (ctx.f("username").trim(), ctx.f("password"));
        if user.is_empty() || pw.is_empty() || user.len() > 256 || pw.len() > 1024 {
            return Ok(self.web_login_page(ctx, Some("give your user name and password")));
        }
        if crate::auth::secrets::parse_access_token(pw).is_some() {
            return Ok(self.web_login_page(ctx, Some("that is an access token; sign in with your password")));
        }
        let login = match self.auth.login(user, pw, ctx.peer).await {
            Ok(l) => l,
            Err(crate::auth::AuthError::Store(e)) => return Err(e.into()),
            Err(e @ crate::auth::AuthError::Busy) => {
                return Err(page_err(StatusCode::TOO_MANY_REQUESTS, e.to_string()))
            }
            // Slowed already by `Auth::login`, like every failed login.
            Err(_) => return Ok(self.web_login_page(ctx, Some("incorrect user name or password"))),
        };
        let (cookie, _) = self.portal.sessions.create(&login.user);
        self.auth.record(&login.user.username, ctx.peer, "portal.session", &login.user.username, true, None);
        let mut r = redirect(safe_next(ctx.f("next")));
        let secure = self.secure_cookies();
        for c in [set_cookie(session::COOKIE, &cookie, secure), set_cookie(session::LOGIN_COOKIE, "", secure)] {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        Ok(r)
    }

    pub(super) fn web_logout_page(&self, ctx: &Ctx) -> crate::body::Resp {
        let body = html! {
            @if ctx.session.is_some() {
                form method="post" action="/logout" {
                    (csrf(ctx))
                    p { button type="submit" { "Sign out" } }
                }
            } @else {
                p { "You are not signed in. " a href="/login" { "Sign in" } }
            }
        };
        html(StatusCode::OK, page(ctx, "Sign out", body))
    }

    pub(super) fn web_logout(&self, ctx: &Ctx) -> crate::body::Resp {
        if let Some(c) = &ctx.cookie {
            self.portal.sessions.end(c);
        }
        let mut r = redirect("/login");
        if let Ok(v) = HeaderValue::from_str(&set_cookie(session::COOKIE, "", self.secure_cookies())) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }

    // ---- access tokens ----

    pub(super) async fn web_tokens_page(&self, ctx: &Ctx, created: Option<&Value>) -> PageResult {
        need_user(ctx)?;
        let v = self.rest(ctx, Method::GET, &["tokens"], &[], Value::Null).await?;
        let now = stowage_engine::index::catalog::now_secs();
        let host = self.registry_host();
        let user = ctx.user().unwrap_or("");
        let body = html! {
            @if let Some(t) = created {
                section.secret aria-labelledby="new-token" {
                    h2 #new-token { "Your new access token “" (js(t, "name")) "”" }
                    p { strong { "Copy it now: it is shown only once." } }
                    p { (copyable(js(t, "token"), "access token")) }
                    p { "Log in with it:" }
                    p { (copyable(&format!("echo {} | docker login {host} -u {user} --password-stdin", js(t, "token")), "docker login command")) }
                }
            }
            h2 { "Create an access token" }
            form method="post" action="/tokens" {
                (csrf(ctx))
                fieldset {
                    legend { "New token" }
                    div.field { label for="token-name" { "Name" } input type="text" id="token-name" name="name" required maxlength="128" placeholder="ci-pipeline"; }
                    fieldset {
                        legend { "Scopes" }
                        @for (s, what) in [("view", "view: read projects and repositories"), ("download", "download: docker pull"), ("modify", "modify: docker push, changes")] {
                            div { input type="checkbox" name="scope" value=(s) id={ "scope-" (s) } checked[s != "modify"];
                                " " label for={ "scope-" (s) } { (what) } }
                        }
                    }
                    div.field { label for="token-days" { "Expires in (days, 1 to 366)" }
                        input type="number" id="token-days" name="expires_in_days" min="1" max="366" value="90" required; }
                    p { button type="submit" { "Create token" } }
                }
            }
            h2 { "Your access tokens" }
            @if ja(&v, "tokens").is_empty() {
                p.muted { "None yet." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Access tokens" { table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Created" }
                        th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Revoke" } } }
                    tbody { @for t in ja(&v, "tokens") {
                        @let live = !t.get("revoked").and_then(Value::as_bool).unwrap_or(false) && jn(t, "expires") > now;
                        tr {
                            td { (js(t, "name")) }
                            td { (ja(t, "scopes").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
                            td { (time(jn(t, "created"))) }
                            td { (time(jn(t, "expires"))) }
                            td { @if live { "active" } @else if t.get("revoked").and_then(Value::as_bool).unwrap_or(false) { "revoked" } @else { "expired" } }
                            td { @if live { (confirm_form(ctx, &format!("/tokens/{}/revoke", js(t, "id")),
                                &format!("Revoke {}", js(t, "name")), "Revoke", &format!("revoke-{}", js(t, "id")))) } }
                        }
                    } }
                } }
            }
        };
        Ok(html(if created.is_some() { StatusCode::CREATED } else { StatusCode::OK }, page(ctx, "Access tokens", body)))
    }

    pub(super) async fn web_create_token(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let days: u32 = ctx
            .f("expires_in_days")
            .trim()
            .parse()
            .map_err(|_| page_err(StatusCode::BAD_REQUEST, "expiry must be a number of days from 1 to 366"))?;
        let body = json!({ "name": ctx.f("name").trim(), "scopes": ctx.fs("scope"), "expires_in_days": days });
        let t = self.rest(ctx, Method::POST, &["tokens"], &[], body).await?;
        self.web_tokens_page(ctx, Some(&t)).await
    }

    pub(super) async fn web_revoke_token(&self, ctx: &Ctx, id: &str) -> PageResult {
        ctx.confirmed()?;
        self.rest(ctx, Method::DELETE, &["tokens", id], &[], Value::Null).await?;
        Ok(redirect("/tokens"))
    }

    // ---- teams ----

    pub(super) async fn web_teams_page(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let me = ctx.user().unwrap_or("").to_string();
        let admin = ctx.who.caller.is_admin();
        // The REST API has no "my teams" listing; the ids come from the store, every team shown
        // is read through the REST operation.
        let ids: Vec<u64> = self
            .blocking(move |app| app.auth.store.teams())
            .await??
            .into_iter()
            .filter(|t| admin || t.members.contains(&me) || t.managers.contains(&me))
            .map(|t| t.id)
            .take(500)
            .collect();
        let mut teams = Vec::new();
        for id in ids {
            teams.push(self.rest(ctx, Method::GET, &["teams", &id.to_string()], &[], Value::Null).await?);
        }
        let me = ctx.user().unwrap_or("");
        let body = html! {
            p.lead { "Teams you belong to or manage" @if admin { " (administrators see all)" } ". Share a project with "
                code { "team:<id>" } " in its sharing settings." }
            @for t in &teams {
                @let id = jn(t, "id");
                @let manages = admin || ja(t, "managers").iter().any(|m| m.as_str() == Some(me));
                section aria-labelledby={ "team-" (id) } {
                    h2 id={ "team-" (id) } { (js(t, "name")) " " span.badge { "team:" (id) } }
                    p { "Managers: " (ja(t, "managers").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
                    div.table-wrap tabindex="0" role="region" aria-label="Team members" { table {
                        thead { tr { th scope="col" { "Member" } @if manages { th scope="col" { "Remove" } } } }
                        tbody { @for m in ja(t, "members").iter().filter_map(Value::as_str) {
                            tr { td { (m) } @if manages { td { form method="post" action={ "/teams/" (id) "/members/" (encode(m)) "/remove" } {
                                (csrf(ctx)) button.secondary type="submit" aria-label={ "Remove " (m) " from " (js(t, "name")) } { "Remove" } } } } }
                        } }
                    } }
                    @if manages {
                        form.row method="post" action={ "/teams/" (id) "/members" } {
                            (csrf(ctx))
                            div.field { label for={ "add-" (id) } { "Add a member (user name)" }
                                input type="text" id={ "add-" (id) } name="username" required maxlength="64"; }
                            button type="submit" { "Add member" }
                        }
                    }
                }
            }
            @if teams.is_empty() { p.muted { "You are in no team yet." } }
            h2 { "Create a team" }
            form.row method="post" action="/teams" {
                (csrf(ctx))
                div.field { label for="team-name" { "Team name" } input type="text" id="team-name" name="name" required maxlength="128"; }
                button type="submit" { "Create team" }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Teams", body)))
    }

    pub(super) async fn web_create_team(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        self.rest(ctx, Method::POST, &["teams"], &[], json!({ "name": ctx.f("name") })).await?;
        Ok(redirect("/teams"))
    }

    pub(super) async fn web_team_member(&self, ctx: &Ctx, id: &str, remove: Option<&str>) -> PageResult {
        need_user(ctx)?;
        match remove {
            Some(u) => self.rest(ctx, Method::DELETE, &["teams", id, "members", u], &[], Value::Null).await?,
            None => {
                let u = ctx.f("username").trim();
                if u.is_empty() {
                    return Err(page_err(StatusCode::BAD_REQUEST, "give the user name of the new member"));
                }
                self.rest(ctx, Method::PUT, &["teams", id, "members", u], &[], Value::Null).await?
            }
        };
        Ok(redirect("/teams"))
    }

    // ---- administrators: users and the audit log ----

    pub(super) async fn web_users_page(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let v = self.rest(ctx, Method::GET, &["users"], &[], Value::Null).await?;
        let flag = |u: &Value, k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
        let body = html! {
            div.table-wrap tabindex="0" role="region" aria-label="Users" { table {
                thead { tr { th scope="col" { "User" } th scope="col" { "Administrator" } th scope="col" { "Certified (may push)" }
                    th scope="col" { "State" } th scope="col" { "Created" } } }
                tbody { @for u in ja(&v, "users") {
                    @let name = js(u, "username");
                    tr {
                        td { (name) }
                        td { @if flag(u, "admin") { "yes" } @else { "no" } }
                        td { form method="post" action={ "/admin/users/" (encode(name)) "/certified" } {
                            (csrf(ctx))
                            @if flag(u, "certified") { "yes " input type="hidden" name="value" value="false";
                                button.secondary type="submit" aria-label={ "Uncertify " (name) } { "Uncertify" } }
                            @else { "no " input type="hidden" name="value" value="true";
                                button type="submit" aria-label={ "Certify " (name) } { "Certify" } }
                        } }
                        td { form method="post" action={ "/admin/users/" (encode(name)) "/disabled" } {
                            (csrf(ctx))
                            @if flag(u, "disabled") { "disabled " input type="hidden" name="value" value="false";
                                button.secondary type="submit" aria-label={ "Enable " (name) } { "Enable" } }
                            @else { "active " input type="hidden" name="value" value="true";
                                button.danger type="submit" aria-label={ "Disable " (name) } { "Disable" } }
                        } }
                        td { (time(jn(u, "created"))) }
                    }
                } }
            } }
            h2 { "Create a user" }
            form method="post" action="/admin/users" {
                (csrf(ctx))
                fieldset {
                    legend { "New user" }
                    div.field { label for="new-username" { "User name" }
                        input type="text" id="new-username" name="username" required maxlength="64" pattern="[a-z0-9][a-z0-9._\\-]*"; }
                    div.field { label for="new-password" { "Password (8 or more characters)" }
                        input type="password" id="new-password" name="password" required minlength="8" autocomplete="new-password"; }
                    div { input type="checkbox" id="new-certified" name="certified" value="yes"; " " label for="new-certified" { "Certified (may push)" } }
                    div { input type="checkbox" id="new-admin" name="admin" value="yes"; " " label for="new-admin" { "Administrator" } }
                    p { button type="submit" { "Create user" } }
                }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Users", body)))
    }

    pub(super) async fn web_create_user(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let body = json!({
            "username": ctx.f("username").trim(), "password": ctx.f("password"),
            "certified": ctx.f("certified") == "yes", "admin": ctx.f("admin") == "yes",
        });
        self.rest(ctx, Method::POST, &["users"], &[], body).await?;
        Ok(redirect("/admin/users"))
    }

    pub(super) async fn web_user_flag(&self, ctx: &Ctx, user: &str, what: &str) -> PageResult {
        need_user(ctx)?;
        let value = match ctx.f("value") {
            "true" => true,
            "false" => false,
            other => return Err(page_err(StatusCode::BAD_REQUEST, format!("value {other:?} must be true or false"))),
        };
        let body = match what {
            "certified" => json!({ "certified": value }),
            "disabled" => json!({ "disabled": value }),
            _ => return Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at {}", ctx.path))),
        };
        self.rest(ctx, Method::PUT, &["users", user, what], &[], body).await?;
        Ok(redirect("/admin/users"))
    }

    pub(super) async fn web_audit_page(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let mut q: Vec<(&str, &str)> = vec![("limit", "100")];
        for k in ["actor", "target", "before"] {
            if let Some(v) = ctx.q(k).filter(|v| !v.is_empty()) {
                q.push((k, v));
            }
        }
        let v = self.rest(ctx, Method::GET, &["audit"], &q, Value::Null).await?;
        let (actor, target) = (ctx.q("actor").unwrap_or(""), ctx.q("target").unwrap_or(""));
        let body = html! {
            form.row method="get" action="/audit" {
                div.field { label for="actor" { "Actor" } input type="text" id="actor" name="actor" value=(actor); }
                div.field { label for="target" { "Target" } input type="text" id="target" name="target" value=(target); }
                button type="submit" { "Filter" }
            }
            div.table-wrap tabindex="0" role="region" aria-label="Audit events" { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Address" } th scope="col" { "Action" }
                    th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                tbody { @for e in ja(&v, "events") { tr {
                    td { (time(jn(e, "time"))) } td { (js(e, "actor")) } td { (js(e, "address")) } td { code { (js(e, "action")) } }
                    td.wrap { (js(e, "target")) } td { (js(e, "outcome")) } td.wrap { (js(e, "detail")) }
                } } }
            } }
            @if let Some(n) = v.get("next_before").and_then(Value::as_u64) {
                p.pager { a href={ "/audit?before=" (n) "&actor=" (encode(actor)) "&target=" (encode(target)) } { "Older events" } }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Audit log", body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/syn3/app"), "/syn3/app");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(safe_next(bad), "/projects");
        }
    }
}
