//! Blob reads and deletes (end-2, end-10). A repository serves only the blobs it references:
//! knowing a digest grants nothing (DESIGN.md section 4).

use super::{bare, header_str, App, Resp};
use crate::body::full;
use crate::error::{ApiError, Code};
use crate::oci::{Digest, RangeDecision, RepositoryName};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

impl App {
    /// end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`, with single-range `Range` support (206/416).
    pub(super) async fn blob_get(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        head: bool,
        req: Request<Incoming>,
    ) -> Result<Resp, ApiError> {
        let unknown = || ApiError::not_found(Code::BlobUnknown, format!("blob {digest} is not in repository {name}"));
        let scopes = self.engine.catalog().scopes();
        let key = (name.as_str().to_string(), digest.clone());
        let len = match self.blob_sizes.get(&key, |v| scopes.repo(v.0)) {
            Some((_, len)) => len,
            None => {
                // As for manifests: the global part before the name is looked up.
                let global = scopes.global();
                let repo = self.repo(name)?;
                let generation = global + scopes.repo_only(repo.id);
                if !self.engine.catalog().is_linked(repo.id, digest)? {
                    return Err(unknown());
                }
                let len = match self.engine.stat_blob(digest) {
                    // Missing, as far as a pusher checking with HEAD is concerned: it uploads the
                    // blob again, which heals it. A GET says why (error.rs).
                    Err(e @ stowage_engine::Error::Quarantined(_)) if head => {
                        return Err(ApiError::not_found(Code::BlobUnknown, e.to_string()))
                    }
                    other => other?.ok_or_else(unknown)?,
                };
                self.blob_sizes.put(key, generation, (repo.id, len));
                len
            }
        };
        let span = match header_str(&req, "range").map(|r| RangeDecision::for_header(r, len)) {
            None | Some(RangeDecision::Whole) => None,
            Some(RangeDecision::Partial { start, end }) => Some((start, end)),
            Some(RangeDecision::Unsatisfiable) => {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Code::RangeInvalid,
                    format!(
                        "range selects no byte of the blob of {len} bytes; ask for bytes=<start>-<end> with start <= end < {len}"
                    ),
                )
                .with_header(header::CONTENT_RANGE, &format!("bytes */{len}")))
            }
        };
        let (status, body_len) = match span {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, e - s + 1),
            None => (StatusCode::OK, len),
        };
        let start = span.map_or(0, |(s, _)| s);
        let body =
            if head || body_len == 0 { crate::body::empty() } else { self.blob_body(digest, start, body_len).await? };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
            h.insert("docker-content-digest", v.clone());
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
                h.insert(header::ETAG, etag);
            }
        }
        if let Some((s, e)) = span {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        Ok(resp)
    }

    /// The body of `len` bytes of the blob from `start`: read at once when small, else streamed
    /// in bounded pieces (see [`crate::blob_stream`]). The span has been checked against the
    /// blob's length.
    async fn blob_body(&self, digest: &Digest, start: u64, len: u64) -> Result<crate::body::Body, ApiError> {
        let engine = self.engine.clone();
        let d = digest.clone();
        if len <= crate::blob_stream::SINGLE_READ_BYTES {
            let span = Some((start, start + len - 1));
            let bytes = tokio::task::spawn_blocking(move || engine.read_blob(&d, span))
                .await
                .map_err(|e| ApiError::internal("blob read task failed", &e))??;
            return Ok(full(bytes));
        }
        // Open and map the span (address space only) off the reactor; the body populates it.
        let span = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let file = engine.open_blob(&d)?;
            if start.checked_add(len).is_none_or(|end| end > file.len()) {
                return Err(ApiError::internal("blob is shorter than its record", &format!("{d}")));
            }
            Ok(file.span(start, len)?)
        })
        .await
        .map_err(|e| ApiError::internal("blob open task failed", &e))??;
        Ok(self.streams.body(span, start, len, crate::blob_stream::PIECE_BYTES, crate::blob_stream::START_WINDOW_BYTES))
    }

    /// end-10: `DELETE /v2/<name>/blobs/<digest>`: removes the blob from the repository; the bytes
    /// go when garbage collection finds nothing else referencing them.
    pub(super) async fn blob_delete(&self, name: &RepositoryName, digest: &Digest) -> Result<Resp, ApiError> {
        let repo = self.repo(name)?;
        let d = digest.clone();
        if !self.index(move |e| e.catalog().unlink_blob(repo.id, &d)).await? {
            return Err(ApiError::not_found(Code::BlobUnknown, format!("blob {digest} is not in repository {name}")));
        }
        Ok(bare(StatusCode::ACCEPTED, &[]))
    }
}
