//! The 44-byte `virtio_vsock_hdr` (virtio 1.2, 5.10.6) that starts every packet on the
//! rx and tx queues, and what a packet from the guest must satisfy before the muxer acts
//! on it.

use std::fmt;

/// Bytes of a header.
pub const HDR_LEN: usize = 44;
/// The host's CID: where the guest's packets must go.
pub const HOST_CID: u64 = 2;
/// VIRTIO_VSOCK_TYPE_STREAM, the only socket type offered.
pub const TYPE_STREAM: u16 = 1;
/// The largest payload the device takes or gives in one packet (Linux's
/// VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
pub const MAX_PAYLOAD: u32 = 64 * 1024;

/// SHUTDOWN flags: the sender will receive no more, will send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

/// A packet's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request = 1,
    Response = 2,
    Rst = 3,
    Shutdown = 4,
    Rw = 5,
    CreditUpdate = 6,
    CreditRequest = 7,
}

impl Op {
    pub fn from_u16(v: u16) -> Option<Op> {
        Some(match v {
            1 => Op::Request,
            2 => Op::Response,
            3 => Op::Rst,
            4 => Op::Shutdown,
            5 => Op::Rw,
            6 => Op::CreditUpdate,
            7 => Op::CreditRequest,
            _ => return None,
        })
    }
}

/// `struct virtio_vsock_hdr`, little-endian and packed in guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

fn u32_at(b: &[u8; HDR_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; HDR_LEN], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

impl Header {
    pub fn from_bytes(b: &[u8; HDR_LEN]) -> Header {
        Header {
            src_cid: u64_at(b, 0),
            dst_cid: u64_at(b, 8),
            src_port: u32_at(b, 16),
            dst_port: u32_at(b, 20),
            len: u32_at(b, 24),
            type_: u16::from_le_bytes([b[28], b[29]]),
            op: u16::from_le_bytes([b[30], b[31]]),
            flags: u32_at(b, 32),
            buf_alloc: u32_at(b, 36),
            fwd_cnt: u32_at(b, 40),
        }
    }

    pub fn to_bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }

    /// A stream packet from the host (`host_port`) to the guest.
    pub fn to_guest(guest_cid: u64, host_port: u32, guest_port: u32, op: Op) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: guest_cid,
            src_port: host_port,
            dst_port: guest_port,
            type_: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        }
    }
}

/// Why a packet from the guest is refused. Each is answered with a RST (unless the
/// packet is a RST itself); none stops the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// `src_cid` is not the guest's CID.
    SourceCid(u64),
    /// `dst_cid` is not the host's.
    DestinationCid(u64),
    /// Not a stream packet.
    Type(u16),
    /// An operation virtio 1.2 does not define.
    Op(u16),
    /// `len` on an operation that carries no payload, or more than [`MAX_PAYLOAD`].
    Length { op: u16, len: u32 },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::SourceCid(c) => write!(f, "source CID {c} is not the guest's"),
            PacketError::DestinationCid(c) => {
                write!(f, "destination CID {c} is not the host's ({HOST_CID})")
            }
            PacketError::Type(t) => write!(f, "socket type {t} (only streams, type 1)"),
            PacketError::Op(o) => write!(f, "unknown operation {o}"),
            PacketError::Length { op, len } => write!(
                f,
                "length {len} on operation {op} (only RW carries data, up to {MAX_PAYLOAD})"
            ),
        }
    }
}

/// Checks a header the guest sent: addresses, type, operation and length. The payload's
/// presence (the chain holds `len` more bytes) is the caller's to check.
pub fn validate(h: &Header, guest_cid: u64) -> Result<Op, PacketError> {
    if h.src_cid != guest_cid {
        return Err(PacketError::SourceCid(h.src_cid));
    }
    if h.dst_cid != HOST_CID {
        return Err(PacketError::DestinationCid(h.dst_cid));
    }
    if h.type_ != TYPE_STREAM {
        return Err(PacketError::Type(h.type_));
    }
    let op = Op::from_u16(h.op).ok_or(PacketError::Op(h.op))?;
    if (op != Op::Rw && h.len != 0) || h.len > MAX_PAYLOAD {
        return Err(PacketError::Length {
            op: h.op,
            len: h.len,
        });
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_the_spec() {
        let h = Header {
            src_cid: 3,
            dst_cid: 2,
            src_port: 0x0102_0304,
            dst_port: 5,
            len: 6,
            type_: 1,
            op: 5,
            flags: 7,
            buf_alloc: 8,
            fwd_cnt: 9,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 3);
        assert_eq!(b[8], 2);
        assert_eq!(&b[16..20], &[4, 3, 2, 1]);
        assert_eq!(b[24], 6);
        assert_eq!((b[28], b[30]), (1, 5));
        assert_eq!((b[32], b[36], b[40]), (7, 8, 9));
        assert_eq!(Header::from_bytes(&b), h);
    }

    #[test]
    fn refusals() {
        let ok = Header {
            src_cid: 3,
            dst_cid: HOST_CID,
            type_: TYPE_STREAM,
            op: Op::Request as u16,
            ..Header::default()
        };
        assert_eq!(validate(&ok, 3), Ok(Op::Request));
        assert_eq!(validate(&ok, 4), Err(PacketError::SourceCid(3)));
        let h = Header { dst_cid: 1, ..ok };
        assert_eq!(validate(&h, 3), Err(PacketError::DestinationCid(1)));
        let h = Header { type_: 2, ..ok };
        assert_eq!(validate(&h, 3), Err(PacketError::Type(2)));
        let h = Header { op: 0, ..ok };
        assert_eq!(validate(&h, 3), Err(PacketError::Op(0)));
        let h = Header { len: 1, ..ok };
        assert!(matches!(validate(&h, 3), Err(PacketError::Length { .. })));
        let h = Header {
            op: Op::Rw as u16,
            len: MAX_PAYLOAD + 1,
            ..ok
        };
        assert!(matches!(validate(&h, 3), Err(PacketError::Length { .. })));
    }

    proptest! {
        #[test]
        fn any_header_round_trips_and_validates_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), HDR_LEN),
            cid in any::<u64>(),
        ) {
            let b: [u8; HDR_LEN] = bytes.try_into().unwrap();
            let h = Header::from_bytes(&b);
            prop_assert_eq!(h.to_bytes(), b);
            if let Ok(op) = validate(&h, cid) {
                prop_assert_eq!(h.src_cid, cid);
                prop_assert_eq!(h.dst_cid, HOST_CID);
                prop_assert!(h.len <= MAX_PAYLOAD && (op == Op::Rw || h.len == 0));
            }
        }
    }
}
