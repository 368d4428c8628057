//! From the model to an xl.cfg file (xm-compatible spellings where xl accepts them).
use super::parse::quote;
use super::spec;
use crate::model::*;
use std::fmt::Write as _;

struct Out(String);

impl Out {
    fn str(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            let _ = writeln!(self.0, "{key} = {}", quote(v));
        }
    }
    fn num(&mut self, key: &str, v: Option<impl std::fmt::Display>) {
        if let Some(v) = v {
            let _ = writeln!(self.0, "{key} = {v}");
        }
    }
    fn list(&mut self, key: &str, items: &[String]) {
        match items {
            [] => {}
            [one] => {
                let _ = writeln!(self.0, "{key} = [ {} ]", quote(one));
            }
            many => {
                let _ = writeln!(self.0, "{key} = [");
                for i in many {
                    let _ = writeln!(self.0, "    {},", quote(i));
                }
                let _ = writeln!(self.0, "]");
            }
        }
    }
}

pub fn write(c: &DomainConfig) -> String {
    let mut o = Out(String::from(
        "# xl.cfg(5) domain configuration, written by domboot\n",
    ));
    o.str("name", Some(&c.name));
    o.str("uuid", c.uuid.map(|u| u.to_string()).as_deref());
    o.str("type", Some(c.guest_type.as_str()));
    o.num("memory", c.memory.map(MemSize::mib_ceil));
    o.num("maxmem", c.max_memory.map(MemSize::mib_ceil));
    o.num("vcpus", c.vcpus);
    o.num("maxvcpus", c.max_vcpus);

    let b = &c.boot;
    o.str("loader", b.loader.as_deref());
    o.str("firmware", b.firmware.as_deref());
    o.str("kernel", b.kernel.as_deref());
    o.str("ramdisk", b.initrd.as_deref());
    // xl's `root` and `extra` combine into one command line: say it whole.
    o.str("extra", b.effective_cmdline().as_deref());
    o.str("bootloader", b.bootloader.as_deref());
    o.str("bootloader_args", b.bootloader_args.as_deref());
    if !b.order.is_empty() {
        o.str("boot", Some(&BootDevice::letters(&b.order)));
    }
    o.str("on_poweroff", c.on_poweroff.map(LifecycleAction::as_str));
    o.str("on_reboot", c.on_reboot.map(LifecycleAction::as_str));
    o.str("on_crash", c.on_crash.map(LifecycleAction::as_str));
    o.str("device_model_override", c.emulator.as_deref());

    // xl turns acpi, apic and pae on for HVM guests unless told otherwise: say those
    // for HVM either way, and any other feature that is on.
    let hvm = c.guest_type == GuestType::Hvm;
    for (name, on) in c.features.named() {
        let hvm_default_on = matches!(name, "acpi" | "apic" | "pae");
        if on || (hvm && hvm_default_on) || c.features.off.contains(name) {
            o.num(name, Some(u8::from(on)));
        }
    }
    match &c.clock {
        Some(Clock::Utc) => o.num("localtime", Some(0)),
        Some(Clock::Localtime) => o.num("localtime", Some(1)),
        Some(Clock::Variable { adjustment, basis }) => {
            o.num("rtc_timeoffset", Some(adjustment));
            o.num("localtime", Some(u8::from(*basis == ClockBasis::Localtime)));
        }
        Some(Clock::Timezone { .. }) | None => {}
    }

    let disks: Vec<String> = c.disks.iter().map(spec::write_disk).collect();
    o.list("disk", &disks);
    let vifs: Vec<String> = c.interfaces.iter().map(spec::write_vif).collect();
    o.list("vif", &vifs);
    let serials = spec::serial_list(c, "none");
    match serials.as_slice() {
        [one] => o.str("serial", Some(one)),
        many => o.list("serial", many),
    }
    graphics(&mut o, c);
    let usb: Vec<String> = c
        .inputs
        .iter()
        .filter(|i| i.bus.as_deref() == Some("usb"))
        .map(|i| i.kind.clone())
        .collect();
    match usb.as_slice() {
        [one] => o.str("usbdevice", Some(one)),
        many => o.list("usbdevice", many),
    }
    extensions(&mut o, c);
    o.0
}

fn graphics(o: &mut Out, c: &DomainConfig) {
    let top_level = c.guest_type == GuestType::Hvm
        && spec::hvm_graphics_keys_fit(&c.graphics, &["vnc", "sdl", "spice"]);
    if top_level {
        for g in &c.graphics {
            match g.kind.as_str() {
                "vnc" => {
                    o.num("vnc", Some(1));
                    o.num("vncunused", Some(u8::from(g.autoport)));
                    o.num("vncdisplay", g.port.map(|p| p - 5900));
                    o.str("vnclisten", g.listen.as_deref());
                    o.str("vncpasswd", g.passwd.as_deref());
                    o.str("keymap", g.keymap.as_deref());
                }
                "sdl" => {
                    o.num("sdl", Some(1));
                    o.str("display", g.display.as_deref());
                    o.str("xauthority", g.xauth.as_deref());
                }
                _ => {
                    o.num("spice", Some(1));
                    o.num("spiceport", g.port);
                    o.str("spicehost", g.listen.as_deref());
                    o.str("spicepasswd", g.passwd.as_deref());
                }
            }
        }
        return;
    }
    let vfbs: Vec<String> = c
        .graphics
        .iter()
        .map(|g| {
            let mut parts = match g.kind.as_str() {
                "vnc" | "sdl" => vec![format!("{}=1", g.kind)],
                other => vec![format!("type={other}")],
            };
            if g.kind == "vnc" || g.autoport {
                parts.push(format!("vncunused={}", u8::from(g.autoport)));
            }
            match g.port {
                Some(p) if g.kind == "vnc" && p >= 5900 => {
                    parts.push(format!("vncdisplay={}", p - 5900))
                }
                Some(p) => parts.push(format!("port={p}")),
                None => {}
            }
            for (k, v) in [
                ("vnclisten", &g.listen),
                ("vncpasswd", &g.passwd),
                ("keymap", &g.keymap),
                ("display", &g.display),
                ("xauthority", &g.xauth),
            ] {
                if let Some(v) = v.as_deref().filter(|v| spec::kv_fits(v)) {
                    parts.push(format!("{k}={v}"));
                }
            }
            parts.join(",")
        })
        .collect();
    o.list("vfb", &vfbs);
}

/// What xl has no key for, in `domboot_*` keys (xl ignores keys it does not know).
fn extensions(o: &mut Out, c: &DomainConfig) {
    let mut ext = Out(String::new());
    ext.str("domboot_hypervisor", c.hypervisor.as_deref());
    ext.str("domboot_arch", c.arch.as_deref());
    ext.str("domboot_machine", c.machine.as_deref());
    ext.str("domboot_description", c.description.as_deref());
    if let Some(Clock::Timezone { timezone }) = &c.clock {
        ext.str("domboot_timezone", Some(timezone));
    }
    let buses: Vec<String> = c
        .disks
        .iter()
        .filter_map(|d| d.bus.as_ref().map(|b| format!("{}={b}", d.target)))
        .collect();
    ext.list("domboot_disk_bus", &buses);
    let kinds: Vec<String> = c
        .disks
        .iter()
        .filter(|d| d.kind != spec::implied_kind(d))
        .map(|d| {
            let k = if d.kind == DiskKind::Block {
                "block"
            } else {
                "file"
            };
            format!("{}={k}", d.target)
        })
        .collect();
    ext.list("domboot_disk_kind", &kinds);
    let other: Vec<String> = c.features.other.iter().cloned().collect();
    ext.list("domboot_features", &other);
    // Features off by name that xl has no `name = 0` key for.
    let off: Vec<String> = c
        .features
        .off
        .iter()
        .filter(|n| n.as_str() != "hap")
        .cloned()
        .collect();
    ext.list("domboot_features_off", &off);
    let consoles: Vec<String> = c.consoles.iter().map(console_spec).collect();
    ext.list("domboot_console", &consoles);
    let inputs: Vec<String> = c
        .inputs
        .iter()
        .filter(|i| i.bus.as_deref() != Some("usb") && spec::kv_fits(&i.kind))
        .map(|i| {
            let mut s = format!("type={}", i.kind);
            if let Some(b) = i.bus.as_deref().filter(|b| spec::kv_fits(b)) {
                let _ = write!(s, ",bus={b}");
            }
            s
        })
        .collect();
    ext.list("domboot_input", &inputs);
    if !ext.0.is_empty() {
        o.0.push_str("# domboot extensions: what xl has no key for (xl ignores these)\n");
        o.0.push_str(&ext.0);
    }
}

fn console_spec(d: &CharDev) -> String {
    let mut s = format!("type={}", d.kind.as_str());
    for (k, v) in [
        ("path", &d.path),
        ("host", &d.host),
        ("service", &d.service),
        ("target", &d.target),
    ] {
        if let Some(v) = v.as_deref().filter(|v| spec::kv_fits(v)) {
            let _ = write!(s, ",{k}={v}");
        }
    }
    if d.listen {
        s.push_str(",listen=1");
    }
    if d.telnet {
        s.push_str(",telnet=1");
    }
    if let Some(p) = d.port {
        let _ = write!(s, ",port={p}");
    }
    for (k, v) in [
        ("bind_host", &d.bind_host),
        ("bind_service", &d.bind_service),
    ] {
        if let Some(v) = v.as_deref().filter(|v| spec::kv_fits(v)) {
            let _ = write!(s, ",{k}={v}");
        }
    }
    s
}
