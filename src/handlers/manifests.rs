//! Manifests (end-3, end-7, end-9): every media type (Docker schema 2, manifest lists, OCI manifests,
//! indexes, artifacts). A manifest's bytes are stored verbatim as a blob; the index keeps what the
//! registry needs to answer without re-parsing (media type, size, references, subject).

use super::{bare, header_str, App, Resp};
use crate::body::{empty, full};
use crate::error::{ApiError, Code};
use crate::oci::{manifest, Algorithm, Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use stowage_engine::{ManifestRecord, RepoRecord};

impl App {
    fn resolve(
        &self,
        repo: &RepoRecord,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<(Digest, ManifestRecord), ApiError> {
        let cat = self.engine.catalog();
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                cat.tag(repo.id, t.as_str())?
                    .ok_or_else(|| {
                        ApiError::not_found(Code::ManifestUnknown, format!("tag {t} does not exist in {name}"))
                    })?
                    .digest
            }
        };
        let rec = cat
            .manifest(repo.id, &digest)?
            .ok_or_else(|| ApiError::not_found(Code::ManifestUnknown, format!("manifest {digest} is not in {name}")))?;
        Ok((digest, rec))
    }

    async fn manifest_bytes(&self, digest: &Digest) -> Result<Bytes, ApiError> {
        if let Some(b) = self.manifest_cache.get(digest) {
            return Ok(b);
        }
        let engine = self.engine.clone();
        let d = digest.clone();
        let bytes = tokio::task::spawn_blocking(move || engine.read_blob(&d, None))
            .await
            .map_err(|e| ApiError::internal("manifest read task failed", &e))??;
        self.manifest_cache.put(digest, bytes.clone());
        Ok(bytes)
    }

    /// end-3: `GET`/`HEAD /v2/<name>/manifests/<reference>`.
    pub(super) async fn manifest_get(
        &self,
        name: &RepositoryName,
        reference: &Reference,
        head: bool,
    ) -> Result<Resp, ApiError> {
        let scopes = self.engine.catalog().scopes();
        let key = (name.as_str().to_string(), reference.to_string());
        let (digest, rec) = match self.resolved.get(&key, |v| scopes.repo(v.0)) {
            Some((_, d, r)) => (d, r),
            None => {
                // The global part before the name is looked up, the repository's own part
                // before its records are read.
                let global = scopes.global();
                let repo = self.repo(name)?;
                let generation = global + scopes.repo_only(repo.id);
                let (d, r) = self.resolve(&repo, name, reference)?;
                self.resolved.put(key, generation, (repo.id, d.clone(), r.clone()));
                (d, r)
            }
        };
        // Scrub found this manifest's bytes damaged: never serve them (nor a cached copy).
        if self.engine.is_quarantined(&digest)? {
            return Err(ApiError::not_found(
                Code::ManifestUnknown,
                format!("manifest {digest} failed its integrity check and is quarantined; push it again to restore it"),
            ));
        }
        let body = if head { empty() } else { full(self.manifest_bytes(&digest).await?) };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(rec.size));
        if let Ok(v) = HeaderValue::from_str(&rec.media_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
            h.insert("docker-content-digest", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, v);
        }
        Ok(resp)
    }

    /// end-7: `PUT /v2/<name>/manifests/<reference>`.
    pub(super) async fn manifest_put(
        &self,
        name: &RepositoryName,
        reference: &Reference,
        extra_tags: &[Tag],
        algorithm: Algorithm,
        req: Request<Incoming>,
        who: &crate::auth::Authenticated,
    ) -> Result<Resp, ApiError> {
        self.engine.check_writable()?;
        let content_type = header_str(&req, "content-type").map(str::to_string);
        let bytes = self.read_small_body(req.into_body(), self.settings.max_manifest_bytes).await?;
        let parsed = manifest::parse(content_type.as_deref(), &bytes)
            .map_err(|e| ApiError::bad_request(Code::ManifestInvalid, e.to_string()))?;
        let digest = match reference {
            Reference::Digest(d) => {
                let computed = Digest::of(d.algorithm(), &bytes);
                if &computed != d {
                    return Err(ApiError::bad_request(
                        Code::DigestInvalid,
                        format!("manifest hashes to {computed}, not the {d} in the URL"),
                    ));
                }
                computed
            }
            // distribution-spec main: the client may ask for another algorithm than sha256; the
            // manifest is then reachable by that digest, and the answer names it.
            Reference::Tag(_) => Digest::of(algorithm, &bytes),
        };
        let (n, p) = (name.as_str().to_string(), name.project().to_string());
        let (repo, _) = self.index(move |e| e.catalog().ensure_repo(&n, &p)).await?;
        // Everything referenced must be in the repository, except layers that are not meant to
        // be distributed (non-distributable media types, or `urls` to fetch them from): those
        // are accepted without their blobs, and recorded as references only when present, so
        // GC keeps a copy someone did push.
        let cat = self.engine.catalog();
        let mut refs: Vec<Digest> = Vec::new();
        let mut missing: Vec<&Digest> = Vec::new();
        for d in parsed.referenced() {
            if cat.is_linked(repo.id, &d.digest)? {
                refs.push(d.digest.clone());
            } else if !(parsed.layers.contains(d) && d.is_foreign()) {
                missing.push(&d.digest);
            }
        }
        if !missing.is_empty() {
            return Err(manifest_blob_unknown(name, &missing));
        }
        let rec = ManifestRecord {
            media_type: parsed.media_type.clone(),
            size: bytes.len() as u64,
            refs,
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            artifact_type: parsed.artifact_type.clone(),
            annotations: parsed.annotations.clone(),
            created: stowage_engine::index::catalog::now_secs(),
        };
        self.engine.put_small_blob(name.as_str(), &digest, bytes.clone()).await?;
        // The tag of a PUT by tag, or the `tag` parameters of a PUT by digest: the first goes in
        // the manifest's own write, the others follow, each its own durable commit (a history
        // entry per tag, as for separate pushes).
        let tags: Vec<String> = match reference.as_tag() {
            Some(t) => vec![t.as_str().to_string()],
            None => extra_tags.iter().map(|t| t.as_str().to_string()).collect(),
        };
        let pusher = who.caller.name().to_string();
        let (d, r, ts) = (digest.clone(), rec.clone(), tags.clone());
        let missing = self
            .index(move |e| {
                let first = ts.first().map(|t| (t.as_str(), pusher.as_str()));
                let missing = e.put_manifest(repo.id, &d, &r, first)?;
                if missing.is_empty() {
                    for t in ts.iter().skip(1) {
                        e.put_manifest(repo.id, &d, &r, Some((t.as_str(), pusher.as_str())))?;
                    }
                }
                Ok(missing)
            })
            .await?;
        if !missing.is_empty() {
            // A blob was deleted between the check above and the write.
            return Err(manifest_blob_unknown(name, &missing.iter().collect::<Vec<_>>()));
        }
        self.manifest_cache.put(&digest, bytes);
        let mut headers =
            vec![("location", format!("/v2/{name}/manifests/{digest}")), ("docker-content-digest", digest.to_string())];
        if let Some(s) = &rec.subject {
            headers.push(("oci-subject", s.to_string()));
        }
        let mut resp = bare(StatusCode::CREATED, &headers);
        // distribution-spec main: one `OCI-Tag` header per tag applied from `tag` parameters.
        if reference.as_digest().is_some() {
            for t in tags {
                if let Ok(v) = HeaderValue::from_str(&t) {
                    resp.headers_mut().append("oci-tag", v);
                }
            }
        }
        Ok(resp)
    }

    /// end-9: `DELETE /v2/<name>/manifests/<reference>`: by digest removes the manifest and every
    /// tag pointing at it; by tag removes only the tag.
    pub(super) async fn manifest_delete(&self, name: &RepositoryName, reference: &Reference) -> Result<Resp, ApiError> {
        let repo = self.repo(name)?;
        let reference2 = reference.clone();
        let found = self
            .index(move |e| match &reference2 {
                Reference::Digest(d) => e.catalog().delete_manifest(repo.id, d),
                Reference::Tag(t) => e.catalog().delete_tag(repo.id, t.as_str()),
            })
            .await?;
        if !found {
            return Err(ApiError::not_found(Code::ManifestUnknown, format!("{reference} is not in {name}")));
        }
        Ok(bare(StatusCode::ACCEPTED, &[]))
    }
}

fn manifest_blob_unknown(name: &RepositoryName, missing: &[&Digest]) -> ApiError {
    let list: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
    ApiError::bad_request(
        Code::ManifestBlobUnknown,
        format!(
            "manifest references {} that {name} does not have: {}; push them first",
            plural(list.len()),
            list.join(", ")
        ),
    )
    .with_detail(serde_json::json!({ "missing": list }))
}

fn plural(n: usize) -> String {
    if n == 1 {
        "a blob or manifest".into()
    } else {
        format!("{n} blobs or manifests")
    }
}
