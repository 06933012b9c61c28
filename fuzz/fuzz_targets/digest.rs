//! Digests: parsing is strict (only the canonical form is accepted), so a parsed digest displays
//! as the input; hashing arbitrary bytes gives digests that round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::oci::{Algorithm, Digest};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<Digest>() {
            assert_eq!(d.to_string(), s);
            assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(&d));
            assert_eq!(Digest::from_key(&d.to_key()).as_ref(), Some(&d));
        }
    }
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let d = Digest::of(alg, data);
        assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(&d));
    }
});
