//! The devices of a domain: disks, network interfaces, character devices, displays and
//! inputs.
use super::is_false;
use serde::{Deserialize, Serialize};

/// A disk (or cdrom / floppy drive).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Image file or block device; `None` for an empty cdrom drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `file` or `block` (libvirt `<disk type>`).
    #[serde(default, skip_serializing_if = "DiskKind::is_file")]
    pub kind: DiskKind,
    /// Backend driver: libvirt `<driver name>`, xm's `file:`/`phy:`/`tap:` prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Image format or tap sub-driver: `raw`, `qcow2`, `aio` (libvirt `<driver type>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Device name in the guest: `hda`, `xvda`, `vda`.
    pub target: String,
    /// Bus when it is not the one the target's prefix implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(default, skip_serializing_if = "DiskDevice::is_disk")]
    pub device: DiskDevice,
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub shareable: bool,
}

impl Disk {
    /// Why `domboot run` cannot give this disk to a guest (it attaches raw image files and
    /// block devices as virtio disks, cdroms read-only), or `None` when it can.
    pub fn attach_problem(&self) -> Option<&'static str> {
        match (&self.source, self.device, self.format.as_deref()) {
            (None, _, _) => Some("an empty drive: nothing to attach"),
            (_, DiskDevice::Floppy, _) => Some("floppy drives are not emulated"),
            // blktap's `aio` and `sync` are raw images read through a different backend.
            (_, _, Some(f)) if !matches!(f, "raw" | "aio" | "sync") => {
                Some("only raw images are attached (convert it: qemu-img convert -O raw IN OUT)")
            }
            _ => None,
        }
    }
}

impl Interface {
    /// Why `domboot run` cannot give this interface to a guest (it attaches `bridge` as a
    /// tap on that Linux bridge, `ethernet` as a tap, `user` as a user-mode network), or
    /// `None`.
    pub fn attach_problem(&self) -> Option<&'static str> {
        match self.kind.as_str() {
            "bridge" if self.source.is_none() => Some("a bridge interface names no bridge"),
            "bridge" | "ethernet" | "user"
                if self.virtualport.is_some() || !self.vlan.is_empty() =>
            {
                Some(
                    "Open vSwitch ports and VLAN tags are not provided: domboot adds a tap to \
                     a Linux bridge, untagged",
                )
            }
            "bridge" | "ethernet" | "user" => None,
            "network" => {
                Some("libvirt's virtual networks are not provided: use a bridge, or --net user")
            }
            _ => Some("only bridge, ethernet and user interfaces are provided"),
        }
    }

    /// The host-side name to give this interface's tap: the file's `vifname` /
    /// `<target dev>`, unless it is a name a hypervisor gave a running domain's interface
    /// (libvirt's `vnetN`, `macvtapN`, `macvlanN`, which libvirt itself drops when it
    /// defines a domain; xend's `vifDOMID.N`): such a name belongs to that domain, and
    /// reusing it would take over its tap.
    pub fn tap_name(&self) -> Option<&str> {
        self.target.as_deref().filter(|t| !is_generated_tap_name(t))
    }

    /// Parts of an attachable interface that `domboot run` does not apply, each as (item,
    /// why): a script other than xend's vif-bridge (whose work, a tap on the bridge, domboot
    /// does itself) and guest addresses.
    pub fn unapplied(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        if let Some(s) = &self.script {
            let bridge_script = self.kind == "bridge"
                && std::path::Path::new(s).file_name() == Some("vif-bridge".as_ref());
            if !bridge_script {
                out.push((
                    format!("script {s}"),
                    "not run: domboot brings the tap up (and onto its bridge) itself",
                ));
            }
        }
        if let Some(ip) = &self.ip {
            out.push((
                format!("ip {ip}"),
                "not applied: domboot sets no addresses for the guest (it configures its own)",
            ));
        }
        out
    }
}

/// A host interface name that a hypervisor generates for a running domain (see
/// [`Interface::tap_name`]).
pub fn is_generated_tap_name(name: &str) -> bool {
    ["vnet", "macvtap", "macvlan"]
        .iter()
        .any(|p| name.starts_with(p))
        || crate::xl::spec::is_generated_vif_name(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    #[default]
    File,
    Block,
}

impl DiskKind {
    fn is_file(&self) -> bool {
        *self == DiskKind::File
    }

    /// What xl and xend imply: the `phy` backend is a block device; the file-backed ones
    /// (`file`, `tap`, `tap2`, `qemu`/qdisk) are files whatever the path (libvirt reads
    /// `backendtype=qdisk,target=/dev/vg/lv` as a file); with no backend, a `/dev/` path
    /// is a block device.
    pub fn infer(driver: Option<&str>, source: Option<&str>) -> DiskKind {
        match driver {
            Some("phy") => DiskKind::Block,
            Some("file" | "tap" | "tap2" | "qemu") => DiskKind::File,
            _ if source.is_some_and(|s| s.starts_with("/dev/")) => DiskKind::Block,
            _ => DiskKind::File,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskDevice {
    #[default]
    Disk,
    Cdrom,
    Floppy,
}

impl DiskDevice {
    fn is_disk(&self) -> bool {
        *self == DiskDevice::Disk
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiskDevice::Disk => "disk",
            DiskDevice::Cdrom => "cdrom",
            DiskDevice::Floppy => "floppy",
        }
    }
}

/// The bus a target name implies (`hda` → ide, `xvda` → xen, `vda` → virtio...).
pub fn implied_bus(target: &str) -> Option<&'static str> {
    [
        ("xvd", "xen"),
        ("hd", "ide"),
        ("sd", "scsi"),
        ("vd", "virtio"),
        ("fd", "fdc"),
    ]
    .into_iter()
    .find(|(prefix, _)| target.starts_with(prefix))
    .map(|(_, bus)| bus)
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// libvirt `<interface type>`: `bridge`, `network`, `ethernet`, `user`...
    #[serde(rename = "type")]
    pub kind: String,
    /// Bridge or network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// NIC model (`e1000`, `virtio`, `netfront`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Guest addresses, separated by spaces when there are several (as xl's `ip=` says
    /// them; libvirt has one `<ip>` each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Host-side device name (xl `vifname`, libvirt `<target dev>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// VLAN tags on an Open vSwitch bridge (xl `bridge=ovsbr0.42`, or `ovsbr0:42:43` for
    /// a trunk; libvirt `<vlan><tag id/>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u32>,
    /// The tags are a trunk (`<vlan trunk='yes'>`, xl `:`-separated tags).
    #[serde(default, skip_serializing_if = "is_false")]
    pub vlan_trunk: bool,
    /// libvirt `<virtualport type>`: `openvswitch` for an OVS bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualport: Option<String>,
}

/// A character device: serial port or console.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharDev {
    #[serde(rename = "type")]
    pub kind: CharKind,
    /// File, device, pipe or socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port (tcp/udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Listen (server / bind) rather than connect.
    #[serde(default, skip_serializing_if = "is_false")]
    pub listen: bool,
    /// Speak telnet on a tcp socket.
    #[serde(default, skip_serializing_if = "is_false")]
    pub telnet: bool,
    /// Console only: libvirt `<target type>` (`serial`, `xen`, `virtio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Port number when it is not the device's place in the list (xl's
    /// `serial = [ "none", "/dev/ttyS1" ]` is port 1; libvirt `<target port>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// udp only: the local address to bind (`udp:PEER:PORT@BIND:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_service: Option<String>,
}

impl CharDev {
    /// Drop what the device's kind has no use for (a pty has no path, a file no host), so
    /// that a stray XML attribute cannot make two spellings of one device differ.
    pub fn keep_relevant(&mut self) {
        let (path, net, listen, telnet, bind) = match self.kind {
            CharKind::Pty | CharKind::Null | CharKind::Stdio | CharKind::Vc => {
                (false, false, false, false, false)
            }
            CharKind::File | CharKind::Dev | CharKind::Pipe => (true, false, false, false, false),
            CharKind::Unix => (true, false, true, false, false),
            CharKind::Tcp => (false, true, true, true, false),
            CharKind::Udp => (false, true, false, false, true),
        };
        if !path {
            self.path = None;
        }
        if !net {
            self.host = None;
            self.service = None;
        }
        self.listen &= listen;
        self.telnet &= telnet;
        if !bind {
            self.bind_host = None;
            self.bind_service = None;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CharKind {
    #[default]
    Pty,
    File,
    Null,
    Stdio,
    Vc,
    Dev,
    Pipe,
    Unix,
    Tcp,
    Udp,
}

impl CharKind {
    pub const ALL: [CharKind; 10] = [
        CharKind::Pty,
        CharKind::File,
        CharKind::Null,
        CharKind::Stdio,
        CharKind::Vc,
        CharKind::Dev,
        CharKind::Pipe,
        CharKind::Unix,
        CharKind::Tcp,
        CharKind::Udp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CharKind::Pty => "pty",
            CharKind::File => "file",
            CharKind::Null => "null",
            CharKind::Stdio => "stdio",
            CharKind::Vc => "vc",
            CharKind::Dev => "dev",
            CharKind::Pipe => "pipe",
            CharKind::Unix => "unix",
            CharKind::Tcp => "tcp",
            CharKind::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A graphical display (VNC, SDL, SPICE).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graphics {
    #[serde(rename = "type")]
    pub kind: String,
    /// TCP port when fixed (VNC display N is port 5900+N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Pick a free port (xl `vncunused`, libvirt `autoport` / `port='-1'`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub autoport: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keymap: Option<String>,
    /// X display for SDL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xauth: Option<String>,
}

/// An input device (`mouse`, `tablet`, `keyboard` on `ps2`, `usb`, `xen`...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// A virtio-vsock device (libvirt `<vsock model='virtio'>`). libvirt backs it with the
/// host's vhost-vsock; `domboot run` gives the guest Firecracker's hybrid vsock on a
/// Unix socket instead (see the CLI's `run`), on KVM and under TCG alike.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vsock {
    /// The guest's context ID (`<cid address>`); `None` lets the host pick one
    /// (`<cid auto='yes'/>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<u64>,
    /// `<vsock model>`; `None` is libvirt's default, virtio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The first guest CID: 0 and 1 are reserved, 2 is the host.
pub const VSOCK_FIRST_GUEST_CID: u64 = 3;

impl Vsock {
    /// The CID a run gives the guest: the file's, else the first guest CID (libvirt's
    /// `auto` picks the lowest free one, which on a host of its own is 3).
    pub fn guest_cid(&self) -> u64 {
        self.cid.unwrap_or(VSOCK_FIRST_GUEST_CID)
    }

    /// Why `domboot run` cannot give this device to a guest, or `None` when it can.
    pub fn attach_problem(&self) -> Option<&'static str> {
        if self.model.as_deref().is_some_and(|m| m != "virtio") {
            return Some("only virtio vsock devices are provided");
        }
        match self.cid {
            Some(c) if !(VSOCK_FIRST_GUEST_CID..u64::from(u32::MAX)).contains(&c) => {
                Some("a guest CID is 3 to 4294967294 (0 to 2 are reserved, 2 is the host)")
            }
            _ => None,
        }
    }
}

/// A random number generator (libvirt `<rng model='virtio'>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rng {
    /// `<rng model>`; `None` is virtio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `<backend model>`: `random` (a host device file), `builtin` (the hypervisor's own
    /// generator), `egd` (an entropy daemon on a character device).
    pub backend: String,
    /// `random`'s device file (`/dev/urandom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Rng {
    /// Why `domboot run` cannot give this generator to a guest (its virtio-rng reads the
    /// host's random source, as `random` with /dev/urandom or /dev/random and `builtin`
    /// ask), or `None` when it can.
    pub fn attach_problem(&self) -> Option<&'static str> {
        if self.model.as_deref().is_some_and(|m| m != "virtio") {
            return Some("only virtio rng devices are provided");
        }
        match (self.backend.as_str(), self.source.as_deref()) {
            ("builtin", _) | ("random", None | Some("/dev/urandom" | "/dev/random")) => None,
            ("random", Some(_)) => Some(
                "domboot's virtio-rng reads the host's random source (/dev/urandom); other \
                 device files are not read",
            ),
            ("egd", _) => Some("entropy daemons (egd) are not read; use backend random or builtin"),
            _ => Some("only the random and builtin backends are provided"),
        }
    }
}
