//! Facts of a libvirt domain XML, read as libvirt reads it (its defaults filled in), with
//! roxmltree directly: independent of domboot's own XML reader.
use super::{Facts, norm_uuid};
use roxmltree::{Document, Node};

fn elems<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    elems(n).find(|c| c.tag_name().name() == name)
}

fn text(n: Node) -> String {
    n.text().unwrap_or("").to_string()
}

/// KiB from a libvirt memory element (unit defaults to KiB).
fn kib(n: Node) -> String {
    let v: u64 = n.text().unwrap_or("0").trim().parse().unwrap_or(0);
    let mul = match n.attribute("unit").unwrap_or("KiB") {
        "b" | "bytes" => return (v / 1024).to_string(),
        "KB" => return (v * 1000 / 1024).to_string(),
        "MB" => return (v * 1_000_000 / 1024).to_string(),
        "M" | "MiB" => 1024,
        "G" | "GiB" => 1024 * 1024,
        _ => 1,
    };
    (v * mul).to_string()
}

/// The facts of a libvirt domain XML document.
pub fn facts(text_in: &str) -> Result<Facts, String> {
    let doc = Document::parse(text_in).map_err(|e| e.to_string())?;
    let d = doc.root_element();
    let mut f = Facts::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_string(), v);
    };
    if let Some(n) = child(d, "name") {
        put("name", text(n).trim().to_string());
    }
    if let Some(n) = child(d, "uuid") {
        put("uuid", norm_uuid(&text(n)));
    }
    let max = child(d, "memory").map(kib);
    let cur = child(d, "currentMemory").map(kib);
    if let Some(m) = max.clone().or(cur.clone()) {
        put("memory.max", m);
    }
    if let Some(m) = cur.or(max) {
        put("memory.current", m);
    }
    if let Some(n) = child(d, "vcpu") {
        let max = text(n).trim().to_string();
        put(
            "vcpu.current",
            n.attribute("current").unwrap_or(&max).to_string(),
        );
        put("vcpu.max", max);
    }
    for k in [
        "bootloader",
        "bootloader_args",
        "on_poweroff",
        "on_reboot",
        "on_crash",
    ] {
        if let Some(n) = child(d, k) {
            put(k, text(n).trim().to_string());
        }
    }
    // libvirt's defaults for the lifecycle actions.
    for (k, v) in [
        ("on_poweroff", "destroy"),
        ("on_reboot", "restart"),
        ("on_crash", "destroy"),
    ] {
        f.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    let hvm = os(d, &mut f);
    if let Some(feat) = child(d, "features") {
        // `<xen>` groups Xen's own features (e820_host, passthrough): each is a fact.
        let xen = elems(feat).filter(|n| n.tag_name().name() == "xen");
        let grouped: Vec<_> = xen.flat_map(elems).collect();
        let top = elems(feat).filter(|n| n.tag_name().name() != "xen");
        for n in top.chain(grouped) {
            let on = n.attribute("state").unwrap_or("on");
            let on = if on == "off" { "off" } else { "on" };
            f.insert(format!("features.{}", n.tag_name().name()), on.into());
        }
    }
    // Arguments passed straight to the device model (`<xen:commandline>`).
    let args: Vec<&str> = child(d, "commandline")
        .into_iter()
        .flat_map(elems)
        .filter_map(|a| a.attribute("value"))
        .collect();
    if !args.is_empty() {
        f.insert("commandline".into(), args.join(" "));
    }
    if let Some(n) = child(d, "description") {
        f.insert("description".into(), text(n));
    }
    cpu(d, &mut f);
    clock(d, &mut f);
    if let Some(devs) = child(d, "devices") {
        devices(devs, hvm, &mut f);
    }
    if d.attribute("type") == Some("xen") {
        implied_console(hvm, &mut f);
    }
    Ok(f)
}

/// The console libvirt gives a Xen domain that names none: a PV guest's pty `xen`
/// console, an HVM guest's console on its first serial port.
fn implied_console(hvm: bool, f: &mut Facts) {
    // libvirt: an HVM guest's console with no serial device is serial port 0.
    if hvm && !f.keys().any(|k| k.starts_with("serial[")) {
        let target = f.get("console[0].target").map(String::as_str);
        if f.contains_key("console[0].type") && target.is_none_or(|t| t == "serial") {
            let copied: Vec<(String, String)> = f
                .iter()
                .filter_map(|(k, v)| {
                    let rest = k.strip_prefix("console[0].")?;
                    (rest != "target" && rest != "port")
                        .then(|| (format!("serial[0].{rest}"), v.clone()))
                })
                .collect();
            f.extend(copied);
            f.insert("console[0].target".into(), "serial".into());
            f.insert("console[0].port".into(), "0".into());
        }
    }
    if f.keys().any(|k| k.starts_with("console[")) {
        return;
    }
    if !hvm {
        for (k, v) in [("type", "pty"), ("target", "xen"), ("port", "0")] {
            f.insert(format!("console[0].{k}"), v.into());
        }
        return;
    }
    let Some(first) = f
        .keys()
        .find(|k| k.starts_with("serial["))
        .and_then(|k| k.strip_prefix("serial["))
        .and_then(|k| k.split(']').next())
        .map(str::to_string)
    else {
        return;
    };
    let prefix = format!("serial[{first}].");
    let copied: Vec<(String, String)> = f
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .map(|rest| (format!("console[0].{rest}"), v.clone()))
        })
        .collect();
    f.extend(copied);
    f.insert("console[0].target".into(), "serial".into());
    f.insert("console[0].port".into(), first);
}

/// `<os>`; returns whether the guest is HVM.
fn os(d: Node, f: &mut Facts) -> bool {
    let Some(os) = child(d, "os") else {
        // libvirt's default for a Xen domain that boots through a bootloader: PV.
        f.insert("os.type".into(), "linux".into());
        return false;
    };
    let t = child(os, "type").map(text).unwrap_or_default();
    let t = match t.trim() {
        "xen" | "linux" => "linux".to_string(),
        other => other.to_string(),
    };
    let hvm = t == "hvm";
    f.insert("os.type".into(), t);
    for k in ["loader", "kernel", "initrd", "cmdline"] {
        if let Some(n) = child(os, k) {
            f.insert(format!("os.{k}"), text(n));
        }
    }
    // How the firmware is loaded: a ROM (the default) or UEFI flash.
    if let Some(t) = child(os, "loader").and_then(|l| l.attribute("type")) {
        if t != "rom" {
            f.insert("os.loader_type".into(), t.to_string());
        }
    }
    // ACPI tables given to the guest (`<acpi><table type='slic'>`).
    for t in child(os, "acpi").into_iter().flat_map(elems) {
        let ty = t.attribute("type").unwrap_or("");
        f.insert(format!("os.acpi_table[{ty}]"), text(t));
    }
    let boots: Vec<String> = elems(os)
        .filter(|n| n.tag_name().name() == "boot")
        .map(|n| n.attribute("dev").unwrap_or("").to_string())
        .collect();
    if !boots.is_empty() {
        f.insert("os.boot".into(), boots.join(" "));
    } else if hvm && child(os, "kernel").is_none() {
        // libvirt boots an HVM guest from its disk when no <boot> is given.
        f.insert("os.boot".into(), "hd".into());
    }
    hvm
}

fn clock(d: Node, f: &mut Facts) {
    let Some(c) = child(d, "clock") else {
        f.insert("clock.offset".into(), "utc".into());
        return;
    };
    // Each timer (hpet, tsc...) is a feature of the guest's platform.
    for t in elems(c).filter(|t| t.tag_name().name() == "timer") {
        let name = t.attribute("name").unwrap_or("");
        let on = if t.attribute("present") == Some("no") {
            "off"
        } else {
            "on"
        };
        f.insert(format!("features.{name}"), on.into());
        if let Some(mode) = t.attribute("mode") {
            f.insert(format!("features.{name}.mode"), mode.into());
        }
    }
    let offset = c.attribute("offset").unwrap_or("utc").to_string();
    if offset == "variable" {
        let adj = c.attribute("adjustment").unwrap_or("0").to_string();
        f.insert("clock.adjustment".into(), adj);
        let basis = c.attribute("basis").unwrap_or("utc").to_string();
        f.insert("clock.basis".into(), basis);
    }
    if offset == "timezone" {
        let tz = c.attribute("timezone").unwrap_or("").to_string();
        f.insert("clock.timezone".into(), tz);
    }
    f.insert("clock.offset".into(), offset);
}

fn implied_bus(target: &str) -> &'static str {
    [
        ("xvd", "xen"),
        ("hd", "ide"),
        ("sd", "scsi"),
        ("vd", "virtio"),
        ("fd", "fdc"),
    ]
    .into_iter()
    .find(|(p, _)| target.starts_with(p))
    .map_or("", |(_, b)| b)
}

/// The guest CPU: its mode, each feature's policy, each NUMA cell.
fn cpu(d: Node, f: &mut Facts) {
    let Some(c) = child(d, "cpu") else {
        return;
    };
    if let Some(m) = c.attribute("mode") {
        f.insert("cpu.mode".into(), m.into());
    }
    for feat in elems(c).filter(|n| n.tag_name().name() == "feature") {
        let name = feat.attribute("name").unwrap_or("");
        let policy = feat.attribute("policy").unwrap_or("require");
        f.insert(format!("cpu.feature[{name}]"), policy.into());
    }
    let cells = child(c, "numa").into_iter().flat_map(elems);
    for cell in cells.filter(|n| n.tag_name().name() == "cell") {
        let id = cell.attribute("id").unwrap_or("");
        let what = format!(
            "cpus={} memory={}",
            cell.attribute("cpus").unwrap_or(""),
            cell.attribute("memory").unwrap_or("")
        );
        f.insert(format!("cpu.numa[{id}]"), what);
    }
}

fn devices(devs: Node, hvm: bool, f: &mut Facts) {
    let (mut sound, mut hostdev) = (0, 0);
    let mut nic = 0;
    let mut serial = 0;
    let mut parallel = 0;
    let mut channel = 0;
    let mut console = 0;
    let mut gfx = 0;
    for n in elems(devs) {
        match n.tag_name().name() {
            "emulator" => {
                f.insert("emulator".into(), text(n).trim().to_string());
            }
            "sound" => {
                let model = n.attribute("model").unwrap_or("").to_string();
                f.insert(format!("sound[{sound}].model"), model);
                sound += 1;
            }
            "hostdev" => {
                let ty = n.attribute("type").unwrap_or("").to_string();
                f.insert(format!("hostdev[{hostdev}].type"), ty);
                hostdev += 1;
            }
            "disk" => disk(n, f),
            "interface" => {
                interface(n, &format!("interface[{nic}]"), f);
                nic += 1;
            }
            "serial" => {
                // Serial ports are known by their port number (libvirt numbers them in
                // order when <target port> is absent).
                let port = child(n, "target")
                    .and_then(|t| t.attribute("port"))
                    .map_or(serial.to_string(), str::to_string);
                chardev(n, &format!("serial[{port}]"), f);
                serial += 1;
            }
            // Input devices other than the PS/2 or Xen mouse and keyboard libvirt gives
            // every guest with graphics.
            "input" => {
                let ty = n.attribute("type").unwrap_or("");
                // libvirt's default bus: on HVM PS/2 for a mouse or keyboard, USB for
                // anything else (a tablet); Xen's for a PV guest.
                let bus = n.attribute("bus").unwrap_or(match (hvm, ty) {
                    (true, "mouse" | "keyboard") => "ps2",
                    (true, _) => "usb",
                    (false, _) => "xen",
                });
                let implied = matches!(ty, "mouse" | "keyboard") && matches!(bus, "ps2" | "xen");
                if !implied {
                    f.insert(format!("input[{ty}:{bus}]"), "present".into());
                }
            }
            // The xenbus controller's limits (xl's max_event_channels, max_grant_frames).
            "controller" => {
                for a in ["maxEventChannels", "maxGrantFrames"] {
                    if let Some(v) = n.attribute(a) {
                        f.insert(format!("controller[xenbus].{a}"), v.to_string());
                    }
                }
            }
            "channel" => {
                let g = format!("channel[{channel}]");
                chardev(n, &g, f);
                if let Some(name) = child(n, "target").and_then(|t| t.attribute("name")) {
                    f.insert(format!("{g}.name"), name.to_string());
                }
                channel += 1;
            }
            "parallel" => {
                let port = child(n, "target")
                    .and_then(|t| t.attribute("port"))
                    .map_or(parallel.to_string(), str::to_string);
                chardev(n, &format!("parallel[{port}]"), f);
                parallel += 1;
            }
            "console" => {
                let g = format!("console[{console}]");
                chardev(n, &g, f);
                let t = child(n, "target");
                let ty = t.and_then(|t| t.attribute("type"));
                // libvirt's default console target: serial for HVM, xen for PV.
                let ty = ty.unwrap_or(if hvm { "serial" } else { "xen" });
                f.insert(format!("{g}.target"), ty.to_string());
                let port = t.and_then(|t| t.attribute("port")).unwrap_or("0");
                f.insert(format!("{g}.port"), port.to_string());
                console += 1;
            }
            "graphics" => {
                graphics(n, &format!("graphics[{gfx}]"), f);
                gfx += 1;
            }
            _ => {}
        }
    }
}

fn disk(n: Node, f: &mut Facts) {
    let Some(target) = child(n, "target").and_then(|t| t.attribute("dev")) else {
        return;
    };
    let target = target.strip_prefix("ioemu:").unwrap_or(target);
    let g = format!("disk[{target}]");
    let mut put = |k: &str, v: &str| {
        f.insert(format!("{g}.{k}"), v.to_string());
    };
    put("type", n.attribute("type").unwrap_or("file"));
    put("device", n.attribute("device").unwrap_or("disk"));
    if let Some(d) = child(n, "driver") {
        if let Some(v) = d.attribute("name") {
            put("driver", v);
        }
        // raw is every backend's default format (older libvirt left it out), and
        // blktap's `aio` is its raw driver (newer libvirt writes it `raw`).
        let tap = matches!(d.attribute("name"), Some("tap" | "tap2"));
        if let Some(v) = d
            .attribute("type")
            .filter(|t| *t != "raw" && !(tap && *t == "aio"))
        {
            put("format", v);
        }
    }
    if let Some(s) = child(n, "source") {
        let v = s
            .attribute("file")
            .or(s.attribute("dev"))
            .or(s.attribute("name"))
            .unwrap_or("");
        put("source", v);
        if let Some(p) = s.attribute("protocol") {
            put("protocol", p);
        }
    }
    let bus = child(n, "target")
        .and_then(|t| t.attribute("bus"))
        .unwrap_or(implied_bus(target));
    put("bus", bus);
    if child(n, "readonly").is_some() {
        put("readonly", "yes");
    }
    if child(n, "shareable").is_some() {
        put("shareable", "yes");
    }
}

fn interface(n: Node, g: &str, f: &mut Facts) {
    let mut put = |k: &str, v: String| {
        f.insert(format!("{g}.{k}"), v);
    };
    put("type", n.attribute("type").unwrap_or("").to_string());
    let mut ips = Vec::new();
    for e in elems(n) {
        let a = |name| e.attribute(name).unwrap_or("").to_string();
        match e.tag_name().name() {
            "source" => {
                let v = e
                    .attribute("bridge")
                    .or(e.attribute("network"))
                    .or(e.attribute("dev"))
                    .unwrap_or("");
                put("source", v.to_string());
            }
            "mac" => put("mac", a("address").to_ascii_lowercase()),
            "ip" => ips.push(a("address")),
            "script" => put("script", a("path")),
            "model" => put("model", a("type")),
            "target" => put("target", a("dev")),
            "virtualport" => put("virtualport", a("type")),
            "vlan" => {
                let tags: Vec<String> = elems(e)
                    .filter_map(|t| t.attribute("id").map(str::to_string))
                    .collect();
                put("vlan", tags.join(" "));
            }
            _ => {}
        }
    }
    if !ips.is_empty() {
        put("ip", ips.join(" "));
    }
}

fn chardev(n: Node, g: &str, f: &mut Facts) {
    let ty = match (n.attribute("type"), n.attribute("tty")) {
        (Some(t), _) => t,
        (None, _) => "pty",
    };
    f.insert(format!("{g}.type"), ty.to_string());
    for s in elems(n).filter(|e| e.tag_name().name() == "source") {
        let mode = s.attribute("mode");
        // A tcp/udp/unix source without a mode connects.
        let mode = match ty {
            "tcp" | "udp" | "unix" => mode.unwrap_or("connect"),
            _ => "",
        };
        for a in ["path", "host", "service"] {
            if let Some(v) = s.attribute(a) {
                let key = if mode.is_empty() {
                    format!("{g}.{a}")
                } else {
                    format!("{g}.{mode}.{a}")
                };
                f.insert(key, v.to_string());
            }
        }
    }
    if ty == "tcp" {
        let p = child(n, "protocol")
            .and_then(|p| p.attribute("type"))
            .unwrap_or("raw");
        f.insert(format!("{g}.protocol"), p.to_string());
    }
}

fn graphics(n: Node, g: &str, f: &mut Facts) {
    let mut put = |k: &str, v: &str| {
        f.insert(format!("{g}.{k}"), v.to_string());
    };
    put("type", n.attribute("type").unwrap_or(""));
    let auto = n.attribute("autoport") == Some("yes") || n.attribute("port") == Some("-1");
    match n.attribute("port") {
        _ if auto => put("port", "auto"),
        Some(p) => put("port", p),
        None => {}
    }
    let listen = n.attribute("listen").or_else(|| {
        child(n, "listen")
            .and_then(|l| l.attribute("address"))
            .filter(|a| !a.is_empty())
    });
    if let Some(l) = listen {
        put("listen", l);
    }
    for a in ["passwd", "keymap", "display", "xauth", "tlsPort"] {
        if let Some(v) = n.attribute(a) {
            put(a, v);
        }
    }
    // SPICE's mouse mode and clipboard sharing.
    if let Some(m) = child(n, "mouse").and_then(|m| m.attribute("mode")) {
        put("mouse", m);
    }
    // No clipboard sharing is the default (xl's `spice_clipboard_sharing = 0`).
    if let Some(c) = child(n, "clipboard").and_then(|c| c.attribute("copypaste")) {
        if c != "no" {
            put("clipboard", c);
        }
    }
}
