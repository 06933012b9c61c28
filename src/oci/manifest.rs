//! Parsing of pushed manifests (OCI image manifest and index, Docker schema 2 manifest and list)
//! into what the registry needs: the media type, the blobs and manifests they reference, the
//! subject and artifact type for the referrers API, and annotations.
//!
//! Rules: OCI image-spec v1.1 (manifest.md, image-index.md, descriptor.md) and distribution-spec
//! v1.1 ("Pushing manifests", "Listing referrers"). The bytes themselves are stored verbatim by
//! the caller; nothing here re-serialises a manifest, because its digest is over the exact bytes.
//!
//! This module must never do I/O, never trust a digest it has not parsed, and never hand serde
//! JSON nested deeper than [`MAX_DEPTH`] (checked by a byte scan first). The caller bounds size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stowage_engine::digest::{Digest, DigestError};

use super::media_type::{self, MediaType, MediaTypeError};

/// Deepest JSON nesting accepted (objects and arrays). Real manifests use 4 or 5 levels.
pub const MAX_DEPTH: usize = 64;

const SCHEMA1_ADVICE: &str = "Docker schema 1 manifests are not supported; \
     push with a current docker or convert with skopeo --format v2s2";

/// Why a manifest was refused. Field paths look like `layers[2].digest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest JSON nests deeper than {MAX_DEPTH} levels; real manifests need about 5")]
    TooDeep,
    #[error("manifest is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("manifest must be a JSON object")]
    NotAnObject,
    #[error("{}", SCHEMA1_ADVICE)]
    Schema1,
    #[error("schemaVersion is missing; it must be 2")]
    MissingSchemaVersion,
    #[error("schemaVersion must be 2, got {got}")]
    SchemaVersion { got: String },
    #[error(
        "manifest media type {media_type:?} is not supported; use {OCI_MANIFEST}, {OCI_INDEX} or their Docker schema 2 equivalents",
        OCI_MANIFEST = media_type::OCI_MANIFEST,
        OCI_INDEX = media_type::OCI_INDEX
    )]
    UnsupportedMediaType { media_type: String },
    #[error("manifest mediaType is {body:?} but Content-Type is {content_type:?}; send the same media type in both")]
    MediaTypeMismatch { body: String, content_type: String },
    #[error(
        "cannot tell the manifest type: set mediaType, or send a manifest Content-Type, or include manifests (index) or config and layers (image manifest)"
    )]
    UnknownKind,
    #[error("{field} is missing; {why}")]
    Missing { field: String, why: &'static str },
    #[error("{field} must be {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("{field}: {source}")]
    BadDigest { field: String, source: DigestError },
    #[error("{field}: {source}")]
    BadMediaType { field: String, source: MediaTypeError },
}

/// Whether a manifest describes one image (or artifact) or points at other manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    Image,
    Index,
}

/// An OCI content descriptor. Serialises in the OCI JSON shape, so it can be returned as-is in a
/// referrers index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    /// image-spec descriptor.md: where else the content may be fetched from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// Media type prefixes of layers that are not meant to be distributed: the registry accepts a
/// manifest listing them without their blobs (image-spec layer.md "Non-distributable layers";
/// Docker's "foreign" layers).
const FOREIGN_LAYER_PREFIXES: [&str; 2] =
    ["application/vnd.oci.image.layer.nondistributable.", "application/vnd.docker.image.rootfs.foreign.diff.tar"];

/// Most `urls` one descriptor may list, and longest URL, in bytes: bounded like everything else
/// a client sends.
pub const MAX_DESCRIPTOR_URLS: usize = 16;
pub const MAX_URL_BYTES: usize = 2048;

impl Descriptor {
    /// A layer whose blob the registry need not hold: a non-distributable media type, or `urls`
    /// naming where to fetch it.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || FOREIGN_LAYER_PREFIXES.iter().any(|p| self.media_type.starts_with(p))
    }
}

/// What the registry keeps from a manifest besides its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedManifest {
    /// One of the four supported manifest media types, in canonical form.
    pub media_type: String,
    pub kind: ManifestKind,
    /// Image manifests only.
    pub config: Option<Descriptor>,
    /// Image manifests only; may be empty for artifacts.
    pub layers: Vec<Descriptor>,
    /// Indexes only: the child manifests.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// distribution-spec v1.1 "Listing referrers": `artifactType`, or for an image manifest
    /// without one, `config.mediaType`.
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// Everything this manifest needs to exist in the repository: config, layers and child
    /// manifests. Not the subject, which may be pushed later (distribution-spec v1.1).
    pub fn referenced(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers).chain(&self.manifests)
    }
}

/// Parses manifest `bytes` pushed with `content_type` (the request's `Content-Type`, if any).
///
/// The media type is the body's `mediaType`, else a manifest `Content-Type`, else inferred from
/// the fields. A `Content-Type` that is not a manifest type (e.g. `application/json`) is ignored,
/// since clients send generic types and the body decides what is stored.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<ParsedManifest, ManifestError> {
    check_depth(bytes)?;
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ManifestError::InvalidJson(e.to_string()))?;
    let obj = value.as_object().ok_or(ManifestError::NotAnObject)?;

    let header = match content_type.map(str::parse::<MediaType>) {
        Some(Ok(t)) if t.is_schema1() => return Err(ManifestError::Schema1),
        Some(Ok(t)) if t.is_manifest() => Some(t),
        _ => None,
    };
    let body = match obj.get("mediaType") {
        None => None,
        Some(v) => {
            let s = v.as_str().ok_or_else(|| wrong("mediaType", "a string"))?;
            let t: MediaType =
                s.parse().map_err(|source| ManifestError::BadMediaType { field: "mediaType".into(), source })?;
            Some(t)
        }
    };
    if body.as_ref().is_some_and(MediaType::is_schema1) {
        return Err(ManifestError::Schema1);
    }
    match obj.get("schemaVersion") {
        None => return Err(ManifestError::MissingSchemaVersion),
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) if v.as_u64() == Some(1) => return Err(ManifestError::Schema1),
        Some(v) => return Err(ManifestError::SchemaVersion { got: quote(&v.to_string()) }),
    }
    let media_type = match (body, header) {
        (Some(b), _) if !b.is_manifest() => {
            return Err(ManifestError::UnsupportedMediaType { media_type: b.as_str().to_owned() })
        }
        (Some(b), Some(h)) if b != h => {
            return Err(ManifestError::MediaTypeMismatch {
                body: b.as_str().to_owned(),
                content_type: h.as_str().to_owned(),
            })
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) if obj.contains_key("manifests") => MediaType::OciIndex,
        (None, None) if obj.contains_key("config") && obj.contains_key("layers") => MediaType::OciManifest,
        (None, None) => return Err(ManifestError::UnknownKind),
    };
    let kind = if media_type.is_index() { ManifestKind::Index } else { ManifestKind::Image };

    let (config, layers, manifests) = match kind {
        ManifestKind::Image => {
            let why = "an image manifest needs config and layers (layers may be [])";
            let config = descriptor(require(obj, "config", why)?, "config")?;
            let layers = descriptors(require(obj, "layers", why)?, "layers")?;
            (Some(config), layers, Vec::new())
        }
        ManifestKind::Index => {
            let why = "an index needs manifests (it may be [])";
            (None, Vec::new(), descriptors(require(obj, "manifests", why)?, "manifests")?)
        }
    };
    let subject = obj.get("subject").map(|v| descriptor(v, "subject")).transpose()?;
    let artifact_type = optional_media_type(obj, "artifactType", "artifactType")?
        .or_else(|| config.as_ref().map(|c| c.media_type.clone()));
    let annotations = obj.get("annotations").map(|v| string_map(v, "annotations")).transpose()?.unwrap_or_default();

    Ok(ParsedManifest {
        media_type: media_type.as_str().to_owned(),
        kind,
        config,
        layers,
        manifests,
        subject,
        artifact_type,
        annotations,
    })
}

/// Refuses nesting deeper than [`MAX_DEPTH`] without building anything. Malformed JSON is left for
/// serde to report.
fn check_depth(bytes: &[u8]) -> Result<(), ManifestError> {
    if nesting_exceeds(bytes, MAX_DEPTH) {
        return Err(ManifestError::TooDeep);
    }
    Ok(())
}

/// True if JSON text nests objects and arrays deeper than `max`, found by a byte scan that skips
/// strings (brackets inside them do not count), so hostile input is refused before a parser
/// recurses into it.
pub fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn descriptors(v: &Value, field: &str) -> Result<Vec<Descriptor>, ManifestError> {
    let items = v.as_array().ok_or_else(|| wrong(field, "an array of descriptors"))?;
    items.iter().enumerate().map(|(i, d)| descriptor(d, &format!("{field}[{i}]"))).collect()
}

fn descriptor(v: &Value, field: &str) -> Result<Descriptor, ManifestError> {
    let obj = v.as_object().ok_or_else(|| wrong(field, "a descriptor object"))?;
    let why = "every descriptor needs mediaType, digest and size";
    let media_type = optional_media_type(obj, "mediaType", &format!("{field}.mediaType"))?
        .ok_or_else(|| ManifestError::Missing { field: format!("{field}.mediaType"), why })?;
    let digest_field = format!("{field}.digest");
    let digest = obj
        .get("digest")
        .ok_or_else(|| ManifestError::Missing { field: digest_field.clone(), why })?
        .as_str()
        .ok_or_else(|| wrong(&digest_field, "a string"))?
        .parse()
        .map_err(|source| ManifestError::BadDigest { field: digest_field.clone(), source })?;
    let size_field = format!("{field}.size");
    let size = obj
        .get("size")
        .ok_or_else(|| ManifestError::Missing { field: size_field.clone(), why })?
        .as_u64()
        .ok_or_else(|| wrong(&size_field, "a non-negative integer"))?;
    let artifact_type = optional_media_type(obj, "artifactType", &format!("{field}.artifactType"))?;
    let annotations = obj.get("annotations").map(|v| string_map(v, &format!("{field}.annotations"))).transpose()?;
    let platform = match obj.get("platform") {
        None => None,
        Some(p) if p.is_object() => Some(p.clone()),
        Some(_) => return Err(wrong(&format!("{field}.platform"), "an object")),
    };
    let urls = match obj.get("urls") {
        None => Vec::new(),
        Some(v) => {
            let f = format!("{field}.urls");
            let expected = "an array of at most 16 URL strings of at most 2048 bytes";
            let items = v.as_array().ok_or_else(|| wrong(&f, expected))?;
            if items.len() > MAX_DESCRIPTOR_URLS {
                return Err(wrong(&f, expected));
            }
            items
                .iter()
                .map(|u| match u.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= MAX_URL_BYTES => Ok(s.to_owned()),
                    _ => Err(wrong(&f, expected)),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(Descriptor { media_type, digest, size, artifact_type, annotations, platform, urls })
}

/// A media-type string field; an empty string counts as absent (image-spec allows an empty
/// `artifactType`, and distribution-spec treats it as missing).
fn optional_media_type(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>, ManifestError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let s = v.as_str().ok_or_else(|| wrong(field, "a string"))?;
    if s.is_empty() {
        return Ok(None);
    }
    media_type::validate(s).map_err(|source| ManifestError::BadMediaType { field: field.to_owned(), source })?;
    Ok(Some(s.to_owned()))
}

fn string_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>, ManifestError> {
    let expected = "an object of string values";
    let obj = v.as_object().ok_or_else(|| wrong(field, expected))?;
    obj.iter().map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(|| wrong(field, expected))?.to_owned()))).collect()
}

fn require<'a>(obj: &'a Map<String, Value>, key: &str, why: &'static str) -> Result<&'a Value, ManifestError> {
    obj.get(key).ok_or_else(|| ManifestError::Missing { field: key.to_owned(), why })
}

fn wrong(field: &str, expected: &'static str) -> ManifestError {
    ManifestError::WrongType { field: field.to_owned(), expected }
}

fn quote(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use stowage_engine::digest::Algorithm;

    fn dig(n: u8) -> Digest {
        Digest::of(Algorithm::Sha256, &[n])
    }

    fn desc(mt: &str, n: u8) -> Value {
        json!({ "mediaType": mt, "digest": dig(n).to_string(), "size": 100 + u64::from(n) })
    }

    fn image(extra: Value) -> Value {
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": desc(media_type::OCI_IMAGE_CONFIG, 0),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", 1), desc("application/vnd.oci.image.layer.v1.tar+gzip", 2)],
        });
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        m
    }

    fn run(ct: Option<&str>, v: &Value) -> Result<ParsedManifest, ManifestError> {
        parse(ct, &serde_json::to_vec(v).unwrap())
    }

    fn err(ct: Option<&str>, v: &Value) -> String {
        run(ct, v).unwrap_err().to_string()
    }

    #[test]
    fn oci_image_manifest() {
        let m = run(None, &image(json!({ "subject": desc(media_type::OCI_MANIFEST, 9), "annotations": { "a": "b" } })))
            .unwrap();
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.config.as_ref().unwrap().digest, dig(0));
        assert_eq!(
            m.layers.iter().map(|d| (d.digest.clone(), d.size)).collect::<Vec<_>>(),
            [(dig(1), 101), (dig(2), 102)]
        );
        assert!(m.manifests.is_empty());
        assert_eq!(m.subject.as_ref().unwrap().digest, dig(9));
        assert_eq!(m.artifact_type.as_deref(), Some(media_type::OCI_IMAGE_CONFIG));
        assert_eq!(m.annotations, BTreeMap::from([("a".to_owned(), "b".to_owned())]));
        let refs: Vec<_> = m.referenced().map(|d| d.digest.clone()).collect();
        assert_eq!(refs, [dig(0), dig(1), dig(2)]);
    }

    #[test]
    fn oci_index_with_platform() {
        let mut child = desc(media_type::OCI_MANIFEST, 5);
        child["platform"] = json!({ "architecture": "arm64", "os": "linux" });
        child["annotations"] = json!({ "k": "v" });
        let v = json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [child],
                        "artifactType": "application/vnd.example.sbom" });
        let m = run(None, &v).unwrap();
        assert_eq!((m.kind, m.media_type.as_str()), (ManifestKind::Index, media_type::OCI_INDEX));
        assert_eq!(m.config, None);
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.example.sbom"));
        let c = &m.manifests[0];
        assert_eq!(c.platform, Some(json!({ "architecture": "arm64", "os": "linux" })));
        assert_eq!(c.annotations, Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])));
        assert_eq!(m.referenced().count(), 1);
    }

    #[test]
    fn media_type_from_header_or_inferred() {
        let mut v = image(json!({}));
        v.as_object_mut().unwrap().remove("mediaType");
        let ct = Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
        assert_eq!(run(ct, &v).unwrap().media_type, media_type::DOCKER_MANIFEST_V2);
        assert_eq!(run(None, &v).unwrap().media_type, media_type::OCI_MANIFEST);
        assert_eq!(run(Some("application/json"), &v).unwrap().media_type, media_type::OCI_MANIFEST);
        assert_eq!(run(Some("not a type"), &v).unwrap().media_type, media_type::OCI_MANIFEST);
        let list = json!({ "schemaVersion": 2, "manifests": [] });
        assert_eq!(run(None, &list).unwrap().media_type, media_type::OCI_INDEX);
        assert_eq!(
            run(Some(media_type::DOCKER_MANIFEST_LIST), &list).unwrap().media_type,
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(run(None, &json!({ "schemaVersion": 2 })), Err(ManifestError::UnknownKind));
        // Same type in both places, different case and parameters: fine.
        let ct = Some("Application/VND.OCI.image.manifest.v1+json; x=y");
        assert_eq!(run(ct, &image(json!({}))).unwrap().media_type, media_type::OCI_MANIFEST);
    }

    #[test]
    fn header_and_body_disagree() {
        assert_eq!(
            err(Some(media_type::DOCKER_MANIFEST_V2), &image(json!({}))),
            "manifest mediaType is \"application/vnd.oci.image.manifest.v1+json\" but Content-Type is \
             \"application/vnd.docker.distribution.manifest.v2+json\"; send the same media type in both"
        );
    }

    #[test]
    fn schema1_refused_everywhere() {
        let advice = "Docker schema 1 manifests are not supported; push with a current docker or convert with skopeo --format v2s2";
        assert_eq!(err(None, &json!({ "schemaVersion": 1, "name": "x", "fsLayers": [] })), advice);
        assert_eq!(err(Some(media_type::DOCKER_SCHEMA1_SIGNED), &image(json!({}))), advice);
        assert_eq!(err(None, &image(json!({ "mediaType": media_type::DOCKER_SCHEMA1 }))), advice);
    }

    #[test]
    fn schema_version_checked() {
        let mut v = image(json!({}));
        v.as_object_mut().unwrap().remove("schemaVersion");
        assert_eq!(run(None, &v), Err(ManifestError::MissingSchemaVersion));
        assert_eq!(err(None, &image(json!({ "schemaVersion": 3 }))), "schemaVersion must be 2, got 3");
        assert_eq!(err(None, &image(json!({ "schemaVersion": "2" }))), "schemaVersion must be 2, got \"2\"");
    }

    #[test]
    fn unsupported_body_media_type() {
        let v = image(json!({ "mediaType": "application/vnd.example+json" }));
        assert_eq!(
            run(None, &v),
            Err(ManifestError::UnsupportedMediaType { media_type: "application/vnd.example+json".into() })
        );
        assert_eq!(
            err(None, &image(json!({ "mediaType": "nope" }))),
            "mediaType: media type \"nope\" must be <type>/<subtype>"
        );
        assert_eq!(err(None, &image(json!({ "mediaType": 7 }))), "mediaType must be a string");
    }

    #[test]
    fn descriptor_errors_name_the_field() {
        let mut v = image(json!({}));
        v["layers"].as_array_mut().unwrap().push(json!({ "mediaType": "a/b", "digest": "sha256:abc", "size": 1 }));
        assert_eq!(
            err(None, &v),
            "layers[2].digest: sha256 digest must have 64 lower-case hex characters, got \"abc\""
        );
        let mut v = image(json!({}));
        v["config"]["size"] = json!(-1);
        assert_eq!(err(None, &v), "config.size must be a non-negative integer");
        v["config"]["size"] = json!(1.5);
        assert_eq!(err(None, &v), "config.size must be a non-negative integer");
        v["config"]["size"] = json!(1e30);
        assert_eq!(err(None, &v), "config.size must be a non-negative integer");
        let mut v = image(json!({}));
        v["layers"][0].as_object_mut().unwrap().remove("size");
        assert_eq!(err(None, &v), "layers[0].size is missing; every descriptor needs mediaType, digest and size");
        let mut v = image(json!({}));
        v["layers"][1].as_object_mut().unwrap().remove("digest");
        assert_eq!(err(None, &v), "layers[1].digest is missing; every descriptor needs mediaType, digest and size");
        let mut v = image(json!({}));
        v["config"]["mediaType"] = json!("x");
        assert_eq!(err(None, &v), "config.mediaType: media type \"x\" must be <type>/<subtype>");
        let mut v = image(json!({}));
        v["layers"][0]["annotations"] = json!({ "k": 1 });
        assert_eq!(err(None, &v), "layers[0].annotations must be an object of string values");
        assert_eq!(err(None, &image(json!({ "subject": "x" }))), "subject must be a descriptor object");
        assert_eq!(err(None, &image(json!({ "layers": {} }))), "layers must be an array of descriptors");
        let mut v = image(json!({}));
        v["layers"][0]["platform"] = json!([]);
        assert_eq!(err(None, &v), "layers[0].platform must be an object");
    }

    #[test]
    fn required_fields() {
        let mut v = image(json!({}));
        v.as_object_mut().unwrap().remove("config");
        assert_eq!(err(None, &v), "config is missing; an image manifest needs config and layers (layers may be [])");
        let v = json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX });
        assert_eq!(err(None, &v), "manifests is missing; an index needs manifests (it may be [])");
    }

    #[test]
    fn artifact_type_rules() {
        let artifact = image(
            json!({ "config": desc(media_type::OCI_EMPTY, 0), "layers": [], "artifactType": "application/vnd.example.sig" }),
        );
        let m = run(None, &artifact).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.example.sig"));
        assert!(m.layers.is_empty());
        let m = run(None, &image(json!({ "artifactType": "" }))).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(media_type::OCI_IMAGE_CONFIG));
        assert_eq!(
            err(None, &image(json!({ "artifactType": "bad" }))),
            "artifactType: media type \"bad\" must be <type>/<subtype>"
        );
    }

    #[test]
    fn depth_and_json_errors() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(64), "]".repeat(64));
        assert_eq!(parse(None, deep.as_bytes()), Err(ManifestError::TooDeep));
        let ok_depth = format!("{{\"a\":{}{}}}", "[".repeat(63), "]".repeat(63));
        assert_eq!(parse(None, ok_depth.as_bytes()), Err(ManifestError::MissingSchemaVersion));
        // Brackets inside strings, including after an escaped quote, do not count.
        let in_string = format!("{{\"a\":\"\\\"{}\",\"schemaVersion\":2}}", "[".repeat(100));
        assert_eq!(parse(None, in_string.as_bytes()), Err(ManifestError::UnknownKind));
        assert!(matches!(parse(None, b"{"), Err(ManifestError::InvalidJson(_))));
        assert!(matches!(parse(None, b""), Err(ManifestError::InvalidJson(_))));
        assert_eq!(parse(None, b"[]"), Err(ManifestError::NotAnObject));
        assert_eq!(
            ManifestError::TooDeep.to_string(),
            "manifest JSON nests deeper than 64 levels; real manifests need about 5"
        );
    }

    #[test]
    fn serde_round_trip() {
        let m = run(None, &image(json!({ "subject": desc(media_type::OCI_MANIFEST, 9) }))).unwrap();
        let back: ParsedManifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(serde_json::to_value(&m.layers[0]).unwrap(), desc("application/vnd.oci.image.layer.v1.tar+gzip", 1));
    }
}
