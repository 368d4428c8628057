//! xend S-expression → model.
use super::parse::Sexp;
use crate::error::{ConfigError, Span, Warning};
use crate::model::*;
use crate::xl::spec;

/// Run-time keys xend reports for a live domain; not configuration, silently skipped.
const RUNTIME: [&str; 13] = [
    "state",
    "cpu_time",
    "online_vcpus",
    "status",
    "start_time",
    "up_time",
    "store_mfn",
    "console_mfn",
    "shutdown_reason",
    "on_xend_start",
    "on_xend_stop",
    "cpu_weight",
    "cpu_cap",
];

pub struct Reader<'a> {
    text: &'a str,
    source: &'a str,
    pub warnings: Vec<Warning>,
    /// `(localtime N)` and `(rtc_timeoffset N)`, wherever they stand: read together.
    localtime: Option<bool>,
    rtc_timeoffset: Option<i64>,
}

type R<T> = Result<T, ConfigError>;

impl<'a> Reader<'a> {
    pub fn new(text: &'a str, source: &'a str) -> Self {
        Reader {
            text,
            source,
            warnings: Vec::new(),
            localtime: None,
            rtc_timeoffset: None,
        }
    }

    fn span(&self, e: &Sexp) -> Span {
        Span::at_offset(self.source, self.text, e.offset())
    }

    fn bad(&self, e: &Sexp, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::semantic(self.span(e), key, msg)
    }

    fn warn(&mut self, e: &Sexp, msg: String) {
        let at = self.span(e);
        self.warnings.push(Warning::new(at, msg));
    }

    /// The single atom value of `(key value)`.
    fn value(&self, e: &Sexp, key: &str) -> R<String> {
        match e.items() {
            [_, Sexp::Atom { text, .. }] => Ok(text.clone()),
            [_] => Ok(String::new()),
            _ => Err(self.bad(e, key, format!("expected `({key} VALUE)`"))),
        }
    }

    fn int<T: std::str::FromStr>(&self, e: &Sexp, key: &str) -> R<T> {
        let v = self.value(e, key)?;
        v.trim()
            .parse()
            .map_err(|_| self.bad(e, key, format!("`{v}` is not a number")))
    }

    fn flag(&self, e: &Sexp, key: &str) -> R<bool> {
        Ok(self.int::<i64>(e, key)? != 0)
    }

    fn mib(&self, e: &Sexp, key: &str) -> R<MemSize> {
        let n: u64 = self.int(e, key)?;
        MemSize::from_mib(n).ok_or_else(|| self.bad(e, key, format!("{n} MiB is too large")))
    }

    pub fn read(&mut self, root: &Sexp) -> R<DomainConfig> {
        match root.head() {
            Some("vm" | "domain") => {}
            _ => return Err(self.bad(root, "vm", "expected `(vm ...)` or `(domain ...)`")),
        }
        let mut c = DomainConfig::default();
        let mut name = None;
        let mut vcpu_avail: Option<u128> = None;
        let mut domid: Option<u32> = None;
        for e in &root.items()[1..] {
            let Some(key) = e.head() else {
                return Err(self.bad(e, "vm", "expected `(key value)` items"));
            };
            match key {
                "name" => name = Some(self.value(e, key)?),
                "uuid" => {
                    let u = self.value(e, key)?;
                    c.uuid = Some(
                        Uuid::parse(&u)
                            .ok_or_else(|| self.bad(e, key, format!("`{u}` is not a UUID")))?,
                    );
                }
                "description" => c.description = Some(self.value(e, key)?),
                "memory" => c.memory = Some(self.mib(e, key)?),
                "maxmem" => c.max_memory = Some(self.mib(e, key)?),
                "vcpus" => c.max_vcpus = Some(self.int(e, key)?),
                "vcpu_avail" => vcpu_avail = Some(self.int(e, key)?),
                "on_poweroff" | "on_reboot" | "on_crash" => {
                    let a = self.value(e, key)?;
                    let action = LifecycleAction::parse(&a)
                        .ok_or_else(|| self.bad(e, key, format!("`{a}` is not an action")))?;
                    match key {
                        "on_poweroff" => c.on_poweroff = Some(action),
                        "on_reboot" => c.on_reboot = Some(action),
                        _ => c.on_crash = Some(action),
                    }
                }
                // A live domain reports `(bootloader )` when it has none.
                "bootloader" => {
                    c.boot.bootloader = Some(self.value(e, key)?).filter(|b| !b.is_empty())
                }
                "bootloader_args" => {
                    c.boot.bootloader_args = Some(self.value(e, key)?).filter(|b| !b.is_empty())
                }
                "localtime" => self.localtime = Some(self.flag(e, key)?),
                "domid" => domid = Some(self.int::<u32>(e, key)?),
                "image" => self.image(e, &mut c)?,
                "device" => self.device(e, &mut c)?,
                "domboot" => self.extensions(e, &mut c)?,
                k if RUNTIME.contains(&k) => {}
                k => self.warn(
                    e,
                    format!("`({k} ...)` is not modelled by domboot; dropped"),
                ),
            }
        }
        c.name =
            name.ok_or_else(|| self.bad(root, "name", "missing: the domain needs `(name ...)`"))?;
        // (vcpus MAX)(vcpu_avail MASK): online vCPUs are the mask's bits.
        c.vcpus = c.max_vcpus;
        if let Some(mask) = vcpu_avail {
            c.vcpus = Some(mask.count_ones());
        } else {
            c.max_vcpus = None;
        }
        c.clock = self.clock(c.guest_type, c.clock.take());
        // xend restarts a crashed domain unless told otherwise; the model's (libvirt's and
        // xl's) default is destroy, so xend's is stated.
        c.on_crash.get_or_insert(LifecycleAction::Restart);
        if let Some(id) = domid {
            running_domain_names(&mut c, id);
        }
        c.apply_hvm_kernel_is_loader_rule();
        c.normalize();
        Ok(c)
    }

    /// The clock `(localtime N)` and `(rtc_timeoffset N)` state, as libvirt's newest xend
    /// reader (xen_sxpr.c) reads them. An HVM guest's emulated RTC is a variable offset
    /// from UTC, or from local time with `(localtime 1)`: `rtc_timeoffset` seconds, 0 (xend's
    /// default) when the file names none. A PV guest has no emulated RTC: `localtime` says
    /// which of the two fixed offsets it has (an `rtc_timeoffset`, which libvirt ignores
    /// there, is kept as a variable clock). `extension` is what domboot's own
    /// `(domboot (timezone ..))` said, kept when xend's keys say nothing.
    fn clock(&self, guest: GuestType, extension: Option<Clock>) -> Option<Clock> {
        let basis = if self.localtime == Some(true) {
            ClockBasis::Localtime
        } else {
            ClockBasis::Utc
        };
        match (self.rtc_timeoffset, self.localtime) {
            (None, None) if extension.is_some() => extension,
            (adjustment, _) if guest == GuestType::Hvm => Some(Clock::Variable {
                adjustment: adjustment.unwrap_or(0),
                basis,
            }),
            (Some(adjustment), _) => Some(Clock::Variable { adjustment, basis }),
            (None, Some(true)) => Some(Clock::Localtime),
            (None, Some(false)) => Some(Clock::Utc),
            (None, None) => None,
        }
    }

    fn image(&mut self, e: &Sexp, c: &mut DomainConfig) -> R<()> {
        let [_, img] = e.items() else {
            return Err(self.bad(e, "image", "expected `(image (linux|hvm|pvh ...))`"));
        };
        c.guest_type = match img.head() {
            Some("linux") => GuestType::Pv,
            Some("hvm") => GuestType::Hvm,
            Some("pvh") => GuestType::Pvh,
            other => {
                return Err(self.bad(
                    img,
                    "image",
                    format!(
                        "unknown guest type `{}` (linux, hvm or pvh)",
                        other.unwrap_or("")
                    ),
                ));
            }
        };
        let (mut vnc_on, mut sdl_on) = (false, false);
        let mut vnc = Graphics {
            kind: "vnc".into(),
            autoport: true,
            ..Default::default()
        };
        let mut sdl = Graphics {
            kind: "sdl".into(),
            ..Default::default()
        };
        for item in img.items().iter().skip(1) {
            let Some(key) = item.head() else {
                return Err(self.bad(item, "image", "expected `(key value)` items"));
            };
            let b = &mut c.boot;
            match key {
                "kernel" => b.kernel = Some(self.value(item, key)?).filter(|k| !k.is_empty()),
                "ramdisk" => b.initrd = Some(self.value(item, key)?),
                "args" => b.cmdline = Some(self.value(item, key)?),
                "root" => b.root = Some(self.value(item, key)?),
                "loader" => b.loader = Some(self.value(item, key)?),
                "boot" => {
                    let letters = self.value(item, key)?;
                    for ch in letters.chars() {
                        let d = BootDevice::from_letter(ch).ok_or_else(|| {
                            self.bad(
                                item,
                                key,
                                format!("`{ch}` is not a boot device (a, c, d, n)"),
                            )
                        })?;
                        b.order.push(d);
                    }
                }
                "device_model" => c.emulator = Some(self.value(item, key)?),
                "acpi" | "apic" | "pae" | "hap" | "viridian" => {
                    let on = self.flag(item, key)?;
                    c.features.set(key, on);
                    // xend turns hap on unless told otherwise: `(hap 0)` is an explicit off.
                    if key == "hap" && !on {
                        c.features.off.insert(key.into());
                    }
                }
                "localtime" => self.localtime = Some(self.flag(item, key)?),
                "rtc_timeoffset" => self.rtc_timeoffset = Some(self.int(item, key)?),
                "serial" => self.serials(item, c)?,
                "usbdevice" => c.inputs.push(Input {
                    kind: self.value(item, key)?,
                    bus: Some("usb".into()),
                }),
                "cdrom" => {
                    let path = self.value(item, key)?;
                    // xend's image cdrom is a file-backed drive (libvirt: driver `file`).
                    c.disks.push(Disk {
                        driver: Some("file".into()).filter(|_| !path.is_empty()),
                        kind: DiskKind::infer(None, Some(&path)),
                        source: Some(path).filter(|p| !p.is_empty()),
                        target: "hdc".into(),
                        device: DiskDevice::Cdrom,
                        readonly: true,
                        ..Default::default()
                    });
                }
                "vnc" => vnc_on = self.flag(item, key)?,
                "sdl" => sdl_on = self.flag(item, key)?,
                "vncunused" => vnc.autoport = self.flag(item, key)?,
                "vnclisten" => vnc.listen = Some(self.value(item, key)?),
                "vncdisplay" => {
                    vnc.autoport = false;
                    vnc.port = self.int::<u32>(item, key)?.checked_add(5900)
                }
                "vncpasswd" => vnc.passwd = Some(self.value(item, key)?),
                "keymap" => vnc.keymap = Some(self.value(item, key)?),
                "display" => sdl.display = Some(self.value(item, key)?),
                "xauthority" => sdl.xauth = Some(self.value(item, key)?),
                "vcpus" => {}
                k => self.warn(
                    item,
                    format!("`({k} ...)` in the image is not modelled by domboot; dropped"),
                ),
            }
        }
        if vnc_on {
            c.graphics.push(vnc);
        }
        if sdl_on {
            c.graphics.push(sdl);
        }
        Ok(())
    }

    fn serials(&mut self, e: &Sexp, c: &mut DomainConfig) -> R<()> {
        let specs: Vec<&Sexp> = match e.items() {
            [_, Sexp::List { items, .. }] => items.iter().collect(),
            [_, rest @ ..] => rest.iter().collect(),
            [] => Vec::new(),
        };
        // A serial port's place in the list is its port number: `none` keeps a place.
        for (port, s) in specs.into_iter().enumerate() {
            let text = s
                .as_atom()
                .ok_or_else(|| self.bad(s, "serial", "expected a device such as pty"))?;
            match spec::parse_chardev(text) {
                Ok(Some(d)) => c.serials.push(CharDev {
                    port: u32::try_from(port).ok(),
                    ..d
                }),
                Ok(None) => {}
                Err(m) => return Err(self.bad(s, "serial", m)),
            }
        }
        Ok(())
    }

    /// The `(key value)` pairs of a device or extension body.
    fn pairs(&self, e: &Sexp, what: &str) -> R<Vec<(String, String, Sexp)>> {
        e.items()
            .iter()
            .skip(1)
            .map(|i| {
                let k = i
                    .head()
                    .ok_or_else(|| self.bad(i, what, "expected `(key value)` items"))?;
                let v = match i.items() {
                    [_, Sexp::Atom { text, .. }] => text.clone(),
                    [_] => String::new(),
                    _ => return Err(self.bad(i, what, format!("expected `({k} VALUE)`"))),
                };
                Ok((k.to_string(), v, i.clone()))
            })
            .collect()
    }

    fn device(&mut self, e: &Sexp, c: &mut DomainConfig) -> R<()> {
        let [_, dev] = e.items() else {
            return Err(self.bad(e, "device", "expected `(device (vbd|vif|vfb ...))`"));
        };
        match dev.head() {
            Some("vbd" | "tap" | "tap2") => {
                let mut d = Disk::default();
                let mut target = None;
                for (k, v, item) in self.pairs(dev, "vbd")? {
                    match k.as_str() {
                        "dev" => {
                            let v = v.strip_prefix("ioemu:").unwrap_or(&v);
                            match v.split_once(':') {
                                Some((t, "cdrom")) => {
                                    target = Some(t.to_string());
                                    d.device = DiskDevice::Cdrom;
                                }
                                Some((t, "floppy")) => {
                                    target = Some(t.to_string());
                                    d.device = DiskDevice::Floppy;
                                }
                                Some((t, _)) => target = Some(t.to_string()),
                                None => target = Some(v.to_string()),
                            }
                        }
                        "uname" => {
                            let (driver, format, path) = spec::split_uname(&v);
                            d.driver = driver;
                            d.format = format;
                            d.source = Some(path).filter(|p| !p.is_empty());
                        }
                        "mode" => match v.as_str() {
                            "r" | "ro" => d.readonly = true,
                            "w!" => d.shareable = true,
                            _ => {}
                        },
                        "bus" => d.bus = Some(v),
                        "kind" => {
                            d.kind = if v == "block" {
                                DiskKind::Block
                            } else {
                                DiskKind::File
                            }
                        }
                        _ => self.warn(&item, format!("vbd `({k} ...)` is not modelled; dropped")),
                    }
                }
                if !dev.items().iter().any(|i| i.head() == Some("kind")) {
                    d.kind = DiskKind::infer(d.driver.as_deref(), d.source.as_deref());
                }
                d.target = target.ok_or_else(|| self.bad(dev, "vbd", "missing `(dev ...)`"))?;
                c.disks.push(d);
            }
            Some("vif") => {
                let mut n = Interface::default();
                let mut network = None;
                for (k, v, item) in self.pairs(dev, "vif")? {
                    match k.as_str() {
                        "mac" => n.mac = Some(v),
                        "bridge" => {
                            spec::set_bridge(&mut n, &v).map_err(|m| self.bad(&item, "vif", m))?
                        }
                        "script" => n.script = Some(v),
                        "model" => n.model = Some(v),
                        "ip" => n.ip = Some(v),
                        "vifname" => n.target = Some(v),
                        "network" => network = Some(v),
                        "type" if v == "netfront" => n.model = Some(v),
                        // The HVM default (emulated and PV); libvirt writes it.
                        "type" if v == "ioemu" => {}
                        _ => self.warn(&item, format!("vif `({k} ...)` is not modelled; dropped")),
                    }
                }
                n.kind = if let Some(net) = network {
                    n.source = Some(net);
                    "network".into()
                } else if n.source.is_some()
                    || n.script.as_deref().is_some_and(|s| s.contains("bridge"))
                {
                    "bridge".into()
                } else {
                    "ethernet".into()
                };
                c.interfaces.push(n);
            }
            Some("vfb") => {
                let mut g = Graphics::default();
                let mut unused = None;
                for (k, v, item) in self.pairs(dev, "vfb")? {
                    match k.as_str() {
                        "type" => g.kind = v,
                        "vnc" | "sdl" if v != "0" => g.kind = k,
                        "vncunused" => unused = Some(v != "0"),
                        "vnclisten" => g.listen = Some(v),
                        "vncdisplay" => {
                            g.port = v.parse::<u32>().ok().and_then(|d| d.checked_add(5900))
                        }
                        "port" => g.port = v.parse().ok(),
                        "vncpasswd" => g.passwd = Some(v),
                        "keymap" => g.keymap = Some(v),
                        "display" => g.display = Some(v),
                        "xauthority" => g.xauth = Some(v),
                        _ => self.warn(&item, format!("vfb `({k} ...)` is not modelled; dropped")),
                    }
                }
                g.autoport = unused.unwrap_or(g.kind == "vnc" && g.port.is_none());
                if g.kind.is_empty() {
                    self.warn(dev, "a vfb without a type is dropped".into());
                } else {
                    c.graphics.push(g);
                }
            }
            Some("vkbd" | "console") => {}
            other => self.warn(
                dev,
                format!(
                    "device `{}` is not modelled by domboot; dropped",
                    other.unwrap_or("?")
                ),
            ),
        }
        Ok(())
    }

    /// `(domboot ...)`: what xend has no key for, written by domboot.
    fn extensions(&mut self, e: &Sexp, c: &mut DomainConfig) -> R<()> {
        for item in e.items().iter().skip(1) {
            let key = item.head().unwrap_or("");
            match key {
                "hypervisor" => c.hypervisor = Some(self.value(item, key)?),
                "arch" => c.arch = Some(self.value(item, key)?),
                "machine" => c.machine = Some(self.value(item, key)?),
                "firmware" => c.boot.firmware = Some(self.value(item, key)?),
                "timezone" => {
                    c.clock = Some(Clock::Timezone {
                        timezone: self.value(item, key)?,
                    })
                }
                "features" | "features_off" => {
                    for f in item.items().iter().skip(1) {
                        let name = f
                            .as_atom()
                            .ok_or_else(|| self.bad(f, key, "expected feature names"))?;
                        if key == "features" {
                            c.features.other.insert(name.to_string());
                        } else {
                            c.features.set(name, false);
                            c.features.off.insert(name.to_string());
                        }
                    }
                }
                "console" => {
                    let mut d = CharDev::default();
                    for (k, v, i) in self.pairs(item, "console")? {
                        match k.as_str() {
                            "type" => {
                                d.kind = CharKind::parse(&v).ok_or_else(|| {
                                    self.bad(
                                        &i,
                                        "console",
                                        format!("`{v}` is not a character device type"),
                                    )
                                })?
                            }
                            "path" => d.path = Some(v),
                            "host" => d.host = Some(v),
                            "service" => d.service = Some(v),
                            "listen" => d.listen = v != "0",
                            "telnet" => d.telnet = v != "0",
                            "target" => d.target = Some(v),
                            "bind_host" => d.bind_host = Some(v),
                            "bind_service" => d.bind_service = Some(v),
                            "port" => {
                                d.port = Some(v.parse().map_err(|_| {
                                    self.bad(&i, "console", format!("port `{v}` is not a number"))
                                })?)
                            }
                            _ => {
                                return Err(self.bad(
                                    &i,
                                    "console",
                                    format!("unknown console key `{k}`"),
                                ));
                            }
                        }
                    }
                    c.consoles.push(d);
                }
                "input" => {
                    let mut input = Input::default();
                    for (k, v, i) in self.pairs(item, "input")? {
                        match k.as_str() {
                            "type" => input.kind = v,
                            "bus" => input.bus = Some(v),
                            _ => {
                                return Err(self.bad(
                                    &i,
                                    "input",
                                    format!("unknown input key `{k}`"),
                                ));
                            }
                        }
                    }
                    c.inputs.push(input);
                }
                _ => self.warn(
                    item,
                    format!("`(domboot ({key} ...))` is not known; dropped"),
                ),
            }
        }
        Ok(())
    }
}

/// What xend gives a running domain (`(domid N)`) and libvirt reports: its interfaces are
/// named `vifN.I`. Its VNC display is not derived from N (only xend before 3.0.3 put an
/// HVM display at 5900 + N): libvirt's newest reader takes a running domain's port from
/// xenstore alone and, without it, reports none (autoport), as domboot does.
fn running_domain_names(c: &mut DomainConfig, id: u32) {
    for (i, n) in c.interfaces.iter_mut().enumerate() {
        if n.target.is_none() {
            n.target = Some(format!("vif{id}.{i}"));
        }
    }
}
