//! Recognising a guest kernel panic on its console.
//!
//! A panicking Linux either reboots (`panic=N`), which would otherwise end the run like an
//! orderly reset, or spins forever (`panic=0`, the default), which only `--timeout` would
//! end. Debian's kernels have the pvpanic driver only as a module that a minimal initramfs
//! never loads, so the one report every kernel gives is its console line
//! `Kernel panic - not syncing: ...`. The watcher sits between the UART and the console
//! sink, sees each completed line, and keeps the panic line and the lines before it (the
//! reason is often there, e.g. "VFS: Cannot open root device").

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest line kept; a guest printing without newlines cannot grow memory.
const MAX_LINE: usize = 512;
/// Lines of context kept before the panic line.
const CONTEXT: usize = 8;

const PANIC: &str = "Kernel panic - not syncing";
const PANIC_END: &str = "---[ end Kernel panic";

/// What the watcher saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PanicReport {
    /// The `Kernel panic - not syncing: ...` line (without its timestamp prefix kept out:
    /// quoted as the guest printed it).
    pub line: String,
    /// The console lines just before it.
    pub context: Vec<String>,
    /// The kernel finished its panic report (`---[ end Kernel panic ...`).
    pub complete: bool,
}

#[derive(Default)]
struct State {
    current: Vec<u8>,
    recent: std::collections::VecDeque<String>,
    report: Option<PanicReport>,
    seen_at: Option<Instant>,
}

/// Shared between the console writer (which feeds it) and the supervisor (which asks).
#[derive(Clone, Default)]
pub struct PanicWatch(Arc<Mutex<State>>);

impl PanicWatch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds console bytes.
    pub fn feed(&self, bytes: &[u8]) {
        let mut s = self.state();
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&s.current)
                    .trim_end_matches('\r')
                    .to_string();
                s.current.clear();
                s.line(line);
            } else if s.current.len() < MAX_LINE {
                s.current.push(b);
            }
        }
    }

    /// The panic seen so far, and when its line arrived.
    pub fn report(&self) -> Option<(PanicReport, Instant)> {
        let s = self.state();
        Some((s.report.clone()?, s.seen_at?))
    }
}

impl State {
    fn line(&mut self, line: String) {
        match &mut self.report {
            None if line.contains(PANIC) => {
                self.report = Some(PanicReport {
                    line: line.clone(),
                    context: self.recent.iter().cloned().collect(),
                    complete: false,
                });
                self.seen_at = Some(Instant::now());
            }
            Some(r) if line.contains(PANIC_END) => r.complete = true,
            _ => {}
        }
        if self.recent.len() == CONTEXT {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }
}

/// A console writer that shows every byte to a [`PanicWatch`] on its way to `inner`.
pub struct Watched<W> {
    pub inner: W,
    pub watch: PanicWatch,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.watch.feed(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_line_with_context() {
        let w = PanicWatch::default();
        w.feed(b"[    1.0] boot\r\n[    5.7] VFS: Cannot open root dev");
        assert!(w.report().is_none());
        w.feed(b"ice\r\n[    5.8] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n");
        let (r, _) = w.report().unwrap();
        assert_eq!(
            r.line,
            "[    5.8] Kernel panic - not syncing: VFS: Unable to mount root fs"
        );
        assert_eq!(
            r.context.last().unwrap(),
            "[    5.7] VFS: Cannot open root device"
        );
        assert!(!r.complete);
        w.feed(b"trace\n---[ end Kernel panic - not syncing: VFS ]---\n");
        assert!(w.report().unwrap().0.complete);
    }

    #[test]
    fn bounded_on_endless_lines() {
        let w = PanicWatch::default();
        for _ in 0..1000 {
            w.feed(&[b'x'; 4096]);
        }
        assert!(w.state().current.len() <= MAX_LINE);
        w.feed(b"\nKernel panic - not syncing: late\n");
        assert!(w.report().unwrap().0.line.ends_with("late"));
    }
}
