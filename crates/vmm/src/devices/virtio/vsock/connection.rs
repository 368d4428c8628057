//! One stream connection between a guest port and a host Unix stream: its state, the
//! bytes on their way to the host, and credit accounting both ways (virtio 1.2, 5.10.6.3).
//!
//! Towards the guest the device never has more than `peer_buf_alloc - (tx_cnt -
//! peer_fwd_cnt)` bytes in flight; towards the host the guest may have [`BUF_ALLOC`]
//! bytes in flight, which the connection holds in `to_host` while the host's stream
//! would block, and `fwd_cnt` counts what reached the stream.

use super::packet::{Header, Op, SHUTDOWN_RCV, SHUTDOWN_SEND};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The receive buffer the device advertises for each connection.
pub const BUF_ALLOC: u32 = 256 * 1024;
/// Once the host has taken this many bytes since the guest last heard the device's
/// `fwd_cnt`, the guest is told (it may be waiting for credit).
const CREDIT_UPDATE_AFTER: u32 = BUF_ALLOC / 4;
/// How long the guest has to answer the host's REQUEST, and to take the last bytes once
/// it has shut the connection both ways (Firecracker's CONN_REQUEST_TIMEOUT_MS and
/// CONN_SHUTDOWN_TIMEOUT_MS); then the connection is reset.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The host connected and asked for a guest port (`CONNECT`): a REQUEST is on its
    /// way, the RESPONSE not yet back.
    Requested,
    Established,
}

/// Why a connection is reset.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The guest sent more than the credit it was given.
    #[error("the guest sent {len} bytes with {in_flight} of its {BUF_ALLOC}-byte credit in use")]
    CreditExceeded { in_flight: usize, len: usize },
    /// The host's stream failed (or the host closed it and the guest still wrote).
    #[error("the host's stream: {0}")]
    Stream(io::Error),
}

pub struct Connection {
    pub stream: UnixStream,
    pub state: State,
    /// The port on the host's side (CID 2) and the guest's port.
    pub local_port: u32,
    pub peer_port: u32,
    /// The stream may have bytes for the guest (edge-triggered readiness seen, no
    /// WouldBlock since).
    pub readable: bool,
    /// Packets without payload for the guest, sent before any data: (op, flags).
    ctrl: VecDeque<(Op, u32)>,
    /// Bytes for the host's stream; the first `uncounted` are domboot's own (the `OK`
    /// line) and not the guest's data.
    to_host: Vec<u8>,
    uncounted: usize,
    fwd_cnt: u32,
    fwd_cnt_told: u32,
    tx_cnt: u32,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// The host's stream reached EOF (a SHUTDOWN went to the guest).
    host_eof: bool,
    /// The SHUTDOWN flags the guest sent.
    guest_shut: u32,
    host_write_shut: bool,
    /// A RST is queued: the connection ends once it is sent.
    resetting: bool,
    /// When the connection is reset unless the guest answers (REQUEST) or the host takes
    /// the rest (shutdown).
    pub deadline: Option<Instant>,
}

impl Connection {
    pub fn new(stream: UnixStream, state: State, local_port: u32, peer_port: u32) -> Connection {
        Connection {
            stream,
            state,
            local_port,
            peer_port,
            readable: true,
            ctrl: VecDeque::new(),
            to_host: Vec::new(),
            uncounted: 0,
            fwd_cnt: 0,
            fwd_cnt_told: 0,
            tx_cnt: 0,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            host_eof: false,
            guest_shut: 0,
            host_write_shut: false,
            resetting: false,
            deadline: (state == State::Requested).then(|| Instant::now() + REQUEST_TIMEOUT),
        }
    }

    /// Queues a control packet for the guest (a credit update only once).
    pub fn push_ctrl(&mut self, op: Op, flags: u32) {
        if self.resetting || (op == Op::CreditUpdate && self.ctrl.iter().any(|c| c.0 == op)) {
            return;
        }
        if op == Op::Rst {
            self.resetting = true;
        }
        self.ctrl.push_back((op, flags));
    }

    pub fn reset(&mut self) {
        self.push_ctrl(Op::Rst, 0);
    }

    pub fn is_resetting(&self) -> bool {
        self.resetting
    }

    /// The guest's view of its receive buffer, from any packet it sent.
    pub fn update_peer_credit(&mut self, h: &Header) {
        self.peer_buf_alloc = h.buf_alloc;
        self.peer_fwd_cnt = h.fwd_cnt;
    }

    /// Bytes the guest can take now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Data the guest sent on this connection.
    pub fn from_guest(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let in_flight = self.to_host.len() - self.uncounted;
        if in_flight + data.len() > BUF_ALLOC as usize {
            return Err(ConnError::CreditExceeded {
                in_flight,
                len: data.len(),
            });
        }
        self.to_host.extend_from_slice(data);
        self.flush()
    }

    /// Domboot's own bytes for the host (the `OK` line), before any of the guest's.
    pub fn to_host_line(&mut self, line: &[u8]) -> Result<(), ConnError> {
        self.to_host.splice(0..0, line.iter().copied());
        self.uncounted += line.len();
        self.flush()
    }

    /// Writes what it can of `to_host` to the stream; shuts the stream's write side once
    /// the guest will send no more and all is written; asks for a credit update when the
    /// guest may be short of it.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        while !self.to_host.is_empty() {
            match self.stream.write(&self.to_host) {
                Ok(0) => return Err(ConnError::Stream(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.to_host.drain(..n);
                    let own = n.min(self.uncounted);
                    self.uncounted -= own;
                    self.fwd_cnt = self.fwd_cnt.wrapping_add((n - own) as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnError::Stream(e)),
            }
        }
        if self.fwd_cnt.wrapping_sub(self.fwd_cnt_told) >= CREDIT_UPDATE_AFTER {
            self.push_ctrl(Op::CreditUpdate, 0);
        }
        if self.to_host.is_empty() {
            if self.guest_shut & SHUTDOWN_SEND != 0 && !self.host_write_shut {
                self.host_write_shut = true;
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            self.maybe_close();
        }
        Ok(())
    }

    /// The guest sent SHUTDOWN with `flags`.
    pub fn guest_shutdown(&mut self, flags: u32) -> Result<(), ConnError> {
        self.guest_shut |= flags & (SHUTDOWN_RCV | SHUTDOWN_SEND);
        self.flush()
    }

    /// Both sides are done (or the guest shut both ways): the connection ends with a RST,
    /// which Linux's close() waits for.
    fn maybe_close(&mut self) {
        let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
        let guest_done =
            self.guest_shut == both || (self.guest_shut & SHUTDOWN_SEND != 0 && self.host_eof);
        if guest_done && self.to_host.is_empty() {
            self.reset();
        } else if guest_done && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + SHUTDOWN_TIMEOUT);
        }
    }

    /// The header of a packet to the guest, carrying this side's credit.
    fn header(&mut self, guest_cid: u64, op: Op) -> Header {
        self.fwd_cnt_told = self.fwd_cnt;
        Header {
            buf_alloc: BUF_ALLOC,
            fwd_cnt: self.fwd_cnt,
            ..Header::to_guest(guest_cid, self.local_port, self.peer_port, op)
        }
    }

    /// Whether [`Connection::next_packet`] may have something.
    pub fn has_packet(&self) -> bool {
        !self.ctrl.is_empty() || self.may_read()
    }

    fn may_read(&self) -> bool {
        self.readable
            && !self.resetting
            && !self.host_eof
            && self.state == State::Established
            && self.guest_shut & SHUTDOWN_RCV == 0
            && self.peer_credit() > 0
    }

    /// The next packet for the guest: a control packet, else up to `room` bytes from the
    /// host's stream (what the guest's credit allows). A stream at EOF queues a SHUTDOWN.
    pub fn next_packet(&mut self, guest_cid: u64, room: usize) -> Option<(Header, Vec<u8>)> {
        if let Some((op, flags)) = self.ctrl.pop_front() {
            let h = Header {
                flags,
                ..self.header(guest_cid, op)
            };
            return Some((h, Vec::new()));
        }
        if !self.may_read() {
            return None;
        }
        let want = room
            .min(self.peer_credit() as usize)
            .min(super::packet::MAX_PAYLOAD as usize);
        if want == 0 {
            return None;
        }
        let mut data = vec![0u8; want];
        loop {
            return match self.stream.read(&mut data) {
                Ok(0) => {
                    self.host_eof = true;
                    self.readable = false;
                    self.push_ctrl(Op::Shutdown, SHUTDOWN_SEND);
                    self.maybe_close();
                    self.next_packet(guest_cid, room)
                }
                Ok(n) => {
                    data.truncate(n);
                    self.tx_cnt = self.tx_cnt.wrapping_add(n as u32);
                    let h = Header {
                        len: n as u32,
                        ..self.header(guest_cid, Op::Rw)
                    };
                    Some((h, data))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    None
                }
                Err(_) => {
                    self.reset();
                    self.next_packet(guest_cid, room)
                }
            };
        }
    }

    /// The queue is empty and a RST went out: the connection can go.
    pub fn finished(&self) -> bool {
        self.resetting && self.ctrl.is_empty()
    }
}
