//! Byte ranges in headers: `Content-Range` on chunked upload PATCH requests and `Range` on blob GET.
//!
//! `Content-Range` follows distribution-spec v1.1 ("Pushing a blob in chunks"): `<start>-<end>`,
//! inclusive; a leading `bytes ` or `bytes=` is tolerated because some clients send one. `Range`
//! follows RFC 9110 §14.1.2 and §14.2, restricted to a single byte range; a request for several
//! ranges is reported as [`RangeError::MultipleRanges`] so the caller can ignore the header and
//! send the whole blob with 200, which RFC 9110 §14.2 allows.
//!
//! This module must never panic or overflow on client numbers (every number is parsed with
//! checked arithmetic), never scan more than [`MAX_HEADER_BYTES`], and never touch a blob: it only
//! turns strings into offsets.

use std::fmt;
use std::str::FromStr;

/// Longest header value these parsers look at, in bytes; longer values are refused unread.
pub const MAX_HEADER_BYTES: usize = 200;

/// Error messages quote at most this many characters of what the client sent.
const QUOTE_CHARS: usize = 64;

/// Why a `Content-Range` or `Range` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("range header is {len} bytes long; the limit is {MAX_HEADER_BYTES} bytes")]
    TooLong { len: usize },
    #[error("Content-Range {got:?} must be <start>-<end> with inclusive byte offsets, e.g. \"0-1023\"")]
    BadContentRange { got: String },
    #[error("range start {start} is after its end {end}; the end offset is inclusive and must be >= the start")]
    StartAfterEnd { start: u64, end: u64 },
    #[error("number {got:?} in range header does not fit in 64 bits")]
    Overflow { got: String },
    #[error("Range {got:?} must be bytes=<start>-<end>, bytes=<start>- or bytes=-<suffix length>")]
    BadRange { got: String },
    #[error("Range unit {unit:?} is not supported; use bytes")]
    UnsupportedUnit { unit: String },
    #[error("Range asks for several byte ranges; only a single range is supported, so the whole blob is sent")]
    MultipleRanges,
}

/// An uploaded chunk's position: bytes `start..=end` of the upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ContentRange {
    /// Number of bytes the chunk covers. Parsing guarantees this does not overflow.
    pub fn byte_count(&self) -> u64 {
        self.end - self.start + 1
    }
}

impl FromStr for ContentRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<ContentRange, RangeError> {
        check_len(s)?;
        let trimmed = s.trim();
        let body = strip_prefix_ci(trimmed, "bytes ")
            .or_else(|| strip_prefix_ci(trimmed, "bytes="))
            .unwrap_or(trimmed)
            .trim_start();
        let bad = || RangeError::BadContentRange { got: quote(s) };
        let (a, b) = body.split_once('-').ok_or_else(bad)?;
        let start = number(a)?.ok_or_else(bad)?;
        let end = number(b)?.ok_or_else(bad)?;
        if start > end {
            return Err(RangeError::StartAfterEnd { start, end });
        }
        // 0-u64::MAX would be 2^64 bytes: not representable as a count.
        if end - start == u64::MAX {
            return Err(RangeError::Overflow { got: quote(b) });
        }
        Ok(ContentRange { start, end })
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// One byte range from a `Range: bytes=...` header, before the blob length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`: from `a` to `b` inclusive.
    FromTo { start: u64, end: u64 },
    /// `bytes=a-`: from `a` to the end.
    From { start: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { len: u64 },
}

/// No byte of the blob is in the requested range: answer 416 with `Content-Range: bytes */<len>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("requested range is not satisfiable for a blob of {len} bytes")]
pub struct Unsatisfiable {
    /// The blob length, for the `Content-Range: bytes */<len>` header of the 416 response.
    pub len: u64,
}

impl ByteRange {
    /// The inclusive `(start, end)` offsets to send from a blob of `len` bytes (RFC 9110 §14.1.2):
    /// an end past the blob is clamped to `len - 1`, a suffix longer than the blob is the whole blob.
    pub fn resolve(&self, len: u64) -> Result<(u64, u64), Unsatisfiable> {
        let last = len.checked_sub(1).ok_or(Unsatisfiable { len })?;
        match *self {
            ByteRange::FromTo { start, end } if start <= last => Ok((start, end.min(last))),
            ByteRange::From { start } if start <= last => Ok((start, last)),
            ByteRange::Suffix { len: n } if n > 0 => Ok((len.saturating_sub(n), last)),
            _ => Err(Unsatisfiable { len }),
        }
    }
}

/// What to answer a blob GET with a `Range` header (RFC 9110 §14.2), given the blob length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// Ignore the header and send the whole blob with 200: it is not a byte range this registry
    /// serves (malformed, another unit, several ranges), which RFC 9110 lets a server ignore.
    Whole,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */<len>`: a well-formed single range that selects no byte,
    /// including one whose end is before its start (RFC 9110 §14.1.1 calls it invalid) and one
    /// whose first byte does not even fit in 64 bits.
    Unsatisfiable,
}

impl RangeDecision {
    /// Decides for the `Range` header value `header` on a blob of `len` bytes. Never panics.
    pub fn for_header(header: &str, len: u64) -> RangeDecision {
        match header.parse::<ByteRange>() {
            Ok(r) => match r.resolve(len) {
                Ok((start, end)) => RangeDecision::Partial { start, end },
                Err(_) => RangeDecision::Unsatisfiable,
            },
            Err(RangeError::StartAfterEnd { .. }) => RangeDecision::Unsatisfiable,
            // A number too large for 64 bits is still a valid range (RFC 9110 §14.1.2): a last
            // byte past every blob's end is clamped, a suffix that long is the whole blob, and a
            // first byte that far is past the end of every blob.
            Err(RangeError::Overflow { .. }) => {
                let clamped = match overflowing_parts(header) {
                    Some((Some(start), None)) => ByteRange::From { start },
                    Some((None, None)) if is_suffix(header) => ByteRange::Suffix { len: u64::MAX },
                    _ => return RangeDecision::Unsatisfiable,
                };
                match clamped.resolve(len) {
                    Ok((start, end)) => RangeDecision::Partial { start, end },
                    Err(_) => RangeDecision::Unsatisfiable,
                }
            }
            Err(_) => RangeDecision::Whole,
        }
    }
}

/// The first and last positions of a single `bytes=a-b` range whose numbers may overflow: each
/// `Some(n)` if it fits in 64 bits, `None` if it is empty or too large.
fn overflowing_parts(header: &str) -> Option<(Option<u64>, Option<u64>)> {
    let (_, set) = header.trim().split_once('=')?;
    let (a, b) = set.trim().trim_end_matches(',').trim().split_once('-')?;
    Some((number(a).ok().flatten(), number(b).ok().flatten()))
}

/// True for `bytes=-<digits>` (a suffix range), whatever the size of the number.
fn is_suffix(header: &str) -> bool {
    header.trim().split_once('=').is_some_and(|(_, set)| set.trim().trim_end_matches(',').trim().starts_with('-'))
}

impl FromStr for ByteRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<ByteRange, RangeError> {
        check_len(s)?;
        let bad = || RangeError::BadRange { got: quote(s) };
        let (unit, set) = s.trim().split_once('=').ok_or_else(bad)?;
        // Range units are case-insensitive (RFC 9110 §14.1).
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return Err(RangeError::UnsupportedUnit { unit: quote(unit.trim()) });
        }
        // RFC 9110 §5.6.1: list elements may be empty and surrounded by optional whitespace.
        let mut specs = set.split(',').map(str::trim).filter(|p| !p.is_empty());
        let spec = specs.next().ok_or_else(bad)?;
        if specs.next().is_some() {
            return Err(RangeError::MultipleRanges);
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        match (number(a)?, number(b)?) {
            (Some(start), Some(end)) if start <= end => Ok(ByteRange::FromTo { start, end }),
            (Some(start), Some(end)) => Err(RangeError::StartAfterEnd { start, end }),
            (Some(start), None) if b.is_empty() => Ok(ByteRange::From { start }),
            (None, Some(len)) if a.is_empty() => Ok(ByteRange::Suffix { len }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::FromTo { start, end } => write!(f, "bytes={start}-{end}"),
            ByteRange::From { start } => write!(f, "bytes={start}-"),
            ByteRange::Suffix { len } => write!(f, "bytes=-{len}"),
        }
    }
}

fn check_len(s: &str) -> Result<(), RangeError> {
    if s.len() > MAX_HEADER_BYTES {
        return Err(RangeError::TooLong { len: s.len() });
    }
    Ok(())
}

/// Parses ASCII digits into a u64. `Ok(None)` when `s` is empty or not all digits (no sign, no
/// space: `str::parse` would accept a leading '+'), `Err` when the digits overflow.
fn number(s: &str) -> Result<Option<u64>, RangeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    s.bytes()
        .try_fold(0u64, |n, b| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
        .map(Some)
        .ok_or_else(|| RangeError::Overflow { got: quote(s) })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_CHARS).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cr(s: &str) -> Result<ContentRange, RangeError> {
        s.parse()
    }

    fn br(s: &str) -> Result<ByteRange, RangeError> {
        s.parse()
    }

    #[test]
    fn content_range_forms() {
        let want = ContentRange { start: 0, end: 1023 };
        for ok in ["0-1023", "bytes 0-1023", "bytes=0-1023", "BYTES=0-1023", " 0-1023 "] {
            assert_eq!(cr(ok), Ok(want), "{ok:?}");
        }
        assert_eq!(want.byte_count(), 1024);
        assert_eq!(want.to_string(), "0-1023");
        assert_eq!(cr("5-5").unwrap().byte_count(), 1);
        assert_eq!(cr("1-18446744073709551615").unwrap().byte_count(), u64::MAX);
    }

    #[test]
    fn content_range_errors() {
        for bad in ["", "-", "0-", "-5", "a-b", "+1-2", "1-+2", "0 - 5", "1-2-3", "0x1-2", "bytes"] {
            assert_eq!(cr(bad), Err(RangeError::BadContentRange { got: bad.into() }), "{bad:?}");
        }
        assert_eq!(cr("9-3"), Err(RangeError::StartAfterEnd { start: 9, end: 3 }));
        assert_eq!(cr("0-18446744073709551616"), Err(RangeError::Overflow { got: "18446744073709551616".into() }));
        assert_eq!(cr("0-18446744073709551615"), Err(RangeError::Overflow { got: "18446744073709551615".into() }));
        assert_eq!(
            cr("x").unwrap_err().to_string(),
            "Content-Range \"x\" must be <start>-<end> with inclusive byte offsets, e.g. \"0-1023\""
        );
    }

    #[test]
    fn length_bound() {
        let long = format!("0-{}", "0".repeat(199));
        assert_eq!(cr(&long), Err(RangeError::TooLong { len: 201 }));
        assert_eq!(br(&long), Err(RangeError::TooLong { len: 201 }));
        // Leading zeros are digits like any other, and fit.
        let zeros = format!("0-{}7", "0".repeat(150));
        assert_eq!(cr(&zeros), Ok(ContentRange { start: 0, end: 7 }));
        // Exactly at the limit is still read.
        let at_limit = format!("0-{}7", "0".repeat(MAX_HEADER_BYTES - 3));
        assert_eq!(at_limit.len(), MAX_HEADER_BYTES);
        assert_eq!(cr(&at_limit), Ok(ContentRange { start: 0, end: 7 }));
        let at_limit = format!("bytes=0-{}7", "0".repeat(MAX_HEADER_BYTES - 9));
        assert_eq!(at_limit.len(), MAX_HEADER_BYTES);
        assert_eq!(br(&at_limit), Ok(ByteRange::FromTo { start: 0, end: 7 }));
    }

    #[test]
    fn range_forms() {
        assert_eq!(br("bytes=0-99"), Ok(ByteRange::FromTo { start: 0, end: 99 }));
        assert_eq!(br("bytes=10-"), Ok(ByteRange::From { start: 10 }));
        assert_eq!(br("bytes=-5"), Ok(ByteRange::Suffix { len: 5 }));
        assert_eq!(br("Bytes = 1-2 "), Ok(ByteRange::FromTo { start: 1, end: 2 }));
        assert_eq!(br("bytes=1-2,"), Ok(ByteRange::FromTo { start: 1, end: 2 }));
        for s in ["bytes=0-99", "bytes=10-", "bytes=-5"] {
            assert_eq!(br(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn range_errors() {
        for bad in
            // A first position that is not a number is no suffix range: "x-5" is not "-5".
            [
                "",
                "bytes",
                "bytes=",
                "bytes=-",
                "bytes=a-b",
                "bytes=1",
                "bytes=+1-",
                "bytes=--1",
                "bytes=1--",
                "bytes=,",
                "bytes=x-5",
                "bytes=+1-5",
                "bytes= 1-5x",
            ]
        {
            assert_eq!(br(bad), Err(RangeError::BadRange { got: bad.into() }), "{bad:?}");
        }
        assert_eq!(br("items=0-1"), Err(RangeError::UnsupportedUnit { unit: "items".into() }));
        assert_eq!(br("bytes=0-1,5-6"), Err(RangeError::MultipleRanges));
        assert_eq!(br("bytes=0-1, -3"), Err(RangeError::MultipleRanges));
        assert_eq!(br("bytes=5-1"), Err(RangeError::StartAfterEnd { start: 5, end: 1 }));
        assert_eq!(br("bytes=99999999999999999999-"), Err(RangeError::Overflow { got: "99999999999999999999".into() }));
        assert_eq!(br("bytes=-99999999999999999999"), Err(RangeError::Overflow { got: "99999999999999999999".into() }));
    }

    #[test]
    fn decisions() {
        let d = RangeDecision::for_header;
        assert_eq!(d("bytes=0-9", 100), RangeDecision::Partial { start: 0, end: 9 });
        assert_eq!(d("bytes=5-1", 100), RangeDecision::Unsatisfiable);
        assert_eq!(d("bytes=100-", 100), RangeDecision::Unsatisfiable);
        assert_eq!(d("bytes=99999999999999999999-", 100), RangeDecision::Unsatisfiable);
        assert_eq!(d("bytes=0-99999999999999999999", 100), RangeDecision::Partial { start: 0, end: 99 });
        assert_eq!(d("bytes=-99999999999999999999", 100), RangeDecision::Partial { start: 0, end: 99 });
        assert_eq!(d("bytes=-0", 100), RangeDecision::Unsatisfiable);
        assert_eq!(d("bytes=0-1,5-6", 100), RangeDecision::Whole);
        assert_eq!(d("items=0-1", 100), RangeDecision::Whole);
        assert_eq!(d("bytes=a-b", 100), RangeDecision::Whole);
        assert_eq!(d("bytes=0-0", 0), RangeDecision::Unsatisfiable);
    }

    #[test]
    fn resolve_clamps_and_refuses() {
        let r = |s: &str, len: u64| br(s).unwrap().resolve(len);
        assert_eq!(r("bytes=0-99", 1000), Ok((0, 99)));
        assert_eq!(r("bytes=0-99", 50), Ok((0, 49)));
        assert_eq!(r("bytes=49-99", 50), Ok((49, 49)));
        assert_eq!(r("bytes=50-99", 50), Err(Unsatisfiable { len: 50 }));
        assert_eq!(r("bytes=10-", 50), Ok((10, 49)));
        assert_eq!(r("bytes=50-", 50), Err(Unsatisfiable { len: 50 }));
        assert_eq!(r("bytes=-5", 50), Ok((45, 49)));
        assert_eq!(r("bytes=-500", 50), Ok((0, 49)));
        assert_eq!(r("bytes=-0", 50), Err(Unsatisfiable { len: 50 }));
        assert_eq!(r("bytes=0-0", 0), Err(Unsatisfiable { len: 0 }));
        assert_eq!(r("bytes=-1", 0), Err(Unsatisfiable { len: 0 }));
        assert_eq!(r("bytes=0-18446744073709551615", u64::MAX), Ok((0, u64::MAX - 1)));
        assert_eq!(Unsatisfiable { len: 7 }.to_string(), "requested range is not satisfiable for a blob of 7 bytes");
    }
}
