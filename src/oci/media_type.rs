//! Media types: the manifest types the registry stores, and validation of any media-type string a
//! client sends (`Content-Type`, `mediaType`, `artifactType`).
//!
//! Syntax is RFC 6838 §4.2 (`type/subtype`, restricted-name characters, at most 127 each) with
//! optional RFC 9110 §8.3.1 parameters after ';'; comparison ignores ASCII case and parameters.
//! Docker schema 1 types are recognised only so they can be refused with a useful message.
//!
//! This module must never accept a media type longer than [`MAX_MEDIA_TYPE_BYTES`] or with
//! control characters (they end up in response headers), and never decide policy beyond naming
//! the type: what to do with a type is the caller's choice.

use std::fmt;
use std::str::FromStr;

pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Image config blobs (not manifests), for callers that classify descriptors.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The empty descriptor's type (image-spec v1.1 "Guidance for an empty descriptor").
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Longest accepted media-type string, parameters included, in bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

/// Longest type or subtype name (RFC 6838 §4.2: 127 characters).
const MAX_NAME_BYTES: usize = 127;

/// Error messages quote at most this many characters of what the client sent.
const QUOTE_CHARS: usize = 80;

/// Why a string is not a media type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    #[error("media type is empty; use <type>/<subtype>, e.g. \"application/vnd.oci.image.manifest.v1+json\"")]
    Empty,
    #[error("media type is {len} bytes long; the limit is {MAX_MEDIA_TYPE_BYTES} bytes")]
    TooLong { len: usize },
    #[error("media type {got:?} must be <type>/<subtype>")]
    MissingSlash { got: String },
    #[error(
        "media type {got:?} has an invalid {part}: it must be 1 to 127 characters, start with a letter or digit and use only letters, digits and !#$&-^_.+ (RFC 6838)"
    )]
    BadName { got: String, part: &'static str },
    #[error("media type {got:?} has a malformed parameter; parameters must be ;name=value or ;name=\"quoted value\"")]
    BadParameter { got: String },
}

/// A validated media type, classified.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    DockerManifestV2,
    DockerManifestList,
    OciManifest,
    OciIndex,
    /// Docker image manifest schema 1, unsigned. Recognised only to be refused.
    DockerSchema1,
    /// Docker image manifest schema 1, signed (`prettyjws`). Recognised only to be refused.
    DockerSchema1Signed,
    /// Any other valid media type, kept as the client sent it (parameters included).
    Other(String),
}

impl MediaType {
    /// The canonical string for known types; the original string for [`MediaType::Other`].
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::DockerManifestV2 => DOCKER_MANIFEST_V2,
            MediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciIndex => OCI_INDEX,
            MediaType::DockerSchema1 => DOCKER_SCHEMA1,
            MediaType::DockerSchema1Signed => DOCKER_SCHEMA1_SIGNED,
            MediaType::Other(s) => s,
        }
    }

    /// A schema 2 / OCI manifest type the registry stores (image manifest or index).
    pub fn is_manifest(&self) -> bool {
        self.is_image_manifest() || self.is_index()
    }

    /// An image manifest (Docker v2 or OCI), as opposed to an index.
    pub fn is_image_manifest(&self) -> bool {
        matches!(self, MediaType::DockerManifestV2 | MediaType::OciManifest)
    }

    /// An index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::DockerManifestList | MediaType::OciIndex)
    }

    /// A Docker schema 1 type, which the registry refuses.
    pub fn is_schema1(&self) -> bool {
        matches!(self, MediaType::DockerSchema1 | MediaType::DockerSchema1Signed)
    }
}

impl FromStr for MediaType {
    type Err = MediaTypeError;

    fn from_str(s: &str) -> Result<MediaType, MediaTypeError> {
        let essence = validate(s)?;
        let known = [
            (DOCKER_MANIFEST_V2, MediaType::DockerManifestV2),
            (DOCKER_MANIFEST_LIST, MediaType::DockerManifestList),
            (OCI_MANIFEST, MediaType::OciManifest),
            (OCI_INDEX, MediaType::OciIndex),
            (DOCKER_SCHEMA1, MediaType::DockerSchema1),
            (DOCKER_SCHEMA1_SIGNED, MediaType::DockerSchema1Signed),
        ];
        Ok(known
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(essence))
            .map_or_else(|| MediaType::Other(s.trim().to_owned()), |(_, t)| t))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks `s` and returns its essence: `type/subtype` without parameters or surrounding space.
pub fn validate(s: &str) -> Result<&str, MediaTypeError> {
    if s.len() > MAX_MEDIA_TYPE_BYTES {
        return Err(MediaTypeError::TooLong { len: s.len() });
    }
    let s = s.trim_matches(is_ows);
    if s.is_empty() {
        return Err(MediaTypeError::Empty);
    }
    let (essence, params) = s.split_once(';').map_or((s, None), |(e, p)| (e, Some(p)));
    let essence = essence.trim_end_matches(is_ows);
    let (ty, sub) = essence.split_once('/').ok_or_else(|| MediaTypeError::MissingSlash { got: quote(s) })?;
    for (part, name) in [("type", ty), ("subtype", sub)] {
        if !is_restricted_name(name) {
            return Err(MediaTypeError::BadName { got: quote(s), part });
        }
    }
    if let Some(params) = params {
        if !parameters_ok(params) {
            return Err(MediaTypeError::BadParameter { got: quote(s) });
        }
    }
    Ok(essence)
}

/// RFC 6838 §4.2 `restricted-name`.
fn is_restricted_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.len() <= MAX_NAME_BYTES
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `rest` is what follows the first ';': `param *( OWS ";" OWS param )` with
/// `param = token "=" ( token / quoted-string )` (RFC 9110 §5.6.6). Empty parameters between
/// semicolons are tolerated, as RFC 9110 §5.6.6 allows.
fn parameters_ok(rest: &str) -> bool {
    let b = rest.as_bytes();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| *c == b' ' || *c == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        match b.get(i) {
            None => return true,
            Some(b';') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name_start = i;
        while b.get(i).is_some_and(|c| is_tchar(*c)) {
            i += 1;
        }
        if i == name_start || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return false,
                    Some(b'"') => break,
                    Some(b'\\') => {
                        if !b.get(i + 1).is_some_and(|c| is_qtext(*c) || *c == b'"' || *c == b'\\') {
                            return false;
                        }
                        i += 2;
                    }
                    Some(c) if is_qtext(*c) => i += 1,
                    Some(_) => return false,
                }
            }
            i += 1;
        } else {
            let value_start = i;
            while b.get(i).is_some_and(|c| is_tchar(*c)) {
                i += 1;
            }
            if i == value_start {
                return false;
            }
        }
        skip_ows(&mut i);
        match b.get(i) {
            None => return true,
            Some(b';') => i += 1,
            Some(_) => return false,
        }
    }
}

/// Characters allowed in a quoted string, other than '"' and '\\' (RFC 9110 §5.6.4), restricted
/// to ASCII so the value is safe to echo in a header.
fn is_qtext(c: u8) -> bool {
    c == b'\t' || c == b' ' || (c.is_ascii_graphic() && c != b'"' && c != b'\\')
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_CHARS).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mt(s: &str) -> Result<MediaType, MediaTypeError> {
        s.parse()
    }

    #[test]
    fn classifies_known_types() {
        assert_eq!(mt(DOCKER_MANIFEST_V2), Ok(MediaType::DockerManifestV2));
        assert_eq!(mt(DOCKER_MANIFEST_LIST), Ok(MediaType::DockerManifestList));
        assert_eq!(mt(OCI_MANIFEST), Ok(MediaType::OciManifest));
        assert_eq!(mt(OCI_INDEX), Ok(MediaType::OciIndex));
        assert_eq!(mt(DOCKER_SCHEMA1), Ok(MediaType::DockerSchema1));
        assert_eq!(mt(DOCKER_SCHEMA1_SIGNED), Ok(MediaType::DockerSchema1Signed));
        assert_eq!(mt("Application/VND.OCI.image.index.v1+JSON"), Ok(MediaType::OciIndex));
        assert_eq!(mt(" application/vnd.oci.image.manifest.v1+json ; charset=utf-8"), Ok(MediaType::OciManifest));
        assert_eq!(mt(OCI_MANIFEST).unwrap().to_string(), OCI_MANIFEST);
    }

    #[test]
    fn predicates() {
        let all = [
            MediaType::DockerManifestV2,
            MediaType::DockerManifestList,
            MediaType::OciManifest,
            MediaType::OciIndex,
            MediaType::DockerSchema1,
            MediaType::DockerSchema1Signed,
            MediaType::Other("application/json".into()),
        ];
        let got: Vec<_> = all.iter().map(|t| (t.is_manifest(), t.is_index(), t.is_schema1())).collect();
        assert_eq!(
            got,
            [
                (true, false, false),
                (true, true, false),
                (true, false, false),
                (true, true, false),
                (false, false, true),
                (false, false, true),
                (false, false, false)
            ]
        );
    }

    #[test]
    fn other_keeps_client_string() {
        let s = "application/vnd.example.sbom+json; v=\"1 2\"";
        assert_eq!(mt(s), Ok(MediaType::Other(s.into())));
        assert_eq!(mt(s).unwrap().as_str(), s);
        assert_eq!(validate(s), Ok("application/vnd.example.sbom+json"));
    }

    #[test]
    fn parameters() {
        for ok in ["a/b;x=y", "a/b ; x=y ; z=\"q\\\"w\"", "a/b;", "a/b;;x=y", "a/b;x=\"\""] {
            assert_eq!(validate(ok), Ok("a/b"), "{ok:?}");
        }
        for bad in ["a/b;x", "a/b;=y", "a/b;x=", "a/b;x=\"open", "a/b;x=y z", "a/b;x=\"\u{7}\"", "a/b;x=\"é\""] {
            assert_eq!(validate(bad), Err(MediaTypeError::BadParameter { got: bad.into() }), "{bad:?}");
        }
    }

    #[test]
    fn bad_names() {
        assert_eq!(validate(""), Err(MediaTypeError::Empty));
        assert_eq!(validate("  "), Err(MediaTypeError::Empty));
        assert_eq!(validate("json"), Err(MediaTypeError::MissingSlash { got: "json".into() }));
        for (bad, part) in [
            ("/json", "type"),
            ("application/", "subtype"),
            ("app lication/json", "type"),
            ("application/json/x", "subtype"),
            ("application/.json", "subtype"),
            ("application/js\non", "subtype"),
            ("*/*", "type"),
        ] {
            assert_eq!(validate(bad), Err(MediaTypeError::BadName { got: bad.into(), part }), "{bad:?}");
        }
        let long_sub = format!("a/{}", "b".repeat(128));
        assert_eq!(validate(&long_sub), Err(MediaTypeError::BadName { got: quote(&long_sub), part: "subtype" }));
        assert_eq!(
            validate("application/").unwrap_err().to_string(),
            "media type \"application/\" has an invalid subtype: it must be 1 to 127 characters, start with a \
             letter or digit and use only letters, digits and !#$&-^_.+ (RFC 6838)"
        );
    }

    #[test]
    fn length_bound() {
        let s = format!("application/{}", "x".repeat(244));
        assert_eq!(s.len(), 256);
        assert_eq!(validate(&s), Err(MediaTypeError::TooLong { len: 256 }));
        let ok = format!("a/b;p={}", "x".repeat(249));
        assert_eq!(ok.len(), 255);
        assert_eq!(validate(&ok), Ok("a/b"));
    }
}
