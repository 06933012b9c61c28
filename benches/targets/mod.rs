//! The issue-11 targets, measured by `matrix --targets PHASE` against one registry and printed
//! as one `TARGET\t<label>\t<key>\t<value>` line per figure; `matrix --summarize FILE` turns the
//! lines of both registries (and criterion's estimate of `tag_page`) into the table of measure
//! against target. benches/targets.sh runs each phase on a fresh server of each kind and prints
//! the table. A directory module of benches/matrix.rs (its cells, clients and sampler).
//!
//! Phases:
//! * `pulls`: push `--blobs` (8) distinct blobs of `--size-mib` (1024) MiB, then `--clients` (64)
//!   concurrent pulls, one each, client `c` pulling blob `c mod blobs`: the server's peak RSS and
//!   the aggregate MB/s.
//! * `pushes`: `--clients` concurrent pushes of one distinct `--push-mb` (100) MB blob each (POST,
//!   then PUT with the body and `?digest=`): the server's peak RSS.
//! * `single`: `--runs` (3) times one push of a distinct `--size-mib` blob (MB/s, server CPU
//!   seconds per GiB) and its pull (MB/s); then `--samples` (5) times the time to the first body
//!   byte of the last blob with its page cache dropped (`posix_fadvise(DONTNEED)` on its file
//!   under `--data-dir`, the residency left checked with `mincore`); then manifest GET by tag at
//!   `--clients` connections for `--cell-seconds` (10) while 4 clients push 10 MB blobs.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use super::*;

fn emit(a: &Args, key: &str, v: impl Display) {
    println!("TARGET\t{}\t{key}\t{v}", a.label);
}

/// Runs one phase against `reg` and prints its `TARGET` lines.
pub async fn run_phase(a: &Args, reg: &Reg, phase: &str) -> Res<()> {
    let size = a.size_mib.unwrap_or(1024) * MIB;
    let clients = a.clients.unwrap_or(64).max(1);
    let mut s = seed(11);
    emit(a, "size_mib", size / MIB);
    emit(a, "clients", clients);
    match phase {
        "pulls" => {
            let k = a.blobs.unwrap_or(8).max(1);
            emit(a, "blobs", k);
            let blobs = Blobs::new(size, &mut s);
            let mut digests = Vec::new();
            for i in 0..k {
                eprintln!("targets: {} pushing blob {} of {k}", a.label, i + 1);
                digests.push(reg.push_mono(&blobs).await?);
            }
            let (r, d) = (reg.clone(), Arc::new(digests));
            let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |c, _| {
                let (r, d) = (r.clone(), d.clone());
                Box::pin(async move { r.pull(&d[c % d.len()], size).await })
            });
            let c = run_cell(format!("pull x{clients} of {k} blobs"), a.pid, clients, 0.0, op).await;
            checked(&c)?;
            emit(a, "pulls_rss_mib", cell(c.peak_rss_mib, 0));
            emit(a, "rss_from_hwm", c.rss_from_hwm);
            emit(a, "pulls_mbps", format!("{:.1}", c.bytes as f64 / c.secs / 1e6));
        }
        "pushes" => {
            let mb = a.push_mb.unwrap_or(100);
            emit(a, "push_mb", mb);
            let blobs = Arc::new(Blobs::new(mb * MB, &mut s));
            let (r, b) = (reg.clone(), blobs.clone());
            let op: Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync> = Arc::new(move |_, _| {
                let (r, b) = (r.clone(), b.clone());
                Box::pin(async move { r.push_mono(&b).await.map(|_| b.size() as u64) })
            });
            let c = run_cell(format!("push x{clients} of {mb} MB"), a.pid, clients, 0.0, op).await;
            checked(&c)?;
            emit(a, "pushes_rss_mib", cell(c.peak_rss_mib, 0));
            emit(a, "rss_from_hwm", c.rss_from_hwm);
            emit(a, "pushes_mbps", format!("{:.1}", c.bytes as f64 / c.secs / 1e6));
        }
        "single" => single(a, reg, size, clients, &mut s).await?,
        other => return Err(format!("--targets {other}: not a phase (pulls, pushes, single)")),
    }
    Ok(())
}

fn checked(c: &Cell) -> Res<()> {
    match &c.first_error {
        Some(e) => Err(format!("{}: {} errors, first: {e}", c.name, c.errors)),
        None => Ok(()),
    }
}

async fn single(a: &Args, reg: &Reg, size: usize, clients: usize, s: &mut u64) -> Res<()> {
    let blobs = Blobs::new(size, s);
    let gib = size as f64 / (1u64 << 30) as f64;
    let mut last = String::new();
    for run in 1..=a.runs.unwrap_or(3).max(1) {
        let cpu0 = a.pid.map(read_cpu_seconds).transpose()?;
        let t = Instant::now();
        let digest = reg.push_mono(&blobs).await?;
        let push = t.elapsed().as_secs_f64();
        if let (Some(pid), Some(c0)) = (a.pid, cpu0) {
            emit(a, "push_cpu_s_per_gib", format!("{:.2}", (read_cpu_seconds(pid)? - c0) / gib));
        }
        emit(a, "push_mbps", format!("{:.1}", size as f64 / push / 1e6));
        let t = Instant::now();
        reg.pull(&digest, size).await?;
        emit(a, "pull_mbps", format!("{:.1}", size as f64 / t.elapsed().as_secs_f64() / 1e6));
        eprintln!("targets: {} run {run}: push {push:.2}s, pull {:.2}s", a.label, t.elapsed().as_secs_f64());
        last = digest;
    }

    match &a.data_dir {
        Some(dir) => {
            let hex = last.strip_prefix("sha256:").unwrap_or(&last);
            let files = blob_files(Path::new(dir), hex, size as u64)?;
            let url = reg.url(&format!("blobs/{last}"))?;
            for _ in 0..a.samples.unwrap_or(5).max(1) {
                // Let the server finish whatever it reads ahead for the previous hung-up pull.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut resident = 0.0f64;
                for f in &files {
                    resident = resident.max(drop_page_cache(f)?);
                }
                let t = Instant::now();
                let r = reg.req(reqwest::Method::GET, url.clone()).send().await;
                let mut r = Reg::expect(r, StatusCode::OK, "GET blob").await?;
                let first = r.chunk().await.map_err(|e| format!("GET blob body: {e}"))?;
                let ttfb = t.elapsed().as_secs_f64() * 1e3;
                if first.is_none_or(|c| c.is_empty()) {
                    return Err("GET blob: no body".into());
                }
                drop(r); // hang up
                emit(a, "ttfb_ms", format!("{ttfb:.2}"));
                emit(a, "ttfb_resident_pct", format!("{:.1}", resident * 100.0));
            }
        }
        None => eprintln!("targets: {}: no --data-dir, cold time to first byte not measured", a.label),
    }

    reg.tag_image(&last, size).await?;
    let ten = Arc::new(Blobs::new(10 * MB, s));
    let secs = a.cell_seconds.unwrap_or(10) as f64;
    let c = under_push(reg, a.pid, UnderPush::ManifestGet, clients, secs, ten, &last).await;
    checked(&c)?;
    emit(a, "manifest_rps", format!("{:.1}", c.ops as f64 / c.secs));
    emit(a, "manifest_p99_ms", cell(c.pct(0.99), 2));
    Ok(())
}

/// The regular files of `size` bytes under `dir` whose path names `hex`: the stored blob (one
/// for each server's layout). Walks at most 100,000 entries.
fn blob_files(dir: &Path, hex: &str, size: u64) -> Res<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", d.display()))?;
            seen += 1;
            if seen > 100_000 {
                return Err(format!("{}: more than 100,000 entries", dir.display()));
            }
            let (p, ft) = (e.path(), e.file_type().map_err(|e| e.to_string())?);
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && p.to_string_lossy().contains(hex)
                && e.metadata().map(|m| m.len()).unwrap_or(0) == size
            {
                out.push(p);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no file of {size} bytes named by {hex} under {}", dir.display()));
    }
    Ok(out)
}

/// Drops the page cache of `path` with `posix_fadvise(DONTNEED)` (its pages are clean: the
/// server synced it) and returns the fraction of its pages still resident, from `mincore`.
fn drop_page_cache(path: &Path) -> Res<f64> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
    // SAFETY: a valid open descriptor; advice only.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(format!("posix_fadvise {}: error {rc}", path.display()));
    }
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: a read-only shared mapping of an open file of `len` bytes, unmapped below; mincore
    // writes one byte per page into a vector of that many bytes. Nothing reads the mapping.
    unsafe {
        let map = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
        if map == libc::MAP_FAILED {
            return Err(format!("mmap {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, vec.as_mut_ptr());
        libc::munmap(map, len);
        if rc != 0 {
            return Err(format!("mincore {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        Ok(vec.iter().filter(|b| **b & 1 == 1).count() as f64 / vec.len() as f64)
    }
}

/// The values of `key` for `label`, in the order measured.
type Figures = BTreeMap<(String, String), Vec<String>>;

fn nums(f: &Figures, label: &str, key: &str) -> Vec<f64> {
    f.get(&(label.to_owned(), key.to_owned()))
        .map(|v| v.iter().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

fn first(f: &Figures, label: &str, key: &str) -> Option<String> {
    f.get(&(label.to_owned(), key.to_owned())).and_then(|v| v.first().cloned())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn list(v: &[f64], prec: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(|x| format!("{x:.prec$}")).collect::<Vec<_>>().join(", ")
}

/// A cell with its unit, or `-`.
fn unit(v: Option<f64>, prec: usize, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}{unit}"))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

/// Prints the table of measure against target from the `TARGET` lines in `path` (both
/// registries, labels `stowage` and `docker-registry`) and criterion's `estimates.json` of
/// `tag_page` (median, nanoseconds).
pub fn summarize(path: &str, criterion_json: Option<&str>) -> Res<()> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut f = Figures::new();
    for l in text.lines() {
        let mut p = l.split('\t');
        if let (Some("TARGET"), Some(label), Some(key), Some(v)) = (p.next(), p.next(), p.next(), p.next()) {
            f.entry((label.to_owned(), key.to_owned())).or_default().push(v.to_owned());
        }
    }
    let (st, dr) = ("stowage", "docker-registry");
    let param = |key: &str, default: &str| first(&f, st, key).unwrap_or_else(|| default.to_owned());
    let (size, clients, blobs, push_mb) =
        (param("size_mib", "?"), param("clients", "?"), param("blobs", "?"), param("push_mb", "?"));
    let size = if size == "1024" { "1 GiB".to_owned() } else { format!("{size} MiB") };
    let ratio = |s: Option<f64>, d: Option<f64>| match (s, d) {
        (Some(s), Some(d)) if d > 0.0 => Some(s / d),
        _ => None,
    };
    let x = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
    let one = |label: &str, key: &str| nums(&f, label, key).first().copied();
    let mut rows: Vec<[String; 6]> = Vec::new();

    for (measure, key, limit) in [
        (
            format!("peak RSS during {clients} concurrent pulls of {blobs} distinct {size} blobs"),
            "pulls_rss_mib",
            128.0,
        ),
        (format!("peak RSS during {clients} concurrent {push_mb} MB pushes"), "pushes_rss_mib", 256.0),
    ] {
        let (s, d) = (one(st, key), one(dr, key));
        rows.push([
            measure,
            format!("<= {limit} MiB"),
            unit(s, 0, " MiB"),
            unit(d, 0, " MiB"),
            x(ratio(s, d)),
            verdict(s.map(|s| s <= limit)).into(),
        ]);
    }

    let (ts, td) = (nums(&f, st, "ttfb_ms"), nums(&f, dr, "ttfb_ms"));
    let (ms, md) = (median(ts.clone()), median(td.clone()));
    rows.push([
        format!("time to first byte of a cold {size} blob (page cache dropped), median of {}", ts.len()),
        "<= 20 ms".into(),
        format!("{} ({})", unit(ms, 2, " ms"), list(&ts, 1)),
        format!("{} ({})", unit(md, 2, " ms"), list(&td, 1)),
        x(ratio(ms, md)),
        verdict(ms.map(|m| m <= 20.0)).into(),
    ]);

    let (cs, cd) = (nums(&f, st, "push_cpu_s_per_gib"), nums(&f, dr, "push_cpu_s_per_gib"));
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    rows.push([
        format!("CPU seconds per GiB pushed (single {size} push, digest checked, fsynced), each run"),
        "<= 1.2 in every run".into(),
        format!("{} (max {})", list(&cs, 2), cell(max(&cs), 2)),
        format!("{} (max {})", list(&cd, 2), cell(max(&cd), 2)),
        x(ratio(max(&cs), max(&cd))),
        verdict(max(&cs).map(|m| m <= 1.2)).into(),
    ]);

    for (measure, key, want) in [
        (format!("push {size}, MB/s each run"), "push_mbps", 2.5),
        (format!("pull {size}, MB/s each run"), "pull_mbps", 1.5),
    ] {
        let (s, d) = (nums(&f, st, key), nums(&f, dr, key));
        let per_run: Vec<f64> = s.iter().zip(&d).filter(|(_, d)| **d > 0.0).map(|(s, d)| s / d).collect();
        let min = per_run.iter().copied().reduce(f64::min);
        rows.push([
            measure,
            format!(">= {want}x Distribution in every run"),
            list(&s, 1),
            list(&d, 1),
            if per_run.is_empty() { "-".into() } else { format!("{} (min {})", list(&per_run, 2), x(min)) },
            verdict(min.map(|m| m >= want)).into(),
        ]);
    }

    for (measure, key, want) in [
        (format!("{clients} concurrent pulls of {size} blobs, aggregate MB/s"), "pulls_mbps", 1.5),
        (format!("manifest GET by tag, {clients} connections, while 4 clients push, req/s"), "manifest_rps", 15.0),
    ] {
        let (s, d) = (one(st, key), one(dr, key));
        let r = ratio(s, d);
        rows.push([
            measure,
            format!(">= {want}x Distribution"),
            cell(s, 1),
            cell(d, 1),
            x(r),
            verdict(r.map(|r| r >= want)).into(),
        ]);
    }

    let tag_ms = criterion_json.and_then(|p| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
        v["median"]["point_estimate"].as_f64().map(|ns| ns / 1e6)
    });
    rows.push([
        "tag list page of 100 from a repository of 1,000,000 tags (engine, criterion median)".into(),
        "<= 1 ms median".into(),
        unit(tag_ms, 4, " ms"),
        "-".into(),
        "-".into(),
        verdict(tag_ms.map(|m| m <= 1.0)).into(),
    ]);

    println!("| measure | target | Stowage | Distribution | ratio | met? |");
    println!("|---|---|---:|---:|---:|---|");
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
    let hwm = first(&f, st, "rss_from_hwm").as_deref() == Some("true");
    let resident =
        nums(&f, st, "ttfb_resident_pct").into_iter().chain(nums(&f, dr, "ttfb_resident_pct")).reduce(f64::max);
    println!();
    println!(
        "Peak RSS: {}. Cold first byte: the blob file's pages dropped with posix_fadvise(DONTNEED) before each GET \
         (at most {}% of its pages were still resident, by mincore); the time runs from sending the GET to the \
         first body bytes, then the client hangs up. Ratios are Stowage / Distribution.",
        if hwm {
            "the kernel's VmHWM after resetting it (clear_refs 5) at the start of the cell"
        } else {
            "VmRSS sampled every 20 ms"
        },
        cell(resident, 1)
    );
    Ok(())
}
