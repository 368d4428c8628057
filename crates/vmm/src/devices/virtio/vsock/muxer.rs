//! Firecracker's hybrid vsock: the guest's stream connections carried over Unix sockets
//! on the host (see Firecracker's docs/vsock.md).
//!
//! - Host to guest: a program connects to the listening socket `path` and writes
//!   `CONNECT <port>\n`; the device asks the guest for a connection to `port` and, once
//!   the guest accepts, writes `OK <local port>\n` back. From then on the Unix stream
//!   carries the connection's bytes both ways.
//! - Guest to host: the guest connects to CID 2, port `P`; the device connects to the
//!   Unix socket `<path>_<P>` and refuses the guest (RST) when nothing listens there.
//!
//! The muxer owns an epoll fd watching the listener, every host stream and a kick eventfd
//! (edge-triggered); the device reports that epoll fd as its backend fd, so the device
//! manager's worker wakes the device when any of them is ready.

use super::connection::{ConnError, Connection, State};
use super::packet::{HOST_CID, Header, Op, PacketError, SHUTDOWN_RCV, SHUTDOWN_SEND};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read};
use std::ops::Bound::{Excluded, Unbounded};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::timerfd::TimerFd;

const TOKEN_LISTENER: u64 = 0;
const TOKEN_KICK: u64 = 1;
/// The timer for connection deadlines. It is never read: each expiry is a new edge, and
/// setting it again clears the count.
const TOKEN_TIMER: u64 = 2;
/// The longest `CONNECT <port>\n` line taken.
const MAX_LINE: usize = 32;
/// Host streams that have connected but not yet sent their `CONNECT` line.
const MAX_HANDSHAKES: usize = 64;
/// Connections at once; more are refused.
const MAX_CONNECTIONS: usize = 1024;
/// RSTs for packets that belong to no connection, waiting for receive buffers; beyond
/// this they are dropped (the guest times out instead).
const MAX_LOOSE_RSTS: usize = 256;
/// Where ports for host-initiated connections start (as in Firecracker).
const FIRST_LOCAL_PORT: u32 = 1 << 30;

/// Setting up the listening socket.
#[derive(Debug, thiserror::Error)]
pub enum MuxerError {
    #[error("{}: already exists (a socket left over? remove it or choose another path)", .0.display())]
    Exists(PathBuf),
    #[error("listening on {}: {}", .0.display(), .1)]
    Listen(PathBuf, io::Error),
    #[error("{0}: {1}")]
    Fd(&'static str, io::Error),
}

type Key = (u32, u32);

struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

pub struct Muxer {
    guest_cid: u64,
    path: PathBuf,
    listener: UnixListener,
    epoll: Epoll,
    kick: EventFd,
    timer: TimerFd,
    timer_at: Option<Instant>,
    /// Ordered, so that the receive queue serves connections in turn after `last_rx`.
    conns: BTreeMap<Key, Connection>,
    last_rx: Option<Key>,
    by_token: HashMap<u64, Key>,
    tokens: HashMap<Key, u64>,
    handshakes: HashMap<u64, Handshake>,
    next_token: u64,
    next_local_port: u32,
    loose_rsts: VecDeque<Header>,
}

impl Muxer {
    pub fn new(guest_cid: u64, path: &Path) -> Result<Muxer, MuxerError> {
        if path.symlink_metadata().is_ok() {
            return Err(MuxerError::Exists(path.to_owned()));
        }
        let listener =
            UnixListener::bind(path).map_err(|e| MuxerError::Listen(path.to_owned(), e))?;
        let fail = |e| {
            let _ = std::fs::remove_file(path);
            e
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(MuxerError::Listen(path.to_owned(), e)))?;
        let epoll = Epoll::new().map_err(|e| fail(MuxerError::Fd("epoll", e)))?;
        let kick = EventFd::new(EFD_NONBLOCK).map_err(|e| fail(MuxerError::Fd("eventfd", e)))?;
        let timer = TimerFd::new().map_err(|e| {
            fail(MuxerError::Fd(
                "timerfd",
                io::Error::from_raw_os_error(e.errno()),
            ))
        })?;
        let m = Muxer {
            guest_cid,
            path: path.to_owned(),
            listener,
            epoll,
            kick,
            timer,
            timer_at: None,
            conns: BTreeMap::new(),
            last_rx: None,
            by_token: HashMap::new(),
            tokens: HashMap::new(),
            handshakes: HashMap::new(),
            next_token: TOKEN_TIMER,
            next_local_port: FIRST_LOCAL_PORT,
            loose_rsts: VecDeque::new(),
        };
        m.watch(m.listener.as_raw_fd(), TOKEN_LISTENER, EventSet::IN)
            .and_then(|_| m.watch(m.kick.as_raw_fd(), TOKEN_KICK, EventSet::IN))
            .and_then(|_| m.watch(m.timer.as_raw_fd(), TOKEN_TIMER, EventSet::IN))
            .map_err(|e| fail(MuxerError::Fd("epoll", e)))?;
        Ok(m)
    }

    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The epoll fd, readable when a socket or the kick is ready.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Wakes the device's worker (which then fills the receive queue).
    pub fn kick(&self) {
        let _ = self.kick.write(1);
    }

    fn watch(&self, fd: RawFd, token: u64, events: EventSet) -> io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(events | EventSet::EDGE_TRIGGERED, token),
        )
    }

    /// The driver reset the device: every connection ends.
    pub fn reset(&mut self) {
        self.conns.clear();
        self.last_rx = None;
        self.by_token.clear();
        self.tokens.clear();
        self.handshakes.clear();
        self.loose_rsts.clear();
    }

    /// Handles every ready socket (without blocking), then the connections whose time
    /// is up.
    pub fn poll(&mut self) {
        let mut events = [EpollEvent::default(); 32];
        loop {
            let n = match self.epoll.wait(0, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            // Until none is left: handling an event can register a stream that is ready
            // at once.
            if n == 0 {
                break;
            }
            for ev in &events[..n] {
                self.on_event(ev.data(), ev.event_set());
            }
        }
        self.expire();
    }

    /// Resets the connections past their deadline (a host-initiated one the guest never
    /// answered goes at once: its REQUEST may never have reached the guest), and sets
    /// the timer for the next deadline.
    fn expire(&mut self) {
        let now = Instant::now();
        let late: Vec<Key> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            // Cleared even on a connection already resetting, so that the timer moves
            // on to the next deadline.
            conn.deadline = None;
            if conn.is_resetting() {
                continue;
            }
            if conn.state == State::Requested {
                let rst = Header::to_guest(self.guest_cid, key.0, key.1, Op::Rst);
                self.remove(key);
                if self.loose_rsts.len() < MAX_LOOSE_RSTS {
                    self.loose_rsts.push_back(rst);
                }
            } else {
                conn.reset();
            }
        }
        self.set_timer();
    }

    fn set_timer(&mut self) {
        let next = self.conns.values().filter_map(|c| c.deadline).min();
        if next == self.timer_at {
            return;
        }
        self.timer_at = next;
        let _ = match next {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                self.timer.reset(wait.max(Duration::from_millis(1)), None)
            }
            None => self.timer.clear(),
        };
    }

    fn on_event(&mut self, token: u64, set: EventSet) {
        match token {
            TOKEN_LISTENER => self.accept(),
            TOKEN_KICK => {
                let _ = self.kick.read();
            }
            TOKEN_TIMER => {}
            _ if self.handshakes.contains_key(&token) => self.handshake(token),
            _ => {
                let Some(&key) = self.by_token.get(&token) else {
                    return;
                };
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                if set.intersects(
                    EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP | EventSet::ERROR,
                ) {
                    conn.readable = true;
                }
                if set.contains(EventSet::OUT) {
                    if let Err(e) = conn.flush() {
                        note_reset(conn, &e);
                    }
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.handshakes.len() >= MAX_HANDSHAKES || stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.take_token();
            if self
                .watch(
                    stream.as_raw_fd(),
                    token,
                    EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP,
                )
                .is_ok()
            {
                self.handshakes.insert(
                    token,
                    Handshake {
                        stream,
                        line: Vec::new(),
                    },
                );
                self.handshake(token);
            }
        }
    }

    fn take_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Reads the `CONNECT <port>\n` line a byte at a time (what follows it is the
    /// guest's); on a whole line, asks the guest for the connection.
    fn handshake(&mut self, token: u64) {
        let Some(hs) = self.handshakes.get_mut(&token) else {
            return;
        };
        let mut byte = [0u8; 1];
        let line = loop {
            match hs.stream.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break std::mem::take(&mut hs.line),
                Ok(1) if hs.line.len() < MAX_LINE => hs.line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EOF, an error or an overlong line: the host gets nothing (as with
                // Firecracker, it sees its stream closed).
                _ => {
                    self.handshakes.remove(&token);
                    return;
                }
            }
        };
        let Some(hs) = self.handshakes.remove(&token) else {
            return;
        };
        let Some(port) = parse_connect(&line) else {
            return;
        };
        if self.conns.len() >= MAX_CONNECTIONS {
            return;
        }
        let local_port = self.free_local_port();
        let key = (local_port, port);
        let mut conn = Connection::new(hs.stream, State::Requested, local_port, port);
        conn.push_ctrl(Op::Request, 0);
        self.insert(key, token, conn);
        self.set_timer();
    }

    fn free_local_port(&mut self) -> u32 {
        loop {
            let p = self.next_local_port;
            self.next_local_port = p.checked_add(1).unwrap_or(FIRST_LOCAL_PORT);
            if !self.conns.keys().any(|k| k.0 == p) {
                return p;
            }
        }
    }

    fn insert(&mut self, key: Key, token: u64, conn: Connection) {
        self.by_token.insert(token, key);
        self.tokens.insert(key, token);
        self.conns.insert(key, conn);
    }

    fn remove(&mut self, key: Key) {
        if let Some(t) = self.tokens.remove(&key) {
            self.by_token.remove(&t);
        }
        self.conns.remove(&key);
    }

    /// A packet the guest sent that [`super::packet::validate`] refused: a RST answers
    /// it (but never a RST).
    pub fn refuse(&mut self, h: &Header, _why: PacketError) {
        if h.op != Op::Rst as u16 {
            self.loose_rst(h);
        }
    }

    fn loose_rst(&mut self, h: &Header) {
        if self.loose_rsts.len() < MAX_LOOSE_RSTS {
            self.loose_rsts.push_back(Header::to_guest(
                self.guest_cid,
                h.dst_port,
                h.src_port,
                Op::Rst,
            ));
        }
    }

    /// A valid packet from the guest (its payload in `data`).
    pub fn from_guest(&mut self, h: &Header, op: Op, data: &[u8]) {
        self.packet_from_guest(h, op, data);
        self.set_timer();
    }

    fn packet_from_guest(&mut self, h: &Header, op: Op, data: &[u8]) {
        let key = (h.dst_port, h.src_port);
        let Some(conn) = self.conns.get_mut(&key) else {
            match op {
                Op::Request => self.guest_connects(h),
                Op::Rst => {}
                _ => self.loose_rst(h),
            }
            return;
        };
        conn.update_peer_credit(h);
        let result = match op {
            Op::Rst => {
                self.remove(key);
                return;
            }
            Op::Response if conn.state == State::Requested => {
                conn.state = State::Established;
                conn.deadline = None;
                conn.to_host_line(format!("OK {}\n", conn.local_port).as_bytes())
            }
            Op::Rw if conn.state == State::Established => conn.from_guest(data),
            Op::Shutdown if conn.state == State::Established => {
                conn.guest_shutdown(h.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND))
            }
            Op::CreditUpdate => Ok(()),
            Op::CreditRequest => {
                conn.push_ctrl(Op::CreditUpdate, 0);
                Ok(())
            }
            // A second REQUEST, a RESPONSE to nothing, data before the handshake.
            _ => {
                conn.reset();
                Ok(())
            }
        };
        if let Err(e) = result {
            note_reset(conn, &e);
        }
    }

    /// The guest connects to host port `dst_port`: connect to `<path>_<port>`.
    fn guest_connects(&mut self, h: &Header) {
        let target = PathBuf::from(format!("{}_{}", self.path.display(), h.dst_port));
        let stream = match UnixStream::connect(&target) {
            Ok(s) if self.conns.len() < MAX_CONNECTIONS && s.set_nonblocking(true).is_ok() => s,
            _ => return self.loose_rst(h),
        };
        let token = self.take_token();
        if self
            .watch(
                stream.as_raw_fd(),
                token,
                EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP,
            )
            .is_err()
        {
            return self.loose_rst(h);
        }
        let key = (h.dst_port, h.src_port);
        let mut conn = Connection::new(stream, State::Established, h.dst_port, h.src_port);
        conn.update_peer_credit(h);
        conn.push_ctrl(Op::Response, 0);
        self.insert(key, token, conn);
    }

    /// Whether [`Muxer::next_rx`] may have a packet.
    pub fn has_rx(&self) -> bool {
        !self.loose_rsts.is_empty() || self.conns.values().any(Connection::has_packet)
    }

    /// The next packet for the guest, its payload at most `room` bytes.
    pub fn next_rx(&mut self, room: usize) -> Option<(Header, Vec<u8>)> {
        if let Some(h) = self.loose_rsts.pop_front() {
            return Some((h, Vec::new()));
        }
        let cid = self.guest_cid;
        // In turn: the connections after the last one served, then the others.
        let keys: Vec<Key> = match self.last_rx {
            Some(last) => self
                .conns
                .range((Excluded(last), Unbounded))
                .chain(self.conns.range(..=last))
                .filter(|(_, c)| c.has_packet())
                .map(|(k, _)| *k)
                .collect(),
            None => self
                .conns
                .iter()
                .filter(|(_, c)| c.has_packet())
                .map(|(k, _)| *k)
                .collect(),
        };
        let (key, packet) = keys.into_iter().find_map(|k| {
            let conn = self.conns.get_mut(&k)?;
            conn.next_packet(cid, room).map(|p| (k, p))
        })?;
        self.last_rx = Some(key);
        if self.conns.get(&key).is_some_and(Connection::finished) {
            self.remove(key);
        }
        Some(packet)
    }

    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A connection the guest broke (credit overrun) or whose host stream failed.
fn note_reset(conn: &mut Connection, e: &ConnError) {
    eprintln!(
        "domboot-vmm: virtio-vsock: connection host port {} / guest port {}: {e}; reset",
        conn.local_port, conn.peer_port
    );
    conn.reset();
}

/// `CONNECT <port>` (the newline stripped) to the port. As Firecracker reads it: the
/// word in any case, words separated by any whitespace.
pub fn parse_connect(line: &[u8]) -> Option<u32> {
    let mut words = std::str::from_utf8(line).ok()?.split_whitespace();
    let connect = words.next()?.eq_ignore_ascii_case("connect");
    let port = words.next()?.parse().ok()?;
    (connect && words.next().is_none()).then_some(port)
}

/// The guest CID a device can have: not the reserved 0, 1, 2 (host) or `u32::MAX`
/// (VMADDR_CID_ANY), and within 32 bits as Linux's sockaddr_vm holds it.
pub fn valid_guest_cid(cid: u64) -> bool {
    (3..u64::from(u32::MAX)).contains(&cid) && cid != HOST_CID
}
