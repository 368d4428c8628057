//! A host tap device as the network backend: `/dev/net/tun` attached to the interface by
//! name (TUNSETIFF, which creates a non-persistent tap when none exists and domboot has
//! CAP_NET_ADMIN). A tap domboot created is brought up; one that existed is left as its
//! owner configured it.
//!
//! Written with libc rather than a crate: the tun/tap crates in the field either pull in
//! an async runtime or are unmaintained, and this is two ioctls.

use super::NetBackend;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// SIOCBRADDIF: add the interface whose index is in `ifr_ifindex` to the bridge named in
/// `ifr_name` (linux/sockios.h).
const SIOCBRADDIF: libc::c_ulong = 0x89a2;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// Frames carry a `virtio_net_hdr` first, both ways.
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// TUNSETVNETHDRSZ: that header's size (12: `virtio_net_hdr_v1`, with num_buffers).
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
/// TUNSETOFFLOAD: which offloaded frames the tap may hand the reader (none here).
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const VNET_HDR_SIZE: libc::c_int = 12;
const IFNAMSIZ: usize = 16;
/// ETHTOOL_GDRVINFO (linux/ethtool.h): the driver's name and version.
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// `struct ifreq` with the flags member of its union (what TUNSETIFF, SIOCGIFFLAGS and
/// SIOCSIFFLAGS use); padded to the kernel's 40 bytes.
#[repr(C)]
struct IfreqFlags {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `struct ifreq` with the ifindex member of its union (SIOCBRADDIF).
#[repr(C)]
struct IfreqIndex {
    name: [u8; IFNAMSIZ],
    index: libc::c_int,
    _pad: [u8; 20],
}

/// `struct ifreq` with the data pointer of its union (SIOCETHTOOL).
#[repr(C)]
struct IfreqData {
    name: [u8; IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// `struct ethtool_drvinfo` (linux/ethtool.h), 196 bytes.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

impl IfreqFlags {
    fn new(name: &str, flags: libc::c_short) -> IfreqFlags {
        let mut req = IfreqFlags {
            name: [0; IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name {0:?}: 1 to 15 characters of letters, digits, '-', '_' and '.'")]
    BadName(String),
    #[error(
        "tap {name}: {error}; creating or attaching a tap needs CAP_NET_ADMIN: run as root, or \
         create it for your user once (`ip tuntap add dev {name} mode tap user $USER`)"
    )]
    Permission { name: String, error: io::Error },
    #[error("tap {name}: {error}")]
    Io { name: String, error: io::Error },
    #[error("tap {name}: adding it to the bridge {bridge}: {error}")]
    Bridge {
        name: String,
        bridge: String,
        error: io::Error,
    },
}

/// Why a tap cannot be added to the bridge a configuration or option names.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(
        "no bridge {0} on this host (in this network namespace); create it \
         (`ip link add {0} type bridge`) or give the guest another network"
    )]
    Missing(String),
    #[error(
        "{name} is not a Linux bridge (its driver is {driver}); domboot adds taps to Linux bridges"
    )]
    NotABridge { name: String, driver: String },
    #[error("bridge {name}: {error}")]
    Io { name: String, error: io::Error },
}

pub struct Tap {
    file: File,
    name: String,
}

/// Whether `name` can be a Linux interface name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Tap {
    /// Attaches to (or creates) the tap `name`, and adds it to `bridge` when one is named.
    pub fn open_on(name: &str, bridge: Option<&str>) -> Result<Tap, TapError> {
        let tap = Tap::open(name)?;
        if let Some(bridge) = bridge {
            add_to_bridge(name, bridge).map_err(|error| TapError::Bridge {
                name: name.into(),
                bridge: bridge.into(),
                error,
            })?;
        }
        Ok(tap)
    }

    /// Attaches to (or creates) the tap `name`.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if !valid_name(name) {
            return Err(TapError::BadName(name.into()));
        }
        let existed = exists(name);
        let io_err = |error: io::Error| {
            if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                TapError::Permission {
                    name: name.into(),
                    error,
                }
            } else {
                TapError::Io {
                    name: name.into(),
                    error,
                }
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(io_err)?;
        let mut req = IfreqFlags::new(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is one, 40 bytes as
        // the kernel's, and lives across the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        let size = VNET_HDR_SIZE;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which lives across
        // the call; TUNSETOFFLOAD takes its flags by value.
        let set = unsafe {
            libc::ioctl(file.as_raw_fd(), TUNSETVNETHDRSZ, &size) == 0
                && libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_ulong) == 0
        };
        if !set {
            return Err(io_err(io::Error::last_os_error()));
        }
        if !existed {
            set_up(name).map_err(io_err)?;
        }
        Ok(Tap {
            file,
            name: name.into(),
        })
    }
}

/// A socket for interface ioctls.
fn control_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// The index of the interface `name` in this network namespace (not /sys/class/net's,
/// which shows the namespace that mounted /sys), or `None` when it has none.
fn index_of(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads the NUL-terminated string we pass and nothing else.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether this network namespace has an interface `name`.
fn exists(name: &str) -> bool {
    index_of(name).is_some()
}

/// The name of the driver behind the interface `name` (ethtool's `driver`: `bridge` for
/// a Linux bridge, `openvswitch` for an Open vSwitch one, `tun` for a tap).
fn driver_of(name: &str) -> io::Result<String> {
    let sock = control_socket()?;
    let mut info = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    let mut req = IfreqData {
        name: [0; IFNAMSIZ],
        data: (&raw mut info).cast(),
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: SIOCETHTOOL reads one `struct ifreq` (`req`, 40 bytes) whose data pointer
    // is `info`, a `struct ethtool_drvinfo` as the kernel's (ETHTOOL_GDRVINFO writes at
    // most its size); both live across the call, on a socket we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Checks that `name` is a Linux bridge in this network namespace, so that a tap can be
/// added to it: before a guest starts, with the same words whichever backend adds it.
pub fn check_bridge(name: &str) -> Result<(), BridgeError> {
    if !valid_name(name) {
        return Err(BridgeError::Io {
            name: name.into(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a valid interface name"),
        });
    }
    if !exists(name) {
        return Err(BridgeError::Missing(name.into()));
    }
    match driver_of(name) {
        Ok(driver) if driver == "bridge" => Ok(()),
        Ok(driver) => Err(BridgeError::NotABridge {
            name: name.into(),
            driver,
        }),
        // An interface without ethtool operations (a loopback, a dummy) is no bridge.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(BridgeError::NotABridge {
            name: name.into(),
            driver: "unknown".into(),
        }),
        Err(error) => Err(BridgeError::Io {
            name: name.into(),
            error,
        }),
    }
}

/// Adds the interface `name` to the bridge `bridge`.
fn add_to_bridge(name: &str, bridge: &str) -> io::Result<()> {
    if !valid_name(bridge) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a valid interface name",
        ));
    }
    let Some(index) = index_of(name) else {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    };
    let sock = control_socket()?;
    let mut req = IfreqIndex {
        name: [0; IFNAMSIZ],
        index: index as libc::c_int,
        _pad: [0; 20],
    };
    req.name[..bridge.len()].copy_from_slice(bridge.as_bytes());
    // SAFETY: SIOCBRADDIF reads one `struct ifreq` (`req`, 40 bytes) on a socket we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRADDIF as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings the interface `name` up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP).
fn set_up(name: &str) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = IfreqFlags::new(name, 0);
    // SAFETY: both ioctls read/write one `struct ifreq` (`req`, 40 bytes) on a socket we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl NetBackend for Tap {
    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        // A tap takes a frame per write, or drops it when its queue is full.
        self.file.write(frame).map(|_| ())
    }
    fn describe(&self) -> String {
        format!("tap {}", self.name)
    }
    fn vnet_hdr(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("tap0") && valid_name("dom-boot_1.2"));
        for bad in ["", "a/b", "sixteen-chars-xx", "a b", "tap0\n"] {
            assert!(!valid_name(bad), "{bad:?}");
            assert!(matches!(Tap::open(bad), Err(TapError::BadName(_))));
        }
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
        assert_eq!(std::mem::size_of::<IfreqIndex>(), 40);
        assert_eq!(std::mem::size_of::<IfreqData>(), 40);
        assert_eq!(std::mem::size_of::<EthtoolDrvinfo>(), 196);
    }

    #[test]
    fn bridges_are_checked_in_this_namespace() {
        // Every Linux has lo, which is no bridge; no host has this one.
        assert!(matches!(
            check_bridge("lo"),
            Err(BridgeError::NotABridge { .. })
        ));
        assert!(matches!(
            check_bridge("dbnobridge9"),
            Err(BridgeError::Missing(_))
        ));
        assert!(matches!(check_bridge("a/b"), Err(BridgeError::Io { .. })));
        let e = check_bridge("dbnobridge9").unwrap_err().to_string();
        assert!(e.contains("no bridge dbnobridge9"), "{e}");
    }
}
