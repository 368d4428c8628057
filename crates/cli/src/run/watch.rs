//! What the guest kernel said on its console, kept to explain a failed run.
//!
//! Under TCG QEMU ends a panicked guest like an orderly reset (`panic=-1` with
//! `-no-reboot`), so only the console tells the two apart. The KVM backend watches its own
//! UART (`domboot_vmm`'s panic watch); this watch sees the console stream QEMU hands back,
//! reuses that recogniser for `Kernel panic - not syncing`, and also keeps the first oops
//! line and the last lines printed, to quote when a run ends without a reason of its own.

use domboot_vmm::devices::panic_watch::{PanicReport, PanicWatch};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Lines kept from the end of the console.
const TAIL: usize = 8;
/// Longest line kept; a guest printing without newlines cannot grow memory.
const MAX_LINE: usize = 512;
/// Starts of the kernel's oops and BUG reports (they may precede a panic, or stand alone
/// when the kernel carries on after killing the faulting task).
const OOPS: &[&str] = &[
    "BUG: ",
    "Oops: ",
    "general protection fault",
    "kernel BUG at",
];

#[derive(Default)]
struct State {
    current: Vec<u8>,
    tail: VecDeque<String>,
    oops: Option<String>,
    bytes: u64,
}

/// Shared between the thread reading the console and the code deciding how the run ended.
#[derive(Clone, Default)]
pub struct ConsoleWatch {
    panic: PanicWatch,
    state: Arc<Mutex<State>>,
}

impl ConsoleWatch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn feed(&self, bytes: &[u8]) {
        self.panic.feed(bytes);
        let mut s = self.state();
        s.bytes += bytes.len() as u64;
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&s.current)
                    .trim_end_matches('\r')
                    .to_string();
                s.current.clear();
                if s.oops.is_none() && OOPS.iter().any(|o| line.contains(o)) {
                    s.oops = Some(line.clone());
                }
                if s.tail.len() == TAIL {
                    s.tail.pop_front();
                }
                s.tail.push_back(line);
            } else if s.current.len() < MAX_LINE {
                s.current.push(b);
            }
        }
    }

    /// The first oops or BUG line the kernel printed, if any.
    pub fn oops(&self) -> Option<String> {
        self.state().oops.clone()
    }

    /// The kernel's panic, when it printed one.
    pub fn panic(&self) -> Option<(PanicReport, Instant)> {
        self.panic.report()
    }

    /// How many console bytes arrived.
    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// The panic quoted as the KVM backend quotes it, if there was one.
    pub fn panic_text(&self) -> Option<String> {
        let (report, _) = self.panic()?;
        Some(domboot_vmm::Outcome::Panic(Box::new(report)).describe())
    }

    /// The oops line and the last console lines, indented for an error message ("" when
    /// the console stayed silent).
    pub fn quote(&self) -> String {
        let s = self.state();
        let mut text = String::new();
        if let Some(o) = &s.oops
            && !s.tail.contains(o)
        {
            text.push_str(&format!("  > {o}\n  ...\n"));
        }
        for l in &s.tail {
            let mark = if Some(l) == s.oops.as_ref() { '>' } else { '|' };
            text.push_str(&format!("  {mark} {l}\n"));
        }
        if !s.current.is_empty() {
            text.push_str(&format!("  | {}\n", String::from_utf8_lossy(&s.current)));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_oops_panic_and_tail() {
        let w = ConsoleWatch::default();
        w.feed(b"[ 1.0] BUG: kernel NULL pointer dereference, address: 0\r\n");
        for i in 0..20 {
            w.feed(format!("[ 2.{i}] line {i}\r\n").as_bytes());
        }
        assert!(w.panic_text().is_none());
        let q = w.quote();
        assert!(q.starts_with("  > [ 1.0] BUG: kernel NULL"), "{q}");
        assert!(q.contains("  | [ 2.19] line 19\n"), "{q}");
        assert!(!q.contains("line 11\n"), "{q}");
        w.feed(b"[ 3.0] Kernel panic - not syncing: Attempted to kill init!\r\n");
        let p = w.panic_text().unwrap();
        assert!(p.contains("> [ 3.0] Kernel panic - not syncing: Attempted to kill init!"));
        assert!(w.bytes() > 0);
    }

    #[test]
    fn a_silent_console_quotes_nothing() {
        assert_eq!(ConsoleWatch::default().quote(), "");
    }
}
