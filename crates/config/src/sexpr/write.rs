//! Model → xend S-expression tree (printed by `parse::to_indented` / `to_compact`).
use super::parse::Sexp;
use crate::model::*;
use crate::xl::spec;

fn pair(k: &str, v: impl Into<String>) -> Sexp {
    Sexp::pair(k, v)
}

fn opt(out: &mut Vec<Sexp>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        out.push(pair(k, v));
    }
}

pub fn tree(c: &DomainConfig) -> Sexp {
    let mut vm = vec![Sexp::atom("vm"), pair("name", c.name.as_str())];
    opt(&mut vm, "uuid", c.uuid.map(|u| u.to_string()).as_deref());
    opt(&mut vm, "description", c.description.as_deref());
    if let Some(m) = c.memory {
        vm.push(pair("memory", m.mib_ceil().to_string()));
    }
    if let Some(m) = c.max_memory.or(c.memory) {
        vm.push(pair("maxmem", m.mib_ceil().to_string()));
    }
    match (c.vcpus, c.max_vcpus) {
        (Some(cur), Some(max)) => {
            vm.push(pair("vcpus", max.to_string()));
            let mask = 1u128.checked_shl(cur).map_or(u128::MAX, |b| b - 1);
            vm.push(pair("vcpu_avail", mask.to_string()));
        }
        (Some(n), None) | (None, Some(n)) => vm.push(pair("vcpus", n.to_string())),
        (None, None) => {}
    }
    opt(
        &mut vm,
        "on_poweroff",
        c.on_poweroff.map(LifecycleAction::as_str),
    );
    opt(
        &mut vm,
        "on_reboot",
        c.on_reboot.map(LifecycleAction::as_str),
    );
    // xend's default on_crash is restart, the model's (libvirt's and xl's) destroy:
    // always say which.
    let on_crash = c.on_crash.unwrap_or(LifecycleAction::Destroy);
    opt(&mut vm, "on_crash", Some(on_crash.as_str()));
    opt(&mut vm, "bootloader", c.boot.bootloader.as_deref());
    opt(
        &mut vm,
        "bootloader_args",
        c.boot.bootloader_args.as_deref(),
    );
    vm.push(Sexp::list(vec![Sexp::atom("image"), image(c)]));
    // xend (3.1 and later) reads the clock basis at the top, as libvirt writes it.
    let localtime = match &c.clock {
        Some(Clock::Localtime) => Some("1"),
        Some(Clock::Variable { basis, .. }) if *basis == ClockBasis::Localtime => Some("1"),
        Some(Clock::Utc | Clock::Variable { .. }) => Some("0"),
        Some(Clock::Timezone { .. }) | None => None,
    };
    opt(&mut vm, "localtime", localtime);
    devices(c, &mut vm);
    let ext = extensions(c);
    if ext.len() > 1 {
        vm.push(Sexp::list(ext));
    }
    Sexp::list(vm)
}

fn hvm_graphics_in_image(c: &DomainConfig) -> bool {
    c.guest_type == GuestType::Hvm && spec::hvm_graphics_keys_fit(&c.graphics, &["vnc", "sdl"])
}

fn image(c: &DomainConfig) -> Sexp {
    let head = match c.guest_type {
        GuestType::Pv => "linux",
        GuestType::Hvm => "hvm",
        GuestType::Pvh => "pvh",
    };
    let b = &c.boot;
    let mut img = vec![Sexp::atom(head)];
    // New xend reads the firmware from `loader`; `kernel` is the kernel to boot directly.
    // An HVM guest that names no firmware gets Xen's hvmloader, as libvirt says.
    let xen = c.hypervisor.as_deref().is_none_or(|h| h == "xen");
    let default_loader = (c.guest_type == GuestType::Hvm && xen && b.firmware.is_none())
        .then_some(crate::libvirt_xml::XEN_HVMLOADER);
    opt(&mut img, "loader", b.loader.as_deref().or(default_loader));
    opt(&mut img, "kernel", b.kernel.as_deref());
    opt(&mut img, "ramdisk", b.initrd.as_deref());
    opt(&mut img, "args", b.effective_cmdline().as_deref());
    opt(&mut img, "device_model", c.emulator.as_deref());
    if !b.order.is_empty() {
        img.push(pair("boot", BootDevice::letters(&b.order)));
    }
    for (name, on) in c.features.named() {
        if on {
            img.push(pair(name, "1"));
        } else if c.features.off.contains(name) {
            img.push(pair(name, "0"));
        }
    }
    if let Some(Clock::Variable { adjustment, .. }) = &c.clock {
        img.push(pair("rtc_timeoffset", adjustment.to_string()));
    }
    // Each serial device at its port; `none` in the places no device has.
    match spec::serial_list(c, "none").as_slice() {
        [] => {}
        [one] => img.push(pair("serial", one.as_str())),
        many => img.push(Sexp::list(vec![
            Sexp::atom("serial"),
            Sexp::list(many.iter().map(|s| Sexp::atom(s.as_str())).collect()),
        ])),
    }
    for i in c.inputs.iter().filter(|i| i.bus.as_deref() == Some("usb")) {
        img.push(pair("usbdevice", i.kind.as_str()));
    }
    if hvm_graphics_in_image(c) {
        for g in &c.graphics {
            if g.kind == "vnc" {
                img.push(pair("vnc", "1"));
                img.push(pair("vncunused", if g.autoport { "1" } else { "0" }));
                if let Some(p) = g.port {
                    img.push(pair("vncdisplay", (p - 5900).to_string()));
                }
                opt(&mut img, "vnclisten", g.listen.as_deref());
                opt(&mut img, "vncpasswd", g.passwd.as_deref());
                opt(&mut img, "keymap", g.keymap.as_deref());
            } else {
                img.push(pair("sdl", "1"));
                opt(&mut img, "display", g.display.as_deref());
                opt(&mut img, "xauthority", g.xauth.as_deref());
            }
        }
    }
    Sexp::list(img)
}

fn device(body: Vec<Sexp>) -> Sexp {
    Sexp::list(vec![Sexp::atom("device"), Sexp::list(body)])
}

fn devices(c: &DomainConfig, vm: &mut Vec<Sexp>) {
    for d in &c.disks {
        // blktap disks are xend's `tap` (or `tap2`) devices.
        let class = d
            .driver
            .as_deref()
            .filter(|d| matches!(*d, "tap" | "tap2"))
            .unwrap_or("vbd");
        let mut v = vec![Sexp::atom(class)];
        let dev = match d.device {
            DiskDevice::Disk => format!("{}:disk", d.target),
            DiskDevice::Cdrom => format!("{}:cdrom", d.target),
            DiskDevice::Floppy => format!("{}:floppy", d.target),
        };
        v.push(pair("dev", dev));
        let path = d.source.as_deref().unwrap_or("");
        let uname = if path.is_empty() {
            String::new()
        } else {
            let (driver, format) = spec::uname_prefix(d);
            spec::join_uname(Some(driver), format, path)
        };
        v.push(pair("uname", uname));
        let mode = match (d.readonly, d.shareable) {
            (true, _) => "r",
            (false, true) => "w!",
            _ => "w",
        };
        v.push(pair("mode", mode));
        // domboot additions xend ignores: a bus the name does not imply, a disk kind the
        // path does not imply.
        opt(&mut v, "bus", d.bus.as_deref());
        if d.kind != spec::implied_kind(d) {
            v.push(pair(
                "kind",
                if d.kind == DiskKind::Block {
                    "block"
                } else {
                    "file"
                },
            ));
        }
        vm.push(device(v));
    }
    for n in &c.interfaces {
        let mut v = vec![Sexp::atom("vif")];
        opt(&mut v, "mac", n.mac.as_deref());
        match (n.kind.as_str(), &n.source) {
            ("network", Some(s)) => v.push(pair("network", s.as_str())),
            // An ethernet interface's source device has no xend key.
            ("ethernet", _) | (_, None) => {}
            (_, Some(s)) => v.push(pair("bridge", spec::bridge_spec(n, s))),
        }
        opt(&mut v, "script", n.script.as_deref());
        let netfront = n.model.as_deref() == Some("netfront");
        if !netfront {
            opt(&mut v, "model", n.model.as_deref());
        }
        opt(&mut v, "ip", n.ip.as_deref());
        // xend names interfaces vifDOMID.N itself; libvirt leaves those names out.
        if !n.target.as_deref().is_some_and(spec::is_generated_vif_name) {
            opt(&mut v, "vifname", n.target.as_deref());
        }
        // xend's HVM NIC kind: emulated and PV (`ioemu`), or PV only (`netfront`).
        if netfront {
            v.push(pair("type", "netfront"));
        } else if c.guest_type == GuestType::Hvm {
            v.push(pair("type", "ioemu"));
        }
        vm.push(device(v));
    }
    if !hvm_graphics_in_image(c) {
        for g in &c.graphics {
            let mut v = vec![Sexp::atom("vfb"), pair("type", g.kind.as_str())];
            if g.kind == "vnc" || g.autoport {
                v.push(pair("vncunused", if g.autoport { "1" } else { "0" }));
            }
            match g.port {
                Some(p) if g.kind == "vnc" && p >= 5900 => {
                    v.push(pair("vncdisplay", (p - 5900).to_string()))
                }
                Some(p) => v.push(pair("port", p.to_string())),
                None => {}
            }
            opt(&mut v, "vnclisten", g.listen.as_deref());
            opt(&mut v, "vncpasswd", g.passwd.as_deref());
            opt(&mut v, "keymap", g.keymap.as_deref());
            opt(&mut v, "display", g.display.as_deref());
            opt(&mut v, "xauthority", g.xauth.as_deref());
            vm.push(device(v));
        }
    }
}

/// `(domboot ...)`: what xend has no key for.
fn extensions(c: &DomainConfig) -> Vec<Sexp> {
    let mut ext = vec![Sexp::atom("domboot")];
    opt(&mut ext, "hypervisor", c.hypervisor.as_deref());
    opt(&mut ext, "arch", c.arch.as_deref());
    opt(&mut ext, "machine", c.machine.as_deref());
    opt(&mut ext, "firmware", c.boot.firmware.as_deref());
    if let Some(Clock::Timezone { timezone }) = &c.clock {
        ext.push(pair("timezone", timezone.as_str()));
    }
    if !c.features.other.is_empty() {
        let mut f = vec![Sexp::atom("features")];
        f.extend(c.features.other.iter().map(|s| Sexp::atom(s.as_str())));
        ext.push(Sexp::list(f));
    }
    // Features off by name: xend reads `(name 0)` as absent except for hap.
    let off: Vec<Sexp> = c
        .features
        .off
        .iter()
        .filter(|n| n.as_str() != "hap")
        .map(|s| Sexp::atom(s.as_str()))
        .collect();
    if !off.is_empty() {
        let mut f = vec![Sexp::atom("features_off")];
        f.extend(off);
        ext.push(Sexp::list(f));
    }
    for d in &c.consoles {
        let mut v = vec![Sexp::atom("console"), pair("type", d.kind.as_str())];
        opt(&mut v, "path", d.path.as_deref());
        opt(&mut v, "host", d.host.as_deref());
        opt(&mut v, "service", d.service.as_deref());
        if d.listen {
            v.push(pair("listen", "1"));
        }
        if d.telnet {
            v.push(pair("telnet", "1"));
        }
        opt(&mut v, "target", d.target.as_deref());
        opt(&mut v, "port", d.port.map(|p| p.to_string()).as_deref());
        opt(&mut v, "bind_host", d.bind_host.as_deref());
        opt(&mut v, "bind_service", d.bind_service.as_deref());
        ext.push(Sexp::list(v));
    }
    for i in c.inputs.iter().filter(|i| i.bus.as_deref() != Some("usb")) {
        let mut v = vec![Sexp::atom("input"), pair("type", i.kind.as_str())];
        opt(&mut v, "bus", i.bus.as_deref());
        ext.push(Sexp::list(v));
    }
    ext
}
