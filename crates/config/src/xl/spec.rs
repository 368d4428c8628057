//! The string specs inside xl values: disks (xl-disk-configuration(5), both the key=value
//! and the deprecated xm `prefix:target,vdev,access` forms) and domboot's own key=value
//! extension specs, here; vifs (`vif.rs`) and character devices (`chardev.rs`, `pty`,
//! `file:/path`, `tcp:host:port,server,nowait`...) are re-exported. Shared with the xend
//! S-expression reader and writer for `uname`, `serial` and `vif`.
use crate::model::{Disk, DiskDevice, DiskKind, Graphics};

pub use super::chardev::{parse_chardev, serial_list, write_chardev};
pub use super::vif::{bridge_spec, is_generated_vif_name, parse_vif, set_bridge, write_vif};

/// xm's driver prefixes that name a backend (kept as the disk's `driver`).
pub const DRIVER_PREFIXES: [&str; 6] = ["phy", "file", "tap", "tap2", "tapdisk", "ioemu"];
/// Prefixes (and positional values) that name an image format.
pub const FORMATS: [&str; 9] = [
    "raw", "qcow", "qcow2", "vhd", "qed", "aio", "vmdk", "ram", "sync",
];

/// Split `driver:[format:]path` as in xm's disk target and xend's `uname`.
/// Returns (driver, format, path).
pub fn split_uname(s: &str) -> (Option<String>, Option<String>, String) {
    let mut driver = None;
    let mut format = None;
    let mut rest = s;
    if let Some((d, r)) = rest.split_once(':') {
        // libvirt also writes `qemu:` (its driver name for xl's qdisk backend).
        if DRIVER_PREFIXES.contains(&d) || d == "qemu" {
            driver = Some(d.to_string());
            rest = r;
        }
    }
    if let Some((f, r)) = rest.split_once(':') {
        if FORMATS.contains(&f) {
            format = Some(f.to_string());
            rest = r;
        }
    }
    (driver, format, rest.to_string())
}

/// `driver:[format:]path`, the inverse of [`split_uname`].
pub fn join_uname(driver: Option<&str>, format: Option<&str>, path: &str) -> String {
    let mut s = String::new();
    for part in [driver, format].into_iter().flatten() {
        s.push_str(part);
        s.push(':');
    }
    s.push_str(path);
    s
}

/// The uname prefix xend (and xm) need: the backend (`phy` for a block device and `file`
/// for a file when none is named) and, for blktap, its disk type (`aio` for raw).
pub fn uname_prefix(d: &Disk) -> (&str, Option<&str>) {
    match d.driver.as_deref() {
        Some(t @ ("tap" | "tap2")) => (t, Some(d.format.as_deref().unwrap_or("aio"))),
        Some(other) => (other, d.format.as_deref()),
        None if d.kind == DiskKind::Block => ("phy", d.format.as_deref()),
        None => ("file", d.format.as_deref()),
    }
}

/// The disk kind a reader infers from what the xl and xend writers put down: an empty
/// drive carries no driver prefix, so it reads as a file.
pub fn implied_kind(d: &Disk) -> DiskKind {
    match &d.source {
        None => DiskKind::File,
        Some(s) => DiskKind::infer(d.driver.as_deref(), Some(s)),
    }
}

/// Parse one xl DISKSPEC.
pub fn parse_disk(spec: &str) -> Result<Disk, String> {
    let mut disk = Disk::default();
    let mut positional: Vec<String> = Vec::new();
    let mut target: Option<String> = None;
    let mut vdev: Option<String> = None;
    let mut access: Option<String> = None;
    let mut format: Option<String> = None;
    let mut rest = spec;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        if let Some(t) = trimmed.strip_prefix("target=") {
            target = Some(t.to_string());
            break;
        }
        let (item, next) = match trimmed.split_once(',') {
            Some((a, b)) => (a.trim(), Some(b)),
            None => (trimmed.trim(), None),
        };
        match item.split_once('=') {
            Some((k, v)) => match k.trim() {
                "format" => format = Some(v.to_string()),
                "vdev" => vdev = Some(v.to_string()),
                "access" => access = Some(v.to_string()),
                "devtype" => disk.device = parse_devtype(v)?,
                "backendtype" => {
                    disk.driver = Some(if v == "qdisk" {
                        "qemu".into()
                    } else {
                        v.to_string()
                    })
                }
                "script" | "backend" => {}
                other => return Err(format!("unknown disk parameter `{other}`")),
            },
            None => match item {
                "cdrom" => disk.device = DiskDevice::Cdrom,
                "direct-io-safe" | "discard" | "no-discard" | "colo" => {}
                _ => positional.push(item.to_string()),
            },
        }
        rest = next.unwrap_or("");
        if next.is_none() {
            break;
        }
    }

    // The deprecated xm form: `[prefix:]target,vdev[:devtype],access`: three positionals
    // whose second is not a format, or a first one with a driver/format prefix.
    let legacy = positional.len() == 3
        && !positional[1].is_empty()
        && !FORMATS.contains(&positional[1].as_str())
        || positional.first().is_some_and(|p| {
            p.split_once(':')
                .is_some_and(|(pre, _)| DRIVER_PREFIXES.contains(&pre) || FORMATS.contains(&pre))
        });
    let mut pos = positional.into_iter();
    if legacy {
        if let Some(t) = pos.next() {
            let (driver, fmt, path) = split_uname(&t);
            if driver.is_some() {
                disk.driver = driver;
            }
            if fmt.is_some() {
                format = fmt;
            }
            target = target.or(Some(path));
        }
        vdev = vdev.or(pos.next());
        access = access.or(pos.next());
    } else {
        if let Some(t) = pos.next() {
            target = target.or(Some(t));
        }
        if let Some(f) = pos.next() {
            format = format.or(Some(f));
        }
        vdev = vdev.or(pos.next());
        access = access.or(pos.next());
        if let Some(d) = pos.next() {
            disk.device = parse_devtype(&d)?;
        }
    }
    if let Some(extra) = pos.next() {
        return Err(format!("too many positional parameters (`{extra}`)"));
    }

    let vdev = vdev
        .filter(|v| !v.is_empty())
        .ok_or("no vdev (the guest's device name, e.g. xvda)")?;
    let vdev = vdev.strip_prefix("ioemu:").unwrap_or(&vdev);
    match vdev.split_once(':') {
        Some((v, t)) => {
            disk.target = v.to_string();
            disk.device = parse_devtype(t)?;
        }
        None => disk.target = vdev.to_string(),
    }
    if disk.target.is_empty() {
        return Err("no vdev (the guest's device name, e.g. xvda) before its `:`".into());
    }
    disk.format = format.filter(|f| !f.is_empty());
    disk.source = target.filter(|t| !t.is_empty());
    match access.as_deref().map(str::trim) {
        None | Some("") => disk.readonly = disk.device == DiskDevice::Cdrom,
        Some("r" | "ro") => disk.readonly = true,
        Some("w" | "rw") => {}
        Some("w!" | "!") => disk.shareable = true,
        Some(a) => return Err(format!("access `{a}` is not r, ro, w, rw or w!")),
    }
    // xl's form names no backend: libxl picks phy for a block device and qdisk for an
    // image file or an empty drive, which libvirt calls the `qemu` driver.
    let not_block = disk
        .source
        .as_deref()
        .is_none_or(|s| !s.starts_with("/dev/"));
    if !legacy && disk.driver.is_none() && not_block {
        disk.driver = Some("qemu".into());
    }
    disk.kind = DiskKind::infer(disk.driver.as_deref(), disk.source.as_deref());
    Ok(disk)
}

fn parse_devtype(t: &str) -> Result<DiskDevice, String> {
    match t {
        "cdrom" => Ok(DiskDevice::Cdrom),
        "disk" | "" => Ok(DiskDevice::Disk),
        "floppy" => Ok(DiskDevice::Floppy),
        other => Err(format!("devtype `{other}` is not cdrom or disk")),
    }
}

fn access(d: &Disk) -> &'static str {
    match (d.readonly, d.shareable) {
        (true, _) => "r",
        (false, true) => "w!",
        (false, false) => "w",
    }
}

/// Write one DISKSPEC: xm's positional form when the disk has an xm driver prefix (as
/// the seeds' files do), otherwise xl's key=value form.
pub fn write_disk(d: &Disk) -> String {
    let devtype = match d.device {
        DiskDevice::Disk => "",
        DiskDevice::Cdrom => ":cdrom",
        DiskDevice::Floppy => ":floppy",
    };
    let path = d.source.as_deref().unwrap_or("");
    // The positional form cannot carry a path with a comma or `=` (it would read as a
    // key), or one that starts like a prefix (`raw:...`); `target=` (last) takes the rest
    // of the spec verbatim.
    let positional_safe = !path.contains(',')
        && !path.contains('=')
        && !d.target.contains('=')
        && path.split_once(':').is_none_or(|(pre, _)| {
            !DRIVER_PREFIXES.contains(&pre) && !FORMATS.contains(&pre) && pre != "qemu"
        });
    if let Some(driver) = d
        .driver
        .as_deref()
        .filter(|v| DRIVER_PREFIXES.contains(v) && positional_safe)
    {
        let uname = if path.is_empty() {
            String::new()
        } else {
            join_uname(Some(driver), uname_prefix(d).1, path)
        };
        return format!("{uname},{}{devtype},{}", d.target, access(d));
    }
    let mut parts = Vec::new();
    if let Some(f) = &d.format {
        parts.push(format!("format={f}"));
    }
    parts.push(format!("vdev={}", d.target));
    parts.push(format!("access={}", if d.readonly { "ro" } else { "rw" }));
    match d.device {
        DiskDevice::Disk => {}
        DiskDevice::Cdrom => parts.push("devtype=cdrom".into()),
        DiskDevice::Floppy => parts.push("devtype=floppy".into()),
    }
    if let Some(drv) = &d.driver {
        parts.push(format!(
            "backendtype={}",
            if drv == "qemu" { "qdisk" } else { drv }
        ));
    }
    if !path.is_empty() {
        parts.push(format!("target={path}"));
    }
    parts.join(", ")
}

/// The protocol of a qdisk target that names a network disk (`rbd:pool/image:...`,
/// `nbd:...`, `iscsi:...`), which libvirt reads as `<disk type='network'>`.
pub fn network_disk_protocol(source: &str) -> Option<&'static str> {
    ["rbd", "nbd", "iscsi", "sheepdog", "gluster"]
        .into_iter()
        .find(|p| source.strip_prefix(p).is_some_and(|r| r.starts_with(':')))
}

/// Whether a value can stand in a `key=value,key=value` spec and read back the same: no
/// comma (the separator) and no blanks at its ends (they are trimmed). Writers leave out
/// what cannot, and `losses()` names it.
pub fn kv_fits(v: &str) -> bool {
    !v.contains(',') && v.trim() == v
}

/// Parse a `key=value,key=value` spec (vif and domboot extensions).
pub fn parse_kv(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) => out.push((k.trim().to_string(), v.trim().to_string())),
            None => return Err(format!("`{item}` is not key=value")),
        }
    }
    Ok(out)
}

/// Whether the HVM graphics keys (`vnc`, `sdl`, `spice` and friends, in xl and in xend's
/// image) can say all of `g`.
/// Whether `graphics` can be said with the HVM keys for `kinds` (in that order, as the
/// readers collect them): at most one of each kind, in order, each fitting its keys.
pub fn hvm_graphics_keys_fit(graphics: &[Graphics], kinds: &[&str]) -> bool {
    let mut next = 0;
    for g in graphics {
        match kinds.iter().skip(next).position(|k| *k == g.kind) {
            Some(i) if fits_hvm_graphics_keys(g) => next += i + 1,
            _ => return false,
        }
    }
    true
}

fn fits_hvm_graphics_keys(g: &Graphics) -> bool {
    match g.kind.as_str() {
        "vnc" => g.port.is_none_or(|p| p >= 5900) && g.display.is_none() && g.xauth.is_none(),
        "sdl" => {
            g.port.is_none()
                && !g.autoport
                && g.listen.is_none()
                && g.passwd.is_none()
                && g.keymap.is_none()
        }
        "spice" => !g.autoport && g.keymap.is_none() && g.display.is_none() && g.xauth.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_disk_forms_from_the_manual_are_equivalent() {
        // xl-disk-configuration(5): these four strings are equivalent ...
        let forms = [
            "/dev/vg/guest-volume,,hda",
            "/dev/vg/guest-volume,raw,hda,rw",
            "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume",
            "raw:/dev/vg/guest-volume,hda,w",
        ];
        let disks: Vec<Disk> = forms.iter().map(|f| parse_disk(f).expect(f)).collect();
        for d in &disks {
            assert_eq!(d.target, "hda");
            assert_eq!(d.source.as_deref(), Some("/dev/vg/guest-volume"));
            assert_eq!(d.kind, DiskKind::Block);
            assert!(!d.readonly);
        }
        // ... and so are these (an empty format means the default).
        let forms = [
            "/root/image.iso,,hdc,cdrom",
            "/root/image.iso,,hdc,,cdrom",
            "/root/image.iso,raw,hdc,devtype=cdrom",
            "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso",
            "raw:/root/image.iso,hdc:cdrom,ro",
        ];
        for f in forms {
            let d = parse_disk(f).expect(f);
            assert_eq!(
                (d.target.as_str(), d.device, d.readonly),
                ("hdc", DiskDevice::Cdrom, true),
                "{f}"
            );
            assert_eq!(d.source.as_deref(), Some("/root/image.iso"), "{f}");
        }
    }

    #[test]
    fn xm_prefixes_become_driver_and_format() {
        let d = parse_disk("file:/var/lib/xen/images/hvmdemo.img,hda,w").expect("ok");
        assert_eq!(d.driver.as_deref(), Some("file"));
        assert_eq!(d.kind, DiskKind::File);
        assert_eq!(write_disk(&d), "file:/var/lib/xen/images/hvmdemo.img,hda,w");
        let d = parse_disk("tap:aio:/srv/vm/disk.img,sda2,w").expect("ok");
        assert_eq!(
            (d.driver.as_deref(), d.format.as_deref()),
            (Some("tap"), Some("aio"))
        );
        assert_eq!(write_disk(&d), "tap:aio:/srv/vm/disk.img,sda2,w");
        let d = parse_disk(",hdc:cdrom,r").expect("empty cdrom");
        assert_eq!((d.source, d.device), (None, DiskDevice::Cdrom));
        let d = parse_disk("phy:/dev/vg/x,ioemu:hda,w!").expect("ok");
        assert!(d.shareable);
        assert_eq!(d.target, "hda");
        assert!(parse_disk("/x,raw").is_err());
        assert!(parse_disk("/x,raw,hda,rx").is_err());
        assert!(parse_disk("bogus=1,vdev=xvda").is_err());
    }

    #[test]
    fn awkward_paths_use_the_target_key() {
        for path in ["/a,b", "raw:/x", "file:y"] {
            let d = Disk {
                source: Some(path.into()),
                driver: Some("tap".into()),
                format: Some("aio".into()),
                target: "xvda".into(),
                ..Default::default()
            };
            let spec = write_disk(&d);
            assert!(spec.ends_with(&format!("target={path}")), "{spec}");
            assert_eq!(
                parse_disk(&spec).map(|x| x.source),
                Ok(Some(path.to_string()))
            );
        }
    }

    #[test]
    fn vifs() {
        let (n, ignored) =
            parse_vif("mac=00:16:3E:4A:5B:1E, bridge=br6,type=ioemu,rate=10Mb/s").expect("ok");
        assert_eq!(n.kind, "bridge");
        assert_eq!(n.source.as_deref(), Some("br6"));
        assert_eq!(ignored, ["rate=10Mb/s"]);
        assert_eq!(write_vif(&n), "mac=00:16:3E:4A:5B:1E,bridge=br6");
        let (n, _) = parse_vif("ip=10.160.248.149,script=vif-route").expect("ok");
        assert_eq!(n.kind, "ethernet");
        assert!(parse_vif("garbage").is_err());
    }

    #[test]
    fn chardevs_round_trip() {
        for s in [
            "pty",
            "null",
            "stdio",
            "vc",
            "file:/tmp/hvmdemo.log",
            "pipe:/tmp/p",
            "/dev/ttyS0",
            "unix:/tmp/s,server,nowait",
            "tcp:localhost:9999,server,nowait",
            "telnet:h:23",
            "udp:1.2.3.4:99",
            "tcp::4555,server,nowait",
        ] {
            let d = parse_chardev(s).expect(s).expect(s);
            assert_eq!(write_chardev(&d), s);
        }
        assert_eq!(parse_chardev("none"), Ok(None));
        assert!(parse_chardev("bogus:x").is_err());
        assert!(parse_chardev("tcp:nohostport").is_err());
    }
}
