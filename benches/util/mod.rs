//! Helpers shared by the load benchmarks (`load.rs`, `writes.rs`, `matrix.rs`): command-line
//! flags, test data, digests, Basic credentials, the server's CPU time from /proc and table cells.
//! A directory module, so cargo does not take it for a bench target of its own. It never talks to
//! a server.

use base64::Engine as _;

/// Errors of a bench run: a message for the operator.
pub type Res<T> = Result<T, String>;

/// A seed for [`xorshift_fill`]: the clock, the process id and `salt`, never zero.
pub fn seed(salt: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    (nanos ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u64::from(std::process::id()) << 32)) | 1
}

/// `len` bytes of an xorshift64* stream from state `s`: incompressible enough, ~GB/s, and every
/// call continues the stream, so blobs made one after another are distinct.
pub fn xorshift_fill(s: &mut u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for chunk in v.chunks_mut(8) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let x = s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    v
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    stowage_engine::Digest::of(stowage_engine::Algorithm::Sha256, data).to_string()
}

/// The value of an `Authorization: Basic` header for `user:password`.
pub fn basic(user_password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password))
}

/// utime + stime of a process, in seconds.
pub fn read_cpu_seconds(pid: u32) -> Res<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("--pid {pid}: /proc/{pid}/stat: {e}"))?;
    // comm (field 2) may contain spaces: split after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let get = |i: usize| -> Res<f64> {
        fields.get(i).and_then(|s| s.parse::<f64>().ok()).ok_or_else(|| format!("/proc/{pid}/stat: missing field"))
    };
    let ticks = get(14 - 3)? + get(15 - 3)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ticks / hz)
}

/// A table cell: the value with `prec` decimals, or `-` when not measured.
pub fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

/// A bench's command-line flags: `--name value`, `--name=value` and bare switches. Names the bench
/// does not declare are skipped, value and all when given as `--name=value`: cargo and libtest add
/// their own (`--bench`, `--test-threads=2`, filters), and a bench must not fail on them.
pub struct Flags(Vec<(&'static str, Option<String>)>);

impl Flags {
    /// Reads the process arguments: each of `switches` is a flag alone, each of `valued` takes
    /// the next argument (or what follows `=`) as its value.
    pub fn parse(switches: &[&'static str], valued: &[&'static str]) -> Res<Flags> {
        let mut out = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(raw) = it.next() {
            let (key, inline) = match raw.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
                _ => (raw, None),
            };
            if let Some(&name) = switches.iter().find(|s| **s == key) {
                out.push((name, None));
            } else if let Some(&name) = valued.iter().find(|s| **s == key) {
                let v = inline.or_else(|| it.next()).ok_or_else(|| format!("{name} needs a value"))?;
                out.push((name, Some(v)));
            }
        }
        Ok(Flags(out))
    }

    /// Whether switch `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == name)
    }

    /// The last value given for `name`.
    pub fn str(&self, name: &str) -> Option<String> {
        self.0.iter().rev().find(|(k, _)| *k == name).and_then(|(_, v)| v.clone())
    }

    /// The last value given for `name`, parsed.
    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Res<Option<T>> {
        self.str(name).map(|s| s.parse().map_err(|_| format!("{name}: not a number: {s}"))).transpose()
    }
}
