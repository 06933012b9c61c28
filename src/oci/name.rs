//! Repository names (`<projectId>/<path>`), validated against the distribution-spec grammar.
//!
//! Grammar (distribution-spec v1.1 "Pulling manifests", `<name>`):
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 bytes,
//! any depth. Stowage adds (DESIGN.md §2) that a name has at least two components and the first is
//! the project id. Parsing is by hand, byte by byte, so it is linear and never allocates for a
//! valid name beyond the one copy it keeps.
//!
//! This module must never accept a name that could escape a directory (no empty, `.` or `..`
//! components get through the grammar), never look a project up (that is `access/`), and never
//! echo more than a bounded prefix of client input in an error.

use std::fmt;
use std::str::FromStr;

/// Longest accepted repository name, in bytes (distribution-spec: 255 including the host, which
/// the path never carries here).
pub const MAX_NAME_BYTES: usize = 255;

/// Error messages quote at most this many characters of what the client sent.
const QUOTE_CHARS: usize = 64;

/// Why a string is not a repository name. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty; use <projectId>/<repo>")]
    Empty,
    #[error("repository name is {len} bytes long; the limit is {MAX_NAME_BYTES} bytes")]
    TooLong { len: usize },
    #[error("repository name must be <projectId>/<repo>, got {got:?}")]
    MissingProject { got: String },
    #[error("repository name {got:?} has an empty component; remove the leading, trailing or doubled '/'")]
    EmptyComponent { got: String },
    #[error("component {component:?} must be lower case")]
    UpperCase { component: String },
    #[error(
        "component {component:?} contains {ch:?}; only a-z, 0-9 and the separators '.', '_', '__', '-' are allowed"
    )]
    InvalidCharacter { component: String, ch: char },
    #[error("component {component:?} must start and end with a letter or digit")]
    BadEdge { component: String },
    #[error(
        "component {component:?} has the separator {separator:?}; use exactly one '.', one or two '_', or one or more '-' between letters and digits"
    )]
    BadSeparator { component: String, separator: String },
}

/// A validated repository name such as `syn12/team/app`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    full: String,
    /// Byte index of the first '/'; always > 0 and < `full.len() - 1`.
    slash: usize,
}

impl RepositoryName {
    /// The whole name, e.g. `syn12/team/app`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The first component: the project id, e.g. `syn12`.
    pub fn project(&self) -> &str {
        &self.full[..self.slash]
    }

    /// Everything after the project id, e.g. `team/app`.
    pub fn path(&self) -> &str {
        &self.full[self.slash + 1..]
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<RepositoryName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong { len: s.len() });
        }
        for component in s.split('/') {
            if component.is_empty() {
                return Err(NameError::EmptyComponent { got: quote(s) });
            }
            check_component(component)?;
        }
        match s.find('/') {
            Some(slash) => Ok(RepositoryName { full: s.to_owned(), slash }),
            None => Err(NameError::MissingProject { got: quote(s) }),
        }
    }
}

/// Checks one non-empty component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(c: &str) -> Result<(), NameError> {
    if let Some(ch) = c.chars().find(|ch| !is_alnum(*ch) && !matches!(ch, '.' | '_' | '-')) {
        return Err(if ch.is_ascii_uppercase() {
            NameError::UpperCase { component: quote(c) }
        } else {
            NameError::InvalidCharacter { component: quote(c), ch }
        });
    }
    let bytes = c.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| is_alnum(char::from(*b)));
    if !edge_ok(bytes.first()) || !edge_ok(bytes.last()) {
        return Err(NameError::BadEdge { component: quote(c) });
    }
    // Every maximal run of separator bytes must be one of ".", "_", "__" or "-+".
    for run in c.split(|ch: char| is_alnum(ch)).filter(|r| !r.is_empty()) {
        let ok = matches!(run, "." | "_" | "__") || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err(NameError::BadSeparator { component: quote(c), separator: quote(run) });
        }
    }
    Ok(())
}

fn is_alnum(ch: char) -> bool {
    ch.is_ascii_lowercase() || ch.is_ascii_digit()
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_CHARS).collect()
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl serde::Serialize for RepositoryName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> serde::Deserialize<'de> for RepositoryName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RepositoryName, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RepositoryName, NameError> {
        s.parse()
    }

    #[test]
    fn splits_project_and_path() {
        let n = parse("syn12/team/app").unwrap();
        assert_eq!(n.as_str(), "syn12/team/app");
        assert_eq!(n.project(), "syn12");
        assert_eq!(n.path(), "team/app");
        assert_eq!(n.to_string(), "syn12/team/app");
        assert_eq!(format!("{n:?}"), "\"syn12/team/app\"");
    }

    #[test]
    fn accepts_every_separator_form() {
        for ok in [
            "p/a",
            "syn1/a.b",
            "syn1/a_b",
            "syn1/a__b",
            "syn1/a-b",
            "syn1/a---b",
            "syn1/a.b_c__d-e--f",
            "0/9",
            "syn1/a/b/c/d/e/f/g/h/i/j/k",
        ] {
            let n = parse(ok).unwrap();
            assert_eq!(n.as_str(), ok);
        }
    }

    #[test]
    fn single_component_names_the_fix() {
        let e = parse("app").unwrap_err();
        assert_eq!(e, NameError::MissingProject { got: "app".into() });
        assert_eq!(e.to_string(), "repository name must be <projectId>/<repo>, got \"app\"");
    }

    #[test]
    fn upper_case_is_named() {
        let e = parse("syn1/Foo").unwrap_err();
        assert_eq!(e, NameError::UpperCase { component: "Foo".into() });
        assert_eq!(e.to_string(), "component \"Foo\" must be lower case");
    }

    #[test]
    fn empty_and_too_long() {
        assert_eq!(parse(""), Err(NameError::Empty));
        let long = format!("syn1/{}", "a".repeat(251));
        assert_eq!(parse(&long), Err(NameError::TooLong { len: 256 }));
        let max = format!("syn1/{}", "a".repeat(250));
        assert_eq!(parse(&max).unwrap().as_str().len(), 255);
    }

    #[test]
    fn empty_components() {
        for bad in ["/a", "a/", "a//b", "/", "syn1/a/"] {
            assert_eq!(parse(bad), Err(NameError::EmptyComponent { got: bad.into() }), "{bad}");
        }
    }

    #[test]
    fn bad_edges() {
        for (bad, comp) in [("syn1/.a", ".a"), ("syn1/a-", "a-"), ("_x/a", "_x"), ("syn1/..", ".."), ("syn1/.", ".")] {
            assert_eq!(parse(bad), Err(NameError::BadEdge { component: comp.into() }), "{bad}");
        }
    }

    #[test]
    fn bad_separators() {
        for (bad, comp, sep) in [
            ("syn1/a..b", "a..b", ".."),
            ("syn1/a___b", "a___b", "___"),
            ("syn1/a._b", "a._b", "._"),
            ("syn1/a-.b", "a-.b", "-."),
            ("syn1/a_-b", "a_-b", "_-"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e, NameError::BadSeparator { component: comp.into(), separator: sep.into() }, "{bad}");
        }
        assert_eq!(
            parse("syn1/a..b").unwrap_err().to_string(),
            "component \"a..b\" has the separator \"..\"; use exactly one '.', one or two '_', or one or more '-' between letters and digits"
        );
    }

    #[test]
    fn invalid_characters() {
        for (bad, comp, ch) in [
            ("syn1/a b", "a b", ' '),
            ("syn1/a:b", "a:b", ':'),
            ("syn1/é", "é", 'é'),
            ("syn1/a\\b", "a\\b", '\\'),
            ("syn1/a\0", "a\0", '\0'),
        ] {
            assert_eq!(parse(bad), Err(NameError::InvalidCharacter { component: comp.into(), ch }), "{bad}");
        }
    }

    #[test]
    fn error_quotes_are_bounded() {
        let comp = "A".repeat(200);
        let e = parse(&format!("p/{comp}")).unwrap_err();
        assert_eq!(e, NameError::UpperCase { component: "A".repeat(64) });
    }

    #[test]
    fn serde_round_trip() {
        let n = parse("syn3/x").unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"syn3/x\"");
        assert_eq!(serde_json::from_str::<RepositoryName>(&json).unwrap(), n);
        assert!(serde_json::from_str::<RepositoryName>("\"x\"").is_err());
    }
}
