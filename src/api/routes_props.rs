//! Properties of the credential rule `routes::check` (DESIGN.md section 2, "Credentials") over
//! random (route, credential kind, scope set, admin flag): the rows of the table, and made-up
//! rows, so the rule holds for routes not written yet. Test-only; it never changes the rule.

#![allow(clippy::unwrap_used)]

use super::routes::{check, Need, Op, Refusal, Route, ROUTES};
use crate::access::rules::Scope;
use crate::auth::CredentialKind;
use proptest::prelude::*;
use std::collections::BTreeSet;

const KINDS: [CredentialKind; 4] =
    [CredentialKind::Anonymous, CredentialKind::Password, CredentialKind::AccessToken, CredentialKind::RegistryToken];
const SCOPES: [Scope; 3] = [Scope::View, Scope::Download, Scope::Modify];
const NEEDS: [Need; 4] = [Need::Nothing, Need::View, Need::Modify, Need::Password];

/// The scope set of the low three bits of `bits`.
fn scopes(bits: u8) -> BTreeSet<Scope> {
    SCOPES.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, s)| *s).collect()
}

fn table_route() -> impl Strategy<Value = &'static Route> {
    (0..ROUTES.len()).prop_map(|i| &ROUTES[i])
}

/// A row the table could have: any need and flags, except the contradictions the table never
/// holds (see `the_table_has_no_contradictory_rows`).
fn made_up_route() -> impl Strategy<Value = Route> {
    (0..NEEDS.len(), any::<bool>(), any::<bool>())
        .prop_filter("contradictory row", |(n, anonymous, admin)| {
            !(*admin && (*anonymous || NEEDS[*n] == Need::Nothing))
        })
        .prop_map(|(n, anonymous, admin)| Route {
            method: "POST",
            path: "/api/v1/made-up/{id}",
            op: Op::GetOpenApi,
            operation_id: "madeUp",
            need: NEEDS[n],
            anonymous,
            admin,
        })
}

fn any_route() -> impl Strategy<Value = Route> {
    prop_oneof![table_route().prop_map(|r| *r), made_up_route()]
}

/// Every property of one (route, kind, scopes, admin) case.
fn properties(route: &Route, kind: CredentialKind, bits: u8, admin: bool) -> Result<(), TestCaseError> {
    let s = scopes(bits);
    let res = check(route, kind, &s, admin);
    let ok = res.is_ok();
    let what = format!("{} {} {kind:?} {s:?} admin={admin}: {res:?}", route.method, route.path);
    if kind == CredentialKind::RegistryToken {
        prop_assert_eq!(ok, route.need == Need::Nothing, "registry tokens only where nothing is needed: {}", what);
    }
    if kind == CredentialKind::Anonymous {
        prop_assert_eq!(ok, route.anonymous || route.need == Need::Nothing, "anonymous: {}", what);
        prop_assert!(ok || res == Err(Refusal::LoginRequired), "anonymous is asked to log in: {}", what);
    }
    if ok {
        match route.need {
            Need::Nothing => {}
            Need::View => prop_assert!(kind == CredentialKind::Anonymous || s.contains(&Scope::View), "{}", what),
            Need::Modify => prop_assert!(kind == CredentialKind::Anonymous || s.contains(&Scope::Modify), "{}", what),
            Need::Password => prop_assert!(
                kind == CredentialKind::Password || (kind == CredentialKind::Anonymous && route.anonymous),
                "{}",
                what
            ),
        }
        if route.admin {
            prop_assert!(admin, "admin routes only with admin: {}", what);
        }
    }
    if let Err(Refusal::Lacks(m)) = &res {
        prop_assert!(kind == CredentialKind::Password || kind == CredentialKind::AccessToken, "{}", what);
        let missing = match route.need {
            Need::View if !s.contains(&Scope::View) => Some("lacks the view scope"),
            Need::Modify if !s.contains(&Scope::Modify) => Some("lacks the modify scope"),
            _ => None,
        };
        if let Some(fragment) = missing {
            prop_assert!(m.contains(fragment), "the refusal names the missing scope: {}", what);
        }
    }
    // Monotonic: more scopes, or the admin flag, never take a permission away.
    for extra in 0..8u8 {
        if ok {
            prop_assert!(check(route, kind, &scopes(bits | extra), admin).is_ok(), "adding scopes {extra:b}: {}", what);
        }
    }
    if ok {
        prop_assert!(check(route, kind, &s, true).is_ok(), "becoming admin: {}", what);
    }
    // A password login of an administrator (every scope) may use every route.
    if kind == CredentialKind::Password && bits & 7 == 7 && admin {
        prop_assert!(ok, "{}", what);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn the_credential_rule_holds_on_every_row(route in table_route(), kind in 0..4usize, bits in 0..8u8, admin in any::<bool>()) {
        properties(route, KINDS[kind], bits, admin)?;
    }

    #[test]
    fn the_credential_rule_holds_on_any_row(route in any_route(), kind in 0..4usize, bits in 0..8u8, admin in any::<bool>()) {
        properties(&route, KINDS[kind], bits, admin)?;
    }
}

#[test]
fn the_table_has_no_contradictory_rows() {
    // The rule lets anonymous callers through on `anonymous` rows and everyone through where
    // nothing is needed, so an administrators-only row must be neither.
    for r in ROUTES {
        assert!(!(r.admin && r.anonymous), "{} {} is both anonymous and admin-only", r.method, r.path);
        assert!(!(r.admin && r.need == Need::Nothing), "{} {} needs nothing yet is admin-only", r.method, r.path);
    }
}

#[test]
fn every_case_of_the_table_holds() {
    // The space is small: besides the random cases, walk all of it once.
    for route in ROUTES {
        for kind in KINDS {
            for bits in 0..8 {
                for admin in [false, true] {
                    properties(route, kind, bits, admin).unwrap();
                }
            }
        }
    }
}
