//! SIGINT, SIGTERM and SIGHUP stop the VM cleanly (the run returns
//! [`crate::Outcome::Interrupted`], so the terminal guard and everything else unwinds
//! normally), and a real-time signal kicks vCPU threads out of KVM_RUN.
//!
//! The stop handlers are process-wide: they are installed while at least one run is in
//! progress and the previous dispositions are restored when the last one ends. A handler
//! only bumps a generation counter and records the signal number (async-signal-safe); each
//! run polls for a generation newer than the one it started with.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The signals that stop a run.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static GENERATION: AtomicU64 = AtomicU64::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

struct Installed {
    users: usize,
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed {
    users: 0,
    saved: Vec::new(),
});

extern "C" fn on_stop_signal(num: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    LAST_SIGNAL.store(num, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn action(
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
) -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero bytes is a valid value (no
    // handler, empty flags); we fill in the fields we need below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `act.sa_mask` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    act
}

/// Installs the stop handlers for the lifetime of the guard.
pub struct StopSignals {
    start: u64,
}

impl StopSignals {
    pub fn install() -> std::io::Result<StopSignals> {
        let mut inst = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        let start = GENERATION.load(Ordering::SeqCst);
        if inst.users == 0 {
            let act = action(on_stop_signal);
            let mut saved = Vec::new();
            for sig in STOP_SIGNALS {
                // SAFETY: all-zero is a valid sigaction for the kernel to overwrite.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: `act` and `old` are valid sigaction structs; the handler only
                // performs atomic stores (async-signal-safe).
                if unsafe { libc::sigaction(sig, &act, &mut old) } != 0 {
                    let err = std::io::Error::last_os_error();
                    restore(&saved);
                    return Err(err);
                }
                saved.push((sig, old));
            }
            inst.saved = saved;
        }
        inst.users += 1;
        Ok(StopSignals { start })
    }

    /// The stop signal received since the guard was made, if any.
    pub fn received(&self) -> Option<libc::c_int> {
        (GENERATION.load(Ordering::SeqCst) != self.start)
            .then(|| LAST_SIGNAL.load(Ordering::SeqCst))
    }
}

fn restore(saved: &[(libc::c_int, libc::sigaction)]) {
    for (sig, old) in saved {
        // SAFETY: `old` is the disposition the kernel returned for `sig` earlier.
        unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let mut inst = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        inst.users = inst.users.saturating_sub(1);
        if inst.users == 0 {
            let saved = std::mem::take(&mut inst.saved);
            restore(&saved);
        }
    }
}

/// The signal that interrupts KVM_RUN (SIGRTMIN, with an empty handler installed once).
pub fn kick_signal() -> std::io::Result<libc::c_int> {
    static KICK: OnceLock<Result<libc::c_int, i32>> = OnceLock::new();
    let r = KICK.get_or_init(|| {
        let sig = vmm_sys_util::signal::SIGRTMIN();
        let act = action(on_kick);
        // SAFETY: `act` is a valid sigaction; the handler does nothing.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(sig)
    });
    r.map_err(std::io::Error::from_raw_os_error)
}
