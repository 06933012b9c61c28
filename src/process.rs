//! Process-wide settings that `stowage serve` makes once at start, before the runtime starts
//! threads: the open-file limit. Library code never calls these: they change the whole process,
//! so the binary (or a test that wants them) decides.

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
