//! `Endpoint::parse` on any method, path and query: never panics, and what it accepts is
//! bounded and consistent: the `tag` parameters of a manifest PUT are valid, distinct, at most
//! `MAX_TAGS_PER_PUT` and only on a PUT by digest; a `digest-algorithm` given with a digest
//! reference agrees with it (and is sha256 or sha512); a mount's `from` is a valid repository name.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use stowage::oci::{Reference, RepositoryName};
use stowage::router::{Endpoint, MAX_TAGS_PER_PUT};

fuzz_target!(|data: &[u8]| {
    // First byte picks the method; the rest is "<path>?<query>" (the query may be absent).
    let Some((&m, rest)) = data.split_first() else { return };
    let method =
        [Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::PATCH, Method::DELETE][m as usize % 6].clone();
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    // Prefix with /v2/ half the time so the registry paths get most of the effort.
    let path = if m & 0x80 == 0 { format!("/v2/{path}") } else { path.to_string() };
    let Ok(Some(ep)) = Endpoint::parse(&method, &path, query) else { return };
    match ep {
        Endpoint::ManifestPut { reference, tags, algorithm, .. } => {
            assert!(tags.len() <= MAX_TAGS_PER_PUT);
            for (i, t) in tags.iter().enumerate() {
                assert!(!tags[..i].contains(t), "duplicate tag {}", t.as_str());
                assert_eq!(t.as_str().parse::<stowage::oci::Tag>().as_ref(), Ok(t));
            }
            if let Reference::Tag(_) = reference {
                assert!(tags.is_empty(), "tag parameters on a PUT by tag");
            }
            // A non-default algorithm came from `digest-algorithm`, which must agree with a digest
            // reference.
            if let Reference::Digest(d) = &reference {
                if algorithm != stowage::oci::Algorithm::Sha256 {
                    assert_eq!(d.algorithm(), algorithm);
                }
            }
        }
        Endpoint::UploadStart { from: Some(f), .. } => {
            assert_eq!(f.as_str().parse::<RepositoryName>().as_ref(), Ok(&f));
        }
        _ => {}
    }
});
