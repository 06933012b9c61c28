//! `Content-Range` and `Range`: parsing and resolving never panic, parsed values display and
//! re-parse equal, a resolved range always lies inside the blob, and the blob GET decision
//! (`RangeDecision`) honours or refuses every range that parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::oci::{ByteRange, ContentRange, RangeDecision};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes pick a blob length; the rest is the header value.
    let (len_bytes, rest) = data.split_at(data.len().min(8));
    let mut buf = [0u8; 8];
    buf[..len_bytes.len()].copy_from_slice(len_bytes);
    let fuzzed_len = u64::from_le_bytes(buf);
    let Ok(s) = std::str::from_utf8(rest) else { return };

    if let Ok(cr) = s.parse::<ContentRange>() {
        assert!(cr.start <= cr.end);
        assert_eq!(cr.byte_count(), cr.end - cr.start + 1);
        assert_eq!(cr.to_string().parse::<ContentRange>(), Ok(cr));
    }
    // The answer to a blob GET: a partial answer lies inside the blob; every range that parses
    // is honoured or refused, never ignored.
    for len in [0, 1, 100, fuzzed_len] {
        match RangeDecision::for_header(s, len) {
            RangeDecision::Partial { start, end } => assert!(start <= end && end < len, "{s:?} on {len}"),
            RangeDecision::Whole => assert!(s.parse::<ByteRange>().is_err(), "{s:?} parsed but was ignored"),
            RangeDecision::Unsatisfiable => {}
        }
    }
    if let Ok(r) = s.parse::<ByteRange>() {
        assert_eq!(r.to_string().parse::<ByteRange>(), Ok(r));
        for len in [0, 1, 2, 100, fuzzed_len, fuzzed_len / 2, u64::MAX] {
            if let Ok((start, end)) = r.resolve(len) {
                assert!(start <= end && end < len, "{r} on {len} bytes gave {start}-{end}");
            }
        }
    }
});
