//! passt's user-mode network as the backend: domboot starts `passt --foreground --fd N`
//! on one end of a Unix socket pair and keeps the other. passt speaks QEMU's stream
//! netdev protocol there — each frame preceded by its length as a 32-bit big-endian
//! integer — and gives the guest DHCP, DNS and TCP/UDP through the host's own sockets,
//! with no root and no host set-up.

use super::NetBackend;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum PasstError {
    #[error(
        "cannot start passt for --net user: {0}; install it with `apt-get install passt` \
         (scripts/setup.sh does)"
    )]
    Start(io::Error),
    #[error("--net user: a socket pair for passt: {0}")]
    Socket(io::Error),
}

pub struct Passt {
    sock: UnixStream,
    child: Child,
    /// Bytes read from passt that do not yet make a whole frame.
    input: Vec<u8>,
    /// Frames for passt that its socket had no room for yet (whole frames, in order).
    output: Vec<u8>,
}

/// How many bytes of frames for passt are held while its socket is full; beyond that a
/// frame is dropped, as a NIC drops what its queue cannot take (TCP sends it again).
/// Waiting for room instead deadlocked: passt, busy writing frames to us, stopped reading
/// while our device thread, which reads those frames, waited to write (seen as a 1 MiB
/// download that stalled for good, and a run that then ignored --timeout).
const MAX_PENDING: usize = 4 << 20;

impl Passt {
    pub fn start() -> Result<Passt, PasstError> {
        let (ours, theirs) = UnixStream::pair().map_err(PasstError::Socket)?;
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new("passt");
        cmd.args(["--foreground", "--quiet", "--fd"])
            .arg(fd.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // fcntl, which is async-signal-safe; it clears close-on-exec so passt inherits
        // its end of the pair.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(PasstError::Start)?;
        drop(theirs);
        ours.set_nonblocking(true).map_err(PasstError::Socket)?;
        Ok(Passt {
            sock: ours,
            child,
            input: Vec::new(),
            output: Vec::new(),
        })
    }

    /// Writes what passt's socket takes now of the held frames, without waiting.
    fn flush(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.output.len() {
            match self.sock.write(&self.output[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        self.output.drain(..written);
        Ok(())
    }

    /// A whole frame at the front of `input`, taken out.
    fn take_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(len) = self.input.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "passt sent a {len}-byte frame, more than {} bytes",
                    buf.len()
                ),
            ));
        }
        if self.input.len() < 4 + len {
            return Ok(None);
        }
        buf[..len].copy_from_slice(&self.input[4..4 + len]);
        self.input.drain(..4 + len);
        Ok(Some(len))
    }
}

impl NetBackend for Passt {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // passt has read something if it sent something: room for held frames, maybe.
        self.flush()?;
        loop {
            if let Some(n) = self.take_frame(buf)? {
                return Ok(Some(n));
            }
            let mut chunk = [0u8; 64 << 10];
            match self.sock.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "passt closed its socket",
                    ));
                }
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        // Never wait for room (see MAX_PENDING): hold the frame, whole, behind earlier
        // ones, and write what fits now.
        self.flush()?;
        if self.output.len() + 4 + frame.len() > MAX_PENDING {
            return Ok(());
        }
        self.output
            .extend_from_slice(&(frame.len() as u32).to_be_bytes());
        self.output.extend_from_slice(frame);
        self.flush()
    }

    fn describe(&self) -> String {
        "passt".into()
    }
}

impl Drop for Passt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The end of a socket pair a test plays passt on.
#[cfg(test)]
pub(crate) fn pair_for_test() -> (Passt, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    // `true` exits at once; the child only has to exist for Drop.
    let child = Command::new("true").spawn().unwrap();
    (
        Passt {
            sock: ours,
            child,
            input: Vec::new(),
            output: Vec::new(),
        },
        theirs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_the_stream_whole() {
        let (mut p, mut other) = pair_for_test();
        p.write_frame(b"hello").unwrap();
        let mut got = [0u8; 9];
        other.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\0\0\0\x05hello");
        // Two frames, the second split across writes.
        other.write_all(b"\0\0\0\x03abc\0\0\0\x04wx").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(p.read_frame(&mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(p.read_frame(&mut buf).unwrap(), None);
        other.write_all(b"yz").unwrap();
        assert_eq!(p.read_frame(&mut buf).unwrap(), Some(4));
        assert_eq!(&buf[..4], b"wxyz");
        // An oversized length is an error, not an allocation.
        other.write_all(b"\xff\xff\xff\xff").unwrap();
        assert!(p.read_frame(&mut buf).is_err());
    }

    /// A passt that does not read never blocks the device: frames wait (whole, in order)
    /// up to MAX_PENDING, later ones are dropped, and what waited arrives once passt reads.
    #[test]
    fn a_full_socket_holds_frames_instead_of_waiting() {
        let (mut p, mut other) = pair_for_test();
        let frame = vec![7u8; 60_000];
        let started = std::time::Instant::now();
        for _ in 0..200 {
            p.write_frame(&frame).unwrap();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(p.output.len() <= MAX_PENDING);
        let held = p.output.len();
        assert!(held > 0, "the socket took 12 MB at once");
        // passt reads: the held frames go out as soon as the device is active again.
        other.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        for _ in 0..10_000 {
            let _ = p.read_frame(&mut [0u8; 16]);
            match other.read(&mut chunk) {
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if p.output.is_empty() {
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(p.output.is_empty());
        // Whole frames only: every 4-byte length is followed by that many bytes.
        let mut at = 0;
        let mut frames = 0;
        while at < got.len() {
            let len = u32::from_be_bytes(got[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len());
            assert!(got[at + 4..at + 4 + len].iter().all(|&b| b == 7));
            at += 4 + len;
            frames += 1;
        }
        assert_eq!(at, got.len());
        assert!((1..200).contains(&frames), "{frames} frames");
    }
}
