//! Write-path load benchmark against any OCI distribution registry (no auth, or HTTP Basic).
//!
//! ```text
//! cargo bench --bench writes -- --mode manifest-put --url http://127.0.0.1:PORT [--clients 16]
//! cargo bench --bench writes -- --mode small-push   --url http://127.0.0.1:PORT [--clients 64] [--monolithic]
//! cargo bench --bench writes -- --mode gc-get       --url http://127.0.0.1:PORT --user admin:PW [--blobs N]
//!     common: [--quick] [--label NAME] [--seconds N] [--pid SERVER_PID] [--repo NAME]
//!             [--user USER:PASSWORD] [--timeout-secs N] [--rate REQUESTS_PER_SECOND]
//! ```
//!
//! Without `--url` it measures nothing, prints a note and exits 0 (so that
//! `cargo test --all-targets` and `cargo bench` stay harmless).
//!
//! Every load loop is our own: N tokio tasks, each with its own reqwest
//! `Client` (HTTP/1.1, one keep-alive connection), issuing one request
//! sequence after the other until `--seconds` (default 5, quick 3) have passed
//! (gc-get: until the collection answers). Latency is that of the whole
//! sequence, as the task saw it; p50/p99 are nearest-rank over all tasks.
//! Any answer other than the expected one is an error: counted, named in a
//! note, never in the rate or the percentiles. The client runs on the same
//! machine as the server and competes with it for the cores.
//!
//! Modes:
//! * `manifest-put` (16 clients): push a config and a 4 KiB layer once, then
//!   every client loops `PUT /v2/<repo>/manifests/writes` of the same OCI
//!   manifest (201 expected). Each one is a tag update the registry commits.
//! * `small-push` (64 clients): every client loops the push of a fresh random
//!   4 KiB blob. By default as `POST /v2/<repo>/blobs/uploads/` (202) then
//!   `PUT <Location>?digest=` with the body (201), the sequence every
//!   registry supports; `--monolithic` sends one `POST ...uploads/?digest=`
//!   with the body instead (201; spec end-4b, which CNCF Distribution 2.8
//!   answers with 202 and an empty session, so it is not comparable there).
//!   The output says which sequence ran and whether the server does the
//!   monolithic POST.
//! * `gc-get` (Stowage only; `--user` must be an administrator; the server
//!   needs `[storage] gc_grace = "0s"` or nothing is old enough to delete):
//!   push `--blobs` (100,000; quick 20,000) random 4 KiB blobs into
//!   `<repo>-gc-fill` with 64 concurrent monolithic POSTs, then trash and
//!   purge that repository over REST so the blobs are unreferenced (one more
//!   blob, the probe for monolithic POST, goes the same way); wait until the
//!   server is idle (with `--pid`); push one image to `<repo>`; measure
//!   manifest GET with 32 clients (`--clients`) for `--seconds` (quiet), then
//!   `POST /api/v1/gc` and measure the same load for as long as the
//!   collection runs (at most `--gc-max-secs`, 600), then once more for
//!   `--seconds` when the server is idle again. The quiet p99 is that of both
//!   quiet windows pooled: on a shared machine the p99 of one window of a few
//!   seconds moves by 2-3x from one window to the next, and a window on each
//!   side of the collection keeps a drift from being read as its effect.
//!
//! `--rate R` paces every load loop at R requests/s over all its clients (the
//! fill excepted) and counts each latency from when the request was due, so
//! a stall shows in the percentiles instead of merely thinning the load; a
//! closed loop at saturation (the default) hides stalls that way.
//!
//! `--pid` adds the server's CPU seconds (utime+stime) over the mode and its
//! peak RSS (VmHWM, the peak over the process's life so far).
//!
//! Output: a markdown table row and one machine-readable line starting with
//! `WRITES_RESULT\t` (tab separated, `-` = not measured):
//! * put/push: label mode clients ok_per_s p50_ms p99_ms errors cpu_s rss_mib sequence
//! * gc-get: label gc-get clients blobs fill_s quiet_p99_ms gc_p99_ms ratio gc_s
//!   blobs_deleted cpu_s rss_mib quiet_p50_ms gc_p50_ms gc_samples

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, Url};

const BLOB_BYTES: usize = 4096;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const TAG: &str = "writes";
/// Concurrent pushes that fill the registry before a gc-get run.
const FILL_CLIENTS: usize = 64;
/// One request of the load loops may take this long before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

mod util;

use util::{basic, cell, read_cpu_seconds, seed, sha256_digest, xorshift_fill, Flags, Res};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    ManifestPut,
    SmallPush,
    GcGet,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::ManifestPut => "manifest-put",
            Mode::SmallPush => "small-push",
            Mode::GcGet => "gc-get",
        }
    }

    fn default_clients(self) -> usize {
        match self {
            Mode::ManifestPut => 16,
            Mode::SmallPush => 64,
            Mode::GcGet => 32,
        }
    }
}

struct Args {
    url: Option<String>,
    label: Option<String>,
    quick: bool,
    mode: Option<String>,
    clients: Option<usize>,
    seconds: Option<u64>,
    pid: Option<u32>,
    repo: String,
    user: Option<String>,
    timeout_secs: u64,
    blobs: Option<usize>,
    gc_max_secs: u64,
    monolithic: bool,
    rate: Option<f64>,
}

fn parse_args() -> Res<Args> {
    let f = Flags::parse(
        &["--quick", "--monolithic"],
        &[
            "--url",
            "--label",
            "--mode",
            "--clients",
            "--seconds",
            "--pid",
            "--repo",
            "--user",
            "--timeout-secs",
            "--blobs",
            "--gc-max-secs",
            "--rate",
        ],
    )?;
    Ok(Args {
        url: f.str("--url"),
        label: f.str("--label"),
        quick: f.has("--quick"),
        mode: f.str("--mode"),
        clients: f.num("--clients")?,
        seconds: f.num("--seconds")?,
        pid: f.num("--pid")?,
        repo: f.str("--repo").unwrap_or_else(|| "stowage-writes/bench".to_owned()),
        user: f.str("--user"),
        timeout_secs: f.num("--timeout-secs")?.unwrap_or(1200),
        blobs: f.num("--blobs")?,
        gc_max_secs: f.num("--gc-max-secs")?.unwrap_or(600),
        monolithic: f.has("--monolithic"),
        rate: f.num::<f64>("--rate")?.filter(|r| *r > 0.0),
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("writes: {e}");
            std::process::exit(2);
        }
    };
    let Some(url) = args.url.clone() else {
        println!(
            "writes: no --url given, nothing measured. Usage: cargo bench --bench writes -- \
             --mode manifest-put|small-push|gc-get --url http://127.0.0.1:PORT [--clients N] [--seconds N] \
             [--pid PID] [--user USER:PW] [--repo NAME] [--quick]"
        );
        return;
    };
    let mode = match args.mode.as_deref() {
        Some("manifest-put") => Mode::ManifestPut,
        Some("small-push") => Mode::SmallPush,
        Some("gc-get") => Mode::GcGet,
        other => {
            eprintln!("writes: --mode must be manifest-put, small-push or gc-get, not {other:?}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("writes: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let budget = Duration::from_secs(args.timeout_secs);
    let result = rt.block_on(async {
        let ctx = Ctx::new(&args, &url, mode)?;
        let run = async {
            match mode {
                Mode::ManifestPut => manifest_put(&ctx).await,
                Mode::SmallPush => small_push(&ctx).await,
                Mode::GcGet => gc_get(&ctx).await,
            }
        };
        match tokio::time::timeout(budget, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("overall timeout of {}s exceeded", args.timeout_secs)),
        }
    });
    // The runtime may still hold tasks of an abandoned run: do not wait for them.
    rt.shutdown_background();
    match result {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("writes: FAILED against {url}: {e}");
            std::process::exit(1);
        }
    }
}

/// What every mode needs: where, as whom, for how long.
struct Ctx {
    base: Url,
    label: String,
    repo: String,
    auth: Option<HeaderValue>,
    clients: usize,
    seconds: u64,
    pid: Option<u32>,
    blobs: usize,
    gc_max: Duration,
    monolithic: bool,
    /// Requests per second over all clients of a load loop; `None`: each sends as fast as it can.
    rate: Option<f64>,
    setup: Client,
}

impl Ctx {
    fn new(args: &Args, url: &str, mode: Mode) -> Res<Ctx> {
        let base = Url::parse(url).map_err(|e| format!("bad --url {url}: {e}"))?;
        let auth = match &args.user {
            Some(user) => {
                let mut v = HeaderValue::from_str(&basic(user)).map_err(|e| format!("--user: {e}"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let label = args.label.clone().unwrap_or_else(|| {
            format!("{}:{}", base.host_str().unwrap_or("?"), base.port_or_known_default().unwrap_or(0))
        });
        let mut ctx = Ctx {
            setup: Client::new(),
            base,
            label,
            repo: args.repo.clone(),
            auth,
            clients: args.clients.unwrap_or(mode.default_clients()).max(1),
            seconds: args.seconds.unwrap_or(if args.quick { 3 } else { 5 }),
            pid: args.pid,
            blobs: args.blobs.unwrap_or(if args.quick { 20_000 } else { 100_000 }),
            gc_max: Duration::from_secs(args.gc_max_secs),
            monolithic: args.monolithic,
            rate: args.rate,
        };
        ctx.setup = ctx.client(Duration::from_secs(args.timeout_secs))?;
        Ok(ctx)
    }

    /// A client with one HTTP/1.1 connection (the load loops use one per task).
    fn client(&self, timeout: Duration) -> Res<Client> {
        let mut headers = HeaderMap::new();
        if let Some(a) = &self.auth {
            headers.insert(AUTHORIZATION, a.clone());
        }
        Client::builder()
            .http1_only()
            .default_headers(headers)
            .pool_max_idle_per_host(1)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))
    }

    fn url(&self, path: &str) -> Res<Url> {
        self.base.join(path).map_err(|e| format!("bad url {} + {path}: {e}", self.base))
    }

    async fn check_v2(&self) -> Res<()> {
        let r = self.setup.get(self.url("/v2/")?).send().await.map_err(|e| format!("GET /v2/: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("GET /v2/ answered {} (wrong or missing --user?)", r.status()));
        }
        Ok(())
    }

    fn pacing(&self) -> String {
        match self.rate {
            None => "closed loop: each client sends its next request when the last is answered".to_owned(),
            Some(r) => format!("paced: {r:.0} requests/s over all clients, latency counted from when each was due"),
        }
    }

    fn server_cpu(&self) -> Option<f64> {
        self.pid.and_then(|p| read_cpu_seconds(p).ok())
    }
}

/// One request sequence of a load loop.
enum Op {
    PutManifest { url: Url, body: Bytes },
    Push { uploads: Url, monolithic: bool },
    GetManifest { url: Url },
}

impl Op {
    /// Runs the sequence once; `Err` names what went wrong (a status or a transport error).
    async fn once(&self, client: &Client, rng: &mut u64) -> Result<(), String> {
        match self {
            Op::PutManifest { url, body } => {
                let r = client.put(url.clone()).header(CONTENT_TYPE, OCI_MANIFEST).body(body.clone()).send().await;
                drain(r, StatusCode::CREATED, "PUT manifest").await
            }
            Op::Push { uploads, monolithic } => {
                let data = Bytes::from(xorshift_fill(rng, BLOB_BYTES));
                push(client, uploads, data, *monolithic).await
            }
            Op::GetManifest { url } => {
                let r = client.get(url.clone()).header(ACCEPT, OCI_MANIFEST).send().await;
                drain(r, StatusCode::OK, "GET manifest").await
            }
        }
    }
}

/// Reads the whole answer (so the connection is reused) and checks its status.
async fn drain(r: reqwest::Result<reqwest::Response>, want: StatusCode, what: &str) -> Result<(), String> {
    let r = r.map_err(|e| format!("{what}: {}", transport(&e)))?;
    let status = r.status();
    let _ = r.bytes().await;
    if status == want {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "transport error"
    }
}

/// Pushes one blob: monolithic `POST ?digest=` with the body, or `POST` then `PUT ?digest=` with it.
async fn push(client: &Client, uploads: &Url, data: Bytes, monolithic: bool) -> Result<(), String> {
    let digest = sha256_digest(&data);
    if monolithic {
        let mut url = uploads.clone();
        url.query_pairs_mut().append_pair("digest", &digest);
        let r = client.post(url).header(CONTENT_TYPE, "application/octet-stream").body(data).send().await;
        return drain(r, StatusCode::CREATED, "monolithic POST").await;
    }
    let r = client
        .post(uploads.clone())
        .header(CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(|e| format!("POST upload: {}", transport(&e)))?;
    let status = r.status();
    let loc = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let _ = r.bytes().await;
    if status != StatusCode::ACCEPTED {
        return Err(format!("POST upload: {status}"));
    }
    let mut put =
        loc.and_then(|l| uploads.join(&l).ok()).ok_or_else(|| "POST upload: no usable Location".to_owned())?;
    put.query_pairs_mut().append_pair("digest", &digest);
    let r = client.put(put).header(CONTENT_TYPE, "application/octet-stream").body(data).send().await;
    drain(r, StatusCode::CREATED, "PUT upload").await
}

/// When a load loop stops: at its deadline, or earlier when `flag` is raised.
#[derive(Clone)]
struct Stop {
    deadline: Instant,
    flag: Arc<AtomicBool>,
}

impl Stop {
    fn after(d: Duration) -> Stop {
        Stop { deadline: Instant::now() + d, flag: Arc::new(AtomicBool::new(false)) }
    }

    fn done(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl Samples {
    /// Both sets of samples as one (the elapsed times add up).
    fn pooled(mut self, other: Samples) -> Samples {
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.elapsed += other.elapsed;
        self
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank percentile in milliseconds; `None` without samples.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        Some(v[rank.min(v.len()) - 1].as_secs_f64() * 1000.0)
    }

    fn error_note(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let list: Vec<String> = self.errors.iter().map(|(k, n)| format!("{n} x {k}")).collect();
        Some(format!("{} errors (not in the rate or percentiles): {}", self.error_count(), list.join(", ")))
    }
}

/// Runs `clients` tasks, each looping `op` on its own connection until `stop`.
///
/// With `--rate`, each task sends on a fixed schedule (the tasks staggered evenly) and a latency
/// counts from when the request was due, not from when it went out: a server that stalls then
/// shows the whole stall in every request that waited behind it, instead of merely receiving
/// fewer requests (coordinated omission).
async fn load(ctx: &Ctx, op: Op, clients: usize, stop: Stop) -> Res<Samples> {
    let op = Arc::new(op);
    let started = Instant::now();
    let interval = ctx.rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (op, stop, client) = (op.clone(), stop.clone(), ctx.client(REQUEST_TIMEOUT)?);
        let mut due = interval.map(|iv| started + iv.mul_f64(i as f64 / clients as f64));
        tasks.push(tokio::spawn(async move {
            let mut rng = seed(i as u64);
            let mut s = Samples::default();
            while !stop.done() {
                let t = match (due.as_mut(), interval) {
                    (Some(d), Some(iv)) => {
                        tokio::time::sleep_until((*d).into()).await;
                        let t = *d;
                        *d += iv;
                        t
                    }
                    _ => Instant::now(),
                };
                match op.once(&client, &mut rng).await {
                    Ok(()) => s.latencies.push(t.elapsed()),
                    Err(e) => {
                        *s.errors.entry(e).or_default() += 1;
                        // A refused connection fails at once: do not spin on it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            s
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        all = all.pooled(t.await.map_err(|e| format!("load task: {e}"))?);
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

/// Pushes a config and a 4 KiB layer, PUTs a manifest tagged `TAG` and returns its URL and bytes.
async fn push_image(ctx: &Ctx, repo: &str) -> Res<(Url, Bytes)> {
    let uploads = ctx.url(&format!("/v2/{repo}/blobs/uploads/"))?;
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
    );
    let layer = Bytes::from(xorshift_fill(&mut seed(u64::MAX), BLOB_BYTES));
    let (config_digest, layer_digest) = (sha256_digest(&config), sha256_digest(&layer));
    let config_len = config.len();
    push(&ctx.setup, &uploads, config, false).await.map_err(|e| format!("config: {e}"))?;
    push(&ctx.setup, &uploads, layer, false).await.map_err(|e| format!("layer: {e}"))?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config_len },
        "layers": [ { "mediaType": OCI_LAYER, "digest": layer_digest, "size": BLOB_BYTES } ],
    });
    let body = Bytes::from(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?);
    let url = ctx.url(&format!("/v2/{repo}/manifests/{TAG}"))?;
    let r = ctx.setup.put(url.clone()).header(CONTENT_TYPE, OCI_MANIFEST).body(body.clone()).send().await;
    drain(r, StatusCode::CREATED, "first PUT manifest").await?;
    Ok((url, body))
}

async fn manifest_put(ctx: &Ctx) -> Res<String> {
    ctx.check_v2().await?;
    let (url, body) = push_image(ctx, &ctx.repo).await?;
    let cpu = ctx.server_cpu();
    let s =
        load(ctx, Op::PutManifest { url, body }, ctx.clients, Stop::after(Duration::from_secs(ctx.seconds))).await?;
    let cpu = cpu.zip(ctx.server_cpu()).map(|(a, b)| b - a);
    let seq = "PUT /manifests/<tag> (same manifest and tag)";
    Ok(rate_row(ctx, Mode::ManifestPut, &s, cpu, seq, Vec::new()))
}

async fn small_push(ctx: &Ctx) -> Res<String> {
    ctx.check_v2().await?;
    let uploads = ctx.url(&format!("/v2/{}/blobs/uploads/", ctx.repo))?;
    let supported = monolithic_supported(ctx, &uploads).await?;
    let mut notes = vec![format!(
        "this server {} the monolithic POST ?digest= (spec end-4b)",
        if supported { "accepts" } else { "does not accept" }
    )];
    let monolithic = ctx.monolithic && supported;
    if ctx.monolithic && !supported {
        notes.push("--monolithic asked for but not supported: ran POST + PUT instead".to_owned());
    }
    let seq = if monolithic { "POST ?digest= with body" } else { "POST, then PUT ?digest= with body" };
    let cpu = ctx.server_cpu();
    let op = Op::Push { uploads, monolithic };
    let s = load(ctx, op, ctx.clients, Stop::after(Duration::from_secs(ctx.seconds))).await?;
    let cpu = cpu.zip(ctx.server_cpu()).map(|(a, b)| b - a);
    Ok(rate_row(ctx, Mode::SmallPush, &s, cpu, seq, notes))
}

/// Tries one monolithic POST. Distribution 2.8 answers 202 and opens a session instead, which is
/// cancelled again (best effort).
async fn monolithic_supported(ctx: &Ctx, uploads: &Url) -> Res<bool> {
    let data = Bytes::from(xorshift_fill(&mut seed(7), BLOB_BYTES));
    let mut url = uploads.clone();
    url.query_pairs_mut().append_pair("digest", &sha256_digest(&data));
    let r = ctx.setup.post(url).header(CONTENT_TYPE, "application/octet-stream").body(data).send().await;
    let r = r.map_err(|e| format!("probe POST: {e}"))?;
    let status = r.status();
    let loc = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let _ = r.bytes().await;
    if status == StatusCode::ACCEPTED {
        if let Some(l) = loc.and_then(|l| uploads.join(&l).ok()) {
            let _ = ctx.setup.delete(l).send().await;
        }
    }
    match status {
        StatusCode::CREATED => Ok(true),
        StatusCode::ACCEPTED => Ok(false),
        s => Err(format!("probe POST ?digest=: unexpected status {s}")),
    }
}

fn rate_row(ctx: &Ctx, mode: Mode, s: &Samples, cpu: Option<f64>, seq: &str, mut notes: Vec<String>) -> String {
    notes.push(ctx.pacing());
    notes.extend(s.error_note());
    let rss = ctx.pid.and_then(peak_rss_mib);
    let cells = [
        ctx.clients.to_string(),
        cell(Some(s.rate()), 0),
        cell(s.percentile_ms(50.0), 2),
        cell(s.percentile_ms(99.0), 2),
        s.error_count().to_string(),
        cell(cpu, 2),
        cell(rss, 0),
    ];
    let mut out = String::new();
    out.push_str("\n| target | mode | clients | ok/s | p50 ms | p99 ms | errors | server CPU s | peak RSS MiB |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!("| {} | {} | {} |\n", ctx.label, mode.name(), cells.join(" | ")));
    out.push_str(&format!(
        "note ({}): {} for {:.1}s; {} ok; sequence: {seq}\n",
        ctx.label,
        mode.name(),
        s.elapsed.as_secs_f64(),
        s.latencies.len()
    ));
    for n in notes {
        out.push_str(&format!("note ({}): {n}\n", ctx.label));
    }
    out.push_str(&format!(
        "WRITES_RESULT\t{}\t{}\t{}\t{seq}\n",
        ctx.label.replace('\t', " "),
        mode.name(),
        cells.join("\t")
    ));
    out
}

async fn gc_get(ctx: &Ctx) -> Res<String> {
    if ctx.auth.is_none() {
        return Err("gc-get needs --user with an administrator's credentials".to_owned());
    }
    ctx.check_v2().await?;
    let cpu0 = ctx.server_cpu();
    let fill_repo = format!("{}-gc-fill", ctx.repo);
    let t = Instant::now();
    let (filled, fill_errors) = fill(ctx, &fill_repo).await?;
    let fill_s = t.elapsed().as_secs_f64();
    eprintln!("writes: filled {filled} blobs of 4 KiB in {fill_s:.1}s ({:.0}/s)", filled as f64 / fill_s);
    let mut notes = vec![format!("manifest GET load: {}", ctx.pacing())];
    notes.push(format!(
        "fill: {filled} x 4 KiB monolithic POSTs, {FILL_CLIENTS} clients, {fill_s:.1}s ({:.0}/s)",
        filled as f64 / fill_s
    ));
    notes.extend(fill_errors.error_note().map(|n| format!("fill: {n}")));
    let t = Instant::now();
    purge_repository(ctx, &fill_repo).await?;
    notes.push(format!("trash + purge of {fill_repo} (unlinks the blobs): {:.1}s", t.elapsed().as_secs_f64()));
    if let Some(rss) = ctx.pid.and_then(peak_rss_mib) {
        notes.push(format!("server peak RSS after fill + purge: {rss:.0} MiB"));
    }
    notes.push(settle(ctx, "the purge").await);
    let cpu1 = ctx.server_cpu();

    let (url, _) = push_image(ctx, &ctx.repo).await?;
    let get = || Op::GetManifest { url: url.clone() };
    let window = || Stop::after(Duration::from_secs(ctx.seconds));
    let before = load(ctx, get(), ctx.clients, window()).await?;
    let (busy, gc_time, report) = under_gc(ctx, get()).await?;
    let cpu2 = ctx.server_cpu();
    notes.push(settle(ctx, "the collection").await);
    let after = load(ctx, get(), ctx.clients, window()).await?;
    let cpu3 = ctx.server_cpu();
    notes.push(format!(
        "quiet windows of {}s: before GC p99 {} ms at {:.0}/s, after GC p99 {} ms at {:.0}/s (pooled for the quiet p99)",
        ctx.seconds,
        cell(before.percentile_ms(99.0), 2),
        before.rate(),
        cell(after.percentile_ms(99.0), 2),
        after.rate()
    ));
    let quiet = before.pooled(after);

    let deleted = serde_json::from_str::<serde_json::Value>(&report)
        .ok()
        .and_then(|v| v.get("blobs_deleted").and_then(|d| d.as_u64()));
    notes.push(format!("GC answered after {:.2}s: {}", gc_time.as_secs_f64(), report.trim()));
    notes.push(format!(
        "manifest GET, {} clients: quiet {:.0}/s over {:.1}s ({} ok), under GC {:.0}/s over {:.1}s ({} ok)",
        ctx.clients,
        quiet.rate(),
        quiet.elapsed.as_secs_f64(),
        quiet.latencies.len(),
        busy.rate(),
        busy.elapsed.as_secs_f64(),
        busy.latencies.len()
    ));
    if let (Some(a), Some(b), Some(c)) = (cpu0, cpu1, cpu2) {
        notes.push(format!("server CPU: fill + purge {:.2}s, quiet GET before GC + GC under GET {:.2}s", b - a, c - b));
    }
    notes.extend(quiet.error_note().map(|n| format!("quiet GET: {n}")));
    notes.extend(busy.error_note().map(|n| format!("GET under GC: {n}")));

    let (q99, g99) = (quiet.percentile_ms(99.0), busy.percentile_ms(99.0));
    let ratio = q99.zip(g99).map(|(q, g)| g / q);
    let cpu = cpu0.zip(cpu3).map(|(a, b)| b - a);
    let cells = [
        ctx.clients.to_string(),
        filled.to_string(),
        cell(Some(fill_s), 1),
        cell(q99, 2),
        cell(g99, 2),
        cell(ratio, 2),
        cell(Some(gc_time.as_secs_f64()), 2),
        deleted.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        cell(cpu, 2),
        cell(ctx.pid.and_then(peak_rss_mib), 0),
        cell(quiet.percentile_ms(50.0), 2),
        cell(busy.percentile_ms(50.0), 2),
        busy.latencies.len().to_string(),
    ];
    let mut out = String::new();
    out.push_str(
        "\n| target | GET clients | blobs | fill s | quiet p99 ms | under-GC p99 ms | ratio | GC s | deleted | server CPU s | peak RSS MiB |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!("| {} | {} |\n", ctx.label, cells[..10].join(" | ")));
    for n in notes {
        out.push_str(&format!("note ({}): {n}\n", ctx.label));
    }
    out.push_str(&format!("WRITES_RESULT\t{}\tgc-get\t{}\n", ctx.label.replace('\t', " "), cells.join("\t")));
    Ok(out)
}

/// Starts a collection (`POST /api/v1/gc`) and runs `op` with `ctx.clients` clients until it
/// answers (at most `ctx.gc_max`). Returns the load's samples, how long the collection took and
/// its report (JSON).
async fn under_gc(ctx: &Ctx, op: Op) -> Res<(Samples, Duration, String)> {
    let stop = Stop::after(ctx.gc_max);
    let gc_client = ctx.client(ctx.gc_max + Duration::from_secs(60))?;
    let gc_url = ctx.url("/api/v1/gc")?;
    let flag = stop.flag.clone();
    let t = Instant::now();
    let gc = tokio::spawn(async move {
        let r = gc_client.post(gc_url).send().await;
        let elapsed = t.elapsed();
        flag.store(true, Ordering::Relaxed);
        let r = r.map_err(|e| format!("POST /api/v1/gc: {e}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            return Err(format!("POST /api/v1/gc: {status}: {}", text.chars().take(300).collect::<String>()));
        }
        Ok::<_, String>((elapsed, text))
    });
    let busy = load(ctx, op, ctx.clients, stop).await?;
    match tokio::time::timeout(Duration::from_secs(5), gc).await {
        Ok(Ok(r)) => r.map(|(elapsed, report)| (busy, elapsed, report)),
        Ok(Err(e)) => Err(format!("gc task: {e}")),
        Err(_) => Err(format!("GC did not finish within --gc-max-secs {}", ctx.gc_max.as_secs())),
    }
}

/// Waits until the server is idle after `what` (its CPU use below 10% of a core over half a
/// second, for at most `SETTLE_MAX`), so a quiet measurement does not share the cores with the
/// aftermath of the fill or the collection. Without `--pid`, waits 2 s. Returns a note.
async fn settle(ctx: &Ctx, what: &str) -> String {
    const SETTLE_MAX: Duration = Duration::from_secs(30);
    const STEP: Duration = Duration::from_millis(500);
    let t = Instant::now();
    if ctx.pid.is_none() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return format!("waited 2 s after {what} (no --pid to watch)");
    }
    while t.elapsed() < SETTLE_MAX {
        let a = ctx.server_cpu();
        tokio::time::sleep(STEP).await;
        match a.zip(ctx.server_cpu()) {
            Some((a, b)) if b - a < 0.1 * STEP.as_secs_f64() => {
                return format!("server idle {:.1}s after {what}", t.elapsed().as_secs_f64());
            }
            Some(_) => {}
            None => break,
        }
    }
    format!("server still busy {:.0}s after {what}; measured anyway", t.elapsed().as_secs_f64())
}

/// Pushes `ctx.blobs` random 4 KiB blobs into `repo` with monolithic POSTs; returns how many
/// were pushed and the failures.
async fn fill(ctx: &Ctx, repo: &str) -> Res<(usize, Samples)> {
    let uploads = ctx.url(&format!("/v2/{repo}/blobs/uploads/"))?;
    if !monolithic_supported(ctx, &uploads).await? {
        return Err("gc-get fills with monolithic POSTs; this server does not take them".to_owned());
    }
    let left = Arc::new(AtomicUsize::new(ctx.blobs));
    let stop = Stop::after(ctx.gc_max);
    let op = Arc::new(Op::Push { uploads, monolithic: true });
    let mut tasks = Vec::new();
    for i in 0..FILL_CLIENTS {
        let (op, stop, left, client) = (op.clone(), stop.clone(), left.clone(), ctx.client(REQUEST_TIMEOUT)?);
        tasks.push(tokio::spawn(async move {
            let mut rng = seed(1000 + i as u64);
            let (mut ok, mut s) = (0usize, Samples::default());
            while !stop.done() && left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
            {
                match op.once(&client, &mut rng).await {
                    Ok(()) => ok += 1,
                    Err(e) => *s.errors.entry(e).or_default() += 1,
                }
            }
            (ok, s)
        }));
    }
    let (mut ok, mut all) = (0, Samples::default());
    for t in tasks {
        let (n, s) = t.await.map_err(|e| format!("fill task: {e}"))?;
        ok += n;
        all = all.pooled(s);
    }
    Ok((ok, all))
}

/// Trashes and purges a repository over Stowage's REST API, unlinking its blobs.
async fn purge_repository(ctx: &Ctx, name: &str) -> Res<()> {
    let mut url = ctx.url("/api/v1/repositories")?;
    url.query_pairs_mut().append_pair("name", name);
    let r = ctx.setup.get(url).send().await.map_err(|e| format!("find {name}: {e}"))?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.map_err(|e| format!("find {name}: {status}: {e}"))?;
    let id = v.get("id").and_then(|i| i.as_str()).ok_or_else(|| format!("find {name}: {status}: no id in {v}"))?;
    for (path, want) in
        [(format!("/api/v1/entities/{id}"), StatusCode::OK), (format!("/api/v1/trash/{id}"), StatusCode::NO_CONTENT)]
    {
        let r = ctx.setup.delete(ctx.url(&path)?).send().await;
        drain(r, want, &format!("DELETE {path}")).await?;
    }
    Ok(())
}

/// VmHWM (peak resident set over the process's life) in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
