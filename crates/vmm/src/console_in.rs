//! Console input: standard input fed to COM1's receive FIFO.

use crate::Outcome;
use crate::device_manager::DeviceManager;
use crate::devices::serial;
use crate::vcpu_thread::VmEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How long COM1's receive interrupt must stay enabled before piped input flows.
const RECEIVER_SETTLED: Duration = Duration::from_millis(100);

/// Holds piped input until the guest enables COM1's receive interrupt, which Linux does
/// when a program opens the console, at the end of the 8250 driver's start-up. Bytes put
/// in the FIFO before that are lost: the driver's probe and start-up read and discard
/// the receive register ("hello" piped in arrived as "lo"). A person at a terminal types
/// after the guest asks, so terminal input is not held (and a polling guest that never
/// enables the interrupt still gets its keystrokes). Returns false when the VM stopped.
///
/// The interrupt must stay enabled for [`RECEIVER_SETTLED`]: the driver's probe
/// (`autoconfig`) briefly writes 0x0F to IER to test it, and a vCPU preempted inside that
/// window (on a loaded host) made the probe look like the start-up and ate the first
/// bytes again ("hello-from-the-host" arrived as "lo-from-the-host" on the nested bench).
fn wait_for_receiver(devices: &DeviceManager, stop: &AtomicBool) -> bool {
    const IER_RDA: u8 = 1;
    let mut since: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let enabled = devices
            .serial
            .uart
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state()
            .interrupt_enable
            & IER_RDA
            != 0;
        if !enabled {
            since = None;
        } else if since.get_or_insert_with(Instant::now).elapsed() >= RECEIVER_SETTLED {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Feeds standard input to COM1 until stopped or EOF; Ctrl-A x stops the VM when the
/// console is a raw terminal.
pub fn forward(devices: &DeviceManager, stop: &AtomicBool, tx: &Sender<VmEvent>, raw: bool) {
    let mut filter = serial::EscapeFilter::default();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd and we pass a count of 1.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n <= 0 {
            continue;
        }
        // SAFETY: `buf` is valid for writes of its length.
        let got = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            // EOF or error: nothing more to read; the guest keeps running.
            return;
        }
        let input = &buf[..got as usize];
        if let Some(console) = &devices.console_input {
            // The virtio console keeps what it is given in its queue until hvc0 is open.
            let (bytes, quit) = if raw {
                filter.feed(input)
            } else {
                (input.to_vec(), false)
            };
            console.push(&bytes);
            if quit {
                let _ = tx.send(VmEvent::Stop(Outcome::Interrupted(libc::SIGINT)));
                return;
            }
            continue;
        }
        if !raw && !wait_for_receiver(devices, stop) {
            return;
        }
        let (bytes, quit) = if raw {
            filter.feed(input)
        } else {
            (input.to_vec(), false)
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() && !stop.load(Ordering::SeqCst) {
            let taken = devices
                .serial
                .uart
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .enqueue_raw_bytes(rest)
                .unwrap_or(0);
            rest = &rest[taken..];
            if !rest.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if quit {
            let _ = tx.send(VmEvent::Stop(Outcome::Interrupted(libc::SIGINT)));
            return;
        }
    }
}
