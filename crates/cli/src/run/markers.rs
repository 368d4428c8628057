//! The one-console protocol of `run --exec` on the KVM backend (one UART): /init prints
//! `DOMBOOT-START-<marker>` before the command and `DOMBOOT-END-<marker> STATUS` after it,
//! with a marker only this run knows; [`ExecFilter`] passes the bytes between them through
//! unchanged and takes the status. Under TCG the command has serial ports of its own
//! ([`super::channels`]) and none of this is needed.

use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Booting,
    Running,
    Done,
}

/// Splits the console stream: boot messages (stderr with --verbose, else dropped), the
/// command's bytes (stdout, unchanged), the end marker with the status.
pub struct ExecFilter {
    start: Vec<u8>,
    end: Vec<u8>,
    state: State,
    pending: Vec<u8>,
    verbose: bool,
    started: Instant,
    pub boot_time: Option<Duration>,
    pub command_time: Option<Duration>,
    pub status: Option<i32>,
    out: Box<dyn Write + Send>,
}

impl ExecFilter {
    pub fn new(marker: &str, verbose: bool, started: Instant, out: Box<dyn Write + Send>) -> Self {
        ExecFilter {
            start: format!("DOMBOOT-START-{marker}\n").into_bytes(),
            end: format!("DOMBOOT-END-{marker} ").into_bytes(),
            state: State::Booting,
            pending: Vec::new(),
            verbose,
            started,
            boot_time: None,
            command_time: None,
            status: None,
            out,
        }
    }

    fn emit(&mut self, upto: usize) {
        let bytes: Vec<u8> = self.pending.drain(..upto).collect();
        let _ = self.out.write_all(&bytes);
        let _ = self.out.flush();
    }

    fn log(&mut self, upto: usize) {
        let bytes: Vec<u8> = self.pending.drain(..upto).collect();
        if self.verbose {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&bytes);
            let _ = err.flush();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl super::ConsoleFilter for ExecFilter {
    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        loop {
            match self.state {
                State::Booting => match find(&self.pending, &self.start) {
                    Some(i) => {
                        self.log(i);
                        self.pending.drain(..self.start.len());
                        self.state = State::Running;
                        self.boot_time = Some(self.started.elapsed());
                    }
                    None => {
                        let keep = self.start.len() - 1;
                        let upto = self.pending.len().saturating_sub(keep);
                        self.log(upto);
                        return;
                    }
                },
                State::Running => match find(&self.pending, &self.end) {
                    Some(i) => {
                        let rest = &self.pending[i + self.end.len()..];
                        let Some(nl) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                            // The status has not arrived yet: flush what precedes the marker.
                            self.emit(i);
                            return;
                        };
                        let status = String::from_utf8_lossy(&rest[..nl]).trim().parse().ok();
                        self.emit(i);
                        self.pending.drain(..self.end.len() + nl + 1);
                        self.status = status;
                        self.command_time =
                            Some(self.started.elapsed() - self.boot_time.unwrap_or_default());
                        self.state = State::Done;
                    }
                    None => {
                        let keep = self.end.len() - 1;
                        let upto = self.pending.len().saturating_sub(keep);
                        self.emit(upto);
                        return;
                    }
                },
                State::Done => {
                    let all = self.pending.len();
                    self.log(all);
                    return;
                }
            }
        }
    }

    fn finish(&mut self) {
        let all = self.pending.len();
        match self.state {
            State::Running => self.emit(all),
            _ => self.log(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::ConsoleFilter;
    use std::sync::{Arc, Mutex};

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Feeds `stream` in chunks of every size and checks output and status.
    #[test]
    fn markers_are_stripped_at_any_chunk_boundary() {
        let payload: Vec<u8> = (0..=255u8)
            .chain(b"no newline at the end".iter().copied())
            .collect();
        let mut stream = b"[    0.1] kernel noise\nDOMBOOT-START-abc\n".to_vec();
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(b"DOMBOOT-END-abc 42\nreboot: Restarting system\n");
        for chunk in 1..stream.len() {
            let out = Arc::new(Mutex::new(Vec::new()));
            let mut f =
                ExecFilter::new("abc", false, Instant::now(), Box::new(Shared(out.clone())));
            for piece in stream.chunks(chunk) {
                f.write(piece);
            }
            f.finish();
            assert_eq!(*out.lock().unwrap(), payload, "chunk size {chunk}");
            assert_eq!(f.status, Some(42));
        }
    }

    #[test]
    fn a_guest_that_dies_early_has_no_status() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut f = ExecFilter::new("abc", false, Instant::now(), Box::new(Shared(out.clone())));
        f.write(b"DOMBOOT-START-abc\npartial");
        f.finish();
        assert_eq!(&*out.lock().unwrap(), b"partial");
        assert_eq!(f.status, None);
    }
}
