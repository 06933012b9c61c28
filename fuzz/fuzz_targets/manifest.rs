//! Manifests: parsing never panics; what parses is self-consistent, every referenced digest
//! displays and re-parses, and the parsed value survives a serde round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::oci::{Digest, ManifestKind, MediaType, ParsedManifest};

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/json"),
    Some("not a media type"),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the Content-Type; the rest is the body.
    let Some((&pick, body)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let Ok(m) = stowage::oci::manifest::parse(content_type, body) else { return };

    let media_type: MediaType = m.media_type.parse().expect("parsed media type is valid");
    assert!(media_type.is_manifest());
    assert_eq!(media_type.is_index(), m.kind == ManifestKind::Index);
    match m.kind {
        ManifestKind::Image => assert!(m.config.is_some() && m.manifests.is_empty()),
        ManifestKind::Index => assert!(m.config.is_none() && m.layers.is_empty()),
    }
    for d in m.referenced().chain(m.subject.as_ref()) {
        assert_eq!(d.digest.to_string().parse::<Digest>().as_ref(), Ok(&d.digest));
    }
    let json = serde_json::to_string(&m).expect("a parsed manifest serialises");
    let back: ParsedManifest = serde_json::from_str(&json).expect("and deserialises");
    assert_eq!(back, m);
});
