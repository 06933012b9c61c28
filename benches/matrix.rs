//! The load matrix, in the spirit of zot's `zb`: against any OCI registry (no auth, or Basic).
//!
//! ```text
//! cargo bench --bench matrix -- --url http://127.0.0.1:PORT [--label NAME] [--quick] [--tsv]
//!     [--pid SERVER_PID] [--repo NAME] [--user USER:PASSWORD] [--cell-seconds N]
//! cargo bench --bench matrix -- --targets pulls|pushes|single --url ... [--size-mib N]
//!     [--clients N] [--blobs N] [--push-mb N] [--runs N] [--samples N] [--data-dir DIR]
//! cargo bench --bench matrix -- --summarize TARGET_LINES_FILE [--criterion-json PATH]
//! ```
//!
//! `--list-groups` prints the names of the groups of cells, `--group NAME` runs one of them
//! (benches/compare.sh runs each group on a fresh server: the full matrix pushes more than this
//! machine's free disk holds). `--targets` measures the issue-11 targets instead of the matrix, `--summarize` prints their
//! table (see the `targets` module and benches/targets.sh).
//!
//! Cells (each runs its clients for `--cell-seconds`, every client finishing at least one
//! operation):
//! * monolithic push (POST, then PUT with the whole body), chunked push (POST, PATCHes with
//!   `Content-Range`, PUT), and pull, of 1 MB, 10 MB and 100 MB blobs at 1, 8 and 64 clients;
//! * one 1 GiB push and its pull;
//! * manifest GET by tag and blob HEAD at 64 connections while 4 clients push 10 MB blobs;
//! * a mixed workload of 16 clients: per 10 operations 5 pulls and 1 push of 1 MB, 2 manifest
//!   GETs, 1 blob HEAD and 1 tag list.
//!
//! `--quick` keeps 1 MB and 10 MB at 1 and 8 clients, a 64 MiB blob for the large cell and 16
//! connections for the cells under push, with 2 s cells: a few minutes in all for both servers.
//!
//! Every pushed blob is distinct (a shared body with a unique tail, hashed from a saved SHA-256
//! midstate, so the client spends its CPU on the wire and not on hashing). Per cell: operations
//! per second, MB/s (10^6 bytes), p50 and p99 latency, the server's CPU seconds per GiB moved and
//! its peak resident memory during the cell (VmHWM reset at its start, and VmRSS sampled every
//! 20 ms), with `--pid`. Output: a markdown table, or with `--tsv` one `MATRIX\t` line per cell
//! for benches/compare.sh.
//!
//! Without `--url` it measures nothing and exits 0 (so `cargo test --all-targets` stays harmless).

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, Url};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

mod targets;
mod util;

use util::{basic, cell, read_cpu_seconds, seed, xorshift_fill, Flags, Res};

const MB: usize = 1_000_000;
const MIB: usize = 1 << 20;
const TAG: &str = "matrix";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Args {
    url: Option<String>,
    label: String,
    quick: bool,
    tsv: bool,
    pid: Option<u32>,
    repo: String,
    user: Option<String>,
    cell_seconds: Option<u64>,
    targets: Option<String>,
    size_mib: Option<usize>,
    clients: Option<usize>,
    blobs: Option<usize>,
    push_mb: Option<usize>,
    runs: Option<usize>,
    samples: Option<usize>,
    data_dir: Option<String>,
    summarize: Option<String>,
    criterion_json: Option<String>,
    group: Option<String>,
    list_groups: bool,
}

fn parse_args() -> Res<Args> {
    let f = Flags::parse(
        &["--quick", "--tsv", "--list-groups"],
        &[
            "--url",
            "--label",
            "--pid",
            "--repo",
            "--user",
            "--cell-seconds",
            "--targets",
            "--size-mib",
            "--clients",
            "--blobs",
            "--push-mb",
            "--runs",
            "--samples",
            "--data-dir",
            "--summarize",
            "--criterion-json",
            "--group",
        ],
    )?;
    Ok(Args {
        url: f.str("--url"),
        label: f.str("--label").unwrap_or_else(|| "registry".into()),
        quick: f.has("--quick"),
        tsv: f.has("--tsv"),
        pid: f.num("--pid")?,
        repo: f.str("--repo").unwrap_or_else(|| "stowage-matrix/bench".into()),
        user: f.str("--user"),
        cell_seconds: f.num("--cell-seconds")?,
        targets: f.str("--targets"),
        size_mib: f.num("--size-mib")?,
        clients: f.num("--clients")?,
        blobs: f.num("--blobs")?,
        push_mb: f.num("--push-mb")?,
        runs: f.num("--runs")?,
        samples: f.num("--samples")?,
        data_dir: f.str("--data-dir"),
        summarize: f.str("--summarize"),
        criterion_json: f.str("--criterion-json"),
        group: f.str("--group"),
        list_groups: f.has("--list-groups"),
    })
}

/// A body of shared pieces, sent without copying.
struct Pieces(VecDeque<Bytes>, u64);

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.0.pop_front();
        if let Some(b) = &next {
            self.1 -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.1)
    }
}

/// Blobs of one size: a shared head and an 8-byte unique tail, digests from a saved midstate.
struct Blobs {
    head: Bytes,
    midstate: ring::digest::Context,
    next: AtomicU64,
    salt: u64,
}

impl Blobs {
    fn new(size: usize, s: &mut u64) -> Blobs {
        let head = Bytes::from(xorshift_fill(s, size - 8));
        let mut midstate = ring::digest::Context::new(&ring::digest::SHA256);
        midstate.update(&head);
        Blobs { head, midstate, next: AtomicU64::new(0), salt: *s }
    }

    fn size(&self) -> usize {
        self.head.len() + 8
    }

    /// A distinct blob: (head, tail) and its digest.
    fn make(&self) -> (Bytes, Bytes, String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed) ^ self.salt;
        let tail = Bytes::copy_from_slice(&n.to_le_bytes());
        let mut ctx = self.midstate.clone();
        ctx.update(&tail);
        let hex: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        (self.head.clone(), tail, format!("sha256:{hex}"))
    }
}

/// Bytes `start..end` of `head ++ tail` as pieces of at most 1 MiB.
fn span(head: &Bytes, tail: &Bytes, start: usize, end: usize) -> Pieces {
    let mut out = VecDeque::new();
    let mut at = start;
    while at < end.min(head.len()) {
        let e = (at + MIB).min(end).min(head.len());
        out.push_back(head.slice(at..e));
        at = e;
    }
    if end > head.len() {
        out.push_back(tail.slice(at - head.len()..end - head.len()));
    }
    Pieces(out, (end - start) as u64)
}

#[derive(Clone)]
struct Reg {
    client: Client,
    base: Url,
    repo: String,
    auth: Option<String>,
}

impl Reg {
    fn req(&self, m: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let r = self.client.request(m, url);
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }

    fn url(&self, path: &str) -> Res<Url> {
        self.base.join(&format!("/v2/{}/{path}", self.repo)).map_err(|e| e.to_string())
    }

    async fn expect(r: reqwest::Result<reqwest::Response>, ok: StatusCode, what: &str) -> Res<reqwest::Response> {
        let r = r.map_err(|e| format!("{what}: {e}"))?;
        if r.status() != ok {
            let st = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(format!("{what}: {st}: {}", body.chars().take(200).collect::<String>()));
        }
        Ok(r)
    }

    fn location(&self, r: &reqwest::Response) -> Res<Url> {
        let loc = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or("no Location")?;
        self.base.join(loc).map_err(|e| e.to_string())
    }

    async fn start(&self) -> Res<Url> {
        let r = self.req(reqwest::Method::POST, self.url("blobs/uploads/")?).header(CONTENT_LENGTH, "0").send().await;
        let r = Self::expect(r, StatusCode::ACCEPTED, "POST upload").await?;
        self.location(&r)
    }

    fn with_digest(mut u: Url, digest: &str) -> Url {
        u.query_pairs_mut().append_pair("digest", digest);
        u
    }

    async fn push_mono(&self, b: &Blobs) -> Res<String> {
        let (head, tail, digest) = b.make();
        let loc = self.start().await?;
        let body = span(&head, &tail, 0, b.size());
        let r = self
            .req(reqwest::Method::PUT, Self::with_digest(loc, &digest))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, b.size())
            .body(reqwest::Body::wrap(body))
            .send()
            .await;
        Self::expect(r, StatusCode::CREATED, "PUT blob").await?;
        Ok(digest)
    }

    async fn push_chunked(&self, b: &Blobs) -> Res<String> {
        let (head, tail, digest) = b.make();
        let chunk = (b.size() / 10).clamp(64 << 10, 8 * MIB);
        let mut loc = self.start().await?;
        let mut at = 0;
        while at < b.size() {
            let end = (at + chunk).min(b.size());
            let r = self
                .req(reqwest::Method::PATCH, loc.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, end - at)
                .header("content-range", format!("{at}-{}", end - 1))
                .body(reqwest::Body::wrap(span(&head, &tail, at, end)))
                .send()
                .await;
            let r = Self::expect(r, StatusCode::ACCEPTED, "PATCH chunk").await?;
            loc = self.location(&r)?;
            at = end;
        }
        let r =
            self.req(reqwest::Method::PUT, Self::with_digest(loc, &digest)).header(CONTENT_LENGTH, "0").send().await;
        Self::expect(r, StatusCode::CREATED, "PUT digest").await?;
        Ok(digest)
    }

    async fn pull(&self, digest: &str, size: usize) -> Res<u64> {
        let r = self.req(reqwest::Method::GET, self.url(&format!("blobs/{digest}"))?).send().await;
        let mut r = Self::expect(r, StatusCode::OK, "GET blob").await?;
        let mut n = 0u64;
        while let Some(c) = r.chunk().await.map_err(|e| format!("GET blob body: {e}"))? {
            n += c.len() as u64;
        }
        if n != size as u64 {
            return Err(format!("GET blob: {n} bytes, expected {size}"));
        }
        Ok(n)
    }

    async fn small(&self, method: reqwest::Method, path: &str, accept: Option<&str>) -> Res<()> {
        let mut r = self.req(method, self.url(path)?);
        if let Some(a) = accept {
            r = r.header(ACCEPT, a);
        }
        let r = Self::expect(r.send().await, StatusCode::OK, path).await?;
        r.bytes().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A tiny image tagged [`TAG`] whose layer is `layer` (digest, size).
    async fn tag_image(&self, layer: &str, size: usize) -> Res<()> {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cd = util::sha256_digest(config);
        let loc = self.start().await?;
        let r = self
            .req(reqwest::Method::PUT, Self::with_digest(loc, &cd))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(config.to_vec())
            .send()
            .await;
        Self::expect(r, StatusCode::CREATED, "PUT config").await?;
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size }],
        });
        let r = self
            .req(reqwest::Method::PUT, self.url(&format!("manifests/{TAG}"))?)
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(serde_json::to_vec(&m).map_err(|e| e.to_string())?)
            .send()
            .await;
        Self::expect(r, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }
}

/// One row of the matrix.
struct Cell {
    name: String,
    ops: u64,
    bytes: u64,
    secs: f64,
    lat: Vec<Duration>,
    cpu_s: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Whether `peak_rss_mib` is the kernel's VmHWM (else sampled VmRSS only).
    rss_from_hwm: bool,
    errors: u64,
    first_error: Option<String>,
}

impl Cell {
    fn pct(&self, p: f64) -> Option<f64> {
        if self.lat.is_empty() {
            return None;
        }
        let mut l = self.lat.clone();
        l.sort();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        Some(l[i].as_secs_f64() * 1e3)
    }

    fn cpu_per_gib(&self) -> Option<f64> {
        let gib = self.bytes as f64 / (1u64 << 30) as f64;
        self.cpu_s.filter(|_| gib > 0.01).map(|c| c / gib)
    }
}

/// Peak resident memory of `pid` while the returned flag stays false, in MiB: VmHWM after
/// resetting it (`echo 5 > /proc/PID/clear_refs`) when that works, and VmRSS sampled every 20 ms
/// in any case; the larger of the two. The flag in the result says whether VmHWM was read.
type Sampler = (Arc<AtomicBool>, std::thread::JoinHandle<Option<(f64, bool)>>);

fn rss_sampler(pid: Option<u32>) -> Sampler {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let pid = pid?;
        let status_kb = |field: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|st| {
                st.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
        };
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let mut peak = 0u64;
        while !s.load(Ordering::Relaxed) {
            peak = peak.max(status_kb("VmRSS:").unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        let hwm = if hwm_reset { status_kb("VmHWM:") } else { None };
        Some((peak.max(hwm.unwrap_or(0)) as f64 / 1024.0, hwm.is_some()))
    });
    (stop, h)
}

type OpFuture = Pin<Box<dyn std::future::Future<Output = Res<u64>> + Send>>;

/// Runs `clients` loops of `op(client, iteration)` for `secs` (each at least once); `op` returns
/// the bytes it moved. `background` runs alongside and is stopped at the end (its bytes and
/// latencies are not counted, its CPU is: the cells under push say so).
async fn run_cell(
    name: String,
    pid: Option<u32>,
    clients: usize,
    secs: f64,
    op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync>,
) -> Cell {
    let cpu0 = pid.and_then(|p| read_cpu_seconds(p).ok());
    let (stop, sampler) = rss_sampler(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut bytes, mut errors, mut first_error) = (Vec::new(), 0u64, 0u64, None);
            let mut i = 0u64;
            loop {
                let t = Instant::now();
                match op(c, i).await {
                    Ok(n) => {
                        lat.push(t.elapsed());
                        bytes += n;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                i += 1;
                if Instant::now() >= deadline || errors > 20 {
                    break;
                }
            }
            (lat, bytes, errors, first_error)
        }));
    }
    let mut cell = Cell {
        name,
        ops: 0,
        bytes: 0,
        secs: 0.0,
        lat: Vec::new(),
        cpu_s: None,
        peak_rss_mib: None,
        rss_from_hwm: false,
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        if let Ok((lat, bytes, errors, fe)) = t.await {
            cell.ops += lat.len() as u64;
            cell.lat.extend(lat);
            cell.bytes += bytes;
            cell.errors += errors;
            if cell.first_error.is_none() {
                cell.first_error = fe;
            }
        }
    }
    cell.secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().ok().flatten();
    cell.peak_rss_mib = peak.map(|p| p.0);
    cell.rss_from_hwm = peak.is_some_and(|p| p.1);
    cell.cpu_s = match (cpu0, pid.and_then(|p| read_cpu_seconds(p).ok())) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    cell
}

/// One cell: a markdown row, or with `--tsv` one `MATRIX\t` line for benches/compare.sh.
fn print_cell(a: &Args, c: &Cell) {
    let ops_s = c.ops as f64 / c.secs;
    let mbps = if c.bytes > 0 { format!("{:.1}", c.bytes as f64 / c.secs / 1e6) } else { "-".into() };
    let cells = [
        format!("{ops_s:.1}"),
        mbps,
        cell(c.pct(0.5), 2),
        cell(c.pct(0.99), 2),
        cell(c.cpu_per_gib(), 2),
        cell(c.peak_rss_mib, 0),
        c.errors.to_string(),
    ];
    if a.tsv {
        println!("MATRIX\t{}\t{}\t{}", a.label, c.name, cells.join("\t"));
    } else {
        println!("| {} | {} | {} |", a.label, c.name, cells.join(" | "));
    }
    if let Some(e) = &c.first_error {
        eprintln!("matrix: {} {}: {} errors, first: {e}", a.label, c.name, c.errors);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum UnderPush {
    ManifestGet,
    BlobHead,
}

/// Manifest GET by tag [`TAG`] or HEAD of blob `layer` at `conns` connections for `secs`, while 4
/// clients push distinct 10 MB blobs (stopped, each after its current push, at the end).
async fn under_push(
    reg: &Reg,
    pid: Option<u32>,
    what: UnderPush,
    conns: usize,
    secs: f64,
    ten: Arc<Blobs>,
    layer: &str,
) -> Cell {
    let stop = Arc::new(AtomicBool::new(false));
    let mut pushers = Vec::new();
    for _ in 0..4 {
        let (r, b, st) = (reg.clone(), ten.clone(), stop.clone());
        pushers.push(tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                let _ = r.push_mono(&b).await;
            }
        }));
    }
    let (r, l) = (reg.clone(), layer.to_owned());
    let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |_, _| {
        let (r, l) = (r.clone(), l.clone());
        Box::pin(async move {
            match what {
                UnderPush::BlobHead => r.small(reqwest::Method::HEAD, &format!("blobs/{l}"), None).await?,
                UnderPush::ManifestGet => {
                    r.small(reqwest::Method::GET, &format!("manifests/{TAG}"), Some(OCI_MANIFEST)).await?
                }
            }
            Ok(0)
        })
    });
    let name = if what == UnderPush::BlobHead { "blob HEAD" } else { "manifest GET" };
    let c = run_cell(format!("{name} x{conns} while 4 push"), pid, conns, secs, op).await;
    stop.store(true, Ordering::Relaxed);
    for p in pushers {
        let _ = p.await;
    }
    c
}

/// A group of cells: (blob size, clients, chunked).
type Group = (usize, usize, bool);

/// The groups of push and pull cells, each runnable alone with `--group` (benches/compare.sh
/// runs each on a fresh server, so that the disk holds one group's blobs at a time): named
/// "<size> x<clients>" (monolithic push, then pull of what it pushed) and "<size> x<clients>
/// chunked"; after them comes the group "reads" (cells under push, mixed).
fn groups(a: &Args) -> Vec<Group> {
    let (sizes, conc, large) = if a.quick {
        (vec![MB, 10 * MB], vec![1, 8], 64 * MIB)
    } else {
        (vec![MB, 10 * MB, 100 * MB], vec![1, 8, 64], 1 << 30)
    };
    let mut groups = Vec::new();
    for size in sizes {
        for &n in &conc {
            groups.push((size, n, false));
            groups.push((size, n, true));
        }
    }
    groups.push((large, 1, false));
    groups
}

fn label_of(size: usize) -> String {
    if size >= MIB * 1024 {
        "1GiB".to_string()
    } else if size.is_multiple_of(MB) {
        format!("{}MB", size / MB)
    } else {
        format!("{}MiB", size / MIB)
    }
}

fn group_name(&(size, n, chunked): &Group) -> String {
    format!("{} x{n}{}", label_of(size), if chunked { " chunked" } else { "" })
}

async fn run(a: &Args, url: &str) -> Res<()> {
    let client = Client::builder()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let reg = Reg {
        client,
        base: Url::parse(url).map_err(|e| e.to_string())?,
        repo: a.repo.clone(),
        auth: a.user.as_deref().map(basic),
    };
    if let Some(phase) = &a.targets {
        return targets::run_phase(a, &reg, phase).await;
    }
    let secs = a.cell_seconds.unwrap_or(if a.quick { 2 } else { 10 }) as f64;
    let under_push_conns = if a.quick { 16 } else { 64 };
    let groups = groups(a);
    if let Some(g) = &a.group {
        if g != "reads" && !groups.iter().any(|x| group_name(x) == *g) {
            return Err(format!("--group {g}: no such group (see --list-groups)"));
        }
    }
    let wanted = |g: &str| a.group.as_deref().is_none_or(|want| want == g);
    let mut s = seed(7);
    if !a.tsv {
        println!("| server | cell | ops/s | MB/s | p50 ms | p99 ms | CPU s/GiB | peak RSS MiB | errors |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    let mut small_digest: Option<String> = None;
    let mut blobs: Option<Arc<Blobs>> = None;
    // Per size: what the monolithic and chunked cells pushed so far, for the pull cells.
    let pushed = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    for g in &groups {
        let (size, n, chunked) = *g;
        if !wanted(&group_name(g)) {
            continue;
        }
        if blobs.as_ref().is_none_or(|b| b.size() != size) {
            blobs = Some(Arc::new(Blobs::new(size, &mut s)));
            pushed.lock().clear();
        }
        let label = label_of(size);
        let (r, b, p) = (reg.clone(), blobs.clone().ok_or("no blobs")?, pushed.clone());
        let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |_, _| {
            let (r, b, p) = (r.clone(), b.clone(), p.clone());
            Box::pin(async move {
                let d = if chunked { r.push_chunked(&b).await? } else { r.push_mono(&b).await? };
                p.lock().push(d);
                Ok(b.size() as u64)
            })
        });
        let kind = if chunked { "push chunked" } else { "push" };
        let c = run_cell(format!("{kind} {label} x{n}"), a.pid, n, secs, op).await;
        print_cell(a, &c);
        if size == MB && small_digest.is_none() {
            small_digest = pushed.lock().first().cloned();
        }
        if chunked {
            continue;
        }
        let digests: Arc<Vec<String>> = Arc::new(pushed.lock().clone());
        if digests.is_empty() {
            continue;
        }
        let (r, d) = (reg.clone(), digests.clone());
        let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |c, i| {
            let (r, d) = (r.clone(), d.clone());
            Box::pin(async move { r.pull(&d[(c + i as usize) % d.len()], size).await })
        });
        let c = run_cell(format!("pull {label} x{n}"), a.pid, n, secs, op).await;
        print_cell(a, &c);
    }
    if !wanted("reads") {
        return Ok(());
    }

    // Reads while pushes stream, of an image whose layer is a 1 MB blob.
    let layer = match small_digest {
        Some(d) => d,
        None => reg.push_mono(&Blobs::new(MB, &mut s)).await?,
    };
    reg.tag_image(&layer, MB).await?;
    let ten = Arc::new(Blobs::new(10 * MB, &mut s));
    for what in [UnderPush::ManifestGet, UnderPush::BlobHead] {
        let c = under_push(&reg, a.pid, what, under_push_conns, secs, ten.clone(), &layer).await;
        print_cell(a, &c);
    }

    // Mixed.
    let one = Arc::new(Blobs::new(MB, &mut s));
    let (r, l, b) = (reg.clone(), layer.clone(), one.clone());
    let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |c, i| {
        let (r, l, b) = (r.clone(), l.clone(), b.clone());
        Box::pin(async move {
            match (c as u64 + i) % 10 {
                0 => r.push_mono(&b).await.map(|_| b.size() as u64),
                1 | 2 => {
                    r.small(reqwest::Method::GET, &format!("manifests/{TAG}"), Some(OCI_MANIFEST)).await.map(|_| 0)
                }
                3 => r.small(reqwest::Method::HEAD, &format!("blobs/{l}"), None).await.map(|_| 0),
                4 => r.small(reqwest::Method::GET, "tags/list?n=100", None).await.map(|_| 0),
                _ => r.pull(&l, MB).await,
            }
        })
    });
    let c = run_cell("mixed x16".into(), a.pid, 16, secs, op).await;
    print_cell(a, &c);
    Ok(())
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("matrix: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &a.summarize {
        if let Err(e) = targets::summarize(path, a.criterion_json.as_deref()) {
            eprintln!("matrix: {e}");
            std::process::exit(1);
        }
        return;
    }
    if a.list_groups {
        for g in groups(&a) {
            println!("{}", group_name(&g));
        }
        println!("reads");
        return;
    }
    let Some(url) = a.url.clone() else {
        println!("matrix: no --url given; nothing measured (see benches/compare.sh and benches/targets.sh)");
        return;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("matrix: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&a, &url)) {
        eprintln!("matrix: {e}");
        std::process::exit(1);
    }
}
