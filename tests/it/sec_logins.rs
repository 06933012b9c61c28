//! Password guessing cannot take the server or lock a user out: failures are slowed per (user,
//! client address), a right password always gets in, password hashing runs on a small bounded
//! pool (a full queue answers 429 at once), and a flood of wrong passwords leaves an
//! authenticated pull working. The latency figures are printed: this is a benchmark, so only
//! generous bounds are asserted.

use crate::auth_tokens::{registry_token, set_acl};
use crate::common::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const ALICE_PW: &str = "alice-password-1";

fn from(addr: &str, user: &str, pw: &str) -> reqwest::Client {
    use base64::Engine as _;
    let mut h = reqwest::header::HeaderMap::new();
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    h.insert(reqwest::header::AUTHORIZATION, format!("Basic {cred}").parse().unwrap());
    reqwest::Client::builder().local_address(addr.parse::<IpAddr>().unwrap()).default_headers(h).build().unwrap()
}

async fn login_status(s: &TestServer, c: &reqwest::Client) -> (u16, Duration) {
    let t = Instant::now();
    let r = c.get(s.v2("token")).query(&[("service", "stowage")]).send().await.unwrap();
    (r.status().as_u16(), t.elapsed())
}

#[tokio::test]
async fn failures_slow_the_guesser_and_never_lock_the_user_out() {
    let s = TestServer::start();
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    let guesser = from("127.0.0.2", "alice", "wrong-guess");
    let mut last = Duration::ZERO;
    for _ in 0..8 {
        let (st, took) = login_status(&s, &guesser).await;
        assert_eq!(st, 401);
        last = took;
    }
    // Eight failures in: the guesser waits at least 800 ms per try.
    assert!(last >= Duration::from_millis(800), "the 8th failure answered after {last:?}");
    // alice, from her own address and even from the guesser's, still gets in at once.
    for addr in ["127.0.0.3", "127.0.0.2"] {
        let (st, took) = login_status(&s, &from(addr, "alice", ALICE_PW)).await;
        assert_eq!(st, 200, "from {addr}");
        assert!(took < Duration::from_millis(700), "a right password is not slowed: {took:?} from {addr}");
    }
    // A wrong password from another address is not slowed by the guesser's failures.
    let (st, took) = login_status(&s, &from("127.0.0.4", "alice", "typo")).await;
    assert_eq!(st, 401);
    assert!(took < Duration::from_millis(700), "{took:?}");
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_does_not_stop_authenticated_pulls() {
    let s = TestServer::start();
    let (_, manifest) = push_image(&s, "syn1/app", "v1", b"the layer").await;
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    set_acl(&s, "syn1", &[("user:alice", "download")]).await;
    let jwt = registry_token(&s, &client_as("alice", ALICE_PW), "repository:syn1/app:pull").await;
    let pull = || {
        let (url, jwt, manifest) = (s.v2("syn1/app/manifests/v1"), jwt.clone(), manifest.clone());
        async move {
            let t = Instant::now();
            let r = anonymous()
                .get(url)
                .bearer_auth(jwt)
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
            t.elapsed()
        }
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut quiet = Vec::new();
    for _ in 0..20 {
        quiet.push(pull().await);
    }
    let quiet = median(quiet);

    // 200 wrong-password logins, 100 at a time, from many addresses and names.
    let url = s.v2("token");
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut statuses = std::collections::BTreeMap::new();
        for round in 0..2 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..100u32 {
                let c = from(&format!("127.0.{}.{}", 10 + round, 1 + i), &format!("user{i}"), "wrong");
                let url = url.clone();
                set.spawn(async move {
                    c.get(url).query(&[("service", "stowage")]).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
                });
            }
            while let Some(st) = set.join_next().await {
                *statuses.entry(st.unwrap()).or_insert(0u32) += 1;
            }
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut loaded = Vec::new();
    while !flood.is_finished() && started.elapsed() < Duration::from_secs(60) {
        loaded.push(pull().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = flood.await.unwrap();
    let loaded = median(loaded);
    eprintln!(
        "pull median quiet {quiet:?}, during a flood of 200 wrong passwords {loaded:?}; flood answers {statuses:?}"
    );
    // Every flood answer is a refusal: 401, or 429 when the hashing queue was full.
    assert!(statuses.keys().all(|k| *k == 401 || *k == 429), "{statuses:?}");
    assert!(statuses.contains_key(&429), "a queue of 64 waiting hashes must overflow with 100 at once: {statuses:?}");
    assert!(loaded < quiet * 50 + Duration::from_millis(250), "pull median {loaded:?} under flood vs {quiet:?} quiet");
}
