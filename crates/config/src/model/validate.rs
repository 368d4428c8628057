//! Semantic checks before a domain is built or run, and the list of what domboot cannot
//! honour yet (so `run` can warn, or fail with `--strict`).
use super::{CharKind, DomainConfig, GuestType, LifecycleAction};
use crate::error::{ConfigError, Span, Warning};
use std::fmt;
use std::path::{Path, PathBuf};

/// The most vCPUs a domain may have (KVM's limit on current Linux).
pub const MAX_VCPUS: u32 = 1024;

/// Resolve a path from a configuration file against the folder that holds the file.
pub fn resolve_path(base_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// An item of the configuration that domboot keeps but does not run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Which item: `graphics[0] (vnc)`, `interface[0] (bridge xenbr0)`, `boot.bootloader`.
    pub item: String,
    /// What domboot does instead.
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.reason)
    }
}

impl DomainConfig {
    /// Check the configuration means something bootable. Relative kernel and initrd paths
    /// are resolved against `base_dir` (the configuration file's folder). `source` names
    /// the file in messages. Returns warnings for what is odd but harmless.
    pub fn validate(&self, base_dir: &Path, source: &str) -> Result<Vec<Warning>, ConfigError> {
        let err = |key: &str, msg: String| ConfigError::semantic(Span::file(source), key, msg);
        let mut warnings = Vec::new();
        let warn =
            |w: &mut Vec<Warning>, msg: String| w.push(Warning::new(Span::file(source), msg));

        if self.name.trim().is_empty() {
            return Err(err("name", "the domain needs a name".into()));
        }
        if let Some(m) = self.memory {
            if m.kib() == 0 {
                return Err(err("memory", "must be more than 0".into()));
            }
        }
        if let Some(max) = self.max_memory {
            if max.kib() == 0 {
                return Err(err("max_memory", "must be more than 0".into()));
            }
            if self.memory.is_some_and(|m| m > max) {
                return Err(err(
                    "max_memory",
                    format!(
                        "{max} is below memory ({})",
                        self.memory.map(|m| m.to_string()).unwrap_or_default()
                    ),
                ));
            }
        }
        if self.vcpus == Some(0) {
            return Err(err("vcpus", "must be at least 1".into()));
        }
        if self.max_vcpus == Some(0) {
            return Err(err("max_vcpus", "must be at least 1".into()));
        }
        let limit = self.max_vcpus.unwrap_or(MAX_VCPUS).min(MAX_VCPUS);
        if let Some(v) = self.vcpus {
            if v > limit {
                let what = if self.max_vcpus.is_some_and(|m| m <= MAX_VCPUS) {
                    "max_vcpus"
                } else {
                    "the maximum domboot supports"
                };
                return Err(err("vcpus", format!("{v} is above {what} ({limit})")));
            }
        }
        if let Some(m) = self.max_vcpus {
            if m > MAX_VCPUS {
                return Err(err(
                    "max_vcpus",
                    format!("{m} is above the maximum domboot supports ({MAX_VCPUS})"),
                ));
            }
        }

        let boot = &self.boot;
        if let (Some(k), Some(l)) = (&boot.kernel, &boot.loader) {
            if resolve_path(base_dir, k) == resolve_path(base_dir, l) {
                return Err(err(
                    "boot.kernel",
                    format!(
                        "`{k}` is also the loader; a kernel and its firmware cannot be one file"
                    ),
                ));
            }
        }
        if self.guest_type != GuestType::Hvm {
            if let Some(l) = &boot.loader {
                return Err(err(
                    "boot.loader",
                    format!(
                        "a {} guest boots its kernel without firmware; `{l}` conflicts (use type = \"hvm\" or drop the loader)",
                        self.guest_type.as_str()
                    ),
                ));
            }
        }
        match &boot.kernel {
            Some(k) => {
                check_file(base_dir, k).map_err(|m| err("boot.kernel", m))?;
                if let Some(i) = &boot.initrd {
                    check_file(base_dir, i).map_err(|m| err("boot.initrd", m))?;
                }
            }
            // A boot loader (pygrub) boots the first disk's entry: domboot reads the disk.
            None if boot.bootloader.is_some()
                && self.disks.iter().any(|d| d.attach_problem().is_none()) => {}
            None if boot.bootloader.is_some() => {
                return Err(err(
                    "boot.kernel",
                    "no kernel, and the boot loader has no disk domboot can read (a raw image \
                     or block device) to find one on"
                        .into(),
                ));
            }
            None => {
                return Err(err(
                    "boot.kernel",
                    "no kernel: domboot boots a kernel directly, or with `bootloader` the first \
                     disk's boot loader entry (firmware boots are not supported)"
                        .into(),
                ));
            }
        }
        if boot.cmdline.is_some() && boot.root.is_some() {
            warn(
                &mut warnings,
                format!(
                    "boot.root and boot.cmdline combine into `{}`",
                    boot.effective_cmdline().unwrap_or_default()
                ),
            );
        }
        if self.memory.is_none() {
            warn(
                &mut warnings,
                "memory is not set; the default applies".into(),
            );
        }
        Ok(warnings)
    }

    /// Everything in the configuration that domboot keeps for conversion but does not
    /// honour when it runs the domain, each naming the item.
    pub fn unsupported_items(&self) -> Vec<Unsupported> {
        let mut out = Vec::new();
        let mut add = |item: String, reason: &str| {
            out.push(Unsupported {
                item,
                reason: reason.to_string(),
            })
        };
        // Without a kernel domboot boots the first disk's boot loader entry itself, as
        // pygrub would; with one, the kernel boots directly.
        if let (Some(b), Some(_)) = (&self.boot.bootloader, &self.boot.kernel) {
            add(
                format!("boot.bootloader ({b})"),
                "not run: the kernel given boots directly",
            );
        }
        if let Some(l) = &self.boot.loader {
            add(
                format!("boot.loader ({l})"),
                "firmware is not loaded; the kernel boots directly",
            );
        }
        if let Some(f) = &self.boot.firmware {
            add(
                format!("boot.firmware ({f})"),
                "firmware is not loaded; the kernel boots directly",
            );
        }
        if !self.boot.order.is_empty() {
            add(
                "boot.order".into(),
                "ignored: no firmware boots from devices",
            );
        }
        if let Some(e) = &self.emulator {
            add(format!("emulator ({e})"), "no device model is started");
        }
        if self.max_memory.is_some() {
            add(
                "max_memory".into(),
                "no ballooning: the guest gets `memory`",
            );
        }
        for (i, d) in self.disks.iter().enumerate() {
            if let Some(why) = d.attach_problem() {
                let what = d.source.as_deref().unwrap_or("empty");
                add(
                    format!("disk[{i}] ({} {} {what})", d.device.as_str(), d.target),
                    why,
                );
            }
        }
        for (i, n) in self.interfaces.iter().enumerate() {
            let what = match &n.source {
                Some(s) => format!("{} {s}", n.kind),
                None => n.kind.clone(),
            };
            match n.attach_problem() {
                Some(why) => add(format!("interface[{i}] ({what})"), why),
                None => {
                    for (part, why) in n.unapplied() {
                        add(format!("interface[{i}] ({what}) {part}"), why);
                    }
                }
            }
        }
        for (i, r) in self.rngs.iter().enumerate() {
            if let Some(why) = r.attach_problem() {
                let what = match &r.source {
                    Some(s) => format!("{} {s}", r.backend),
                    None => r.backend.clone(),
                };
                add(format!("rng[{i}] ({what})"), why);
            }
        }
        if let Some(v) = &self.vsock
            && let Some(why) = v.attach_problem()
        {
            let cid = v.cid.map_or("auto".to_string(), |c| c.to_string());
            add(format!("vsock (cid {cid})"), why);
        }
        for (i, g) in self.graphics.iter().enumerate() {
            add(
                format!("graphics[{i}] ({})", g.kind),
                "no display is provided; use the serial console",
            );
        }
        for (i, s) in self.serials.iter().enumerate() {
            if !matches!(
                s.kind,
                CharKind::Pty | CharKind::Stdio | CharKind::File | CharKind::Null
            ) {
                add(
                    format!("serial[{i}] ({})", s.kind.as_str()),
                    "only stdio, pty, file and null serial ports are provided",
                );
            }
        }
        for (i, input) in self.inputs.iter().enumerate() {
            add(
                format!("input[{i}] ({})", input.kind),
                "no input devices are emulated",
            );
        }
        for (key, action) in [
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
        ] {
            if let Some(a) = action {
                if a != LifecycleAction::Destroy {
                    add(
                        format!("{key} ({})", a.as_str()),
                        "domboot exits when the guest stops",
                    );
                }
            }
        }
        out
    }
}

fn check_file(base_dir: &Path, path: &str) -> Result<(), String> {
    let p = resolve_path(base_dir, path);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("`{}` is not a file", p.display())),
        Err(e) => Err(format!("`{}`: {e}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Graphics, Interface, MemSize};

    fn bootable(dir: &Path) -> DomainConfig {
        std::fs::write(dir.join("vmlinuz"), b"k").ok();
        let mut c = DomainConfig {
            name: "t".into(),
            memory: MemSize::from_mib(256),
            vcpus: Some(1),
            ..Default::default()
        };
        c.boot.kernel = Some("vmlinuz".into());
        c
    }

    fn key_of(r: Result<Vec<Warning>, ConfigError>) -> Option<String> {
        r.err().and_then(|e| e.key().map(str::to_string))
    }

    #[test]
    fn relative_kernel_resolves_against_config_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = bootable(dir.path());
        assert_eq!(c.validate(dir.path(), "t.toml"), Ok(vec![]));
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let e = c.validate(elsewhere.path(), "t.toml").err();
        assert_eq!(e.as_ref().and_then(|e| e.key()), Some("boot.kernel"));
        assert!(
            e.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("vmlinuz")
        );
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut c = bootable(d);
        c.memory = Some(MemSize::from_kib(0));
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("memory"));

        let mut c = bootable(d);
        c.vcpus = Some(4);
        c.max_vcpus = Some(2);
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("vcpus"));
        c.max_vcpus = None;
        c.vcpus = Some(MAX_VCPUS + 1);
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("vcpus"));
        c.vcpus = Some(0);
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("vcpus"));

        let mut c = bootable(d);
        c.boot.loader = Some("/usr/lib/xen/boot/hvmloader".into());
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("boot.loader"));
        c.guest_type = GuestType::Hvm;
        assert_eq!(c.validate(d, "t").map(|w| w.len()), Ok(0));
        c.boot.loader = Some(d.join("vmlinuz").display().to_string());
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("boot.kernel"));

        let mut c = bootable(d);
        c.boot.initrd = Some("missing.img".into());
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("boot.initrd"));

        let mut c = bootable(d);
        c.max_memory = MemSize::from_mib(128);
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("max_memory"));

        let mut c = bootable(d);
        c.name = String::new();
        assert_eq!(key_of(c.validate(d, "t")).as_deref(), Some("name"));
    }

    /// The items `c.unsupported_items()` names.
    fn items(c: &DomainConfig) -> Vec<String> {
        c.unsupported_items().into_iter().map(|u| u.item).collect()
    }

    #[test]
    fn unsupported_items_are_named() {
        let mut c = DomainConfig::default();
        c.graphics.push(Graphics {
            kind: "vnc".into(),
            ..Default::default()
        });
        c.interfaces.push(Interface {
            kind: "bridge".into(),
            source: Some("xenbr0".into()),
            ..Default::default()
        });
        c.interfaces.push(Interface {
            kind: "network".into(),
            source: Some("default".into()),
            ..Default::default()
        });
        c.on_crash = Some(LifecycleAction::Destroy);
        let items = items(&c);
        // The bridge is attached (a tap on it); libvirt's virtual network is not.
        assert_eq!(
            items,
            ["interface[1] (network default)", "graphics[0] (vnc)"]
        );
    }

    #[test]
    fn what_an_attached_interface_asks_for_and_does_not_get_is_named() {
        let mut c = DomainConfig::default();
        let bridge = |script: Option<&str>| Interface {
            kind: "bridge".into(),
            source: Some("br0".into()),
            script: script.map(String::from),
            ..Default::default()
        };
        // vif-bridge's work is what domboot does: nothing to say.
        c.interfaces
            .push(bridge(Some("/etc/xen/scripts/vif-bridge")));
        c.interfaces.push(bridge(Some("vif-route")));
        c.interfaces.push(Interface {
            kind: "ethernet".into(),
            script: Some("/etc/qemu-ifup".into()),
            ip: Some("10.0.0.5 10.0.0.6".into()),
            ..Default::default()
        });
        // An Open vSwitch port with a VLAN tag is not attached at all (one item).
        c.interfaces.push(Interface {
            kind: "bridge".into(),
            source: Some("ovsbr0".into()),
            vlan: vec![42],
            virtualport: Some("openvswitch".into()),
            script: Some("vif-openvswitch".into()),
            ..Default::default()
        });
        let items = items(&c);
        assert_eq!(
            items,
            [
                "interface[1] (bridge br0) script vif-route",
                "interface[2] (ethernet) script /etc/qemu-ifup",
                "interface[2] (ethernet) ip 10.0.0.5 10.0.0.6",
                "interface[3] (bridge ovsbr0)",
            ]
        );
        assert!(c.unsupported_items()[3].reason.contains("Open vSwitch"));
    }

    #[test]
    fn names_hypervisors_generate_are_not_reused() {
        let named = |t: &str| Interface {
            kind: "bridge".into(),
            target: Some(t.into()),
            ..Default::default()
        };
        for generated in ["vnet0", "macvtap3", "macvlan1", "vif5.0"] {
            assert_eq!(named(generated).tap_name(), None, "{generated}");
        }
        for own in ["tap-web", "vif-web", "dbsxp0", "vif5"] {
            assert_eq!(named(own).tap_name(), Some(own));
        }
        assert_eq!(Interface::default().tap_name(), None);
    }
}
