//! A repository's page, `/<projectId>/<repo path>`: its tags with their current digests, sizes,
//! media types, platforms, push times and pushers, the pull command by tag and by digest,
//! referrers, sortable and paginated; and a tag's history at `/<name>/-/tags/<tag>`. The
//! repository is found through the REST operation (which decides whether the caller may see it);
//! the tag rows come from [`App::tag_page`].

use super::layout::{confirm_form, copyable, encode, page, short_digest, size, time};
use super::tags::{Cursor, TagPage, TagSort};
use super::{html, ja, jn, js, page_err, Ctx, PageResult};
use crate::access::rules::AccessType;
use crate::access::store::parse_entity_id;
use crate::app::App;
use crate::error::ApiError;
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::Value;

/// Rows per page unless `?limit=` says otherwise.
const PAGE_ROWS: usize = 50;
/// Commits read at most to show one tag's history.
const HISTORY_SCAN: usize = 50_000;

/// A short, readable name of a manifest media type.
fn kind(media_type: &str) -> &str {
    match media_type {
        "application/vnd.oci.image.manifest.v1+json" => "OCI image",
        "application/vnd.oci.image.index.v1+json" => "OCI index",
        "application/vnd.docker.distribution.manifest.v2+json" => "Docker image",
        "application/vnd.docker.distribution.manifest.list.v2+json" => "Docker manifest list",
        other => other,
    }
}

/// The page's view of the query: sort, order, cursor, rows.
struct View {
    sort: TagSort,
    desc: bool,
    cursor: Cursor,
    limit: usize,
}

impl View {
    fn parse(ctx: &Ctx) -> Result<View, ApiError> {
        let sort = match ctx.q("sort").unwrap_or("tag") {
            "tag" => TagSort::Tag,
            "pushed" => TagSort::Pushed,
            other => return Err(page_err(StatusCode::BAD_REQUEST, format!("sort={other:?}: use tag or pushed"))),
        };
        let desc = match ctx.q("order").unwrap_or(if sort == TagSort::Pushed { "desc" } else { "asc" }) {
            "asc" => false,
            "desc" => true,
            other => return Err(page_err(StatusCode::BAD_REQUEST, format!("order={other:?}: use asc or desc"))),
        };
        let num = |k: &str, default: usize| -> Result<usize, ApiError> {
            ctx.q(k).map_or(Ok(default), |v| {
                v.parse().map_err(|_| page_err(StatusCode::BAD_REQUEST, format!("{k}={v:?} is not a number")))
            })
        };
        let cursor = if sort == TagSort::Tag && !desc {
            Cursor::After(ctx.q("after").map(str::to_string))
        } else {
            Cursor::Offset(num("offset", 0)?)
        };
        Ok(View { sort, desc, cursor, limit: num("limit", PAGE_ROWS)?.clamp(1, super::tags::MAX_PAGE) })
    }

    fn link(&self, base: &str, sort: TagSort, desc: bool, cursor: Option<&Cursor>) -> String {
        let s = if sort == TagSort::Tag { "tag" } else { "pushed" };
        let mut u = format!("{base}?sort={s}&order={}", if desc { "desc" } else { "asc" });
        match cursor {
            Some(Cursor::After(Some(t))) => u.push_str(&format!("&after={}", encode(t))),
            Some(Cursor::Offset(n)) => u.push_str(&format!("&offset={n}")),
            _ => {}
        }
        if self.limit != PAGE_ROWS {
            u.push_str(&format!("&limit={}", self.limit));
        }
        u
    }
}

impl App {
    /// The repository named `name` as the REST API shows it to the caller.
    async fn web_repo_json(&self, ctx: &Ctx, name: &str) -> Result<(Value, u64), ApiError> {
        let r = self.rest(ctx, Method::GET, &["repositories"], &[("name", name)], Value::Null).await?;
        let id = parse_entity_id(js(&r, "id")).ok_or_else(|| page_err(StatusCode::NOT_FOUND, "no such repository"))?;
        Ok((r, id))
    }

    pub(super) async fn web_repository_page(&self, ctx: &Ctx, name: &str) -> PageResult {
        let markup = self.repository_markup(ctx, name).await?;
        Ok(html(StatusCode::OK, markup))
    }

    /// The repository page's HTML (the benchmark renders it through this).
    pub async fn repository_markup(&self, ctx: &Ctx, name: &str) -> Result<Markup, ApiError> {
        let view = View::parse(ctx)?;
        let (r, id) = self.web_repo_json(ctx, name).await?;
        let acl = self.rest(ctx, Method::GET, &["entities", js(&r, "id"), "acl"], &[], Value::Null).await?;
        let (sort, desc, cursor, limit) = (view.sort, view.desc, view.cursor.clone(), view.limit);
        let tags: TagPage = self.blocking(move |app| app.tag_page(id, sort, desc, &cursor, limit)).await??;
        let host = self.registry_host();
        let base = format!("/{name}");
        let sid = js(&r, "id");
        let local = r.get("local_sharing").and_then(Value::as_bool).unwrap_or(false);
        let mine = self.web_my_access(ctx, &acl);
        let sort_th = |label: &str, col: TagSort| -> Markup {
            let active = view.sort == col;
            let next_desc = if active { !view.desc } else { col == TagSort::Pushed };
            let aria = if !active {
                "none"
            } else if view.desc {
                "descending"
            } else {
                "ascending"
            };
            html! {
                th scope="col" aria-sort=(aria) {
                    a href=(view.link(&base, col, next_desc, None)) { (label) @if active { @if view.desc { " ↓" } @else { " ↑" } } }
                }
            }
        };
        let project = name.split('/').next().unwrap_or("");
        let body = html! {
            p.lead {
                "Repository " code { (sid) } " in project " a href={ "/" (project) } { (project) } " · "
                (size(jn(&r, "logical_bytes") as u64)) " stored · "
                a href={ "/" (sid) "/-/sharing" } { @if local { "local sharing settings" } @else { "sharing settings inherited from the project" } }
            }
            div.pull {
                span { "Pull by tag:" } (copyable(&format!("docker pull {host}/{name}:<tag>"), "pull command"))
            }
            h2 #tags { "Tags" }
            nav.sort aria-label="Sort tags" {
                "Sort: "
                a href=(view.link(&base, TagSort::Tag, false, None)) aria-current=[(view.sort == TagSort::Tag && !view.desc).then_some("true")] { "by tag" }
                " · "
                a href=(view.link(&base, TagSort::Pushed, true, None)) aria-current=[(view.sort == TagSort::Pushed && view.desc).then_some("true")] { "newest push first" }
            }
            @if tags.rows.is_empty() {
                p { "No tags on this page." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Tags" { table.tags {
                    caption.muted { "Each tag with its current digest" }
                    thead { tr {
                        (sort_th("Tag", TagSort::Tag))
                        th scope="col" { "Digest" }
                        th.num scope="col" { "Size" }
                        th scope="col" { "Type" }
                        (sort_th("Pushed", TagSort::Pushed))
                        th scope="col" { "By" }
                        th scope="col" { "Pull" }
                        th scope="col" { "Referrers" }
                    } }
                    tbody { @for t in &tags.rows {
                        tr {
                            td data-label="Tag" { a href={ (base) "/-/tags/" (encode(&t.tag)) } title="History of this tag" { (t.tag) } }
                            td data-label="Digest" { (short_digest(&t.digest.to_string())) }
                            td.num data-label="Size" { @if let Some(s) = t.size { (size(s)) } }
                            td data-label="Type" {
                                @if let Some(m) = &t.media_type { span title=(m) { (kind(m)) } }
                                @if !t.platforms.is_empty() { br; span.muted { (t.platforms.join(", ")) } }
                            }
                            td data-label="Pushed" { (time(t.pushed)) }
                            td data-label="By" { (t.pusher) }
                            td.pull-cmds data-label="Pull" {
                                div { (copyable(&format!("docker pull {host}/{name}:{}", t.tag), &format!("pull command for {}", t.tag))) }
                                div { (copyable(&format!("docker pull {host}/{name}@{}", t.digest), &format!("pull command by digest for {}", t.tag))) }
                            }
                            td data-label="Referrers" {
                                @if t.referrers.is_empty() { span.muted { "none" } } @else {
                                    details {
                                        summary { (t.referrers.len()) " referrer" @if t.referrers.len() != 1 { "s" } }
                                        ul { @for (d, k) in &t.referrers { li { (short_digest(&d.to_string())) " " span.muted { (kind(k)) } } } }
                                    }
                                }
                            }
                        }
                    } }
                } }
            }
            nav.pager aria-label="Tag pages" {
                @if !matches!(view.cursor, Cursor::After(None) | Cursor::Offset(0)) {
                    a href=(view.link(&base, view.sort, view.desc, None)) { "First page" }
                }
                @if let Some(next) = &tags.next {
                    a href=(view.link(&base, view.sort, view.desc, Some(next))) rel="next" { "Next page" }
                }
            }
            @if mine.contains(&AccessType::Delete) {
                h2 { "Trash" }
                (confirm_form(ctx, &format!("/{sid}/-/trash"), "Move this repository to the trash (pulls and pushes stop until it is restored)",
                    "Move to trash", "trash-repo"))
            }
        };
        Ok(page(ctx, name, body))
    }

    pub(super) async fn web_tag_history_page(&self, ctx: &Ctx, name: &str, tag: &str) -> PageResult {
        let (r, _) = self.web_repo_json(ctx, name).await?;
        let sid = js(&r, "id").to_string();
        let mut commits = Vec::new();
        let mut after: Option<String> = None;
        let mut read = 0usize;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("limit", "1000")];
            if let Some(a) = &after {
                q.push(("after", a));
            }
            let v = self.rest(ctx, Method::GET, &["repositories", &sid, "commits"], &q, Value::Null).await?;
            let chunk = ja(&v, "commits");
            read += chunk.len();
            commits.extend(chunk.iter().filter(|c| js(c, "tag") == tag).cloned());
            match chunk.last() {
                Some(last) if chunk.len() == 1000 && read < HISTORY_SCAN => after = Some(jn(last, "seq").to_string()),
                _ => break,
            }
        }
        let host = self.registry_host();
        let body = html! {
            p.lead { "Every digest tag " code { (tag) } " of " a href={ "/" (name) } { (name) } " has pointed at, newest first." }
            @if commits.is_empty() {
                p { "This tag has no history here." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Tag history" { table {
                    thead { tr { th scope="col" { "Pushed" } th scope="col" { "Digest" } th scope="col" { "By" } th scope="col" { "Pull this digest" } } }
                    tbody { @for c in commits.iter().rev() { tr {
                        td { (time(jn(c, "time"))) }
                        td { (short_digest(js(c, "digest"))) }
                        td { (js(c, "pusher")) }
                        td { (copyable(&format!("docker pull {host}/{name}@{}", js(c, "digest")), "pull command by digest")) }
                    } } }
                } }
            }
        };
        Ok(html(StatusCode::OK, page(ctx, &format!("{name}:{tag}"), body)))
    }
}
