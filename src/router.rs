//! Parses a request line into an [`Endpoint`] before any I/O (garage `api/s3/router.rs`). The
//! repository name is found from the right: the last `/blobs/`, `/manifests/`, `/tags/list`,
//! `/referrers/` marks where it ends, so names of any depth work. Each endpoint names the
//! [`Action`] it needs, which is where the access model plugs in.

use crate::error::{ApiError, Code};
use crate::oci::{Algorithm, Digest, Reference, RepositoryName, Tag};
use http::{Method, StatusCode};

/// What a request asks to do to a repository, for access control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// No repository involved (ping, health).
    None,
    Pull,
    Push,
    Delete,
    Catalog,
}

/// Query parameters of pagination (`n`, `last`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub n: Option<usize>,
    pub last: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// end-1: `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog(Page),
    /// `GET`/`POST /v2/token`: the token server (Docker token-auth spec).
    Token {
        post: bool,
    },
    /// end-2: `GET|HEAD /v2/<name>/blobs/<digest>`
    BlobGet {
        name: RepositoryName,
        digest: Digest,
        head: bool,
    },
    /// end-10: `DELETE /v2/<name>/blobs/<digest>`
    BlobDelete {
        name: RepositoryName,
        digest: Digest,
    },
    /// end-4a/4b/11: `POST /v2/<name>/blobs/uploads/` with optional `digest`, `mount`, `from`, and
    /// (distribution-spec main) `digest-algorithm`, which only has to name an algorithm this
    /// registry hashes with (both are always computed).
    UploadStart {
        name: RepositoryName,
        digest: Option<Digest>,
        mount: Option<Digest>,
        from: Option<RepositoryName>,
    },
    /// end-13: `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus {
        name: RepositoryName,
        id: String,
    },
    /// end-5: `PATCH /v2/<name>/blobs/uploads/<id>`
    UploadPatch {
        name: RepositoryName,
        id: String,
    },
    /// end-6: `PUT /v2/<name>/blobs/uploads/<id>?digest=`
    UploadFinish {
        name: RepositoryName,
        id: String,
        digest: Digest,
    },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    UploadCancel {
        name: RepositoryName,
        id: String,
    },
    /// end-3: `GET|HEAD /v2/<name>/manifests/<reference>`
    ManifestGet {
        name: RepositoryName,
        reference: Reference,
        head: bool,
    },
    /// end-7: `PUT /v2/<name>/manifests/<reference>`. By digest it may carry `tag` query
    /// parameters (distribution-spec main, "Pushing manifests with tags"); by tag it may carry
    /// `digest-algorithm` (the algorithm of the manifest's digest; sha256 when absent).
    ManifestPut {
        name: RepositoryName,
        reference: Reference,
        tags: Vec<Tag>,
        algorithm: Algorithm,
    },
    /// end-9: `DELETE /v2/<name>/manifests/<reference>`
    ManifestDelete {
        name: RepositoryName,
        reference: Reference,
    },
    /// end-8a/8b: `GET /v2/<name>/tags/list`
    TagsList {
        name: RepositoryName,
        page: Page,
    },
    /// end-12a/12b: `GET /v2/<name>/referrers/<digest>`
    Referrers {
        name: RepositoryName,
        digest: Digest,
        artifact_type: Option<String>,
    },
    Healthz,
    /// Prometheus text exposition.
    Metrics,
    Readyz,
}

impl Endpoint {
    pub fn action(&self) -> Action {
        match self {
            Endpoint::Base | Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics | Endpoint::Token { .. } => {
                Action::None
            }
            Endpoint::Catalog(_) => Action::Catalog,
            Endpoint::BlobGet { .. }
            | Endpoint::ManifestGet { .. }
            | Endpoint::TagsList { .. }
            | Endpoint::Referrers { .. } => Action::Pull,
            Endpoint::UploadStart { .. }
            | Endpoint::UploadStatus { .. }
            | Endpoint::UploadPatch { .. }
            | Endpoint::UploadFinish { .. }
            | Endpoint::UploadCancel { .. }
            | Endpoint::ManifestPut { .. } => Action::Push,
            Endpoint::BlobDelete { .. } | Endpoint::ManifestDelete { .. } => Action::Delete,
        }
    }

    /// The repository the request is about, if any.
    pub fn name(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Base
            | Endpoint::Healthz
            | Endpoint::Readyz
            | Endpoint::Metrics
            | Endpoint::Catalog(_)
            | Endpoint::Token { .. } => None,
            Endpoint::BlobGet { name, .. }
            | Endpoint::BlobDelete { name, .. }
            | Endpoint::UploadStart { name, .. }
            | Endpoint::UploadStatus { name, .. }
            | Endpoint::UploadPatch { name, .. }
            | Endpoint::UploadFinish { name, .. }
            | Endpoint::UploadCancel { name, .. }
            | Endpoint::ManifestGet { name, .. }
            | Endpoint::ManifestPut { name, .. }
            | Endpoint::ManifestDelete { name, .. }
            | Endpoint::TagsList { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }

    /// Parses method, path and query. `Ok(None)`: not a registry path (other services may serve it).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Option<Endpoint>, ApiError> {
        match path {
            "/healthz" => return only_get(method).map(|_| Some(Endpoint::Healthz)),
            "/metrics" => return only_get(method).map(|_| Some(Endpoint::Metrics)),
            "/readyz" => return only_get(method).map(|_| Some(Endpoint::Readyz)),
            "/v2" | "/v2/" => return only_get(method).map(|_| Some(Endpoint::Base)),
            "/v2/token" => {
                return match *method {
                    Method::GET => Ok(Some(Endpoint::Token { post: false })),
                    Method::POST => Ok(Some(Endpoint::Token { post: true })),
                    _ => Err(ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        Code::Unsupported,
                        "use GET or POST on /v2/token",
                    )
                    .with_header(http::header::ALLOW, "GET, POST")),
                }
            }
            "/v2/_catalog" => {
                only_get(method)?;
                return Ok(Some(Endpoint::Catalog(page(query)?)));
            }
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/v2/") else { return Ok(None) };
        let q = Query::parse(query);
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let name_of = |k: usize| -> Result<RepositoryName, ApiError> {
            if k == 0 || k > n {
                return Err(ApiError::not_found(Code::NameInvalid, "no repository name in the path"));
            }
            let joined = segs[..k].join("/");
            joined.parse().map_err(|e: crate::oci::NameError| ApiError::bad_request(Code::NameInvalid, e.to_string()))
        };
        let unsupported = |allow: &str| {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unsupported,
                format!("{method} is not supported on {path}; use {allow}"),
            )
            .with_header(http::header::ALLOW, allow))
        };
        let ep = if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
            only_get(method)?;
            Endpoint::TagsList { name: name_of(n - 2)?, page: page(query)? }
        } else if n >= 3 && segs[n - 2] == "manifests" {
            let name = name_of(n - 2)?;
            let reference = parse_reference(segs[n - 1])?;
            match *method {
                Method::GET => Endpoint::ManifestGet { name, reference, head: false },
                Method::HEAD => Endpoint::ManifestGet { name, reference, head: true },
                Method::PUT => {
                    let tags = manifest_tags(&q, &reference)?;
                    let algorithm = digest_algorithm(&q)?.unwrap_or(Algorithm::Sha256);
                    if let Reference::Digest(d) = &reference {
                        if q.get("digest-algorithm").is_some() && d.algorithm() != algorithm {
                            return Err(ApiError::bad_request(
                                Code::DigestInvalid,
                                format!("digest-algorithm={} disagrees with the {d} in the URL", algorithm.as_str()),
                            ));
                        }
                    }
                    Endpoint::ManifestPut { name, reference, tags, algorithm }
                }
                Method::DELETE => Endpoint::ManifestDelete { name, reference },
                _ => return unsupported("GET, HEAD, PUT, DELETE"),
            }
        } else if n >= 3 && segs[n - 2] == "referrers" {
            only_get(method)?;
            // A media type may hold '+' (`application/spdx+json`) and never a space, so '+' here
            // is a plus sign even when a client leaves it unescaped (RFC 3986 gives it no other
            // meaning in a query; only form encoding does).
            let artifact_type = raw_param(query, "artifactType").map(|v| decode(v, false));
            Endpoint::Referrers { name: name_of(n - 2)?, digest: parse_digest(segs[n - 1])?, artifact_type }
        } else if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads"
            || n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" && segs[n - 1].is_empty()
        {
            let k = if segs[n - 1].is_empty() { n - 3 } else { n - 2 };
            if *method != Method::POST {
                return unsupported("POST");
            }
            // Refused before any upload starts: the client learns at once that the algorithm
            // it wants is not one this registry supports.
            digest_algorithm(&q)?;
            Endpoint::UploadStart {
                name: name_of(k)?,
                digest: q.get("digest").map(parse_digest).transpose()?,
                mount: q.get("mount").map(parse_digest).transpose()?,
                // A `from` that is not a repository name cannot name a source; the mount then
                // falls back to an upload, as the spec asks of a mount that cannot be done.
                from: q.get("from").and_then(|f| f.parse().ok()),
            }
        } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            let name = name_of(n - 3)?;
            let id = parse_upload_id(segs[n - 1])?;
            match *method {
                Method::GET => Endpoint::UploadStatus { name, id },
                Method::PATCH => Endpoint::UploadPatch { name, id },
                Method::PUT => {
                    let d = q.get("digest").ok_or_else(|| {
                        ApiError::bad_request(
                            Code::DigestInvalid,
                            "PUT that completes an upload needs ?digest=<algorithm>:<hex>",
                        )
                    })?;
                    Endpoint::UploadFinish { name, id, digest: parse_digest(d)? }
                }
                Method::DELETE => Endpoint::UploadCancel { name, id },
                _ => return unsupported("GET, PATCH, PUT, DELETE"),
            }
        } else if n >= 3 && segs[n - 2] == "blobs" {
            let name = name_of(n - 2)?;
            let digest = parse_digest(segs[n - 1])?;
            match *method {
                Method::GET => Endpoint::BlobGet { name, digest, head: false },
                Method::HEAD => Endpoint::BlobGet { name, digest, head: true },
                Method::DELETE => Endpoint::BlobDelete { name, digest },
                _ => return unsupported("GET, HEAD, DELETE"),
            }
        } else {
            return Err(ApiError::not_found(Code::Unsupported, format!("{path} is not a registry endpoint")));
        };
        Ok(Some(ep))
    }
}

fn only_get(method: &Method) -> Result<(), ApiError> {
    if *method == Method::GET || *method == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unsupported,
            format!("{method} is not supported here; use GET"),
        )
        .with_header(http::header::ALLOW, "GET, HEAD"))
    }
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    let s = percent_decode(s);
    s.parse().map_err(|e: crate::oci::DigestError| ApiError::bad_request(Code::DigestInvalid, e.to_string()))
}

fn parse_reference(s: &str) -> Result<Reference, ApiError> {
    let s = percent_decode(s);
    s.parse().map_err(|e: crate::oci::ReferenceError| match e {
        crate::oci::ReferenceError::Digest { .. } => ApiError::bad_request(Code::DigestInvalid, e.to_string()),
        _ => ApiError::bad_request(Code::ManifestInvalid, e.to_string()),
    })
}

/// Most `tag` parameters one manifest PUT may carry. The spec asks for at least 10 and allows
/// 414 beyond what a registry supports; the request line is bounded by the header limit anyway.
pub const MAX_TAGS_PER_PUT: usize = 100;

/// The `tag` query parameters of a manifest PUT: only with a digest reference (a PUT by tag
/// already names its tag), each a valid tag, at most [`MAX_TAGS_PER_PUT`], duplicates dropped.
fn manifest_tags(q: &Query, reference: &Reference) -> Result<Vec<Tag>, ApiError> {
    let raw: Vec<&str> = q.all("tag").collect();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if reference.as_tag().is_some() {
        return Err(ApiError::bad_request(
            Code::ManifestInvalid,
            "tag query parameters go with a PUT by digest (/v2/<name>/manifests/<digest>?tag=...); this PUT is by tag",
        ));
    }
    if raw.len() > MAX_TAGS_PER_PUT {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            Code::ManifestInvalid,
            format!("{} tag parameters; at most {MAX_TAGS_PER_PUT} per request", raw.len()),
        ));
    }
    let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
    for t in raw {
        let tag: Tag =
            t.parse().map_err(|e: crate::oci::TagError| ApiError::bad_request(Code::ManifestInvalid, e.to_string()))?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// The `digest-algorithm` query parameter, if present: `sha256` or `sha512`, else 400.
fn digest_algorithm(q: &Query) -> Result<Option<Algorithm>, ApiError> {
    match q.get("digest-algorithm") {
        None => Ok(None),
        Some("sha256") => Ok(Some(Algorithm::Sha256)),
        Some("sha512") => Ok(Some(Algorithm::Sha512)),
        Some(other) => Err(ApiError::bad_request(
            Code::DigestInvalid,
            format!(
                "digest-algorithm={:?} is not supported; use sha256 or sha512",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

fn parse_upload_id(s: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(s).map(|u| u.to_string()).map_err(|_| {
        ApiError::not_found(Code::BlobUploadUnknown, "upload id is not one this registry issued; start a new upload")
    })
}

fn page(query: Option<&str>) -> Result<Page, ApiError> {
    let q = Query::parse(query);
    let n = match q.get("n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::bad_request(Code::Unsupported, format!("n={v:?} is not a non-negative number of entries"))
        })?),
        None => None,
    };
    Ok(Page { n, last: q.get("last").map(str::to_string) })
}

/// Decoded query parameters. Bounded by the header-size limit of the server.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The undecoded value of the first `key=` parameter of a query.
fn raw_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|p| match p.split_once('=') {
        Some((k, v)) if decode(k, true) == key => Some(v),
        None if decode(p, true) == key => Some(""),
        _ => None,
    })
}

/// Decodes `%XX` escapes and `+` (form encoding). Invalid escapes are kept as they are, so they fail
/// validation downstream with the original text.
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space`.
fn decode(s: &str, plus_is_space: bool) -> String {
    if !s.contains(['%', '+']) {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn p(m: Method, path: &str, q: Option<&str>) -> Endpoint {
        Endpoint::parse(&m, path, q).unwrap().unwrap()
    }

    #[test]
    fn parses_names_of_any_depth_from_the_right() {
        let ep = p(Method::GET, &format!("/v2/syn1/a/b/c/d/e/f/g/h/blobs/{D}"), None);
        let Endpoint::BlobGet { name, head: false, .. } = &ep else { panic!("{ep:?}") };
        assert_eq!(name.as_str(), "syn1/a/b/c/d/e/f/g/h");
        let ep = p(Method::PUT, "/v2/syn1/manifests/x/manifests/v1", None);
        let Endpoint::ManifestPut { name, reference, .. } = &ep else { panic!("{ep:?}") };
        assert_eq!((name.as_str(), reference.to_string().as_str()), ("syn1/manifests/x", "v1"));
        let ep = p(Method::GET, "/v2/syn1/tags/list/tags/list", Some("n=5&last=a"));
        let Endpoint::TagsList { name, page } = &ep else { panic!("{ep:?}") };
        assert_eq!(name.as_str(), "syn1/tags/list");
        assert_eq!(page, &Page { n: Some(5), last: Some("a".into()) });
    }

    #[test]
    fn parses_upload_endpoints() {
        for path in ["/v2/syn1/app/blobs/uploads/", "/v2/syn1/app/blobs/uploads"] {
            let ep = p(Method::POST, path, Some(&format!("mount={D}&from=syn2/lib")));
            assert_eq!(ep.action(), Action::Push);
            let Endpoint::UploadStart { name, digest: None, mount: Some(m), from: Some(f) } = &ep else {
                panic!("{ep:?}")
            };
            assert_eq!((name.as_str(), m.to_string().as_str(), f.as_str()), ("syn1/app", D, "syn2/lib"));
            let ep = p(Method::POST, path, Some(&format!("mount={D}&from=Not..A..Name")));
            assert!(matches!(ep, Endpoint::UploadStart { from: None, mount: Some(_), .. }), "{ep:?}");
        }
        let id = "0b9b5c8e-6f3a-4bbf-9d8e-0e8d1a0c7b11";
        let ep = p(
            Method::PUT,
            &format!("/v2/syn1/app/blobs/uploads/{id}"),
            Some(&format!("digest={}", D.replace(':', "%3A"))),
        );
        assert!(matches!(ep, Endpoint::UploadFinish { ref digest, .. } if digest.to_string() == D));
        assert!(matches!(
            p(Method::PATCH, &format!("/v2/syn1/app/blobs/uploads/{id}"), None),
            Endpoint::UploadPatch { .. }
        ));
        let e = Endpoint::parse(&Method::PATCH, "/v2/syn1/app/blobs/uploads/..%2F..%2Fetc", None).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, Code::BlobUploadUnknown));
        let e = Endpoint::parse(&Method::PUT, &format!("/v2/syn1/app/blobs/uploads/{id}"), None).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, Code::DigestInvalid));
    }

    #[test]
    fn rejects_bad_names_digests_and_methods() {
        let e = Endpoint::parse(&Method::GET, "/v2/Syn1/App/manifests/latest", None).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, Code::NameInvalid));
        let e = Endpoint::parse(&Method::GET, "/v2/syn1/app/blobs/sha256:abc", None).unwrap_err();
        assert_eq!(e.code, Code::DigestInvalid);
        let e = Endpoint::parse(&Method::POST, "/v2/syn1/app/manifests/latest", None).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported));
        let e = Endpoint::parse(&Method::GET, "/v2/syn1/app/nothing", None).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(Endpoint::parse(&Method::GET, "/api/v1/x", None).unwrap(), None);
        assert_eq!(p(Method::GET, "/v2/", None), Endpoint::Base);
    }

    #[test]
    fn artifact_type_keeps_its_plus_sign() {
        for q in ["artifactType=application/spdx+json", "x=1&artifactType=application%2Fspdx%2Bjson"] {
            let ep = p(Method::GET, &format!("/v2/syn1/app/referrers/{D}"), Some(q));
            let Endpoint::Referrers { artifact_type: Some(t), .. } = &ep else { panic!("{ep:?}") };
            assert_eq!(t, "application/spdx+json", "{q}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab+c%zz%4"), "a:b c%zz%4");
    }
}
