//! The REST credential rule and route matching (`stowage::api::routes`): `check` keeps its
//! properties (DESIGN.md section 2: registry tokens never, scopes and password logins as the
//! row needs, admin rows only for admins, anonymous only where the row allows, more scopes never
//! take a permission away) on table rows and made-up rows; `find` never panics on any method and
//! path, and what it finds is consistent with the table. The same properties as the proptest in
//! src/api/routes_props.rs, driven by coverage instead of random sampling.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use stowage::access::rules::Scope;
use stowage::api::routes::{check, find, Match, Need, Op, Refusal, Route, ROUTES};
use stowage::auth::CredentialKind;

const KINDS: [CredentialKind; 4] =
    [CredentialKind::Anonymous, CredentialKind::Password, CredentialKind::AccessToken, CredentialKind::RegistryToken];
const NEEDS: [Need; 4] = [Need::Nothing, Need::View, Need::Modify, Need::Password];

fn scopes(bits: u8) -> BTreeSet<Scope> {
    [Scope::View, Scope::Download, Scope::Modify]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, s)| s)
        .collect()
}

/// A table row (`sel` < 128) or a made-up one; None for the contradictory rows the table never
/// holds (admin-only and anonymous, or admin-only and needing nothing).
fn route(sel: u8) -> Option<Route> {
    if sel < 128 {
        return Some(ROUTES[usize::from(sel) % ROUTES.len()]);
    }
    let (need, anonymous, admin) = (NEEDS[usize::from(sel & 3)], sel & 4 != 0, sel & 8 != 0);
    if admin && (anonymous || need == Need::Nothing) {
        return None;
    }
    Some(Route { method: "PUT", path: "/api/v1/x/{id}", op: Op::GetOpenApi, operation_id: "x", need, anonymous, admin })
}

fn check_properties(r: &Route, kind: CredentialKind, bits: u8, admin: bool) {
    let s = scopes(bits);
    let res = check(r, kind, &s, admin);
    let ok = res.is_ok();
    if kind == CredentialKind::RegistryToken {
        assert_eq!(ok, r.need == Need::Nothing, "{r:?}");
    }
    if kind == CredentialKind::Anonymous {
        assert_eq!(ok, r.anonymous || r.need == Need::Nothing, "{r:?}");
        assert!(ok || res == Err(Refusal::LoginRequired));
    }
    if ok && kind != CredentialKind::Anonymous {
        match r.need {
            Need::View => assert!(s.contains(&Scope::View), "{r:?} {s:?}"),
            Need::Modify => assert!(s.contains(&Scope::Modify), "{r:?} {s:?}"),
            Need::Password => assert_eq!(kind, CredentialKind::Password, "{r:?}"),
            Need::Nothing => {}
        }
    }
    if ok && r.admin {
        assert!(admin, "{r:?}");
    }
    if ok {
        for extra in 0..8 {
            assert!(check(r, kind, &scopes(bits | extra), admin).is_ok(), "more scopes refused: {r:?}");
        }
        assert!(check(r, kind, &s, true).is_ok(), "admin refused: {r:?}");
    }
}

/// Literal segments of the table's paths, so inputs reach real routes quickly.
fn literal(i: u8) -> &'static str {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        ROUTES
            .iter()
            .flat_map(|r| r.path.trim_start_matches("/api/v1/").split('/'))
            .filter(|s| !s.starts_with('{'))
            .collect()
    });
    all[usize::from(i) % all.len()]
}

fn find_properties(method: &Method, segs: &[String]) {
    let matches = |r: &Route| {
        let pat: Vec<&str> = r.path.trim_start_matches("/api/v1/").split('/').collect();
        pat.len() == segs.len() && pat.iter().zip(segs).all(|(p, s)| p.starts_with('{') || p == s)
    };
    match find(method, segs) {
        Match::Found(r, params) => {
            assert_eq!(r.method, method.as_str());
            assert!(matches(r), "{} does not match {segs:?}", r.path);
            assert_eq!(params.len(), r.path.matches('{').count(), "{} {segs:?}", r.path);
            let placeholders =
                r.path.trim_start_matches("/api/v1/").split('/').zip(segs).filter(|(p, _)| p.starts_with('{'));
            assert!(placeholders.map(|(_, s)| s).eq(params.iter()), "params in order");
        }
        Match::WrongMethod(allowed) => {
            assert!(!allowed.is_empty() && !allowed.contains(&method.as_str()));
            for m in allowed {
                let m = Method::from_bytes(m.as_bytes()).expect("table method");
                assert!(matches!(find(&m, segs), Match::Found(..)), "{m} is allowed on {segs:?}");
            }
        }
        Match::NotFound => assert!(!ROUTES.iter().any(matches), "{segs:?} matches a route"),
    }
}

/// Route selector, credential kind, scope bits, admin flag, method bytes, path segments (a tag
/// and a string each).
type Input = (u8, u8, u8, bool, Vec<u8>, Vec<(u8, String)>);

fuzz_target!(|input: Input| {
    let (sel, kind, bits, admin, method, segs) = input;
    if let Some(r) = route(sel) {
        check_properties(&r, KINDS[usize::from(kind) % 4], bits, admin);
    }
    // Even tags pick a literal segment of the table; odd ones take the fuzzer's string.
    let segs: Vec<String> =
        segs.into_iter().map(|(tag, s)| if tag % 2 == 0 { literal(tag / 2).to_string() } else { s }).collect();
    if let Ok(m) = Method::from_bytes(&method) {
        find_properties(&m, &segs);
    }
    let m = Method::from_bytes(ROUTES[usize::from(sel) % ROUTES.len()].method.as_bytes()).expect("table method");
    find_properties(&m, &segs);
});
