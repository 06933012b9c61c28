//! Blob uploads (end-4a, end-4b, end-5, end-6, end-11, end-13, cancel): monolithic, POST-then-PUT,
//! chunked with `Content-Range`, streamed, resumable, and cross-repository mounts.

use super::{bare, header_str, App, Resp};
use crate::auth::Authenticated;
use crate::error::{range_header, ApiError, Code};
use crate::oci::{ContentRange, Digest, RepositoryName};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use stowage_engine::UploadWriter;

impl App {
    fn upload_location(name: &RepositoryName, id: &str) -> String {
        format!("/v2/{name}/blobs/uploads/{id}")
    }

    fn blob_created(name: &RepositoryName, digest: &Digest) -> Resp {
        bare(
            StatusCode::CREATED,
            &[("location", format!("/v2/{name}/blobs/{digest}")), ("docker-content-digest", digest.to_string())],
        )
    }

    fn upload_accepted(name: &RepositoryName, id: &str, offset: u64) -> Resp {
        bare(
            StatusCode::ACCEPTED,
            &[
                ("location", Self::upload_location(name, id)),
                ("range", range_header(offset)),
                ("docker-upload-uuid", id.to_string()),
            ],
        )
    }

    /// Refuses a body whose declared length would pass the blob size limit, before reading it.
    fn check_declared_length(&self, req: &Request<Incoming>, offset: u64) -> Result<Option<u64>, ApiError> {
        let Some(v) = header_str(req, "content-length") else { return Ok(None) };
        let len: u64 = v
            .parse()
            .map_err(|_| ApiError::bad_request(Code::SizeInvalid, format!("Content-Length {v:?} is not a number")))?;
        let limit = self.engine.config().max_blob_bytes;
        if offset.saturating_add(len) > limit {
            return Err(stowage_engine::Error::BlobTooLarge { size: offset.saturating_add(len), limit }.into());
        }
        Ok(Some(len))
    }

    /// Mount rule (DESIGN.md section 2): the rules let the caller pull `src`, and a registry
    /// token, if that is the credential, lists pull on it. `Ok(None)`: the rules refuse (the
    /// mount falls back to an upload). `Ok(Some(false))`: the rules allow it but the token does
    /// not list it, so a new token would mount.
    fn may_pull(&self, who: &Authenticated, src: &RepositoryName) -> Result<Option<bool>, ApiError> {
        let facts = self.auth.store.repo_facts(src.as_str(), src.project())?;
        if crate::access::rules::decide(&who.caller, crate::access::rules::RegistryAction::Pull, &facts).is_err() {
            return Ok(None);
        }
        Ok(Some(who.claims.as_ref().is_none_or(|c| c.grants(src.as_str(), "pull"))))
    }

    /// Most repositories looked at for a mount without `from`; past them the mount falls back to
    /// an upload, which is always correct.
    const MOUNT_CANDIDATES: usize = 64;

    /// The repository a blob can be mounted from: `from` if the caller may pull it there, else
    /// (mount without `from`) the target itself or any repository holding the blob that the
    /// caller may pull. A token that lacks pull on a `from` the rules allow gets a 401 challenge
    /// naming both scopes, so a client that follows challenges gets a token that mounts.
    fn mount_source(
        &self,
        name: &RepositoryName,
        target: &stowage_engine::RepoRecord,
        blob: &Digest,
        from: Option<&RepositoryName>,
        who: &Authenticated,
        base: &str,
    ) -> Result<Option<u64>, ApiError> {
        let cat = self.engine.catalog();
        if cat.is_linked(target.id, blob)? {
            return Ok(Some(target.id));
        }
        if let Some(src) = from {
            return match self.may_pull(who, src)? {
                None => Ok(None),
                Some(true) => Ok(cat.repo_by_name(src.as_str())?.map(|r| r.id)),
                Some(false) => {
                    let scope = format!("repository:{name}:pull,push repository:{src}:pull");
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        Code::Unauthorized,
                        format!("mounting from {src} needs pull on it; ask for a token with {scope}"),
                    )
                    .with_header(http::header::WWW_AUTHENTICATE, &self.auth.challenge(base, Some(&scope))))
                }
            };
        }
        for id in cat.repos_linking(blob, Self::MOUNT_CANDIDATES)? {
            let Some(rec) = cat.repo(id)? else { continue };
            let Ok(src) = rec.name.parse::<RepositoryName>() else { continue };
            if self.may_pull(who, &src)? == Some(true) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Refuses a new upload into a project that has already used all of its quota, before any
    /// byte is sent (the exact check, with the blob's size, is when the blob is linked).
    async fn quota_room(&self, project: &str) -> Result<(), ApiError> {
        // One index read, as every handler does on the reactor; the scan of the repositories
        // only for a project with a quota, off it.
        let Some(quota) = self.engine.catalog().quota(project)? else { return Ok(()) };
        let p = project.to_string();
        let used = self.index(move |e| e.catalog().project_logical_bytes(&p)).await?;
        if used < quota {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Denied,
            format!("project {project} has used all of its storage quota of {quota} bytes ({used} bytes used); purge repositories of the project, or ask an administrator to raise the quota"),
        ))
    }

    /// end-4a/4b/11: `POST /v2/<name>/blobs/uploads/`.
    pub(super) async fn upload_start(
        &self,
        name: &RepositoryName,
        digest: Option<Digest>,
        mount: Option<(Digest, Option<RepositoryName>)>,
        req: Request<Incoming>,
        who: &Authenticated,
        base: &str,
    ) -> Result<Resp, ApiError> {
        self.engine.check_writable()?;
        let (n, p) = (name.as_str().to_string(), name.project().to_string());
        let (repo, _) = self.index(move |e| e.catalog().ensure_repo(&n, &p)).await?;
        if let Some((m, from)) = mount {
            // Mount from a repository the caller may pull that holds the blob; otherwise fall
            // through to a normal upload, as the spec asks.
            if let Some(src) = self.mount_source(name, &repo, &m, from.as_ref(), who, base)? {
                if self.engine.catalog().is_linked(src, &m)? {
                    let (rid, d) = (repo.id, m.clone());
                    match self.engine.blocking(move |e| e.mount_blob(rid, &d)).await {
                        Ok(()) => return Ok(Self::blob_created(name, &m)),
                        // Damaged bytes are not mounted: the client uploads them, which heals.
                        Err(stowage_engine::Error::Quarantined(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        self.quota_room(name.project()).await?;
        if let Some(d) = digest {
            // end-4b: the whole blob in the POST body.
            self.check_declared_length(&req, 0)?;
            // A one-shot upload that fails is not resumable: dropping its writer frees the session
            // and the temp file at once.
            let mut w = self.engine.put_blob_writer(name.as_str()).await?;
            self.stream_body(req.into_body(), &mut w).await?;
            w.finish(&d).await?;
            return Ok(Self::blob_created(name, &d));
        }
        let (n, owner) = (name.as_str().to_string(), who.caller.name().to_string());
        let st = self.index(move |e| e.start_upload(&n, &owner)).await?;
        Ok(Self::upload_accepted(name, &st.id, 0))
    }

    async fn open_upload(
        &self,
        name: &RepositoryName,
        id: &str,
        req: &Request<Incoming>,
        who: &Authenticated,
    ) -> Result<UploadWriter, ApiError> {
        let range = match header_str(req, "content-range") {
            Some(v) => Some(
                v.parse::<ContentRange>()
                    .map_err(|e| ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::RangeInvalid, e.to_string()))?,
            ),
            None => None,
        };
        let st = self.upload_in(name, id, who)?;
        let declared = self.check_declared_length(req, st.offset)?;
        if let (Some(r), Some(len)) = (range, declared) {
            if r.byte_count() != len {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Code::RangeInvalid,
                    format!("Content-Range covers {} bytes but Content-Length is {len}", r.byte_count()),
                )
                .with_header(http::header::RANGE, &range_header(st.offset)));
            }
        }
        Ok(self.engine.append(id, range.map(|r| r.start)).await?)
    }

    /// end-5: `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk (with `Content-Range`) or a stream.
    pub(super) async fn upload_patch(
        &self,
        name: &RepositoryName,
        id: &str,
        req: Request<Incoming>,
        who: &Authenticated,
    ) -> Result<Resp, ApiError> {
        let w = self.open_upload(name, id, &req, who).await?;
        let w = self.stream_resumable(name, req.into_body(), w).await?;
        let offset = w.end_chunk().await?;
        Ok(Self::upload_accepted(name, id, offset))
    }

    /// end-6: `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then commit.
    pub(super) async fn upload_finish(
        &self,
        name: &RepositoryName,
        id: &str,
        digest: &Digest,
        req: Request<Incoming>,
        who: &Authenticated,
    ) -> Result<Resp, ApiError> {
        let w = self.open_upload(name, id, &req, who).await?;
        let w = self.stream_resumable(name, req.into_body(), w).await?;
        w.finish(digest).await?;
        Ok(Self::blob_created(name, digest))
    }

    /// The status of upload `id`, which must have been started in repository `name` by the
    /// caller (or the caller is an administrator). Someone else's upload is answered exactly as
    /// an unknown one, so upload ids cannot be probed.
    fn upload_in(
        &self,
        name: &RepositoryName,
        id: &str,
        who: &Authenticated,
    ) -> Result<stowage_engine::UploadStatus, ApiError> {
        let unknown = || {
            ApiError::not_found(
                Code::BlobUploadUnknown,
                format!("upload {id} is not known in {name}; start a new upload with POST"),
            )
        };
        let st = match self.engine.upload_status(id) {
            Err(stowage_engine::Error::UploadUnknown(_)) => return Err(unknown()),
            other => other?,
        };
        if st.repo != name.as_str() {
            return Err(unknown());
        }
        if st.owner != who.caller.name() && !who.caller.is_admin() {
            tracing::info!(upload = id, owner = %st.owner, caller = who.caller.name(), "upload of another user refused");
            return Err(unknown());
        }
        Ok(st)
    }

    /// end-13: `GET /v2/<name>/blobs/uploads/<id>`: where to resume.
    pub(super) async fn upload_status(
        &self,
        name: &RepositoryName,
        id: &str,
        who: &Authenticated,
    ) -> Result<Resp, ApiError> {
        let st = self.upload_in(name, id, who)?;
        let mut r = Self::upload_accepted(name, id, st.offset);
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    }

    /// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel and free the space.
    pub(super) async fn upload_cancel(
        &self,
        name: &RepositoryName,
        id: &str,
        who: &Authenticated,
    ) -> Result<Resp, ApiError> {
        self.upload_in(name, id, who)?;
        self.engine.cancel_upload(id).await?;
        Ok(bare(StatusCode::NO_CONTENT, &[]))
    }
}
