//! Facts of an xl.cfg / xm file: what xl (or xm) would make of each key, with xl's defaults
//! filled in, so that two spellings of one meaning give the same facts. Only the lexer and
//! the disk spec parser are domboot's; the meaning of each key is worked out here.
use super::{Facts, HVMLOADER, is_firmware, norm_uuid};
use domboot_config::xl::{Value, parse_settings, spec};
use std::collections::HashMap;

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Num(n) => Some(n.to_string()),
        Value::List(_) => None,
    }
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(Value::List(items)) => items.iter().filter_map(|i| scalar(&i.value)).collect(),
        Some(other) => scalar(other).into_iter().collect(),
    }
}

/// A number as written (`"500"`, `0x10`), normalised to decimal.
fn num(s: &str) -> String {
    s.trim()
        .parse::<i64>()
        .map_or(s.to_string(), |n| n.to_string())
}

pub fn facts(text: &str) -> Result<Facts, String> {
    let settings = parse_settings(text, "facts").map_err(|e| e.to_string())?;
    let map: HashMap<&str, &Value> = settings
        .iter()
        .map(|s| (s.key.as_str(), &s.value.value))
        .collect();
    let get = |k: &str| map.get(k).and_then(|v| scalar(v));
    let mut f = Facts::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            f.insert(k.to_string(), v);
        }
    };
    put("name", get("name"));
    put("uuid", get("uuid").map(|u| norm_uuid(&u)));
    let ty = match (get("type"), get("builder"), get("pvh").map(|p| num(&p))) {
        (_, _, Some(p)) if p != "0" => "pvh".to_string(),
        (Some(t), _, _) => t,
        (None, Some(b), _) if b == "hvm" => "hvm".to_string(),
        _ => "pv".to_string(),
    };
    let hvm = ty == "hvm";
    put("type", Some(ty));
    let mem = get("memory").map(|m| num(&m));
    put("maxmem", get("maxmem").map(|m| num(&m)).or(mem.clone()));
    put("memory", mem);
    let mut vcpus = get("vcpus").map(|m| num(&m));
    let max = get("maxvcpus").map(|m| num(&m)).or(vcpus.clone());
    // xm's vcpu_avail: the vCPUs online are the mask's set bits.
    if let Some(mask) = get("vcpu_avail").and_then(|m| m.trim().parse::<u64>().ok()) {
        vcpus = Some(mask.count_ones().to_string());
    }
    put("maxvcpus", max);
    put("vcpus", vcpus);
    // The seeds' rule: an HVM kernel that names the firmware is the loader.
    let mut loader = get("loader")
        .or(get("firmware").filter(|f| f.contains('/')))
        .or(get("bios_path_override"));
    let mut kernel = get("kernel");
    if hvm && loader.is_none() && kernel.as_deref().is_some_and(is_firmware) {
        loader = kernel.take();
    }
    // xl's default HVM firmware.
    if hvm && loader.is_none() && get("firmware").is_none() {
        loader = Some(HVMLOADER.into());
    }
    put("loader", loader);
    put("kernel", kernel);
    put("ramdisk", get("ramdisk"));
    let cmdline = get("cmdline").or_else(|| match (get("root"), get("extra")) {
        (None, None) => None,
        (Some(r), None) => Some(format!("root={r}")),
        (None, Some(e)) => Some(e),
        (Some(r), Some(e)) => Some(format!("root={r} {e}")),
    });
    put("cmdline", cmdline);
    put("bootloader", get("bootloader"));
    // xm spells the bootloader's arguments `bootargs` (one string).
    put(
        "bootloader_args",
        list(map.get("bootloader_args").copied())
            .first()
            .cloned()
            .or(get("bootargs")),
    );
    put("boot", get("boot"));
    put(
        "device_model",
        get("device_model_override").or(get("device_model")),
    );
    for (k, default) in [
        ("on_poweroff", "destroy"),
        ("on_reboot", "restart"),
        ("on_crash", "destroy"),
        ("localtime", "0"),
        ("rtc_timeoffset", "0"),
    ] {
        put(k, Some(get(k).map_or(default.to_string(), |v| num(&v))));
    }
    if hvm {
        for (k, default) in [
            ("acpi", "1"),
            ("apic", "1"),
            ("pae", "1"),
            ("hap", "1"),
            ("viridian", "0"),
        ] {
            put(k, Some(get(k).map_or(default.to_string(), |v| num(&v))));
        }
        graphics_keys(&get, &mut put);
    }
    devices(&map, hvm, &mut f)?;
    // xm before Xen 3.0.4 (libvirt's "old pvfb"): a PV guest with no `vfb` list takes its
    // framebuffer from the top-level `vnc`/`sdl` keys, the same facts as one `vfb` entry.
    if !hvm && !map.contains_key("vfb") {
        let mut top = Facts::new();
        graphics_keys(&get, &mut |k: &str, v: Option<String>| {
            if let Some(v) = v {
                top.insert(k.to_string(), v);
            }
        });
        let ty = ["vnc", "sdl"].into_iter().find(|t| top.contains_key(*t));
        if let Some(ty) = ty {
            f.insert("vfb[0].type".into(), ty.into());
            for (k, v) in top.into_iter().filter(|(k, _)| k != "vnc" && k != "sdl") {
                f.insert(format!("vfb[0].{k}"), v);
            }
        }
    }
    // libxl (and xm's qemu-dm) turn the emulated USB bus on for a USB device.
    if map.contains_key("usbdevice") {
        f.entry("usb".into()).or_insert_with(|| "1".into());
    }
    // Every other key is a fact of its own (`e820_host`, `passthrough`, `acpi_firmware`,
    // `max_event_channels`...), so a key domboot drops without naming it shows.
    for s in &settings {
        let k = s.key.as_str();
        if READ.contains(&k) || k.starts_with("domboot_") {
            continue;
        }
        let v = render(&s.value.value);
        f.insert(k.to_string(), v);
    }
    // xl's defaults: no USB bus; SPICE tickets (passwords) on unless disabled.
    for k in ["usb", "spicedisable_ticketing"] {
        if f.get(k).map(String::as_str) == Some("0") {
            f.remove(k);
        }
    }
    Ok(f)
}

/// A value as one string: a list's items (nested lists too) joined by ` | `.
fn render(v: &Value) -> String {
    match v {
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(|i| render(&i.value)).collect();
            format!("[{}]", parts.join(" | "))
        }
        other => scalar(other).map_or_else(String::new, |v| num(&v)),
    }
}

/// The keys read above (domboot's own `domboot_*` extensions are not libvirt's facts).
const READ: &[&str] = &[
    "name",
    "uuid",
    "type",
    "builder",
    "pvh",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "vcpu_avail",
    "loader",
    "firmware",
    "bios_path_override",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "bootloader",
    "bootloader_args",
    "bootargs",
    "boot",
    "device_model",
    "device_model_override",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "localtime",
    "rtc_timeoffset",
    "acpi",
    "apic",
    "pae",
    "hap",
    "viridian",
    "vnc",
    "vncunused",
    "vnclisten",
    "vncdisplay",
    "vncpasswd",
    "keymap",
    "sdl",
    "display",
    "xauthority",
    "spice",
    "spicehost",
    "spiceport",
    "spicepasswd",
    "cdrom",
    "disk",
    "vif",
    "serial",
    "vfb",
    "channel",
    "pci",
    "usbdevice",
    "soundhw",
    "parallel",
];

fn graphics_keys(get: &dyn Fn(&str) -> Option<String>, put: &mut dyn FnMut(&str, Option<String>)) {
    let on = |k: &str| get(k).is_some_and(|v| num(&v) != "0");
    if on("vnc") {
        put("vnc", Some("1".into()));
        put(
            "vncunused",
            Some(get("vncunused").map_or("1".into(), |v| num(&v))),
        );
        for k in ["vnclisten", "vncdisplay", "vncpasswd", "keymap"] {
            put(k, get(k));
        }
    }
    if on("sdl") {
        put("sdl", Some("1".into()));
        put("display", get("display"));
        put("xauthority", get("xauthority"));
    }
    if on("spice") {
        for k in ["spice", "spicehost", "spiceport", "spicepasswd"] {
            put(k, get(k));
        }
    }
}

fn devices(map: &HashMap<&str, &Value>, hvm: bool, f: &mut Facts) -> Result<(), String> {
    // xm's HVM `cdrom = PATH` is the file-backed cdrom hdc.
    if let Some(path) = map.get("cdrom").and_then(|v| scalar(v)) {
        for (k, v) in [
            ("driver", "file"),
            ("source", path.as_str()),
            ("devtype", "cdrom"),
            ("access", "ro"),
        ] {
            f.insert(format!("disk[hdc].{k}"), v.to_string());
        }
    }
    for d in list(map.get("disk").copied()) {
        let disk = spec::parse_disk(&d).map_err(|e| format!("disk `{d}`: {e}"))?;
        let g = format!("disk[{}]", disk.target);
        let driver = disk
            .driver
            .map(|d| if d == "qdisk" { "qemu".into() } else { d });
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.insert(format!("{g}.{k}"), v);
            }
        };
        // An empty drive has no backend to speak of (xm's `,hdc:cdrom,r` names none,
        // xl's key=value form reads as qdisk).
        put("driver", driver.filter(|_| disk.source.is_some()));
        // raw is xl's default format (and blktap's `aio` its raw driver).
        put("format", disk.format.filter(|f| f != "raw" && f != "aio"));
        put("source", disk.source);
        put("devtype", Some(disk.device.as_str().to_string()));
        put(
            "access",
            Some(if disk.readonly { "ro" } else { "rw" }.to_string()),
        );
        if disk.shareable {
            put("shareable", Some("1".into()));
        }
    }
    for (i, v) in list(map.get("vif").copied()).iter().enumerate() {
        for item in v.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, val) = item.split_once('=').unwrap_or((item, ""));
            let val = if k.trim() == "mac" {
                val.trim().to_ascii_lowercase()
            } else {
                val.trim().to_string()
            };
            // An HVM NIC is emulated and PV (`type=ioemu`) unless it says otherwise.
            if hvm && k.trim() == "type" && val == "ioemu" {
                continue;
            }
            f.insert(format!("vif[{i}].{}", k.trim()), val);
        }
    }
    for (i, s) in list(map.get("serial").copied()).iter().enumerate() {
        if s != "none" {
            f.insert(format!("serial[{i}]"), s.clone());
        }
    }
    // Guest channels (`channel = [ "connection=pty,name=..." ]`): one fact per parameter.
    for (i, c) in list(map.get("channel").copied()).iter().enumerate() {
        for item in c.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            f.insert(format!("channel[{i}].{}", k.trim()), v.trim().to_string());
        }
    }
    // PCI passthrough (`pci = [ "BDF", ... ]`).
    for (i, p) in list(map.get("pci").copied()).iter().enumerate() {
        f.insert(format!("hostdev[{i}].type"), "pci".into());
        f.insert(format!("hostdev[{i}].bdf"), p.clone());
    }
    // USB input devices (xm's one `usbdevice`, xl's list) and emulated sound cards.
    for (i, u) in list(map.get("usbdevice").copied()).iter().enumerate() {
        f.insert(format!("usbdevice[{i}]"), u.clone());
    }
    let sound = map
        .get("soundhw")
        .and_then(|v| scalar(v))
        .unwrap_or_default();
    for (i, m) in sound
        .split(',')
        .filter(|m| !m.trim().is_empty())
        .enumerate()
    {
        f.insert(format!("sound[{i}].model"), m.trim().to_string());
    }
    for (i, s) in list(map.get("parallel").copied()).iter().enumerate() {
        if s != "none" {
            f.insert(format!("parallel[{i}]"), s.clone());
        }
    }
    for (i, v) in list(map.get("vfb").copied()).iter().enumerate() {
        let g = format!("vfb[{i}]");
        for item in v.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, val) = item.split_once('=').unwrap_or((item, ""));
            let (k, val) = (k.trim(), val.trim());
            // xm's `type=vnc` is xl's `vnc=1`.
            match (k, val) {
                ("vnc" | "sdl", "0") => {}
                ("vnc" | "sdl", _) => {
                    f.insert(format!("{g}.type"), k.to_string());
                }
                _ => {
                    f.insert(format!("{g}.{k}"), val.to_string());
                }
            }
        }
        if f.get(&format!("{g}.type")).map(String::as_str) == Some("vnc") {
            f.entry(format!("{g}.vncunused"))
                .or_insert_with(|| "1".into());
        }
    }
    Ok(())
}
