//! The portal's repository page for a repository with 10,000 tags: the time to render its first
//! page (50 rows), the whole path a page request takes after the session lookup: the REST
//! lookups of the repository and its sharing settings (App::invoke, on blocking threads), the
//! page read of the tags from the index (App::tag_page) and the HTML. The goal (issue 9) is under
//! 20 ms; the median is in target/criterion/.../new/estimates.json.
//!
//! Also measured: the same page sorted by push time, newest first, read from the push-time index
//! (the last 50 entries and their records).
//!
//! The tags are written straight into the index, 64 per batch (the bench's only use of the
//! index layout: tag key = repository id big-endian + tag name), since 10,000 pushes would take
//! minutes, and the push-time index is then built from them as at the open of an older data
//! directory; every tag points at one manifest with a config and a layer.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use stowage::access::store::Store;
use stowage::app::App;
use stowage::auth::{Auth, Authenticated, CredentialKind};
use stowage::web::Ctx;
use stowage_engine::index::codec::encode;
use stowage_engine::index::Tree;
use stowage_engine::{Algorithm, Digest, ManifestRecord, TagRecord};

const TAGS: usize = 10_000;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    who: Authenticated,
    /// `<projectId>/big`.
    name: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = stowage::config::Settings::for_data_dir(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let engine = stowage_engine::Engine::open(settings.engine.clone()).expect("engine");
    let keys = stowage::auth::jwt::Keys::load_or_create(dir.path()).expect("keys");
    let store = Store::new(engine.clone());
    let user = store.create_user("alice", String::new(), false).expect("user").expect("new user");
    let project = store.create_project("bench", "alice").expect("project");
    let project = format!("syn{}", project.id);
    let cat = engine.catalog();
    let (repo, _) = cat.ensure_repo(&format!("{project}/big"), &project).expect("repo");
    let config = Digest::of(Algorithm::Sha256, b"{}");
    let layer = Digest::of(Algorithm::Sha256, b"layer");
    cat.record_blob(&config, 2, Some(repo.id)).expect("config");
    cat.record_blob(&layer, 5, Some(repo.id)).expect("layer");
    let manifest = Digest::of(Algorithm::Sha256, b"manifest");
    let rec = ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 400,
        refs: vec![config, layer],
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    };
    cat.put_manifest(repo.id, &manifest, &rec, None).expect("manifest");
    // 64 tags per batch, the size a registry writes (sled degrades when filled with huge batches).
    for chunk in (0..TAGS).collect::<Vec<_>>().chunks(64) {
        cat.write(|b| {
            for i in chunk {
                let mut key = repo.id.to_be_bytes().to_vec();
                key.extend_from_slice(format!("v{i:05}").as_bytes());
                let tag =
                    TagRecord { digest: manifest.clone(), time: 1_700_000_000 + *i as i64, pusher: "alice".into() };
                b.put(Tree::Tags, key, encode(&tag));
            }
            Ok(())
        })
        .expect("tags");
    }
    // The push-time index of those tags, built as for an older data directory.
    let mut b = stowage_engine::index::Batch::default();
    b.delete(Tree::Meta, b"index/tags_by_time".to_vec());
    cat.commit(b).expect("forget the marker");
    assert_eq!(cat.build_tags_by_time(10_000).expect("time index"), TAGS as u64);
    let caller = store.caller_for(&user, None).expect("caller");
    let auth = Auth::new(keys, store, "stowage".into(), "http://127.0.0.1:5000/v2/token".into());
    let public_url = stowage::public_url::PublicUrl::new(None, false, Vec::new(), "127.0.0.1:5000".into());
    let app = App::new(settings, engine, auth, public_url);
    let who = Authenticated { caller, kind: CredentialKind::Password, claims: None, token: None };
    Fixture { rt, app, who, name: repo.name, _dir: dir }
}

fn ctx(f: &Fixture, query: &[(&str, &str)]) -> Ctx {
    Ctx {
        session: None,
        who: f.who.clone(),
        peer: "127.0.0.1".parse().expect("ip"),
        method: http::Method::GET,
        path: format!("/{}", f.name),
        query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        form: Vec::new(),
        cookie: None,
        login_cookie: None,
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let first = ctx(&f, &[]);
    let html = f.rt.block_on(f.app.repository_markup(&first, &f.name)).expect("page").into_string();
    assert_eq!(html.matches("<tr>").count(), 51, "a header row and 50 tag rows");
    assert!(html.contains("after=v00049"), "a link to the next page");
    let mut g = c.benchmark_group("portal");
    g.sample_size(50);
    g.bench_function("repository page, 10,000 tags, first page by tag", |b| {
        b.iter(|| f.rt.block_on(f.app.repository_markup(&first, &f.name)).expect("page"))
    });
    let newest = ctx(&f, &[("sort", "pushed"), ("order", "desc")]);
    let html = f.rt.block_on(f.app.repository_markup(&newest, &f.name)).expect("page").into_string();
    assert_eq!(html.matches("<tr>").count(), 51, "a header row and 50 tag rows");
    let first_row = html.find("v09999").expect("the newest tag is listed");
    assert!(html.find("v09950").is_some_and(|p| p > first_row), "newest first: {html}");
    assert!(!html.contains("v09949"), "only the first page");
    g.bench_function("repository page, 10,000 tags, first page by push time", |b| {
        b.iter(|| f.rt.block_on(f.app.repository_markup(&newest, &f.name)).expect("page"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
