//! Property: for every syntax, write → read gives the same model, for every model the
//! syntax can express. `expressible` says precisely what each syntax cannot say (the
//! generator already keeps to values every syntax can spell: no commas in paths, known
//! image formats after an xm driver prefix, consistent character devices).
use domboot_config::*;
use domboot_config::{Rng, Vsock};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,7}"
}

fn path() -> impl Strategy<Value = String> {
    "(/[a-z0-9_.-]{1,8}){1,3}".prop_filter("not firmware", |p| !is_firmware_path(p))
}

/// Free text: quotes, backslashes, spaces, a little Unicode; no control characters
/// (XML 1.0 cannot carry them).
fn text() -> impl Strategy<Value = String> {
    "[ -~é✓]{0,24}"
}

fn mem() -> impl Strategy<Value = MemSize> {
    (1u64..(64 << 20)).prop_map(MemSize::from_kib)
}

fn action() -> impl Strategy<Value = LifecycleAction> {
    select(LifecycleAction::ALL.to_vec())
}

fn boot() -> impl Strategy<Value = Boot> {
    (
        (of(path()), of(word()), of(path()), of(path())),
        (of(text()), of(text()), of(path()), of(text())),
        vec(
            select(vec![
                BootDevice::Hd,
                BootDevice::Cdrom,
                BootDevice::Fd,
                BootDevice::Network,
            ]),
            0..3,
        ),
    )
        .prop_map(
            |(
                (loader, firmware, kernel, initrd),
                (cmdline, root, bootloader, bootloader_args),
                order,
            )| Boot {
                loader,
                firmware,
                kernel,
                initrd,
                cmdline,
                root,
                bootloader,
                bootloader_args,
                order,
            },
        )
}

const NAMED: [&str; 5] = ["acpi", "apic", "pae", "hap", "viridian"];

fn features() -> impl Strategy<Value = Features> {
    (
        any::<[bool; 5]>(),
        proptest::collection::btree_set(word(), 0..3),
        any::<[bool; 5]>(),
        proptest::collection::btree_set(word(), 0..2),
    )
        .prop_map(|(b, other, off_named, off_other)| {
            let mut f = Features::default();
            for ((name, on), off) in NAMED.into_iter().zip(b).zip(off_named) {
                f.set(name, on);
                if off && !on {
                    f.off.insert(name.to_string());
                }
            }
            f.other = other
                .into_iter()
                .filter(|o| !NAMED.contains(&o.as_str()))
                .collect();
            f.off.extend(
                off_other
                    .into_iter()
                    .filter(|o| !NAMED.contains(&o.as_str()) && !f.other.contains(o)),
            );
            f
        })
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        Just(Clock::Utc),
        Just(Clock::Localtime),
        (any::<i32>(), any::<bool>()).prop_map(|(a, local)| Clock::Variable {
            adjustment: a.into(),
            basis: if local {
                ClockBasis::Localtime
            } else {
                ClockBasis::Utc
            },
        }),
        word().prop_map(|timezone| Clock::Timezone { timezone }),
    ]
}

const DRIVERS: [&str; 7] = ["file", "phy", "tap", "tap2", "qemu", "ioemu", "tapdisk"];
const FORMATS: [&str; 6] = ["raw", "qcow", "qcow2", "vhd", "qed", "aio"];

fn disk() -> impl Strategy<Value = Disk> {
    (
        (
            of(path()),
            any::<bool>(),
            of(select(DRIVERS.to_vec())),
            of(select(FORMATS.to_vec())),
        ),
        ("(hd|sd|xvd|vd|fd)[a-d]", of(word())),
        (
            select(vec![
                DiskDevice::Disk,
                DiskDevice::Cdrom,
                DiskDevice::Floppy,
            ]),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((source, block, driver, format), (target, bus), (device, readonly, shareable))| {
                Disk {
                    source,
                    kind: if block {
                        DiskKind::Block
                    } else {
                        DiskKind::File
                    },
                    driver: driver.map(str::to_string),
                    format: format.map(str::to_string),
                    target,
                    bus,
                    device,
                    readonly,
                    shareable,
                }
            },
        )
}

fn mac() -> impl Strategy<Value = String> {
    "[0-9a-f]{2}(:[0-9a-f]{2}){5}"
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        select(vec!["bridge", "network", "ethernet", "user"]),
        of(word()),
        of(mac()),
        of(word()),
        (
            of(word()),
            of(vec(
                "[0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9a-f]{1,4}::[0-9a-f]{1,4}",
                1..4,
            )),
            of(word()),
        ),
        (vec(1u32..4095, 0..3), any::<bool>()),
    )
        .prop_map(
            |(kind, source, mac, script, (model, ip, target), (vlan, trunk))| {
                // VLAN tags belong to an Open vSwitch bridge.
                let ovs = kind == "bridge" && source.is_some() && !vlan.is_empty();
                Interface {
                    kind: kind.to_string(),
                    source,
                    mac,
                    script,
                    model,
                    ip: ip.map(|ips| ips.join(" ")),
                    target,
                    vlan: if ovs { vlan } else { Vec::new() },
                    vlan_trunk: ovs && trunk,
                    virtualport: ovs.then(|| "openvswitch".to_string()),
                }
            },
        )
}

fn chardev(console: bool) -> impl Strategy<Value = CharDev> {
    (
        select(CharKind::ALL.to_vec()),
        path(),
        of(word()),
        "[0-9]{1,5}",
        any::<bool>(),
        any::<bool>(),
        of(word()),
        of((of(word()), "[0-9]{1,5}")),
    )
        .prop_map(
            move |(kind, path, host, service, listen, telnet, target, bind)| {
                let mut d = CharDev {
                    kind,
                    target: if console { target } else { None },
                    ..Default::default()
                };
                match kind {
                    CharKind::Pty | CharKind::Null | CharKind::Stdio | CharKind::Vc => {}
                    CharKind::File | CharKind::Dev | CharKind::Pipe => d.path = Some(path),
                    CharKind::Unix => {
                        d.path = Some(path);
                        d.listen = listen;
                    }
                    CharKind::Tcp | CharKind::Udp => {
                        d.host = host;
                        d.service = Some(service);
                        d.listen = listen && kind == CharKind::Tcp;
                        d.telnet = telnet && kind == CharKind::Tcp;
                        if let (CharKind::Udp, Some((h, p))) = (kind, bind) {
                            d.bind_host = h;
                            d.bind_service = Some(p);
                        }
                    }
                }
                d
            },
        )
}

fn graphics() -> impl Strategy<Value = Graphics> {
    (
        select(vec!["vnc", "sdl", "spice", "egl-headless"]),
        (of(5800u32..6000), any::<bool>()),
        (of(word()), of(word()), of(word()), of(word()), of(path())),
    )
        .prop_map(
            |(kind, (port, autoport), (listen, passwd, keymap, display, xauth))| Graphics {
                kind: kind.to_string(),
                port,
                autoport,
                listen,
                passwd,
                keymap,
                display,
                xauth,
            },
        )
}

fn input() -> impl Strategy<Value = Input> {
    (
        select(vec!["mouse", "tablet", "keyboard"]),
        of(select(vec!["ps2", "usb", "xen", "virtio"])),
    )
        .prop_map(|(k, b)| Input {
            kind: k.to_string(),
            bus: b.map(str::to_string),
        })
}

fn rng() -> impl Strategy<Value = Rng> {
    (
        of(select(vec!["virtio", "other"])),
        select(vec!["random", "builtin", "egd"]),
        of(select(vec!["/dev/urandom", "/dev/random", "/dev/hwrng"])),
    )
        .prop_map(|(m, b, s)| Rng {
            model: m.map(str::to_string),
            backend: b.to_string(),
            source: s.map(str::to_string),
        })
}

fn vsock() -> impl Strategy<Value = Vsock> {
    (
        of(0u64..10_000_000_000),
        of(select(vec!["virtio", "other"])),
    )
        .prop_map(|(cid, m)| Vsock {
            cid,
            model: m.map(str::to_string),
        })
}

prop_compose! {
    fn config()(
        (name, uuid, description, hypervisor, guest_type, arch, machine) in (
            word(), of(any::<[u8; 16]>().prop_map(Uuid)), of(text()), of(word()),
            select(vec![GuestType::Pv, GuestType::Hvm, GuestType::Pvh]), of(word()), of(word()),
        ),
        (memory, extra_mem, vcpus, extra_vcpus) in (of(mem()), of(1u64..(1 << 20)), of(1u32..64), of(1u32..64)),
        (on_poweroff, on_reboot, on_crash, emulator) in (of(action()), of(action()), of(action()), of(path())),
        boot in boot(),
        features in features(),
        clock in of(clock()),
        disks in vec(disk(), 0..3),
        interfaces in vec(interface(), 0..3),
        serials in vec(chardev(false), 0..3),
        port_steps in vec(1u32..3, 3),
        consoles in vec(chardev(true), 0..2),
        graphics in vec(graphics(), 0..3),
        inputs in vec(input(), 0..3),
        (rngs, vsock) in (vec(rng(), 0..2), of(vsock())),
    ) -> DomainConfig {
        let mut c = DomainConfig {
            name, uuid, description, hypervisor, guest_type, arch, machine,
            memory,
            max_memory: memory.zip(extra_mem).map(|(m, e)| MemSize::from_kib(m.kib() + e)),
            vcpus,
            max_vcpus: vcpus.zip(extra_vcpus).map(|(v, e)| v + e),
            on_poweroff, on_reboot, on_crash, emulator, boot, features, clock,
            disks, interfaces, serials, consoles, graphics, inputs, rngs, vsock,
        };
        // A domain's disks have distinct guest device names.
        let mut seen = std::collections::HashSet::new();
        c.disks.retain(|d| seen.insert(d.target.clone()));
        // Serial ports in increasing order, some with gaps (xl's "none" places).
        let mut port = 0;
        for (s, step) in c.serials.iter_mut().zip(port_steps) {
            port += step - 1;
            s.port = Some(port);
            port += 1;
        }
        c.normalize();
        c
    }
}

/// What `syntax` keeps of `c`: the model a write → read must give back.
fn expressible(c: &DomainConfig, syntax: Syntax) -> DomainConfig {
    let mut c = c.clone();
    let hvm_without_firmware =
        c.guest_type == GuestType::Hvm && c.boot.loader.is_none() && c.boot.firmware.is_none();
    if syntax == Syntax::Xml {
        // libvirt's defaults, written out and read back: Xen's hvmloader for an HVM Xen
        // guest; an HVM Xen guest's lone console is serial port 0; the console libvirt
        // implies is left out of the model.
        if hvm_without_firmware && c.hypervisor.is_none() {
            c.boot.loader = Some(libvirt_xml::XEN_HVMLOADER.into());
        }
        c.console_implies_serial();
        c.drop_implied_console();
    }
    if matches!(syntax, Syntax::Xl | Syntax::Sexpr) {
        // Neither xl nor xend has random number generators or vsock devices.
        c.rngs.clear();
        c.vsock = None;
    }
    if syntax == Syntax::Sexpr {
        // xend's default on_crash (restart) is not the model's (destroy): it is written.
        c.on_crash.get_or_insert(LifecycleAction::Destroy);
        // An HVM guest's clock reads back as libvirt reads xend's: a variable offset.
        if c.guest_type == GuestType::Hvm {
            c.clock = sexpr::hvm_clock(c.clock.as_ref());
        }
        if hvm_without_firmware && c.hypervisor.is_none() {
            c.boot.loader = Some(libvirt_xml::XEN_HVMLOADER.into());
        }
        for d in &mut c.disks {
            // xend needs a backend in each uname: phy for a block device, file else.
            if d.driver.is_none() && d.source.is_some() {
                d.driver = Some(
                    if d.kind == DiskKind::Block {
                        "phy"
                    } else {
                        "file"
                    }
                    .into(),
                );
            }
        }
        for n in &mut c.interfaces {
            // xend names interfaces vifN.M itself: such names are not written.
            if n.target
                .as_deref()
                .is_some_and(xl::spec::is_generated_vif_name)
            {
                n.target = None;
            }
        }
    }
    if syntax == Syntax::Xl {
        for d in &mut c.disks {
            // xl's form names no backend: an image file or an empty drive is libxl's
            // qdisk (`qemu`).
            let not_block = d.source.as_deref().is_none_or(|s| !s.starts_with("/dev/"));
            if d.driver.is_none() && not_block {
                d.driver = Some("qemu".into());
            }
        }
    }
    if matches!(syntax, Syntax::Xl | Syntax::Sexpr) {
        // Both count whole MiB.
        let round = |m: MemSize| MemSize::from_kib(m.mib_ceil() * 1024);
        c.memory = c.memory.map(round);
        c.max_memory = c.max_memory.map(round);
        for d in &mut c.disks {
            // Access is one of r / w / w!: read-only wins over shareable.
            if d.readonly {
                d.shareable = false;
            }
            let xm_prefix = d
                .driver
                .as_deref()
                .is_some_and(|v| xl::spec::DRIVER_PREFIXES.contains(&v));
            if syntax == Syntax::Xl && !xm_prefix {
                // xl's key=value disk spec has no "shareable".
                d.shareable = false;
            }
            // An empty drive has no `uname` / target to carry the driver prefix on.
            if d.source.is_none() && (syntax == Syntax::Sexpr || xm_prefix) {
                d.driver = None;
                d.format = None;
            }
        }
        for n in &mut c.interfaces {
            // An ethernet (routed) vif's source device has no key.
            if n.kind == "ethernet" {
                n.source = None;
            }
            // A vif is a bridge when it names one (or a bridge script), an ethernet
            // (routed) vif otherwise; libvirt's network is kept by domboot's extension.
            n.kind = if n.kind == "network" && n.source.is_some() {
                "network".into()
            } else if n.source.is_some()
                || n.script.as_deref().is_some_and(|s| s.contains("bridge"))
            {
                "bridge".into()
            } else {
                "ethernet".into()
            };
            // VLAN tags ride on a bridge name (`ovsbr0.42`), and mean Open vSwitch.
            if n.kind != "bridge" || n.source.is_none() {
                n.vlan.clear();
                n.vlan_trunk = false;
            }
            if n.vlan.is_empty() {
                n.virtualport = None;
            }
        }
        c.normalize();
    }
    c
}

fn check(c: &DomainConfig, syntax: Syntax) -> Result<(), TestCaseError> {
    let text = write(c, syntax);
    let back =
        parse(&text, syntax, "prop").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let want = expressible(c, syntax);
    prop_assert_eq!(&back, &want, "{} text:\n{}", syntax, text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn toml_round_trips(c in config()) { check(&c, Syntax::Toml)?; }

    #[test]
    fn xml_round_trips(c in config()) { check(&c, Syntax::Xml)?; }

    #[test]
    fn xl_round_trips(c in config()) { check(&c, Syntax::Xl)?; }

    #[test]
    fn sexpr_round_trips(c in config()) { check(&c, Syntax::Sexpr)?; }

    #[test]
    fn compact_sexpr_round_trips(c in config()) {
        let back = sexpr::parse(&sexpr::write_compact(&c), "p").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, expressible(&c, Syntax::Sexpr));
    }

    /// A model every syntax can say converts through all of them unchanged.
    #[test]
    fn chains_through_every_syntax(c in config()) {
        let mut c = c;
        // What survives the chain: its fixed point, ending with xl as the chain does.
        for _ in 0..3 {
            for s in [Syntax::Sexpr, Syntax::Xml, Syntax::Xl] {
                c = expressible(&c, s);
            }
        }
        let mut cur = c.clone();
        for s in [Syntax::Xl, Syntax::Sexpr, Syntax::Xml, Syntax::Toml, Syntax::Xl] {
            cur = parse(&write(&cur, s), s, "chain").map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(cur, c);
    }

    /// Parsers never panic on arbitrary text (the fuzz targets go further).
    #[test]
    fn parsers_do_not_panic(text in "\\PC{0,200}") {
        for s in Syntax::ALL {
            let _ = parse(&text, s, "junk");
        }
        let _ = detect(&text, "junk");
    }
}
