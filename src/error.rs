//! The one mapping from failures to responses, for every interface: the Distribution API
//! (spec error code, status, extra headers, body `{"errors":[{"code","message","detail"}]}`,
//! distribution-spec "Error Codes") and the REST API (the same status and message, body
//! `{"error":{"code","message"}}` with a code named after the status). Engine errors are
//! translated here and nowhere else: 503 for storage that refuses writes, 507 for a full disk.
//! Every error is logged exactly once, when its response is built, at a level chosen by whose
//! fault it is (4xx at info, 5xx at error with the internal cause); internal causes (paths, OS
//! errors) are never sent.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use stowage_engine::Error as EngineError;

/// The spec's error codes, plus the few status-only cases the spec leaves to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// Not a spec code: a failure of the registry itself.
    Unknown,
    /// Not a spec code: storage refuses writes (poisoned) or is full.
    Unavailable,
    /// A chunk or range outside the data (416).
    RangeInvalid,
}

impl Code {
    /// The code of an error that is not one of the spec's (REST answers, status-only cases).
    pub fn for_status(status: StatusCode) -> Code {
        match status.as_u16() {
            401 => Code::Unauthorized,
            403 => Code::Denied,
            429 => Code::TooManyRequests,
            503 | 507 => Code::Unavailable,
            s if s >= 500 => Code::Unknown,
            _ => Code::Unsupported,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
            Code::Unavailable => "UNAVAILABLE",
            Code::RangeInvalid => "BLOB_UPLOAD_INVALID",
        }
    }
}

/// An error response about to be sent.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    /// Safe for the client: says what was wrong and what to do.
    pub message: String,
    pub detail: Option<serde_json::Value>,
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// What went wrong inside, for the log only.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), detail: None, headers: Vec::new(), cause: None }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: http::HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// Keeps an internal cause for the log (never sent).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> ApiError {
        self.cause = Some(cause.to_string());
        self
    }

    /// A failure of ours: its cause goes to the log when the response is built, never to the
    /// client.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unknown,
            "internal error; the registry log has the details",
        )
        .with_cause(format!("{context}: {err}"))
    }

    /// The REST API's name for this error: one per status.
    pub fn rest_code(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            409 => "conflict",
            413 => "too_large",
            416 => "range_not_satisfiable",
            429 => "too_many_requests",
            503 => "unavailable",
            507 => "insufficient_storage",
            s if s >= 500 => "internal",
            _ => "bad_request",
        }
    }

    /// Logs the error once: 4xx (the client's doing) at info, 5xx (ours) at error with the cause.
    fn log(&self, api: &'static str) {
        let cause = self.cause.as_deref().unwrap_or("");
        if self.status.is_server_error() {
            tracing::error!(api, status = self.status.as_u16(), code = self.code.as_str(), message = %self.message, cause, "request failed");
        } else {
            tracing::info!(api, status = self.status.as_u16(), code = self.code.as_str(), message = %self.message, cause, "request refused");
        }
    }

    /// The Distribution API response.
    pub fn into_response(self) -> Response<crate::body::Body> {
        self.log("registry");
        let mut err = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = d;
        }
        let body = serde_json::to_vec(&serde_json::json!({ "errors": [err] })).unwrap_or_default();
        let mut resp = Response::new(crate::body::full(Bytes::from(body)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }

    /// The REST API response: `{"error":{"code","message"}}`, a Basic challenge on 401 and
    /// `Retry-After` on 429.
    pub fn into_rest_response(self) -> Response<crate::body::Body> {
        self.log("rest");
        let body = serde_json::json!({ "error": { "code": self.rest_code(), "message": self.message } });
        let mut resp = crate::body::json_response(self.status, serde_json::to_vec(&body).unwrap_or_default());
        let h = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"stowage\""));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        for (k, v) in self.headers {
            if k != http::header::WWW_AUTHENTICATE {
                h.insert(k, v);
            }
        }
        resp
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        use StatusCode as S;
        match e {
            // Distribution-spec: a chunk at the wrong offset is 416 with the current Range, so the
            // client knows where to resume.
            EngineError::OutOfOrder { expected, .. } => {
                ApiError::new(S::RANGE_NOT_SATISFIABLE, Code::RangeInvalid, e.to_string())
                    .with_header(http::header::RANGE, &range_header(expected))
            }
            EngineError::DigestMismatch { .. } => ApiError::bad_request(Code::DigestInvalid, e.to_string()),
            EngineError::UploadUnknown(_) => ApiError::not_found(Code::BlobUploadUnknown, e.to_string()),
            // Two requests writing one upload at once: the later one must wait or resume.
            EngineError::UploadBusy(_) => ApiError::new(S::CONFLICT, Code::BlobUploadInvalid, e.to_string()),
            EngineError::BlobTooLarge { .. } => ApiError::new(S::PAYLOAD_TOO_LARGE, Code::SizeInvalid, e.to_string()),
            EngineError::BlobUnknown(_) => ApiError::not_found(Code::BlobUnknown, e.to_string()),
            EngineError::ManifestUnknown(_) => ApiError::not_found(Code::ManifestUnknown, e.to_string()),
            EngineError::RepositoryUnknown(_) => ApiError::not_found(Code::NameUnknown, e.to_string()),
            EngineError::RangeNotSatisfiable { len, .. } => {
                ApiError::new(S::RANGE_NOT_SATISFIABLE, Code::RangeInvalid, e.to_string())
                    .with_header(http::header::CONTENT_RANGE, &format!("bytes */{len}"))
            }
            // Storage refuses writes until an operator acts: 503 tells clients to retry later.
            EngineError::Poisoned(_) => ApiError::new(S::SERVICE_UNAVAILABLE, Code::Unavailable, "storage is refusing writes after a disk error; an administrator must check the disk and restart the registry").with_cause(&e),
            ref io if io.is_no_space() => ApiError::new(
                S::INSUFFICIENT_STORAGE,
                Code::Unavailable,
                "the registry's disk is full; ask an administrator to free space or run garbage collection",
            )
            .with_cause(&e),
            // Scrub moved the damaged bytes aside and the registry refuses to serve them. DENIED,
            // because clients show its message (docker turns a blob 404 into a bare "unknown
            // blob") and do not retry it; the message says why and what to do. A HEAD answers
            // 404 instead (blob_get), so `docker push` uploads the blob again, which heals it;
            // manifest reads answer MANIFEST_UNKNOWN, whose message docker shows.
            EngineError::Quarantined(_) => ApiError::new(S::FORBIDDEN, Code::Denied, e.to_string()),
            // A quota is a permission-like refusal: DENIED names the quota, the usage and the way out.
            EngineError::QuotaExceeded { .. } => ApiError::new(S::FORBIDDEN, Code::Denied, e.to_string()),
            // A backup destination or source the operator must change; the message says how.
            EngineError::Backup(_) => ApiError::new(S::BAD_REQUEST, Code::for_status(S::BAD_REQUEST), e.to_string()),
            EngineError::Corrupt { .. }
            | EngineError::Io { .. }
            | EngineError::Index(_)
            | EngineError::WriterGone
            | EngineError::IndexTooNew { .. } => {
                ApiError::internal("storage failure", &e)
            }
        }
    }
}

/// The `Range` header value of an upload holding `offset` bytes: `0-<offset-1>`; `0-0` when empty,
/// as Distribution and the Docker client expect.
pub fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<crate::body::Body>) -> serde_json::Value {
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn storage_errors_map_the_same_on_both_interfaces_without_internal_detail() {
        let poisoned = || EngineError::Poisoned("fsync of /srv/secret/blobs/ab/cd failed: EIO".into());
        let full = || EngineError::Io {
            path: "/srv/secret/uploads/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let broken = || EngineError::Io { path: "/srv/secret/index".into(), source: std::io::Error::other("boom") };
        for (e, status, rest_code) in
            [(poisoned(), 503, "unavailable"), (full(), 507, "insufficient_storage"), (broken(), 500, "internal")]
        {
            let text = e.to_string();
            let a: ApiError = e.into();
            assert_eq!(a.status.as_u16(), status, "{text}");
            assert!(a.cause.as_deref().is_some_and(|c| c.contains("/srv/secret")), "the log keeps the cause");
            let b: ApiError = match status {
                503 => poisoned().into(),
                507 => full().into(),
                _ => broken().into(),
            };
            let reg = a.into_response();
            assert_eq!(reg.status().as_u16(), status);
            let v = body(reg).await;
            assert!(!v.to_string().contains("/srv/secret"), "{v}");
            let rest = b.into_rest_response();
            assert_eq!(rest.status().as_u16(), status);
            let w = body(rest).await;
            assert_eq!(w["error"]["code"], rest_code);
            assert_eq!(w["error"]["message"], v["errors"][0]["message"], "one message for both interfaces");
            assert!(!w.to_string().contains("/srv/secret"), "{w}");
        }
    }
}
