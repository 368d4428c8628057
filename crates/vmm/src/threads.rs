//! Ending the VM's threads without letting one that is stuck hold the run open.
//!
//! A vCPU can sit in KVM_RUN until a signal reaches it, and a device thread can block on
//! its host side (a socket whose peer stopped reading): the run has ended by then (a
//! timeout, a stop signal, the guest's power-off) and must not wait forever for them.
//! A thread still running after the grace period is left behind, detached: it holds its
//! own references (`Arc`) to what it uses, so nothing is freed under it, and the process
//! exit ends it.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Waits up to `grace` for every thread to finish, calling `nudge` on each one still
/// running every 2 ms (a vCPU needs a signal to leave KVM_RUN, and one sent just before
/// it entered KVM_RUN is lost), then joins those that finished. Returns the names of the
/// threads left behind.
pub fn join_within(
    handles: Vec<JoinHandle<()>>,
    grace: Duration,
    mut nudge: impl FnMut(&JoinHandle<()>),
) -> Vec<String> {
    let give_up = Instant::now() + grace;
    loop {
        let mut running = false;
        for h in handles.iter().filter(|h| !h.is_finished()) {
            running = true;
            nudge(h);
        }
        if !running || Instant::now() >= give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut left = Vec::new();
    for h in handles {
        if h.is_finished() {
            let _ = h.join();
        } else {
            left.push(h.thread().name().unwrap_or("unnamed").to_owned());
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_stuck_thread_is_left_behind_and_named() {
        let (_keep, stuck_rx) = mpsc::channel::<()>();
        let stuck = std::thread::Builder::new()
            .name("virtio0".into())
            .spawn(move || {
                let _ = stuck_rx.recv();
            })
            .unwrap();
        let quick = std::thread::Builder::new()
            .name("virtio1".into())
            .spawn(|| {})
            .unwrap();
        let started = Instant::now();
        let left = join_within(vec![stuck, quick], Duration::from_millis(100), |_| {});
        assert_eq!(left, ["virtio0"]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn nudged_threads_are_joined() {
        let (tx, rx) = mpsc::channel::<()>();
        let waiting = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let mut tx = Some(tx);
        // The nudge is what lets the thread end (as the kick signal does for a vCPU).
        let left = join_within(vec![waiting], Duration::from_secs(30), |_| {
            drop(tx.take());
        });
        assert!(left.is_empty());
    }
}
