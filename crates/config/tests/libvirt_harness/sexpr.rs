//! Facts of a xend S-expression, as xend would read it (its defaults filled in). Only the
//! S-expression tokenizer is domboot's; the meaning of each item is worked out here.
use super::{Facts, HVMLOADER, is_firmware, norm_uuid};
use domboot_config::sexpr::{Sexp, parse_tree_lenient};

fn atom(e: &Sexp) -> Option<String> {
    match e.items() {
        [_, v] => v.as_atom().map(str::to_string),
        [_] => Some(String::new()),
        _ => None,
    }
}

fn pairs(e: &Sexp) -> Vec<(String, Option<String>, &Sexp)> {
    e.items()
        .iter()
        .skip(1)
        .filter_map(|i| i.head().map(|h| (h.to_string(), atom(i), i)))
        .collect()
}

fn num(s: &str) -> String {
    s.trim()
        .parse::<i64>()
        .map_or(s.to_string(), |n| n.to_string())
}

pub fn facts(text: &str) -> Result<Facts, String> {
    let (root, _) = parse_tree_lenient(text, "facts").map_err(|e| e.to_string())?;
    let mut f = Facts::new();
    let mut localtime = "0".to_string();
    let mut nic = 0;
    let mut vfb = 0;
    for (k, v, item) in pairs(&root) {
        match k.as_str() {
            // A live domain reports `(bootloader )` when it has none.
            "bootloader" | "bootloader_args" if v.as_deref().is_none_or(str::is_empty) => {}
            "name" | "bootloader" | "bootloader_args" | "on_poweroff" | "on_reboot"
            | "on_crash" => {
                f.insert(k, v.unwrap_or_default());
            }
            "uuid" => {
                f.insert(k, norm_uuid(&v.unwrap_or_default()));
            }
            "memory" | "maxmem" | "vcpus" => {
                f.insert(k, num(&v.unwrap_or_default()));
            }
            "localtime" => localtime = num(&v.unwrap_or_default()),
            "image" => {
                if let Some(img) = item.items().get(1) {
                    image(img, &mut f, &mut localtime);
                }
            }
            "device" => {
                if let Some(dev) = item.items().get(1) {
                    device(dev, &mut f, &mut nic, &mut vfb);
                }
            }
            // Every other key is a fact of its own, except what a live domain reports of
            // its state.
            _ if !LIVE.contains(&k.as_str()) && k != "domboot" => {
                f.insert(k, v.unwrap_or_default());
            }
            _ => {}
        }
    }
    f.insert("localtime".into(), localtime);
    // xend's qemu-dm turns the emulated USB bus on for a USB device; off is the default.
    if f.contains_key("usbdevice[0]") {
        f.entry("usb".into()).or_insert_with(|| "1".into());
    }
    if f.get("usb").map(String::as_str) == Some("0") {
        f.remove("usb");
    }
    // xend's default image is a PV (linux) one.
    f.entry("image".into()).or_insert_with(|| "linux".into());
    if let Some(m) = f.get("memory").cloned() {
        f.entry("maxmem".into()).or_insert(m);
    }
    // xend's defaults: one vCPU; each vif runs xend-config's `vif-script`, `vif-bridge`
    // unless the host says otherwise.
    f.entry("vcpus".into()).or_insert_with(|| "1".into());
    for i in 0..nic {
        f.entry(format!("vif[{i}].script"))
            .or_insert_with(|| "vif-bridge".into());
    }
    // xend's defaults for the lifecycle actions.
    for (k, v) in [
        ("on_poweroff", "destroy"),
        ("on_reboot", "restart"),
        ("on_crash", "restart"),
    ] {
        f.entry(k.into()).or_insert_with(|| v.into());
    }
    Ok(f)
}

fn image(img: &Sexp, f: &mut Facts, localtime: &mut String) {
    let ty = img.head().unwrap_or("").to_string();
    let hvm = ty == "hvm";
    f.insert("image".into(), ty);
    let mut loader = None;
    let mut kernel = None;
    let mut root = None;
    let mut args = None;
    let mut serial = Vec::new();
    for (k, v, item) in pairs(img) {
        let v = v.unwrap_or_default();
        match k.as_str() {
            "loader" => loader = Some(v),
            "kernel" => kernel = Some(v).filter(|k| !k.is_empty()),
            "root" => root = Some(v),
            "args" => args = Some(v),
            "localtime" => *localtime = num(&v),
            "ramdisk" | "boot" | "device_model" | "vnclisten" | "vncpasswd" | "keymap"
            | "display" | "xauthority" => {
                f.insert(k, v);
            }
            "usbdevice" => {
                f.insert("usbdevice[0]".into(), v);
            }
            "soundhw" => {
                for (i, m) in v.split(',').filter(|m| !m.trim().is_empty()).enumerate() {
                    f.insert(format!("sound[{i}].model"), m.trim().to_string());
                }
            }
            "parallel" if v != "none" && !v.is_empty() => {
                f.insert("parallel[0]".into(), v);
            }
            "acpi" | "apic" | "pae" | "hap" | "viridian" | "hpet" | "vnc" | "sdl" | "vncunused"
            | "vncdisplay" | "rtc_timeoffset" => {
                f.insert(k, num(&v));
            }
            // xend makes the image's cdrom a file-backed vbd `hdc:cdrom`.
            "cdrom" if !v.is_empty() => {
                f.insert("disk[hdc].class".into(), "vbd".into());
                f.insert("disk[hdc].driver".into(), "file".into());
                f.insert("disk[hdc].source".into(), v);
                f.insert("disk[hdc].devtype".into(), "cdrom".into());
                f.insert("disk[hdc].mode".into(), "r".into());
            }
            "serial" => match item.items() {
                [_, Sexp::List { items, .. }] => {
                    serial.extend(items.iter().filter_map(|s| s.as_atom().map(str::to_string)))
                }
                [_, rest @ ..] => {
                    serial.extend(rest.iter().filter_map(|s| s.as_atom().map(str::to_string)))
                }
                [] => {}
            },
            // The image repeats the domain's vCPUs; `(parallel none)` is no port.
            "vcpus" | "parallel" => {}
            _ if !LIVE.contains(&k.as_str()) => {
                f.insert(k, v);
            }
            _ => {}
        }
    }
    // The seeds' rule: an HVM kernel that names the firmware is the loader.
    if hvm && loader.is_none() && kernel.as_deref().is_some_and(is_firmware) {
        loader = kernel.take();
    }
    // xend's default HVM firmware (3.3 and later).
    if hvm && loader.is_none() {
        loader = Some(HVMLOADER.into());
    }
    // xend's (and xm's) default HVM boot order: the first disk.
    if hvm && !f.contains_key("boot") {
        f.insert("boot".into(), "c".into());
    }
    for (k, v) in [("loader", loader), ("kernel", kernel)] {
        if let Some(v) = v {
            f.insert(k.into(), v);
        }
    }
    let cmdline = match (root, args) {
        (None, None) => None,
        (Some(r), None) => Some(format!("root={r}")),
        (None, Some(a)) => Some(a),
        (Some(r), Some(a)) => Some(format!("root={r} {a}")),
    };
    if let Some(c) = cmdline {
        f.insert("args".into(), c);
    }
    // xend's defaults: features and displays off, clock offset 0.
    for k in [
        "acpi",
        "apic",
        "pae",
        "hap",
        "viridian",
        "vnc",
        "sdl",
        "rtc_timeoffset",
    ] {
        if f.get(k).map(String::as_str) == Some("0") {
            f.remove(k);
        }
    }
    if f.get("vnc").is_none() {
        for k in [
            "vncunused",
            "vncdisplay",
            "vnclisten",
            "vncpasswd",
            "keymap",
        ] {
            f.remove(k);
        }
    } else {
        f.entry("vncunused".into()).or_insert_with(|| "1".into());
    }
    if f.get("sdl").is_none() {
        for k in ["display", "xauthority"] {
            f.remove(k);
        }
    }
    // The image's display keys are the old spelling of a vfb device: xend makes one.
    if f.remove("vnc").is_some() {
        f.insert("vfb[0].type".into(), "vnc".into());
        for k in [
            "vncunused",
            "vncdisplay",
            "vnclisten",
            "vncpasswd",
            "keymap",
        ] {
            if let Some(v) = f.remove(k) {
                f.insert(format!("vfb[0].{k}"), v);
            }
        }
    }
    for (i, s) in serial.iter().enumerate() {
        if s != "none" {
            f.insert(format!("serial[{i}]"), s.clone());
        }
    }
}

fn device(dev: &Sexp, f: &mut Facts, nic: &mut usize, vfb: &mut usize) {
    let class = dev.head().unwrap_or("").to_string();
    let kv = pairs(dev);
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _, _)| key == k)
            .and_then(|(_, v, _)| v.clone())
    };
    match class.as_str() {
        "vbd" | "tap" | "tap2" => {
            let dev = get("dev").unwrap_or_default();
            let dev = dev.strip_prefix("ioemu:").unwrap_or(&dev).to_string();
            let (target, devtype) = match dev.split_once(':') {
                Some((t, ty)) => (t.to_string(), ty.to_string()),
                None => (dev, "disk".to_string()),
            };
            let g = format!("disk[{target}]");
            let uname = get("uname").unwrap_or_default();
            let (driver, format, path) = split_uname(&uname);
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    f.insert(format!("{g}.{k}"), v);
                }
            };
            put("class", Some(class.clone()));
            put("driver", driver);
            put("format", format);
            put("source", Some(path));
            put("devtype", Some(devtype));
            put("mode", get("mode"));
        }
        "vif" => {
            for (k, v, _) in kv.iter().filter(|(k, _, _)| !RUNTIME.contains(&k.as_str())) {
                let v = v.clone().unwrap_or_default();
                let v = if k == "mac" {
                    v.to_ascii_lowercase()
                } else {
                    v
                };
                // An HVM NIC is emulated and PV (`ioemu`) unless it says otherwise.
                let hvm = f.get("image").map(String::as_str) == Some("hvm");
                if k == "type" && v == "ioemu" && hvm {
                    continue;
                }
                f.insert(format!("vif[{nic}].{k}"), v);
            }
            *nic += 1;
        }
        "vfb" => {
            let g = format!("vfb[{vfb}]");
            for (k, v, _) in kv.iter().filter(|(k, _, _)| !RUNTIME.contains(&k.as_str())) {
                f.insert(format!("{g}.{k}"), v.clone().unwrap_or_default());
            }
            // Older xend's `(vnc 1)` / `(sdl 1)` is `(type vnc)` / `(type sdl)`.
            for t in ["vnc", "sdl"] {
                if f.get(&format!("{g}.{t}")).map(String::as_str) == Some("1") {
                    f.remove(&format!("{g}.{t}"));
                    f.entry(format!("{g}.type")).or_insert_with(|| t.into());
                }
            }
            // With vncunused, xend picks a free display: a vncdisplay is not kept.
            if f.get(&format!("{g}.vncunused")).map(String::as_str) == Some("1") {
                f.remove(&format!("{g}.vncdisplay"));
            }
            *vfb += 1;
        }
        // PCI passthrough: one `(dev (domain ..)(bus ..)(slot ..)(func ..))` per device.
        "pci" => {
            for (_, _, d) in kv.iter().filter(|(k, _, _)| k == "dev") {
                let i = f
                    .keys()
                    .filter(|k| k.starts_with("hostdev[") && k.ends_with("].type"))
                    .count();
                let addr: Vec<String> = pairs(d)
                    .into_iter()
                    .map(|(k, v, _)| format!("{k}={}", v.unwrap_or_default()))
                    .collect();
                f.insert(format!("hostdev[{i}].type"), "pci".into());
                f.insert(format!("hostdev[{i}].address"), addr.join(","));
            }
        }
        _ => {}
    }
}

/// What xend reports of a live domain, not its configuration.
const LIVE: &[&str] = &[
    "domid",
    "cpu_time",
    "state",
    "status",
    "store_mfn",
    "console_mfn",
    "shadow_memory",
    "cpu_weight",
    "cpu_cap",
    "cpus",
    "features",
    "on_xend_start",
    "on_xend_stop",
    "start_time",
    "online_vcpus",
    "notes",
    "up_time",
    "shutdown_reason",
];

/// What xend reports of a live domain's devices, not their configuration.
const RUNTIME: [&str; 3] = ["uuid", "location", "backend"];

/// `driver:[subtype:]path` as xend reads a uname.
fn split_uname(u: &str) -> (Option<String>, Option<String>, String) {
    let Some((d, rest)) = u.split_once(':') else {
        return (None, None, u.to_string());
    };
    match d {
        "tap" | "tap2" => match rest.split_once(':') {
            Some((t, p)) => (Some(d.into()), Some(t.into()), p.into()),
            None => (Some(d.into()), None, rest.into()),
        },
        "phy" | "file" => (Some(d.into()), None, rest.into()),
        _ => (None, None, u.to_string()),
    }
}
