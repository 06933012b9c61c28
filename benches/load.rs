//! Load benchmark against any OCI distribution registry (no auth, or HTTP Basic).
//!
//! ```text
//! cargo bench --bench load -- [--quick] --url http://127.0.0.1:PORT [--label NAME]
//!     [--size-mib N] [--pid SERVER_PID] [--repo NAME] [--seconds N] [--concurrency N]
//!     [--hey PATH] [--timeout-secs N] [--user USER:PASSWORD]
//! cargo bench --bench load -- --get-only --url http://127.0.0.1:PORT/any/path [--label NAME]
//! ```
//!
//! Without `--url` it measures nothing, prints a note and exits 0 (so that
//! `cargo test --all-targets` and `cargo bench` stay harmless).
//!
//! Measures:
//! * push of one blob of `--size-mib` MiB of pseudo-random data (default 1024,
//!   256 with `--quick`): `POST /v2/<repo>/blobs/uploads/`, one streamed
//!   `PATCH` with the whole body, `PUT ?digest=` (digest computed beforehand);
//! * pull of that blob (`GET`, streamed and discarded, length verified);
//! * after pushing a tiny config + OCI manifest (tag `load`) referencing the
//!   blob: manifest `GET` by tag and blob `HEAD`, each with `hey` at
//!   `--concurrency` (64) connections for `--seconds` (quick 3 s, full 10 s);
//! * with `--pid`: server CPU seconds (utime+stime from /proc/PID/stat) per
//!   GiB pushed.
//!
//! `--user` sends HTTP Basic credentials on every request (reqwest and hey);
//! `--repo` (default `stowage-load/bench`) must then name a repository the
//! user may push to (for Stowage: `<project id>/<name>`, see
//! benches/compare.sh, which bootstraps an admin and a project).
//!
//! `--get-only` skips everything but the `hey` GET, against `--url` verbatim
//! (used for the hyper "ceiling" reference server in benches/ceiling.rs).
//!
//! A hey run with >= 1% non-2xx answers is reported as `-` plus a note.
//! MB/s are 10^6 bytes per second. Output: a markdown table plus one
//! machine-readable line starting with `LOAD_RESULT\t` (tab separated:
//! label push pull get_rps get_p99 head_rps head_p99 cpu; `-` = not measured).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, Url};

const MIB: usize = 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const TAG: &str = "load";

mod util;

use util::{basic, cell, read_cpu_seconds, seed, sha256_digest, xorshift_fill, Flags, Res};

struct Args {
    url: Option<String>,
    label: Option<String>,
    quick: bool,
    size_mib: Option<usize>,
    pid: Option<u32>,
    repo: String,
    seconds: Option<u64>,
    concurrency: u32,
    get_only: bool,
    hey: String,
    timeout_secs: u64,
    user: Option<String>,
}

fn parse_args() -> Res<Args> {
    let f = Flags::parse(
        &["--quick", "--get-only"],
        &[
            "--url",
            "--label",
            "--size-mib",
            "--pid",
            "--repo",
            "--seconds",
            "--concurrency",
            "--hey",
            "--user",
            "--timeout-secs",
        ],
    )?;
    Ok(Args {
        url: f.str("--url"),
        label: f.str("--label"),
        quick: f.has("--quick"),
        size_mib: f.num("--size-mib")?,
        pid: f.num("--pid")?,
        repo: f.str("--repo").unwrap_or_else(|| "stowage-load/bench".to_owned()),
        seconds: f.num("--seconds")?,
        concurrency: f.num("--concurrency")?.unwrap_or(64),
        get_only: f.has("--get-only"),
        hey: f.str("--hey").unwrap_or_else(|| "hey".to_owned()),
        timeout_secs: f.num("--timeout-secs")?.unwrap_or(900),
        user: f.str("--user"),
    })
}

#[derive(Default)]
struct Row {
    label: String,
    push_mbps: Option<f64>,
    pull_mbps: Option<f64>,
    get: Option<HeyResult>,
    head: Option<HeyResult>,
    cpu_s_per_gib: Option<f64>,
    notes: Vec<String>,
}

struct HeyResult {
    rps: f64,
    p99_ms: Option<f64>,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let Some(url) = args.url.clone() else {
        println!(
            "load: no --url given, nothing measured. Usage: cargo bench --bench load -- \
             [--quick] --url http://127.0.0.1:PORT [--label NAME] [--size-mib N] [--pid PID]"
        );
        return;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let budget = Duration::from_secs(args.timeout_secs);
    let result = rt.block_on(async {
        match tokio::time::timeout(budget, run(&args, &url, started, budget)).await {
            Ok(r) => r,
            Err(_) => Err(format!("overall timeout of {}s exceeded", args.timeout_secs)),
        }
    });
    match result {
        Ok(row) => print_row(&row),
        Err(e) => {
            eprintln!("load: FAILED against {url}: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args, url: &str, started: Instant, budget: Duration) -> Res<Row> {
    let seconds = args.seconds.unwrap_or(if args.quick { 3 } else { 10 });
    let base = Url::parse(url).map_err(|e| format!("bad --url {url}: {e}"))?;
    let mut row = Row {
        label: args.label.clone().unwrap_or_else(|| {
            format!("{}:{}", base.host_str().unwrap_or("?"), base.port_or_known_default().unwrap_or(0))
        }),
        ..Row::default()
    };

    if args.get_only {
        let remaining = budget.saturating_sub(started.elapsed());
        row.get = hey(args, "GET", base.as_str(), None, seconds, remaining, &mut row.notes);
        return Ok(row);
    }

    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(user) = &args.user {
        let mut v = reqwest::header::HeaderValue::from_str(&basic(user)).map_err(|e| format!("--user: {e}"))?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let client = Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(args.timeout_secs))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .build()
        .map_err(|e| format!("http client: {e}"))?;

    // Sanity check: the registry answers /v2/.
    let r = client.get(join(&base, "/v2/")?).send().await.map_err(|e| format!("GET /v2/: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("GET /v2/ answered {} (wrong or missing --user?)", r.status()));
    }

    // (a) push
    let size_mib = args.size_mib.unwrap_or(if args.quick { 256 } else { 1024 });
    let size = size_mib * MIB;
    let t = Instant::now();
    let data = Bytes::from(xorshift_fill(&mut seed(0), size));
    let digest = sha256_digest(&data);
    eprintln!("load: generated {size_mib} MiB + sha256 in {:.2}s ({digest})", t.elapsed().as_secs_f64());
    let cpu_before = args.pid.map(read_cpu_seconds).transpose()?;
    let push_time = push_blob(&client, &base, &args.repo, data, &digest).await?;
    if let (Some(pid), Some(before)) = (args.pid, cpu_before) {
        let after = read_cpu_seconds(pid)?;
        row.cpu_s_per_gib = Some((after - before) / (size as f64 / (1024.0 * MIB as f64)));
    }
    row.push_mbps = Some(size as f64 / 1e6 / push_time.as_secs_f64());
    eprintln!("load: push {size_mib} MiB in {:.2}s", push_time.as_secs_f64());

    // (b) pull
    let pull_time = pull_blob(&client, &base, &args.repo, &digest, size).await?;
    row.pull_mbps = Some(size as f64 / 1e6 / pull_time.as_secs_f64());
    eprintln!("load: pull {size_mib} MiB in {:.2}s", pull_time.as_secs_f64());

    // (c) tiny config + manifest, then hey.
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
    );
    let config_digest = sha256_digest(&config);
    let config_len = config.len();
    push_blob(&client, &base, &args.repo, config, &config_digest).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config_len },
        "layers": [ { "mediaType": OCI_LAYER, "digest": digest, "size": size } ],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let murl = join(&base, &format!("/v2/{}/manifests/{TAG}", args.repo))?;
    let r = client
        .put(murl.clone())
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .map_err(|e| format!("PUT manifest: {e}"))?;
    expect(r, &[StatusCode::CREATED], "PUT manifest").await?;
    let r =
        client.get(murl.clone()).header(ACCEPT, OCI_MANIFEST).send().await.map_err(|e| format!("GET manifest: {e}"))?;
    expect(r, &[StatusCode::OK], "GET manifest").await?;

    let remaining = budget.saturating_sub(started.elapsed());
    row.get = hey(args, "GET", murl.as_str(), Some(OCI_MANIFEST), seconds, remaining, &mut row.notes);
    let burl = join(&base, &format!("/v2/{}/blobs/{digest}", args.repo))?;
    let remaining = budget.saturating_sub(started.elapsed());
    row.head = hey(args, "HEAD", burl.as_str(), None, seconds, remaining, &mut row.notes);
    Ok(row)
}

fn join(base: &Url, path: &str) -> Res<Url> {
    base.join(path).map_err(|e| format!("bad url {base} + {path}: {e}"))
}

async fn expect(r: reqwest::Response, ok: &[StatusCode], what: &str) -> Res<reqwest::Response> {
    if ok.contains(&r.status()) {
        return Ok(r);
    }
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    Err(format!("{what}: unexpected status {status}: {body}"))
}

fn location(r: &reqwest::Response, base: &Url, what: &str) -> Res<Url> {
    let loc = r
        .headers()
        .get(LOCATION)
        .ok_or_else(|| format!("{what}: no Location header"))?
        .to_str()
        .map_err(|e| format!("{what}: bad Location: {e}"))?;
    // Absolute or relative, Url::join handles both.
    join(base, loc)
}

async fn push_blob(client: &Client, base: &Url, repo: &str, data: Bytes, digest: &str) -> Res<Duration> {
    let len = data.len();
    let t = Instant::now();
    let r = client
        .post(join(base, &format!("/v2/{repo}/blobs/uploads/"))?)
        .header(CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(|e| format!("POST upload: {e}"))?;
    let r = expect(r, &[StatusCode::ACCEPTED], "POST upload").await?;
    let loc = location(&r, base, "POST upload")?;
    let r = client
        .patch(loc)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, len)
        .body(data)
        .send()
        .await
        .map_err(|e| format!("PATCH upload: {e}"))?;
    let r = expect(r, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT], "PATCH upload").await?;
    let mut put = location(&r, base, "PATCH upload")?;
    put.query_pairs_mut().append_pair("digest", digest);
    let r = client.put(put).header(CONTENT_LENGTH, 0).send().await.map_err(|e| format!("PUT upload: {e}"))?;
    expect(r, &[StatusCode::CREATED], "PUT upload").await?;
    Ok(t.elapsed())
}

async fn pull_blob(client: &Client, base: &Url, repo: &str, digest: &str, size: usize) -> Res<Duration> {
    let t = Instant::now();
    let r = client
        .get(join(base, &format!("/v2/{repo}/blobs/{digest}"))?)
        .send()
        .await
        .map_err(|e| format!("GET blob: {e}"))?;
    let mut r = expect(r, &[StatusCode::OK], "GET blob").await?;
    let mut n = 0usize;
    while let Some(chunk) = r.chunk().await.map_err(|e| format!("GET blob body: {e}"))? {
        n += chunk.len();
    }
    let elapsed = t.elapsed();
    if n != size {
        return Err(format!("GET blob: got {n} bytes, expected {size}"));
    }
    Ok(elapsed)
}

/// Runs `hey` for `seconds` and parses requests/s and p99. Never fails the
/// whole run: problems become notes and an empty cell.
fn hey(
    args: &Args,
    method: &str,
    url: &str,
    accept: Option<&str>,
    seconds: u64,
    remaining: Duration,
    notes: &mut Vec<String>,
) -> Option<HeyResult> {
    if remaining < Duration::from_secs(seconds + 5) {
        notes.push(format!("{method}: skipped, not enough time budget left"));
        return None;
    }
    let mut cmd = Command::new(&args.hey);
    cmd.arg("-z").arg(format!("{seconds}s")).arg("-c").arg(args.concurrency.to_string()).arg("-m").arg(method);
    if let Some(a) = accept {
        cmd.arg("-H").arg(format!("Accept: {a}"));
    }
    if let Some(user) = &args.user {
        // Not `hey -a`: Debian's hey 0.1.4 does not send it in -z mode.
        cmd.arg("-H").arg(format!("Authorization: {}", basic(user)));
    }
    cmd.arg(url).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!("{method}: cannot run `{}`: {e} (apt-get install hey)", args.hey));
            return None;
        }
    };
    // hey only prints its summary at the end (a few KiB): no pipe deadlock.
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                notes.push(format!("{method}: hey did not finish in time, killed"));
                return None;
            }
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => {
            notes.push(format!("{method}: hey: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = parse_hey(&text);
    let (ok, bad) = status_counts(&text);
    if bad > 0 || text.contains("Error distribution:") {
        notes.push(format!(
            "{method} {url}: {bad} non-2xx responses (of {}); errors: {}",
            ok + bad,
            text.split("Error distribution:").nth(1).map(|s| s.trim()).unwrap_or("none")
        ));
    }
    if bad > 0 && bad * 100 >= ok + bad {
        // Mostly errors: the rate would measure the error path, not the API.
        notes.push(format!("{method}: result discarded (>= 1% non-2xx)"));
        return None;
    }
    if parsed.is_none() {
        notes.push(format!(
            "{method}: could not parse hey output: {} {}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parsed
}

fn parse_hey(text: &str) -> Option<HeyResult> {
    let mut rps = None;
    let mut p99 = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("99% in ") {
            p99 = v.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()).map(|s| s * 1000.0);
        }
    }
    rps.map(|rps| HeyResult { rps, p99_ms: p99 })
}

/// (2xx responses, other responses) from hey's "Status code distribution".
fn status_counts(text: &str) -> (u64, u64) {
    let (mut ok, mut bad) = (0, 0);
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix('[') else { continue };
        let Some((code, tail)) = rest.split_once(']') else { continue };
        let (Ok(code), Some(Ok(n))) = (code.parse::<u16>(), tail.split_whitespace().next().map(str::parse::<u64>))
        else {
            continue;
        };
        if (200..300).contains(&code) {
            ok += n;
        } else {
            bad += n;
        }
    }
    (ok, bad)
}

fn print_row(row: &Row) {
    let get_rps = row.get.as_ref().map(|h| h.rps);
    let get_p99 = row.get.as_ref().and_then(|h| h.p99_ms);
    let head_rps = row.head.as_ref().map(|h| h.rps);
    let head_p99 = row.head.as_ref().and_then(|h| h.p99_ms);
    let cells = [
        cell(row.push_mbps, 1),
        cell(row.pull_mbps, 1),
        cell(get_rps, 0),
        cell(get_p99, 2),
        cell(head_rps, 0),
        cell(head_p99, 2),
        cell(row.cpu_s_per_gib, 2),
    ];
    println!();
    println!("| target | push MB/s | pull MB/s | manifest GET req/s | p99 ms | HEAD blob req/s | p99 ms | CPU s/GiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("| {} | {} |", row.label, cells.join(" | "));
    for n in &row.notes {
        println!("note ({}): {n}", row.label);
    }
    println!("LOAD_RESULT\t{}\t{}", row.label.replace('\t', " "), cells.join("\t"));
}
