//! The portal's project pages: the projects list, a project's Docker tab, external repositories
//! and their commits, sharing settings of a project or repository, and the trash. Each reads and
//! changes through the REST operations ([`App::rest`]) as the signed-in caller; it never checks a
//! permission itself beyond choosing which forms to show.

use super::layout::{confirm_form, copyable, csrf, page, size, time};
use super::pages::need_user;
use super::{html, ja, jn, js, page_err, redirect, Ctx, PageResult};
use crate::access::rules::{can, AccessType, Acl};
use crate::access::store::parse_entity_id;
use crate::app::App;
use crate::error::ApiError;
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::{json, Value};

/// Named levels, as the sharing form offers them.
const LEVELS: [(&str, &str); 5] = [
    ("view", "View"),
    ("download", "Download"),
    ("edit", "Edit"),
    ("edit_delete", "Edit and delete"),
    ("admin", "Administer"),
];

/// The level whose access set is exactly `access`, else the access types joined.
fn level_of(access: &[Value]) -> String {
    let set: std::collections::BTreeSet<AccessType> =
        access.iter().filter_map(|a| serde_json::from_value(a.clone()).ok()).collect();
    for (name, _) in LEVELS {
        if crate::access::rules::level(name).as_ref() == Some(&set) {
            return name.to_string();
        }
    }
    access.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
}

impl App {
    // ---- projects ----

    pub(super) async fn web_projects_page(&self, ctx: &Ctx) -> PageResult {
        let v = self.rest(ctx, Method::GET, &["projects"], &[], Value::Null).await?;
        let mut rows = Vec::new();
        for p in ja(&v, "projects") {
            let id = js(p, "id");
            let u = self.rest(ctx, Method::GET, &["projects", id, "usage"], &[], Value::Null).await?;
            rows.push((p.clone(), jn(&u, "logical_bytes") as u64, ja(&u, "repositories").len()));
        }
        let body = html! {
            @if rows.is_empty() {
                p { "No projects you may see yet." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Projects" { table {
                    caption.muted { "Projects you may read, with the storage their repositories use" }
                    thead { tr { th scope="col" { "Project" } th scope="col" { "Id" } th scope="col" { "Created by" }
                        th.num scope="col" { "Repositories" } th.num scope="col" { "Storage" } } }
                    tbody {
                        @for (p, bytes, repos) in &rows {
                            tr {
                                td { a href={ "/" (js(p, "id")) } { (js(p, "name")) } }
                                td { code { (js(p, "id")) } }
                                td { (js(p, "created_by")) }
                                td.num { (repos) }
                                td.num { (size(*bytes)) }
                            }
                        }
                    }
                } }
            }
            @if ctx.user().is_some() {
                h2 { "Create a project" }
                form.row method="post" action="/projects" {
                    (csrf(ctx))
                    div.field {
                        label for="project-name" { "Project name" }
                        input type="text" id="project-name" name="name" required maxlength="256";
                    }
                    button type="submit" { "Create project" }
                }
            } @else {
                p { a href="/login?next=/projects" { "Sign in" } " to see your projects and create one." }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Projects", body)))
    }

    pub(super) async fn web_create_project(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let v = self.rest(ctx, Method::POST, &["projects"], &[], json!({ "name": ctx.f("name") })).await?;
        Ok(redirect(&format!("/{}", js(&v, "id"))))
    }

    /// `/<id>`: a project's Docker tab, an external repository's page, or (for a managed
    /// repository's id) a redirect to its page by name.
    pub(super) async fn web_entity_page(&self, ctx: &Ctx, id: &str) -> PageResult {
        if parse_entity_id(id).is_none() {
            return Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at /{id}")));
        }
        match self.rest(ctx, Method::GET, &["projects", id], &[], Value::Null).await {
            Ok(p) => self.web_project_page(ctx, &p).await,
            Err(e) if e.status != StatusCode::NOT_FOUND => Err(e),
            Err(first) => match self.rest(ctx, Method::GET, &["repositories", id], &[], Value::Null).await {
                Ok(r) if js(&r, "kind") == "repository" => Ok(redirect(&format!("/{}", js(&r, "name")))),
                Ok(r) => self.web_external_page(ctx, &r).await,
                // The project's answer: the same for a hidden and a missing entity.
                Err(_) => Err(first),
            },
        }
    }

    async fn web_project_page(&self, ctx: &Ctx, p: &Value) -> PageResult {
        let id = js(p, "id");
        // One page of the project's repositories (the REST listing's page size), with a link to
        // the next.
        let q: Vec<(&str, &str)> = ["cursor", "limit"].into_iter().filter_map(|k| ctx.q(k).map(|v| (k, v))).collect();
        let repos = self.rest(ctx, Method::GET, &["projects", id, "repositories"], &q, Value::Null).await?;
        // The REST `next` is `...?limit=N&cursor=C`: the page keeps both.
        let next =
            repos.get("next").and_then(Value::as_str).and_then(|n| n.split_once('?')).map(|(_, q)| q.to_string());
        let usage = self.rest(ctx, Method::GET, &["projects", id, "usage"], &[], Value::Null).await?;
        let acl = self.rest(ctx, Method::GET, &["entities", id, "acl"], &[], Value::Null).await?;
        let mine = self.web_my_access(ctx, &acl);
        let managed: Vec<Value> =
            ja(&repos, "repositories").iter().filter(|r| js(r, "kind") == "repository").cloned().collect();
        let external: Vec<Value> =
            ja(&repos, "repositories").iter().filter(|r| js(r, "kind") == "external_repository").cloned().collect();
        let ids: Vec<u64> = managed.iter().filter_map(|r| parse_entity_id(js(r, "id"))).collect();
        let summaries = self
            .blocking(move |app| ids.iter().map(|id| app.web_repo_summary(*id)).collect::<Result<Vec<_>, _>>())
            .await??;
        let host = self.registry_host();
        let body = html! {
            p.lead { "Project " code { (id) } " · created by " (js(p, "created_by")) " · "
                (size(jn(&usage, "logical_bytes") as u64)) " stored" }
            ul.tabs {
                li { a href={ "/" (id) } aria-current="page" { "Docker" } }
                li { a href={ "/" (id) "/-/sharing" } { "Sharing settings" } }
            }
            h2 { "Repositories" }
            @if managed.is_empty() {
                p { "No repositories yet. Push one:" }
                p { (copyable(&format!("docker push {host}/{id}/<repository>:<tag>"), "push command")) }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Repositories" { table {
                    thead { tr { th scope="col" { "Repository" } th.num scope="col" { "Tags" } th scope="col" { "Last push" }
                        th.num scope="col" { "Size" } } }
                    tbody {
                        @for (r, (count, last)) in managed.iter().zip(&summaries) {
                            tr {
                                td { a href={ "/" (js(r, "name")) } { (js(r, "name")) } }
                                td.num { (count) }
                                td { @if let Some(t) = last { (time(*t)) } @else { span.muted { "never" } } }
                                td.num { (size(jn(r, "logical_bytes") as u64)) }
                            }
                        }
                    }
                } }
            }
            @if let Some(c) = &next {
                nav.pager aria-label="More repositories" { a href={ "/" (id) "?" (c) } rel="next" { "Next page" } }
            }
            h2 { "External repositories" }
            @if external.is_empty() {
                p.muted { "None listed." }
            } @else {
                ul { @for x in &external { li { a href={ "/" (js(x, "id")) } { (js(x, "name")) } " " code { (js(x, "id")) } } } }
            }
            @if mine.contains(&AccessType::Create) {
                form.row method="post" action={ "/" (id) "/-/external" } {
                    (csrf(ctx))
                    div.field {
                        label for="external-name" { "List an external repository" }
                        input type="text" id="external-name" name="repository_name" required maxlength="255"
                            placeholder="quay.io/org/tool";
                    }
                    button type="submit" { "Add external repository" }
                }
            }
            @if mine.contains(&AccessType::Delete) {
                h2 { "Trash" }
                (confirm_form(ctx, &format!("/{id}/-/trash"), "Move this project and its repositories to the trash",
                    "Move to trash", "trash-project"))
            }
        };
        Ok(html(StatusCode::OK, page(ctx, &format!("{} ({id})", js(p, "name")), body)))
    }

    /// Tag count and last push of a managed repository: the count record and the last entry of
    /// the push-time index, two reads whatever the number of tags.
    fn web_repo_summary(&self, id: u64) -> Result<(usize, Option<i64>), ApiError> {
        let cat = self.engine.catalog();
        Ok((cat.count_tags(id)?, cat.last_push(id)?))
    }

    /// What the caller may do on an entity, from its sharing settings as the REST API returned
    /// them: for showing forms only; every change is checked again on the server.
    pub(super) fn web_my_access(&self, ctx: &Ctx, acl: &Value) -> Vec<AccessType> {
        let entries = acl.get("entries").cloned().unwrap_or(Value::Null);
        let acl: Acl = serde_json::from_value(json!({ "entries": entries })).unwrap_or_default();
        AccessType::ALL.into_iter().filter(|a| can(&ctx.who.caller, &acl, *a)).collect()
    }

    async fn web_external_page(&self, ctx: &Ctx, r: &Value) -> PageResult {
        let id = js(r, "id");
        let commits =
            self.rest(ctx, Method::GET, &["repositories", id, "commits"], &[("limit", "1000")], Value::Null).await?;
        let acl = self.rest(ctx, Method::GET, &["entities", id, "acl"], &[], Value::Null).await?;
        let mine = self.web_my_access(ctx, &acl);
        let project = r.get("project").and_then(Value::as_str).unwrap_or("");
        let body = html! {
            p.lead { "External repository " code { (id) } " in project " a href={ "/" (project) } { (project) }
                ". Stowage lists its tags and digests as people commit them here; it never contacts that registry." }
            ul.tabs {
                li { a href={ "/" (id) } aria-current="page" { "Commits" } }
                li { a href={ "/" (id) "/-/sharing" } { "Sharing settings" } }
            }
            @if ja(&commits, "commits").is_empty() {
                p.muted { "No commits yet." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Commits" { table {
                    thead { tr { th scope="col" { "Tag" } th scope="col" { "Digest" } th scope="col" { "Pull" } th scope="col" { "Committed" } th scope="col" { "By" } } }
                    tbody { @for c in ja(&commits, "commits").iter().rev() {
                        tr {
                            td { (js(c, "tag")) }
                            td { (super::layout::short_digest(js(c, "digest"))) }
                            td { (copyable(&format!("docker pull {}@{}", js(r, "name"), js(c, "digest")), "pull command")) }
                            td { (time(jn(c, "time"))) }
                            td { (js(c, "pusher")) }
                        }
                    } }
                } }
            }
            @if mine.contains(&AccessType::Update) {
                h2 { "Commit a tag" }
                form.row method="post" action={ "/" (id) "/-/commits" } {
                    (csrf(ctx))
                    div.field { label for="commit-tag" { "Tag" } input type="text" id="commit-tag" name="tag" required maxlength="128"; }
                    div.field { label for="commit-digest" { "Digest" }
                        input type="text" id="commit-digest" name="digest" required placeholder="sha256:…" size="71"; }
                    button type="submit" { "Add commit" }
                }
            }
            @if mine.contains(&AccessType::Delete) {
                h2 { "Trash" }
                (confirm_form(ctx, &format!("/{id}/-/trash"), "Move this external repository to the trash", "Move to trash", "trash-external"))
            }
        };
        Ok(html(StatusCode::OK, page(ctx, js(r, "name"), body)))
    }

    pub(super) async fn web_add_external(&self, ctx: &Ctx, id: &str) -> PageResult {
        let body = json!({ "repository_name": ctx.f("repository_name") });
        let v = self.rest(ctx, Method::POST, &["projects", id, "external-repositories"], &[], body).await?;
        Ok(redirect(&format!("/{}", js(&v, "id"))))
    }

    pub(super) async fn web_add_commit(&self, ctx: &Ctx, id: &str) -> PageResult {
        let body = json!({ "tag": ctx.f("tag").trim(), "digest": ctx.f("digest").trim() });
        self.rest(ctx, Method::POST, &["repositories", id, "commits"], &[], body).await?;
        Ok(redirect(&format!("/{id}")))
    }

    pub(super) async fn web_trash_entity(&self, ctx: &Ctx, id: &str) -> PageResult {
        ctx.confirmed()?;
        self.rest(ctx, Method::DELETE, &["entities", id], &[], Value::Null).await?;
        Ok(redirect("/trash"))
    }

    // ---- sharing settings ----

    pub(super) async fn web_sharing_page(&self, ctx: &Ctx, id: &str) -> PageResult {
        let acl = self.rest(ctx, Method::GET, &["entities", id, "acl"], &[], Value::Null).await?;
        let (what, back, is_project) = match self.rest(ctx, Method::GET, &["projects", id], &[], Value::Null).await {
            Ok(p) => (format!("project {} ({id})", js(&p, "name")), format!("/{id}"), true),
            Err(_) => {
                let r = self.rest(ctx, Method::GET, &["repositories", id], &[], Value::Null).await?;
                let back =
                    if js(&r, "kind") == "repository" { format!("/{}", js(&r, "name")) } else { format!("/{id}") };
                (format!("repository {}", js(&r, "name")), back, false)
            }
        };
        let inherited = acl.get("inherited").and_then(Value::as_bool).unwrap_or(false);
        let benefactor = js(&acl, "benefactor");
        let editable = self.web_my_access(ctx, &acl).contains(&AccessType::ChangePermissions);
        let entries = ja(&acl, "entries");
        let body = html! {
            p.lead { "Sharing settings of " a href=(back) { (what) } "." }
            @if inherited {
                p.notice { "Inherited from project " a href={ "/" (benefactor) "/-/sharing" } { (benefactor) }
                    ": this repository has no settings of its own." }
            } @else if !is_project {
                p.notice { "Local settings: this repository does not follow its project's sharing settings." }
            }
            div.table-wrap tabindex="0" role="region" aria-label="Sharing settings" { table {
                caption.muted { "Who has which level" }
                thead { tr { th scope="col" { "Who" } th scope="col" { "Level" } } }
                tbody { @for e in entries { tr { td { (js(e, "principal")) } td { (level_of(ja(e, "access"))) } } } }
            } }
            @if !editable {
                p.muted { "You may not change these settings (it takes the Administer level, CHANGE_PERMISSIONS)." }
            } @else if inherited {
                form method="post" action={ "/" (id) "/-/sharing/local" } {
                    (csrf(ctx))
                    p { button type="submit" { "Use local sharing settings for this repository" } }
                    p.muted { "Starts from a copy of the project's settings; change them afterwards." }
                }
            } @else {
                h2 { "Change sharing settings" }
                form method="post" action={ "/" (id) "/-/sharing" } {
                    (csrf(ctx))
                    fieldset {
                        legend { "Entries (choose “Remove” to drop one)" }
                        @for (i, e) in entries.iter().enumerate() {
                            (acl_row(i, js(e, "principal"), &level_of(ja(e, "access")), true))
                        }
                        (acl_row(entries.len(), "", "download", false))
                    }
                    p.muted { "Who: " code { "user:<name>" } ", " code { "team:<id>" } ", " code { "authenticated" }
                        " (anyone signed in) or " code { "public" } " (anyone)." }
                    p { button type="submit" { "Save sharing settings" } }
                }
                @if !is_project {
                    h2 { "Inherit again" }
                    (confirm_form(ctx, &format!("/{id}/-/sharing/inherit"),
                        "Drop this repository's own settings and follow the project's", "Inherit from project", "inherit"))
                }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Sharing settings", body)))
    }

    pub(super) async fn web_sharing_set(&self, ctx: &Ctx, id: &str) -> PageResult {
        let (who, levels) = (ctx.fs("principal"), ctx.fs("level"));
        if who.len() != levels.len() {
            return Err(page_err(StatusCode::BAD_REQUEST, "each entry needs a principal and a level"));
        }
        let mut entries = Vec::new();
        for (p, l) in who.iter().zip(&levels) {
            let p = p.trim();
            if p.is_empty() || *l == "remove" {
                continue;
            }
            if !LEVELS.iter().any(|(n, _)| n == l) {
                return Err(page_err(StatusCode::BAD_REQUEST, format!("level {l:?} is not one of the offered levels")));
            }
            entries.push(json!({ "principal": p, "access": [l] }));
        }
        self.rest(ctx, Method::PUT, &["entities", id, "acl"], &[], json!({ "entries": entries })).await?;
        Ok(redirect(&format!("/{id}/-/sharing")))
    }

    pub(super) async fn web_sharing_local(&self, ctx: &Ctx, id: &str) -> PageResult {
        let acl = self.rest(ctx, Method::GET, &["entities", id, "acl"], &[], Value::Null).await?;
        let entries = acl.get("entries").cloned().unwrap_or(json!([]));
        self.rest(ctx, Method::PUT, &["entities", id, "acl"], &[], json!({ "entries": entries })).await?;
        Ok(redirect(&format!("/{id}/-/sharing")))
    }

    pub(super) async fn web_sharing_inherit(&self, ctx: &Ctx, id: &str) -> PageResult {
        ctx.confirmed()?;
        self.rest(ctx, Method::DELETE, &["entities", id, "acl"], &[], Value::Null).await?;
        Ok(redirect(&format!("/{id}/-/sharing")))
    }

    // ---- trash ----

    pub(super) async fn web_trash_page(&self, ctx: &Ctx) -> PageResult {
        need_user(ctx)?;
        let v = self.rest(ctx, Method::GET, &["trash"], &[], Value::Null).await?;
        let items = ja(&v, "items");
        let body = html! {
            p.lead { "What you moved to the trash (administrators see everyone's). Nothing in the trash can be pulled or pushed." }
            @if items.is_empty() {
                p { "The trash is empty." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Trash" { table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Deleted" }
                        th scope="col" { "By" } th scope="col" { "Restore" } th scope="col" { "Purge for good" } } }
                    tbody { @for t in items {
                        @let id = js(t, "id");
                        tr {
                            td { (js(t, "name")) " " code { (id) } }
                            td { (js(t, "kind").replace('_', " ")) }
                            td { (time(jn(t, "deleted_at"))) }
                            td { (js(t, "deleted_by")) }
                            td { form method="post" action={ "/trash/" (id) "/restore" } {
                                (csrf(ctx)) button.secondary type="submit" aria-label={ "Restore " (js(t, "name")) } { "Restore" } } }
                            td { (confirm_form(ctx, &format!("/trash/{id}/purge"), "I understand this cannot be undone",
                                "Purge", &format!("purge-{id}"))) }
                        }
                    } }
                } }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, "Trash", body)))
    }

    pub(super) async fn web_trash_action(&self, ctx: &Ctx, id: &str, action: &str) -> PageResult {
        match action {
            "restore" => {
                let v = self.rest(ctx, Method::POST, &["trash", id, "restore"], &[], Value::Null).await?;
                let to = if js(&v, "kind") == "repository" { js(&v, "name") } else { js(&v, "id") };
                Ok(redirect(&format!("/{to}")))
            }
            "purge" => {
                ctx.confirmed()?;
                self.rest(ctx, Method::DELETE, &["trash", id], &[], Value::Null).await?;
                Ok(redirect("/trash"))
            }
            _ => Err(page_err(StatusCode::NOT_FOUND, format!("there is no page at {}", ctx.path))),
        }
    }
}

/// One row of the sharing form: who and which level (or remove).
fn acl_row(i: usize, principal: &str, level: &str, existing: bool) -> Markup {
    html! {
        div.acl-row {
            div.field {
                label for={ "principal-" (i) } { @if existing { "Who" } @else { "Add someone" } }
                input type="text" id={ "principal-" (i) } name="principal" value=(principal) placeholder="user:bob";
            }
            div.field {
                label for={ "level-" (i) } { "Level" }
                select id={ "level-" (i) } name="level" {
                    @for (n, label) in LEVELS { option value=(n) selected[n == level] { (label) } }
                    @if existing { option value="remove" { "Remove" } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_when_they_match_exactly() {
        assert_eq!(level_of(&[json!("READ"), json!("DOWNLOAD")]), "download");
        assert_eq!(level_of(&[json!("READ"), json!("DELETE")]), "READ, DELETE");
    }
}
