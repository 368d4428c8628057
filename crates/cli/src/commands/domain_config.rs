//! `domboot run CONFIG` / `build CONFIG` / `plan CONFIG`: read a domain configuration in
//! any of the four syntaxes, let command-line options override it, validate it, and report
//! what domboot keeps but cannot honour yet (warnings, or an error with --strict).

use anyhow::{Context, bail};
use domboot_config::{DomainConfig, GuestType, Syntax};
use std::path::{Path, PathBuf};

/// Command-line values that override the configuration's.
#[derive(Default)]
pub struct Overrides<'a> {
    pub kernel: Option<&'a Path>,
    pub initrds: &'a [PathBuf],
    pub cmdline: Option<&'a str>,
}

/// `bootloader = "pygrub"` (xl/xm, with `bootargs`/`bootloader_args`) or libvirt's
/// `<bootloader>`: domboot reads the first disk itself, as pygrub would.
#[derive(Debug)]
pub struct DiskBootConfig {
    pub disk: PathBuf,
    /// pygrub's `--entry=N|TITLE`.
    pub entry: Option<String>,
    /// `root`/`extra`, which pygrub appends to the entry's command line.
    pub append: Option<String>,
}

/// What the builder needs from a configuration.
#[derive(Debug)]
pub struct FromConfig {
    /// The kernel to boot; `None` when the file has a boot loader (pygrub) and no kernel:
    /// then [`FromConfig::disk_boot`] says what to boot.
    pub kernel: Option<PathBuf>,
    /// With a boot loader and no kernel: the disk whose boot loader's entry to boot.
    pub disk_boot: Option<DiskBootConfig>,
    pub initrds: Vec<PathBuf>,
    pub cmdline: Option<String>,
    pub memory: Option<u64>,
    pub vcpus: Option<u32>,
    pub pvh: bool,
    /// The disks `run` attaches, in the file's order (the first is vda).
    pub disks: Vec<crate::commands::boot_entries::DiskArg>,
    /// What `run` says when it attaches [`FromConfig::disks`] (a target that becomes
    /// another name), not said when `--disk` replaces them.
    pub disk_notes: Vec<String>,
    /// The interfaces `run` attaches, in the file's order (the first is eth0).
    pub nets: Vec<crate::run::devices::NetArg>,
    /// What `run` says when it attaches [`FromConfig::nets`] (a NIC model that becomes
    /// virtio-net, a tap name not reused), not said when `--net` replaces them.
    pub net_notes: Vec<String>,
    /// The file asks for a random number generator `run` can give (libvirt `<rng>`);
    /// without one, `run`'s default applies.
    pub rng: bool,
    /// libvirt `<vsock>`: the guest's CID on a Unix socket named after the domain.
    pub vsock: Option<crate::run::devices::VsockArg>,
}

pub fn load(path: &Path, over: &Overrides<'_>, strict: bool) -> anyhow::Result<FromConfig> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {source}"))?;
    let syntax = domboot_config::detect(&text, &source).with_context(|| {
        format!(
            "{source}: cannot tell which syntax this is (TOML, libvirt XML, xl/xm or xend SEXPR)"
        )
    })?;
    let (mut cfg, warnings) = domboot_config::parse_with_warnings(&text, syntax, &source)?;
    for w in &warnings {
        let level = if strict && w.typo_of.is_some() {
            "error"
        } else {
            "warning"
        };
        eprintln!("domboot: {level}: {w}");
    }
    let typos = warnings.iter().filter(|w| w.typo_of.is_some()).count();
    if strict && typos > 0 {
        bail!(
            "{source}: {typos} name(s) that look like typos (--strict); fix them or drop --strict"
        );
    }
    apply(&mut cfg, over);
    let base = path.parent().unwrap_or(Path::new("."));
    for w in cfg.validate(base, &source)? {
        eprintln!("domboot: warning: {w}");
    }
    let unsupported = cfg.unsupported_items();
    for u in &unsupported {
        eprintln!(
            "domboot: {}: {source}: {} is not supported yet: {}",
            if strict { "error" } else { "warning" },
            u.item,
            u.reason
        );
    }
    if strict && !unsupported.is_empty() {
        bail!(
            "{source}: {} item(s) domboot cannot honour yet (--strict); remove them or drop --strict",
            unsupported.len()
        );
    }
    let resolve = |p: &str| domboot_config::resolve_path(base, p);
    let (disks, disk_notes) = disks(&cfg, base, &source);
    let (nets, net_notes) = interfaces(&cfg, &source)?;
    let kernel = cfg.boot.kernel.as_deref().map(resolve);
    let disk_boot = match (&kernel, &cfg.boot.bootloader) {
        (None, Some(loader)) => Some(disk_boot(&cfg, loader, &disks, &source)?),
        (None, None) => bail!("{source}: no kernel (set one in the file or with --kernel)"),
        (Some(_), _) => None,
    };
    let mut initrds: Vec<PathBuf> = over.initrds.to_vec();
    if initrds.is_empty()
        && let Some(i) = &cfg.boot.initrd
    {
        initrds.push(resolve(i));
    }
    let memory = match cfg.memory {
        Some(m) => Some(
            m.bytes()
                .with_context(|| format!("{source}: memory is too large"))?,
        ),
        None => None,
    };
    if syntax == Syntax::Xl && cfg.boot.loader.is_some() && cfg.boot.kernel.is_some() {
        eprintln!(
            "domboot: note: {source}: booting the kernel directly; the firmware loader is kept but not run"
        );
    }
    Ok(FromConfig {
        kernel,
        initrds,
        cmdline: cfg.boot.effective_cmdline(),
        memory,
        vcpus: cfg.vcpus,
        pvh: cfg.guest_type == GuestType::Pvh,
        disks,
        disk_notes,
        nets,
        net_notes,
        disk_boot,
        rng: cfg.rngs.iter().any(|r| r.attach_problem().is_none()),
        vsock: match &cfg.vsock {
            Some(v) if v.attach_problem().is_none() => Some(crate::run::devices::VsockArg {
                cid: v.guest_cid(),
                socket: crate::run::devices::config_vsock_socket(&cfg.name)?,
            }),
            _ => None,
        },
    })
}

/// What a boot loader (pygrub) in the file boots: the first disk's entry chosen by its
/// `--entry=` argument (or the default), with `root`/`extra` appended as pygrub does.
fn disk_boot(
    cfg: &DomainConfig,
    loader: &str,
    disks: &[crate::commands::boot_entries::DiskArg],
    source: &str,
) -> anyhow::Result<DiskBootConfig> {
    let disk = disks.first().with_context(|| {
        format!(
            "{source}: bootloader {loader:?} boots from the guest's first disk, and the file \
             has none domboot can read (give a kernel, or a raw disk)"
        )
    })?;
    let mut entry = None;
    let args = cfg.boot.bootloader_args.as_deref().unwrap_or("");
    let mut words = args.split_whitespace();
    while let Some(w) = words.next() {
        match w.split_once('=') {
            Some(("--entry", v)) => entry = Some(v.to_string()),
            None if w == "--entry" || w == "-e" => entry = words.next().map(String::from),
            _ => eprintln!(
                "domboot: warning: {source}: bootloader argument {w:?} is not used (domboot reads \
                 the disk itself; only --entry=N|TITLE chooses)"
            ),
        }
    }
    Ok(DiskBootConfig {
        disk: disk.path.clone(),
        entry,
        append: cfg.boot.effective_cmdline(),
    })
}

/// The configuration's disks domboot can attach (raw files and block devices; cdroms
/// read-only), in order, and the notes to say when they are attached. The others were
/// named by `unsupported_items`.
fn disks(
    cfg: &DomainConfig,
    base: &Path,
    source: &str,
) -> (Vec<crate::commands::boot_entries::DiskArg>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for d in &cfg.disks {
        let (Some(path), None) = (&d.source, d.attach_problem()) else {
            continue;
        };
        let read_only = d.readonly || d.device == domboot_config::DiskDevice::Cdrom;
        let name = crate::run::devices::guest_disk_name(out.len());
        if d.target != name {
            notes.push(format!(
                "domboot: note: {source}: disk {} ({path}) is the guest's virtio disk {name}",
                d.target
            ));
        }
        out.push(crate::commands::boot_entries::DiskArg {
            path: domboot_config::resolve_path(base, path),
            read_only,
        });
    }
    (out, notes)
}

/// The configuration's interfaces domboot can attach: a bridge as a tap on it (named as
/// the file's `vifname`/`<target dev>`, else one domboot makes up), an `ethernet` as the
/// tap it names, `user` as the user-mode network; each with the file's MAC. Each is a
/// virtio-net NIC whatever model the file names. With them, the notes to say when they
/// are attached.
fn interfaces(
    cfg: &DomainConfig,
    source: &str,
) -> anyhow::Result<(Vec<crate::run::devices::NetArg>, Vec<String>)> {
    use crate::run::devices::NetArg;
    use domboot_vmm::devices::virtio::net::tap;
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (i, n) in cfg.interfaces.iter().enumerate() {
        if n.attach_problem().is_some() {
            continue;
        }
        let mac = match &n.mac {
            Some(m) => Some(domboot_vmm::devices::virtio::net::parse_mac(m).with_context(|| {
                format!("{source}: interface[{i}]: mac {m:?} is not a unicast MAC like 52:54:00:12:34:56")
            })?),
            None => None,
        };
        if let Some(t) = n.tap_name()
            && !tap::valid_name(t)
        {
            bail!(
                "{source}: interface[{i}]: tap name {t:?}: 1 to 15 characters of letters, \
                 digits, '-', '_' and '.'"
            );
        }
        // Linux names are at most 15 bytes: "dbtap" + pid (7 digits at most) + "." + index.
        let tap = n
            .tap_name()
            .map(String::from)
            .unwrap_or_else(|| format!("dbtap{}.{i}", std::process::id() % 10_000_000));
        if let Some(t) = n.target.as_deref().filter(|_| n.tap_name().is_none()) {
            notes.push(format!(
                "domboot: note: {source}: interface[{i}]: {t} is a name a hypervisor gave a \
                 running domain's interface; the tap is {tap}"
            ));
        }
        let eth = format!("eth{}", out.len());
        if let Some(model) = n.model.as_deref().filter(|m| *m != "virtio") {
            notes.push(format!(
                "domboot: note: {source}: interface[{i}] (model {model}) is the guest's \
                 virtio-net {eth}"
            ));
        }
        out.push(match (n.kind.as_str(), &n.source) {
            ("bridge", Some(bridge)) => NetArg::Bridged {
                tap,
                bridge: bridge.clone(),
                mac,
            },
            ("user", _) => NetArg::User { mac },
            _ => NetArg::Tap { name: tap, mac },
        });
    }
    Ok((out, notes))
}

/// Command-line options win over the file.
fn apply(cfg: &mut DomainConfig, over: &Overrides<'_>) {
    if let Some(k) = over.kernel {
        cfg.boot.kernel = Some(k.display().to_string());
    }
    if let Some(first) = over.initrds.first() {
        cfg.boot.initrd = Some(first.display().to_string());
    }
    if let Some(c) = over.cmdline {
        cfg.boot.cmdline = Some(c.to_string());
        cfg.boot.root = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::devices::NetArg;
    use domboot_config::Interface;

    fn nic(kind: &str, source: Option<&str>, target: Option<&str>) -> Interface {
        Interface {
            kind: kind.into(),
            source: source.map(String::from),
            target: target.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn interfaces_become_taps_bridged_taps_and_user_networks() {
        let mut cfg = DomainConfig {
            interfaces: vec![
                nic("bridge", Some("br0"), Some("tap-web")),
                // A name libvirt gave a running domain's tap is not taken over.
                nic("bridge", Some("br0"), Some("vnet3")),
                nic("user", None, None),
                // Left out (and warned about by unsupported_items).
                nic("direct", Some("eth0"), None),
                nic("ethernet", None, Some("mytap0")),
            ],
            ..Default::default()
        };
        cfg.interfaces[2].mac = Some("52:54:00:00:00:07".into());
        let (nets, notes) = interfaces(&cfg, "t.xml").unwrap();
        assert_eq!(nets.len(), 4, "{nets:?}");
        assert!(
            matches!(&nets[0], NetArg::Bridged { tap, bridge, mac: None } if tap == "tap-web" && bridge == "br0")
        );
        assert!(
            matches!(&nets[1], NetArg::Bridged { tap, .. } if tap.starts_with("dbtap") && tap.ends_with(".1"))
        );
        assert_eq!(
            nets[2],
            NetArg::User {
                mac: Some([0x52, 0x54, 0, 0, 0, 7])
            }
        );
        assert!(matches!(&nets[3], NetArg::Tap { name, .. } if name == "mytap0"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("interface[1]: vnet3 is a name"),
            "{notes:?}"
        );

        cfg.interfaces = vec![nic("bridge", Some("br0"), Some("a-name-far-too-long"))];
        let e = interfaces(&cfg, "t.xml").unwrap_err().to_string();
        assert!(e.contains("t.xml: interface[0]: tap name"), "{e}");
        cfg.interfaces[0].target = None;
        cfg.interfaces[0].mac = Some("01:00:5e:00:00:01".into());
        let e = interfaces(&cfg, "t.xml").unwrap_err().to_string();
        assert!(e.contains("not a unicast MAC"), "{e}");
    }
}
