//! The guest's devices beyond the console, declared once from the command line (and,
//! later, the domain configuration); each backend realises them: KVM as virtio-mmio
//! devices in domboot's own VMM ([`super::kvm`]), TCG as QEMU's virtio-pci devices
//! ([`super::tcg`]). The guest sees the same disks in the same order with the same IDs,
//! and the same interfaces with the same MACs, either way. The vsock (Firecracker's hybrid
//! vsock on a Unix socket) is the KVM backend's own device on both: under TCG domboot
//! serves it to QEMU's vhost-user-vsock-pci itself ([`super::tcg_vsock`]).

use crate::commands::boot_entries::DiskArg;
use domboot_vmm::devices::virtio::net::{format_mac, parse_mac, random_mac, tap};
use domboot_vmm::devices::virtio::vsock::valid_guest_cid;
use std::path::PathBuf;

/// The `--vsock CID,SOCKET` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockArg {
    pub cid: u64,
    pub socket: PathBuf,
}

/// Parses `CID,SOCKET`.
pub fn parse_vsock(text: &str) -> Result<VsockArg, String> {
    let (cid, socket) = text
        .split_once(',')
        .ok_or_else(|| format!("{text:?}: expected CID,SOCKET (such as 3,/tmp/v.sock)"))?;
    let cid: u64 = cid
        .parse()
        .map_err(|_| format!("guest CID {cid:?}: expected a number"))?;
    if !valid_guest_cid(cid) {
        return Err(format!(
            "guest CID {cid}: 3 to {} (0 to 2 are reserved, 2 is the host)",
            u32::MAX - 1
        ));
    }
    if socket.is_empty() {
        return Err("--vsock: the Unix socket path is empty".into());
    }
    Ok(VsockArg {
        cid,
        socket: socket.into(),
    })
}

/// Where a domain configuration's `<vsock>` gets its host Unix socket (libvirt's vhost-vsock
/// has none): `$XDG_RUNTIME_DIR/domboot/NAME.vsock`, else `/tmp/domboot-UID/NAME.vsock`,
/// the folder made private to the user. A socket left there by a run that ended without
/// removing it (no one accepts on it) is removed; one in use is refused later.
pub fn config_vsock_socket(domain: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("domboot"),
        // SAFETY: getuid has no preconditions and cannot fail.
        None => PathBuf::from(format!("/tmp/domboot-{}", unsafe { libc::getuid() })),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("vsock: creating {}", dir.display()))?;
    let socket = socket_for_domain(&dir, domain);
    let stale = std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket())
        && std::os::unix::net::UnixStream::connect(&socket)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    if stale {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(socket)
}

/// `DIR/NAME.vsock`, the name kept to letters, digits, `-`, `_` and `.` (others become
/// `_`), never hidden or empty.
fn socket_for_domain(dir: &std::path::Path, domain: &str) -> PathBuf {
    let name: String = domain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() || name.starts_with('.') {
        format!("domain{name}")
    } else {
        name
    };
    dir.join(format!("{name}.vsock"))
}

/// One `--net` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetArg {
    Tap {
        name: String,
        mac: Option<[u8; 6]>,
    },
    /// A tap added to a host bridge (from a domain configuration's bridged interface).
    Bridged {
        tap: String,
        bridge: String,
        mac: Option<[u8; 6]>,
    },
    User {
        mac: Option<[u8; 6]>,
    },
    None,
}

/// Parses `tap:NAME`, `user` or `none`, each optionally followed by `,mac=MAC`.
pub fn parse_net(text: &str) -> Result<NetArg, String> {
    let mut parts = text.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut mac = None;
    for opt in parts {
        match opt.split_once('=') {
            Some(("mac", m)) => {
                mac = Some(parse_mac(m).ok_or_else(|| {
                    format!("mac={m}: expected six hex pairs like 52:54:00:12:34:56, unicast")
                })?)
            }
            _ => return Err(format!("unknown --net option {opt:?} (only mac=MAC)")),
        }
    }
    match kind {
        "user" => Ok(NetArg::User { mac }),
        "none" if mac.is_none() => Ok(NetArg::None),
        "none" => Err("--net none takes no mac=".into()),
        _ => match kind.strip_prefix("tap:") {
            Some(name) if tap::valid_name(name) => Ok(NetArg::Tap {
                name: name.into(),
                mac,
            }),
            Some(name) => Err(format!(
                "tap name {name:?}: 1 to 15 characters of letters, digits, '-', '_' and '.'"
            )),
            None => Err(format!("{kind:?}: expected tap:NAME, user or none")),
        },
    }
}

/// The guest's name for its `index`th virtio disk: vda, vdb, ...
pub fn guest_disk_name(index: usize) -> String {
    domboot_vmm::builder::disk_name(index)
}

/// One interface, its MAC fixed (generated once, so both backends and the logs agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub backend: domboot_vmm::NetBackendConfig,
    pub mac: [u8; 6],
}

impl Interface {
    pub fn mac_text(&self) -> String {
        format_mac(&self.mac)
    }
}

/// The guest's devices.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// In order: the first is vda.
    pub disks: Vec<DiskArg>,
    /// In order: the first is eth0.
    pub nets: Vec<Interface>,
    pub rng: bool,
    /// The console is a virtio console (hvc0) instead of COM1.
    pub virtio_console: bool,
    /// Firecracker's hybrid vsock.
    pub vsock: Option<VsockArg>,
    /// virtio-fs devices as (tag, vhost-user socket of its virtiofsd): QEMU's
    /// vhost-user-fs-pci under TCG, the KVM backend's virtio-mmio device, see
    /// [`super::rootfs`].
    pub virtiofs: Vec<(String, PathBuf)>,
    /// The vsock is a domain configuration's `<vsock>` (libvirt's vhost-vsock), not
    /// `--vsock`: its socket is domboot's choice, announced.
    pub vsock_from_config: bool,
}

impl Devices {
    /// From --disk, --net, --rng and --no-rng: the rng comes with disks or interfaces
    /// unless refused; `--net none` anywhere means no interface.
    pub fn from_args(disks: &[DiskArg], nets: &[NetArg], rng: bool, no_rng: bool) -> Devices {
        Devices::default().with(disks, nets, rng, no_rng)
    }

    /// These devices with --disk, --net, --rng and --no-rng applied.
    fn with(self, disks: &[DiskArg], nets: &[NetArg], rng: bool, no_rng: bool) -> Devices {
        use domboot_vmm::NetBackendConfig as B;
        let nets = if nets.contains(&NetArg::None) {
            Vec::new()
        } else {
            nets.iter()
                .filter_map(|n| match n {
                    NetArg::Tap { name, mac } => Some((
                        B::Tap {
                            name: name.clone(),
                            bridge: None,
                        },
                        *mac,
                    )),
                    NetArg::Bridged { tap, bridge, mac } => Some((
                        B::Tap {
                            name: tap.clone(),
                            bridge: Some(bridge.clone()),
                        },
                        *mac,
                    )),
                    NetArg::User { mac } => Some((B::User, *mac)),
                    NetArg::None => None,
                })
                .map(|(backend, mac)| Interface {
                    backend,
                    mac: mac.unwrap_or_else(random_mac),
                })
                .collect()
        };
        let rng = !no_rng && (rng || !disks.is_empty() || !nets.is_empty());
        Devices {
            disks: disks.to_vec(),
            nets,
            rng,
            ..self
        }
    }

    /// With the `--vsock` device.
    pub fn with_vsock(self, vsock: Option<VsockArg>) -> Devices {
        Devices { vsock, ..self }
    }

    /// With a domain configuration's `<vsock>` and `<rng>`: `--vsock` wins over the
    /// file's vsock, `--no-rng` over its rng.
    pub fn with_config(self, vsock: Option<VsockArg>, rng: bool, no_rng: bool) -> Devices {
        let rng = self.rng || (rng && !no_rng);
        match (&self.vsock, vsock) {
            (None, Some(v)) => Devices {
                vsock: Some(v),
                vsock_from_config: true,
                rng,
                ..self
            },
            _ => Devices { rng, ..self },
        }
    }

    /// The hybrid vsock's socket, said once before a run when the configuration chose it
    /// (libvirt's XML has no place for it).
    pub fn announce_vsock(&self) {
        if let (Some(v), true) = (&self.vsock, self.vsock_from_config) {
            eprintln!(
                "domboot: vsock: guest CID {} on the Unix socket {} (connect, then send \
                 `CONNECT <port>`; --vsock CID,SOCKET chooses another)",
                v.cid,
                v.socket.display()
            );
        }
    }

    /// Whether the guest has any device that QEMU attaches over PCI under TCG (every
    /// virtio device, the vsock's vhost-user-vsock-pci included).
    pub fn any_pci(&self) -> bool {
        !self.disks.is_empty()
            || !self.nets.is_empty()
            || self.rng
            || self.virtio_console
            || self.vsock.is_some()
            || !self.virtiofs.is_empty()
    }

    /// These devices, checked before anything starts: fails, on either backend, when an
    /// interface is to join a bridge this host does not have (see
    /// [`Devices::check_bridges`]). Every device works on both accelerators.
    pub fn checked(self) -> anyhow::Result<Devices> {
        self.check_bridges()?;
        Ok(self)
    }

    /// Fails when a bridge an interface is to join is not a Linux bridge in this network
    /// namespace, naming it: checked before anything starts, because under TCG QEMU would
    /// only say that its tap script failed, and on KVM the tap would be made first.
    fn check_bridges(&self) -> anyhow::Result<()> {
        for (i, n) in self.nets.iter().enumerate() {
            if let domboot_vmm::NetBackendConfig::Tap {
                name,
                bridge: Some(bridge),
            } = &n.backend
            {
                tap::check_bridge(bridge)
                    .map_err(|e| anyhow::anyhow!("eth{i} (the tap {name}): {e}"))?;
            }
        }
        Ok(())
    }

    /// The kernel modules a guest needs for these devices when its kernel has the drivers
    /// as modules (Debian's do): both transports, since the accelerator is chosen later.
    pub fn modules(&self) -> Vec<String> {
        let mut m = Vec::new();
        if !self.disks.is_empty()
            || !self.nets.is_empty()
            || self.rng
            || self.virtio_console
            || self.vsock.is_some()
        {
            m.extend(["virtio_mmio", "virtio_pci"].map(String::from));
        }
        if !self.disks.is_empty() {
            m.push("virtio_blk".into());
        }
        if !self.nets.is_empty() {
            m.push("virtio_net".into());
        }
        if self.rng {
            m.push("virtio_rng".into());
        }
        if self.virtio_console {
            m.push("virtio_console".into());
        }
        if self.vsock.is_some() {
            // With its dependencies vsock and vmw_vsock_virtio_transport_common.
            m.push("vmw_vsock_virtio_transport".into());
        }
        m
    }

    /// The KVM backend's configuration of these devices (everything else as
    /// [`domboot_vmm::VmConfig::default`]): what the VMM builds them from, and what decides
    /// their slots ([`Devices::virtio_mmio_words`]).
    pub fn vmm_config(&self) -> domboot_vmm::VmConfig {
        domboot_vmm::VmConfig {
            disks: self
                .disks
                .iter()
                .map(|d| domboot_vmm::DiskConfig {
                    path: d.path.clone(),
                    read_only: d.read_only,
                })
                .collect(),
            rng: self.rng,
            nets: self
                .nets
                .iter()
                .map(|n| domboot_vmm::NetConfig {
                    backend: n.backend.clone(),
                    mac: Some(n.mac),
                })
                .collect(),
            console: if self.virtio_console {
                domboot_vmm::ConsoleKind::Virtio
            } else {
                domboot_vmm::ConsoleKind::Serial
            },
            vsock: self.vsock.as_ref().map(|v| domboot_vmm::VsockConfig {
                cid: v.cid,
                socket: v.socket.clone(),
            }),
            filesystems: self
                .virtiofs
                .iter()
                .map(|(tag, socket)| domboot_vmm::FsConfig {
                    tag: tag.clone(),
                    socket: socket.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// `virtio_mmio.device=...` for each of these devices on the KVM backend, in the order
    /// of the slots the VMM gives them (see [`super::mmio_cmdline`]).
    pub fn virtio_mmio_words(&self) -> anyhow::Result<Vec<String>> {
        Ok(domboot_vmm::virtio_mmio_cmdline(&self.vmm_config())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_options() {
        assert_eq!(parse_net("user"), Ok(NetArg::User { mac: None }));
        assert_eq!(
            parse_net("tap:tap0,mac=52:54:00:00:00:01"),
            Ok(NetArg::Tap {
                name: "tap0".into(),
                mac: Some([0x52, 0x54, 0, 0, 0, 1])
            })
        );
        assert_eq!(parse_net("none"), Ok(NetArg::None));
        for bad in [
            "",
            "tap:",
            "tap:a/b",
            "bridge:br0",
            "user,mac=1",
            "user,speed=10",
            "none,mac=52:54:00:00:00:01",
        ] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rng_comes_with_devices_unless_refused() {
        let disk = DiskArg {
            path: "d.img".into(),
            read_only: false,
        };
        assert!(!Devices::from_args(&[], &[], false, false).rng);
        assert!(Devices::from_args(&[], &[], true, false).rng);
        assert!(Devices::from_args(std::slice::from_ref(&disk), &[], false, false).rng);
        assert!(!Devices::from_args(&[disk], &[], false, true).rng);
        let user = NetArg::User { mac: None };
        let d = Devices::from_args(&[], &[user.clone(), user.clone()], false, false);
        assert!(d.rng && d.nets.len() == 2 && d.nets[0].mac != d.nets[1].mac);
        assert!(
            Devices::from_args(&[], &[user, NetArg::None], false, false)
                .nets
                .is_empty()
        );
        assert!(d.modules().contains(&"virtio_net".to_string()));
    }

    #[test]
    fn vsock_option_and_accelerators() {
        assert_eq!(
            parse_vsock("3,/tmp/v.sock"),
            Ok(VsockArg {
                cid: 3,
                socket: "/tmp/v.sock".into()
            })
        );
        for bad in ["3", "2,/tmp/v", "x,/tmp/v", "4294967295,/tmp/v", "3,"] {
            assert!(parse_vsock(bad).is_err(), "{bad}");
        }
        let d = Devices::default().with_vsock(parse_vsock("3,v.sock").ok());
        assert!(
            d.modules()
                .contains(&"vmw_vsock_virtio_transport".to_string())
        );
        // The same device on both accelerators: nothing to look for first.
        assert_eq!(d.clone().checked().unwrap().vsock, d.vsock);
    }

    #[test]
    fn a_missing_bridge_is_named_before_the_guest_starts() {
        let bridged = NetArg::Bridged {
            tap: "dbtap1.0".into(),
            bridge: "dbnobridge9".into(),
            mac: None,
        };
        let d = Devices::from_args(&[], &[NetArg::User { mac: None }, bridged], false, false);
        let e = d.checked().unwrap_err().to_string();
        assert!(
            e.contains("eth1 (the tap dbtap1.0): no bridge dbnobridge9"),
            "{e}"
        );
    }

    #[test]
    fn a_configuration_vsock_and_rng() {
        let d = std::path::Path::new("/run/user/1/domboot");
        assert_eq!(socket_for_domain(d, "web-1.x"), d.join("web-1.x.vsock"));
        assert_eq!(socket_for_domain(d, "a/b c"), d.join("a_b_c.vsock"));
        assert_eq!(socket_for_domain(d, ""), d.join("domain.vsock"));
        assert_eq!(socket_for_domain(d, ".."), d.join("domain...vsock"));

        let from_file = parse_vsock("5,/run/f.vsock").ok();
        let d = Devices::default().with_config(from_file.clone(), true, false);
        assert!(d.rng && d.vsock_from_config);
        assert_eq!(d.vsock, from_file);
        assert!(
            !Devices::default().with_config(None, true, true).rng,
            "--no-rng wins"
        );
        let cli = parse_vsock("7,/tmp/c.vsock").ok();
        let d = Devices::default()
            .with_vsock(cli.clone())
            .with_config(from_file, false, false);
        assert_eq!(d.vsock, cli, "--vsock wins");
        assert!(!d.vsock_from_config && !d.rng);
    }
}
