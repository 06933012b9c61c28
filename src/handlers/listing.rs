//! Listings: tags (end-8a/8b), the catalog, and referrers (end-12a/12b), with `n`/`last`
//! pagination and RFC 8288 `Link` headers for the next page.

use super::{json_response, App, Resp};
use crate::error::ApiError;
use crate::oci::{Digest, RepositoryName};
use crate::router::{percent_decode, Page};
use http::{HeaderValue, StatusCode};

impl App {
    fn page_size(&self, page: &Page) -> usize {
        page.n.unwrap_or(self.settings.max_page_size).min(self.settings.max_page_size)
    }

    fn with_link(mut resp: Resp, base: &str, n: usize, last: Option<&String>) -> Resp {
        if let Some(last) = last {
            let link = format!("<{base}?n={n}&last={}>; rel=\"next\"", encode_query(last));
            if let Ok(v) = HeaderValue::from_str(&link) {
                resp.headers_mut().insert("link", v);
            }
        }
        resp
    }

    /// end-8a/8b: `GET /v2/<name>/tags/list`.
    pub(super) async fn tags_list(&self, name: &RepositoryName, page: Page) -> Result<Resp, ApiError> {
        let repo = self.repo(name)?;
        let n = self.page_size(&page);
        let last = page.last.as_deref().map(percent_decode);
        // One extra entry tells whether a next page exists.
        let mut tags =
            if n == 0 { Vec::new() } else { self.engine.catalog().list_tags(repo.id, last.as_deref(), n + 1)? };
        let more = tags.len() > n;
        tags.truncate(n);
        let body = serde_json::to_vec(&serde_json::json!({ "name": name.as_str(), "tags": tags })).unwrap_or_default();
        let resp = json_response(StatusCode::OK, body);
        Ok(Self::with_link(resp, &format!("/v2/{name}/tags/list"), n, more.then(|| tags.last()).flatten()))
    }

    /// `GET /v2/_catalog`.
    /// Only repositories the caller may READ, and none in the trash, are listed.
    pub(super) async fn catalog(&self, page: Page, who: &crate::auth::Authenticated) -> Result<Resp, ApiError> {
        let n = self.page_size(&page);
        let mut names: Vec<String> = Vec::new();
        let mut cursor = page.last.clone();
        if n > 0 && !who.caller.is_admin() {
            // From the readers index: only what this caller may see is read.
            names = self.auth.store.visible_repo_names(&who.caller, page.last.as_deref(), n + 1, |name| {
                self.visible_repo(&who.caller, name)
            })?;
        }
        // Administrators see every repository: scan the names in batches until a page (plus
        // one, to know if there is more) is found or the repositories run out.
        while n > 0 && who.caller.is_admin() && names.len() <= n {
            let batch = self.engine.catalog().list_repo_names(cursor.as_deref(), 256)?;
            let Some((last, _)) = batch.last() else { break };
            cursor = Some(last.clone());
            for (name, _) in batch {
                if self.visible_repo(&who.caller, &name)? {
                    names.push(name);
                    if names.len() > n {
                        break;
                    }
                }
            }
        }
        let more = names.len() > n;
        names.truncate(n);
        let body = serde_json::to_vec(&serde_json::json!({ "repositories": names })).unwrap_or_default();
        Ok(Self::with_link(
            json_response(StatusCode::OK, body),
            "/v2/_catalog",
            n,
            more.then(|| names.last()).flatten(),
        ))
    }

    /// end-12a/12b: `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an OCI index of the
    /// manifests whose `subject` is `digest`.
    pub(super) async fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<String>,
    ) -> Result<Resp, ApiError> {
        // distribution-spec v1.1 "Listing referrers": a well-formed digest always gets 200 and an
        // index, empty when nothing refers to it, also in a repository that does not exist yet
        // (the caller already passed the pull check for this name).
        let repo = self.engine.catalog().repo_by_name(name.as_str())?;
        let cat = self.engine.catalog();
        let mut manifests = Vec::new();
        let found = match &repo {
            Some(r) => cat.referrers(r.id, subject)?,
            None => Vec::new(),
        };
        let repo_id = repo.map(|r| r.id).unwrap_or_default();
        for d in found {
            let Some(rec) = cat.manifest(repo_id, &d)? else { continue };
            if let Some(want) = &artifact_type {
                if rec.artifact_type.as_deref() != Some(want.as_str()) {
                    continue;
                }
            }
            let mut desc =
                serde_json::json!({ "mediaType": rec.media_type, "digest": d.to_string(), "size": rec.size });
            if let Some(at) = &rec.artifact_type {
                desc["artifactType"] = serde_json::json!(at);
            }
            if !rec.annotations.is_empty() {
                desc["annotations"] = serde_json::json!(rec.annotations);
            }
            manifests.push(desc);
        }
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let mut resp = json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default());
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.oci.image.index.v1+json"));
        if artifact_type.is_some() {
            resp.headers_mut().insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
        }
        Ok(resp)
    }
}

impl App {
    /// May the caller see this repository in listings (READ, not in the trash)?
    pub(crate) fn visible_repo(&self, caller: &crate::access::rules::Caller, name: &str) -> Result<bool, ApiError> {
        let project = name.split('/').next().unwrap_or("");
        let facts = self.auth.store.repo_facts(name, project)?;
        if facts.trashed.is_some() || !facts.project_exists {
            return Ok(caller.is_admin() && facts.trashed.is_none());
        }
        let acl = match facts.repo_acl {
            Some(a) => a,
            None => facts.project_acl,
        };
        Ok(crate::access::rules::can(caller, &acl, crate::access::rules::AccessType::Read))
    }
}

/// Escapes a query value for a `Link` header (tags and names are ASCII from a small alphabet, but
/// `last` came from the client).
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
