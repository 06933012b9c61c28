//! Repository names and references: parsing never panics, and whatever parses displays as the
//! same string and re-parses to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::oci::{Reference, RepositoryName};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(name) = s.parse::<RepositoryName>() {
        assert_eq!(name.as_str(), s);
        assert_eq!(format!("{}/{}", name.project(), name.path()), s);
        assert!(!name.project().is_empty() && !name.project().contains('/'));
        assert!(!name.path().is_empty());
        assert!(name.path().split('/').all(|c| c != "." && c != ".." && !c.is_empty()));
        let again: RepositoryName = name.to_string().parse().expect("a displayed name re-parses");
        assert_eq!(again, name);
    }
    if let Ok(reference) = s.parse::<Reference>() {
        assert_eq!(reference.to_string(), s);
        let again: Reference = reference.to_string().parse().expect("a displayed reference re-parses");
        assert_eq!(again, reference);
    }
});
