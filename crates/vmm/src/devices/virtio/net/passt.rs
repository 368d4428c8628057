//! passt's user-mode network as the backend: domboot starts `passt --foreground --fd N`
//! on one end of a Unix socket pair and keeps the other. passt speaks QEMU's stream
//! netdev protocol there — each frame preceded by its length as a 32-bit big-endian
//! integer — and gives the guest DHCP, DNS and TCP/UDP through the host's own sockets,
//! with no root and no host set-up.

use super::{MAX_FRAME, NetBackend};
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
}

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
        })
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
        let mut msg = Vec::with_capacity(4 + frame.len().min(MAX_FRAME * 64));
        msg.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        msg.extend_from_slice(frame);
        // The socket is non-blocking for reads; a write that does not fit now waits for
        // room, since half a frame would break the stream.
        let mut rest = &msg[..];
        while !rest.is_empty() {
            match self.sock.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut pfd = libc::pollfd {
                        fd: self.sock.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, count 1.
                    unsafe { libc::poll(&mut pfd, 1, 100) };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
}
