//! Response bodies and the small response builders every part of the daemon uses. It depends on
//! nothing else in the daemon, so `error`, `server`, `handlers`, `api` all build on it without an
//! import circle. It never decides a status or logs.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use std::convert::Infallible;

/// The response body type of every handler.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A response as every handler returns it.
pub type Resp = Response<Body>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never: Infallible| match never {}).boxed_unsync()
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub fn text_response(status: StatusCode, text: &str) -> Resp {
    let mut r = Response::new(full(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A response with no body and the given headers.
pub fn bare(status: StatusCode, headers: &[(&'static str, String)]) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    if !r.headers().contains_key(header::CONTENT_LENGTH) {
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}
