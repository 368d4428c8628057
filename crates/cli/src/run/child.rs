//! The processes a run starts (QEMU, virtiofsd) end with domboot, even when domboot is
//! killed with SIGKILL and cannot stop them itself: a test harness's `kill()`, the OOM
//! killer or `kill -9` left QEMU running a guest nobody watched.

use std::path::Path;
use std::process::{Command, ExitStatus};

/// Has the kernel send SIGKILL to the child `cmd` starts when the thread that starts it
/// exits (PR_SET_PDEATHSIG). Call it from a thread that lives as long as the child should:
/// the run's own thread.
pub fn dies_with_domboot(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no failure mode and touches no memory of ours.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl and
    // getppid, both async-signal-safe, with integer arguments; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // domboot died between fork and prctl: nobody would deliver the signal.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("domboot exited while starting it"));
            }
            Ok(())
        });
    }
}

/// How a helper process ended, for a message: "exited with status N", "was killed by
/// signal N".
pub fn how_it_ended(status: ExitStatus) -> String {
    match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// The last lines of a helper's log, as the end of an error message (": a; b"), or
/// nothing when the log is empty.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(5)
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    format!(": {}", tail.join("; "))
}
