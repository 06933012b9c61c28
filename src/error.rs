//! The one mapping from failures to Distribution API responses: spec error code, HTTP status,
//! extra headers and the JSON body `{"errors":[{"code","message","detail"}]}` (distribution-spec
//! "Error Codes"). Engine errors are translated here and nowhere else. Internal details are
//! logged once, never sent: 4xx at info, 5xx at error.

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
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), detail: None, headers: Vec::new() }
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

    /// A failure of ours: logged with its cause, sent without it.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unknown,
            "internal error; the registry log has the details",
        )
    }

    pub fn into_response(self) -> Response<crate::body::Body> {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code.as_str(), message = %self.message, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code.as_str(), message = %self.message, "request refused");
        }
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
            EngineError::Poisoned(_) => {
                tracing::error!(error = %e, "write refused");
                ApiError::new(S::SERVICE_UNAVAILABLE, Code::Unavailable, "storage is refusing writes after a disk error; an administrator must check the disk and restart the registry")
            }
            ref io if io.is_no_space() => {
                tracing::error!(error = %e, "disk full");
                ApiError::new(
                    S::INSUFFICIENT_STORAGE,
                    Code::Unavailable,
                    "the registry's disk is full; ask an administrator to free space or run garbage collection",
                )
            }
            EngineError::Corrupt { .. } | EngineError::Io { .. } | EngineError::Index(_) | EngineError::WriterGone => {
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
