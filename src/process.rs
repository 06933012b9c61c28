//! Process-wide settings that `stowage serve` makes once at start, before the runtime starts
//! threads: the file mode creation mask and the open-file limit. Library code never calls these:
//! they change the whole process, so the binary (or a test that wants them) decides.

/// Makes every file and directory this process creates private to its user (umask 077).
///
/// Why a process-wide umask as well as explicit modes: the engine and the key store create their
/// own files with explicit modes (0700 directories, 0600 files), but sled creates the index files
/// itself, with the default mode, and offers no way to choose it. The umask covers those, and any
/// file a future change forgets. It is process-wide and inherited by threads, so `stowage serve`
/// sets it first, before the runtime starts threads.
pub fn restrict_umask() {
    // SAFETY: umask(2) only swaps the process's file mode creation mask; it cannot fail and
    // touches no memory of ours.
    unsafe {
        libc::umask(0o077);
    }
}

/// Allocations of 4 MiB and more get their own mapping, returned to the system when freed.
/// glibc's default threshold adapts upwards after such a free, after which large blocks come
/// from the per-thread arenas and stay resident: argon2's 19 MiB per password check then piled
/// up across arenas (64 wrong passwords at once left the daemon at 111 MiB, from 12). Nothing on
/// the hot paths allocates that much at once (request pieces are at most 1 MiB, blob bodies are
/// mapped), so the fixed threshold costs only the page faults of those rare large blocks.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Raises the soft limit on open files to the hard limit (at most 1 Mi), so `max_connections` is
/// not cut short by the usual soft default of 1024. Returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct, which `lim` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < want {
        let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one rlimit struct, which `raised` is.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = want;
        }
    }
    Ok(lim.rlim_cur)
}
