//! The extra serial ports of an `--exec` run under TCG, so that nothing needs holding back:
//! ttyS1 carries control messages (`start`, `end STATUS`), ttyS2 the command's stdin and
//! stdout, ttyS3 its stderr. The kernel keeps ttyS0 for its own messages.
//!
//! QEMU connects each port to a Unix socket domboot listens on. A serial line cannot carry
//! an end of input, so stdin travels in blocks, each a decimal length on a line of its own
//! and that many bytes (one block per read, which keeps interactive input live), and a
//! length of 0 ends it; the guest's /init copies the blocks into a FIFO that is the
//! command's stdin.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most bytes of stdin per block.
const STDIN_BLOCK: usize = 64 * 1024;

/// What the guest's /init reported on the control port.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// Time from domboot's start to the command's start.
    pub boot_time: Option<Duration>,
    /// The command's exit status, once it finished.
    pub status: Option<i32>,
    pub command_time: Option<Duration>,
    /// The guest's stdin decoder holds its port open (input sent earlier would be lost).
    pub stdin_ready: bool,
}

pub struct Channels {
    /// Socket paths in port order (ttyS1, ttyS2, ttyS3), for QEMU's `-chardev socket`.
    pub paths: Vec<PathBuf>,
    pub control: Arc<Mutex<Control>>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    /// The last byte of the guest's stderr was not a newline.
    stderr_mid_line: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Channels {
    /// Listens on the three sockets; each is served once QEMU connects.
    /// `progress` (a status line on the terminal) is cleared when the command starts, so it
    /// never interleaves with the command's output.
    /// `stop` is the run's signal flag (see [`super::RunConfig::signal`]).
    pub fn open(
        started: Instant,
        progress: Option<indicatif::ProgressBar>,
        stop_vm: Arc<AtomicI32>,
    ) -> anyhow::Result<Channels> {
        let dir = tempfile::Builder::new()
            .prefix("domboot-io-")
            .tempdir()
            .map_err(|e| anyhow::anyhow!("cannot create a folder for the guest's ports: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let control = Arc::new(Mutex::new(Control::default()));
        let mut paths = Vec::new();
        let mut listeners = Vec::new();
        for name in ["control", "stdio", "stderr"] {
            let path = dir.path().join(name);
            let l = UnixListener::bind(&path)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
            paths.push(path);
            listeners.push(l);
        }
        let [ctl, io, err]: [UnixListener; 3] = listeners
            .try_into()
            .map_err(|_| anyhow::anyhow!("three listeners expected"))?;
        let mid_line = Arc::new(AtomicBool::new(false));
        let readers = vec![
            serve(ctl, stop.clone(), {
                let control = control.clone();
                move |s| read_control(s, &control, started, progress)
            }),
            serve(io, stop.clone(), {
                let control = control.clone();
                let stop_vm = stop_vm.clone();
                move |s| {
                    if let Ok(w) = s.try_clone() {
                        std::thread::spawn(move || send_stdin(w, &control));
                    }
                    copy(s, std::io::stdout(), None, &stop_vm)
                }
            }),
            serve(err, stop.clone(), {
                let mid_line = mid_line.clone();
                move |s| copy(s, std::io::stderr(), Some(&mid_line), &stop_vm)
            }),
        ];
        Ok(Channels {
            paths,
            control,
            stop,
            readers,
            stderr_mid_line: mid_line,
            _dir: dir,
        })
    }

    pub fn stderr_mid_line(&self) -> bool {
        self.stderr_mid_line.load(Ordering::Relaxed)
    }

    /// Waits for every port's output to be passed on (QEMU has exited, so each stream
    /// ends) and returns what the control port said.
    pub fn finish(self) -> Control {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers {
            let _ = r.join();
        }
        self.control
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Accepts QEMU's connection (polling, so that a QEMU that never starts does not leave the
/// thread blocked) and hands it to `f`.
fn serve(
    l: UnixListener,
    stop: Arc<AtomicBool>,
    f: impl FnOnce(UnixStream) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(false).is_ok() {
                        f(s);
                    }
                    return;
                }
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// Passes a port's bytes on as they arrive; `mid_line` tracks whether the last one was a
/// newline.
/// When the reader of `to` has gone (`domboot run --exec yes | head -1`), the VM is stopped
/// as a shell pipeline stops its writer: with SIGPIPE in `stop`.
fn copy(mut from: UnixStream, mut to: impl Write, mid_line: Option<&AtomicBool>, stop: &AtomicI32) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
            stop.store(libc::SIGPIPE, Ordering::Relaxed);
            break;
        }
        if let Some(m) = mid_line {
            m.store(buf[n - 1] != b'\n', Ordering::Relaxed);
        }
    }
}

fn read_control(
    s: UnixStream,
    control: &Mutex<Control>,
    started: Instant,
    progress: Option<indicatif::ProgressBar>,
) {
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { break };
        let Ok(mut c) = control.lock() else { break };
        let line = line.trim();
        if line == "stdin" {
            c.stdin_ready = true;
        } else if line == "start" {
            c.boot_time = Some(started.elapsed());
            if let Some(p) = &progress {
                p.finish_and_clear();
            }
        } else if let Some(status) = line.strip_prefix("end ") {
            c.status = status.trim().parse().ok();
            c.command_time = Some(started.elapsed() - c.boot_time.unwrap_or_default());
        }
    }
}

/// domboot's stdin to the guest, one block per read, then a length of 0 at its end. The
/// thread lives until stdin ends or the guest is gone (a read from a terminal cannot be
/// interrupted; the process exit ends it).
fn send_stdin(mut to: UnixStream, control: &Mutex<Control>) {
    while !control.lock().map(|c| c.stdin_ready).unwrap_or(true) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut stdin = std::io::stdin();
    let mut buf = vec![0u8; STDIN_BLOCK];
    loop {
        let n = stdin.read(&mut buf).unwrap_or(0);
        let mut block = format!("{n}\n").into_bytes();
        block.extend_from_slice(&buf[..n]);
        if to.write_all(&block).is_err() || n == 0 {
            return;
        }
    }
}
