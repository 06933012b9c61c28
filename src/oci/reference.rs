//! The `<reference>` path segment of `/v2/<name>/manifests/<reference>`: a tag or a digest.
//!
//! distribution-spec v1.1 ("Pulling manifests"): a tag matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`;
//! anything else containing ':' must be a digest. Since ':' is not a tag character the two forms
//! can never be confused.
//!
//! This module must never accept a tag that could be mistaken for a path (no '/', no leading '.'
//! or '-'), never resolve a tag (that is the index's job), and never quote more than a bounded
//! prefix of client input in an error.

use std::fmt;
use std::str::FromStr;

use stowage_engine::digest::{Digest, DigestError};

/// Longest tag, in bytes (distribution-spec: 1 + 127).
pub const MAX_TAG_BYTES: usize = 128;

/// Error messages quote at most this many characters of what the client sent.
const QUOTE_CHARS: usize = 140;

/// Why a string is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("tag is empty; use something like \"latest\" or \"v1.2\"")]
    Empty,
    #[error("tag is {len} characters long; the limit is {MAX_TAG_BYTES}")]
    TooLong { len: usize },
    #[error("tag {tag:?} must start with a letter, a digit or '_'")]
    BadStart { tag: String },
    #[error("tag {tag:?} contains {ch:?}; only letters, digits, '_', '.' and '-' are allowed")]
    InvalidCharacter { tag: String, ch: char },
}

/// Why a `<reference>` is neither a tag nor a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error("reference {got:?} contains ':' but is not a valid digest: {source}")]
    Digest { got: String, source: DigestError },
}

/// A validated tag such as `latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Tag, TagError> {
        let first = s.chars().next().ok_or(TagError::Empty)?;
        if let Some(ch) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            return Err(TagError::InvalidCharacter { tag: quote(s), ch });
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(TagError::BadStart { tag: quote(s) });
        }
        // Only ASCII remains, so bytes == characters.
        if s.len() > MAX_TAG_BYTES {
            return Err(TagError::TooLong { len: s.len() });
        }
        Ok(Tag(s.to_owned()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }

    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        // ':' is never a tag character, so its presence decides which grammar applies and the
        // error names the right one.
        if s.contains(':') {
            return s.parse().map(Reference::Digest).map_err(|source| ReferenceError::Digest { got: quote(s), source });
        }
        Ok(Reference::Tag(s.parse()?))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => fmt::Display::fmt(t, f),
            Reference::Digest(d) => fmt::Display::fmt(d, f),
        }
    }
}

impl From<Tag> for Reference {
    fn from(t: Tag) -> Reference {
        Reference::Tag(t)
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Reference {
        Reference::Digest(d)
    }
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_CHARS).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stowage_engine::digest::Algorithm;

    const EMPTY_SHA: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "1", "A-b_c.D", "a..b", "x--"] {
            let r: Reference = ok.parse().unwrap();
            assert_eq!(r, Reference::Tag(Tag(ok.into())));
            assert_eq!(r.to_string(), ok);
            assert_eq!(r.as_tag().unwrap().as_str(), ok);
            assert_eq!(r.as_digest(), None);
        }
    }

    #[test]
    fn digests() {
        let r: Reference = EMPTY_SHA.parse().unwrap();
        assert_eq!(r, Reference::Digest(Digest::of(Algorithm::Sha256, b"")));
        assert_eq!(r.to_string(), EMPTY_SHA);
        assert_eq!(r.as_tag(), None);
    }

    #[test]
    fn tag_length_limit() {
        let max = "a".repeat(128);
        assert_eq!(max.parse::<Tag>().unwrap().as_str(), max);
        let e = "a".repeat(129).parse::<Tag>().unwrap_err();
        assert_eq!(e, TagError::TooLong { len: 129 });
        assert_eq!(e.to_string(), "tag is 129 characters long; the limit is 128");
    }

    #[test]
    fn tag_errors() {
        assert_eq!("".parse::<Reference>(), Err(ReferenceError::Tag(TagError::Empty)));
        assert_eq!(".x".parse::<Tag>(), Err(TagError::BadStart { tag: ".x".into() }));
        assert_eq!("-x".parse::<Tag>(), Err(TagError::BadStart { tag: "-x".into() }));
        assert_eq!("a/b".parse::<Tag>(), Err(TagError::InvalidCharacter { tag: "a/b".into(), ch: '/' }));
        assert_eq!("é".parse::<Tag>(), Err(TagError::InvalidCharacter { tag: "é".into(), ch: 'é' }));
        assert_eq!(
            "a b".parse::<Reference>().unwrap_err().to_string(),
            "tag \"a b\" contains ' '; only letters, digits, '_', '.' and '-' are allowed"
        );
        assert_eq!(".x".parse::<Tag>().unwrap_err().to_string(), "tag \".x\" must start with a letter, a digit or '_'");
    }

    #[test]
    fn bad_digest_names_both() {
        let e = "sha256:abc".parse::<Reference>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "reference \"sha256:abc\" contains ':' but is not a valid digest: \
             sha256 digest must have 64 lower-case hex characters, got \"abc\""
        );
        let e = "md5:00".parse::<Reference>().unwrap_err();
        assert_eq!(
            e,
            ReferenceError::Digest { got: "md5:00".into(), source: DigestError::UnsupportedAlgorithm("md5".into()) }
        );
    }

    #[test]
    fn tag_serde() {
        let t: Tag = "v1".parse().unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"v1\"");
        assert_eq!(serde_json::from_str::<Tag>("\"v1\"").unwrap(), t);
        assert!(serde_json::from_str::<Tag>("\".v1\"").is_err());
    }
}
