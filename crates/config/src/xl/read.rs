//! From parsed xl/xm settings to the model.
use super::parse::{Setting, Spanned, Value};
use super::spec;
use crate::error::{ConfigError, Span, Warning};
use crate::model::*;
use std::collections::HashMap;

pub struct Reader<'a> {
    text: &'a str,
    source: &'a str,
    map: HashMap<&'a str, &'a Setting>,
    pub warnings: Vec<Warning>,
}

/// Keys that set graphics on HVM guests (read together).
/// xl.cfg(5) and xm keys domboot reads but does not model: real keys, so never taken for
/// a typo of a modelled one (`cpus` is not a misspelt `vcpus`).
const XL_KEYS: &[&str] = &[
    "pool",
    "cpus",
    "cpus_soft",
    "maxvcpus",
    "cpu_weight",
    "cap",
    "maxmem",
    "vnuma",
    "on_watchdog",
    "on_soft_reset",
    "seclabel",
    "init_seclabel",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_grant_version",
    "nomigrate",
    "driver_domain",
    "device_tree",
    "passthrough",
    "vmtrace_buf_kb",
    "vpmu",
    "e820_host",
    "type",
    "vtpm",
    "p9",
    "pvcalls",
    "channel",
    "rdm",
    "usbctrl",
    "usbdev",
    "pci",
    "pci_permissive",
    "pci_msitranslate",
    "pci_seize",
    "pci_power_mgmt",
    "gfx_passthru",
    "rdm_mem_boundary",
    "dtdev",
    "ioports",
    "iomem",
    "irqs",
    "max_event_channels",
    "vdispl",
    "dm_restrict",
    "device_model_version",
    "device_model_stubdomain_override",
    "device_model_stubdomain_seclabel",
    "device_model_args",
    "device_model_args_pv",
    "device_model_args_hvm",
    "device_model_user",
    "bios_path_override",
    "acpi_s3",
    "acpi_s4",
    "acpi_laptop_slate",
    "nx",
    "hpet",
    "altp2m",
    "nestedhvm",
    "cpuid",
    "acpi_firmware",
    "smbios_firmware",
    "ms_vm_genid",
    "tsc_mode",
    "vpt_align",
    "timer_mode",
    "mmio_hole",
    "xen_platform_pci",
    "oos",
    "shadow_memory",
    "stdvga",
    "videoram",
    "vga",
    "keymap",
    "sdl",
    "opengl",
    "nographic",
    "soundhw",
    "vkb_device",
    "usb",
    "usbversion",
    "vendor_device",
    "gic_version",
    "vuart",
    "tee",
    "sve",
    "vcpu_hard_affinity",
    "vcpu_soft_affinity",
    "max_gntframes",
    "cpu_cap",
    "shadow",
    "bootargs",
    "vscsi",
    "vtpm2",
    "irq",
    "ioport",
    "sched",
    "cpu",
    "dhcp",
    "netmask",
    "gateway",
    "hostname",
    "ip",
    "interface",
    "nfs_server",
    "nfs_root",
    "device_model_stubdomain",
    "maxvcpu",
    "vfs",
    "vusb",
];

const GRAPHICS_KEYS: [&str; 13] = [
    "vnc",
    "vnclisten",
    "vncdisplay",
    "vncunused",
    "vncpasswd",
    "keymap",
    "sdl",
    "display",
    "xauthority",
    "spice",
    "spicehost",
    "spiceport",
    "spicepasswd",
];

impl<'a> Reader<'a> {
    pub fn new(text: &'a str, source: &'a str, settings: &'a [Setting]) -> Self {
        // Later settings override earlier ones, as in Python.
        let map = settings.iter().map(|s| (s.key.as_str(), s)).collect();
        Reader {
            text,
            source,
            map,
            warnings: Vec::new(),
        }
    }

    fn span(&self, offset: usize) -> Span {
        Span::at_offset(self.source, self.text, offset)
    }

    fn bad(&self, key: &str, v: &Spanned, msg: impl Into<String>) -> ConfigError {
        ConfigError::semantic(self.span(v.offset), key, msg)
    }

    fn get(&self, key: &str) -> Option<&'a Spanned> {
        self.map.get(key).map(|s| &s.value)
    }

    pub fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Spanned {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(Spanned {
                value: Value::Num(n),
                ..
            }) => Ok(Some(n.to_string())),
            Some(v) => Err(self.bad(key, v, "expected a string, found a list")),
        }
    }

    pub fn num(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Spanned {
                value: Value::Num(n),
                ..
            }) => Ok(Some(*n)),
            // xm files often quote numbers: memory = "500".
            Some(
                v @ Spanned {
                    value: Value::Str(s),
                    ..
                },
            ) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(key, v, format!("expected a number, found \"{s}\""))),
            Some(v) => Err(self.bad(key, v, "expected a number, found a list")),
        }
    }

    fn unsigned(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.num(key)? {
            None => Ok(None),
            Some(n) => u64::try_from(n).map(Some).map_err(|_| {
                let v = self.get(key).map_or(0, |v| v.offset);
                ConfigError::semantic(self.span(v), key, format!("{n} is negative"))
            }),
        }
    }

    fn u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.unsigned(key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                let v = self.get(key).map_or(0, |v| v.offset);
                ConfigError::semantic(self.span(v), key, format!("{n} is too large"))
            }),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        Ok(self.num(key)?.map(|n| n != 0))
    }

    fn mib(&self, key: &str) -> Result<Option<MemSize>, ConfigError> {
        match self.unsigned(key)? {
            None => Ok(None),
            Some(n) => MemSize::from_mib(n).map(Some).ok_or_else(|| {
                let v = self.get(key).map_or(0, |v| v.offset);
                ConfigError::semantic(self.span(v), key, format!("{n} MiB is too large"))
            }),
        }
    }

    /// A list of strings, each with its offset; a lone string counts as a list of one.
    pub fn strs(&self, key: &str) -> Result<Vec<(String, usize)>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Spanned {
                value: Value::Str(s),
                offset,
            }) => Ok(vec![(s.clone(), *offset)]),
            Some(Spanned {
                value: Value::List(items),
                ..
            }) => items
                .iter()
                .map(|i| match &i.value {
                    Value::Str(s) => Ok((s.clone(), i.offset)),
                    Value::Num(n) => Ok((n.to_string(), i.offset)),
                    Value::List(_) => {
                        Err(self.bad(key, i, "expected a string in the list, found a list"))
                    }
                })
                .collect(),
            Some(v) => Err(self.bad(key, v, "expected a list of strings")),
        }
    }

    fn warn_at(&mut self, offset: usize, msg: String) {
        let at = self.span(offset);
        self.warnings.push(Warning::new(at, msg));
    }

    pub fn read(&mut self, settings: &[Setting]) -> Result<DomainConfig, ConfigError> {
        let mut c = DomainConfig {
            name: match self.str("name")? {
                Some(n) => n,
                None => {
                    return Err(ConfigError::semantic(
                        Span::file(self.source),
                        "name",
                        "missing: every xl configuration names its domain",
                    ));
                }
            },
            ..Default::default()
        };
        if let Some(u) = self.str("uuid")? {
            let v = self.get("uuid").map_or(0, |v| v.offset);
            c.uuid = Some(Uuid::parse(&u).ok_or_else(|| {
                ConfigError::semantic(self.span(v), "uuid", format!("`{u}` is not a UUID"))
            })?);
        }
        self.guest_type(&mut c)?;
        c.memory = self.mib("memory")?;
        c.max_memory = self.mib("maxmem")?;
        c.vcpus = self.u32("vcpus")?;
        c.max_vcpus = self.u32("maxvcpus")?;
        // xm's `vcpu_avail` bitmask: `vcpus` is then the maximum, the set bits the ones
        // online (libvirt `<vcpu current>`).
        if let Some(mask) = self.unsigned("vcpu_avail")? {
            c.max_vcpus = c.max_vcpus.or(c.vcpus);
            c.vcpus = Some(mask.count_ones());
        }
        self.boot(&mut c)?;
        for (key, slot) in [
            ("on_poweroff", &mut c.on_poweroff),
            ("on_reboot", &mut c.on_reboot),
            ("on_crash", &mut c.on_crash),
        ] {
            if let Some(a) = self.str(key)? {
                let v = self.get(key).map_or(0, |v| v.offset);
                *slot = Some(LifecycleAction::parse(&a).ok_or_else(|| {
                    ConfigError::semantic(
                        self.span(v),
                        key,
                        format!("`{a}` is not an action (destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart, soft-reset)"),
                    )
                })?);
            }
        }
        c.emulator = match self.str("device_model_override")? {
            Some(e) => Some(e),
            None => self.str("device_model")?,
        };
        let hvm = c.guest_type == GuestType::Hvm;
        for (name, default) in [
            ("acpi", hvm),
            ("apic", hvm),
            ("pae", hvm),
            ("hap", false),
            ("viridian", false),
        ] {
            if name == "viridian"
                && matches!(
                    self.get(name),
                    Some(Spanned {
                        value: Value::List(_),
                        ..
                    })
                )
            {
                let off = self.get(name).map_or(0, |v| v.offset);
                self.warn_at(
                    off,
                    "viridian enlightenment groups are not modelled; read as viridian = 1".into(),
                );
                c.features.viridian = true;
                continue;
            }
            let value = self.bool(name)?;
            c.features.set(name, value.unwrap_or(default));
            // xl turns hap on unless told otherwise: `hap = 0` is an explicit off
            // (libvirt `<hap state='off'/>`), not an absent feature.
            if name == "hap" && value == Some(false) {
                c.features.off.insert(name.into());
            }
        }
        let basis = match self.bool("localtime")? {
            Some(true) => ClockBasis::Localtime,
            _ => ClockBasis::Utc,
        };
        c.clock = match (self.num("rtc_timeoffset")?, self.bool("localtime")?) {
            (Some(adjustment), _) => Some(Clock::Variable { adjustment, basis }),
            (None, Some(true)) => Some(Clock::Localtime),
            (None, Some(false)) => Some(Clock::Utc),
            (None, None) => None,
        };
        self.devices(&mut c)?;
        self.graphics(&mut c)?;
        self.extensions(&mut c)?;
        self.unknown_keys(settings);
        c.apply_hvm_kernel_is_loader_rule();
        c.normalize();
        Ok(c)
    }

    fn guest_type(&self, c: &mut DomainConfig) -> Result<(), ConfigError> {
        if let Some(t) = self.str("type")? {
            let v = self.get("type").map_or(0, |v| v.offset);
            c.guest_type = match t.as_str() {
                "pv" => GuestType::Pv,
                "hvm" => GuestType::Hvm,
                "pvh" => GuestType::Pvh,
                _ => {
                    return Err(ConfigError::semantic(
                        self.span(v),
                        "type",
                        format!("unknown guest type `{t}` (pv, hvm or pvh)"),
                    ));
                }
            };
        } else if let Some(b) = self.str("builder")? {
            let v = self.get("builder").map_or(0, |v| v.offset);
            c.guest_type = match b.as_str() {
                "hvm" => GuestType::Hvm,
                "linux" | "generic" => GuestType::Pv,
                _ => {
                    return Err(ConfigError::semantic(
                        self.span(v),
                        "builder",
                        format!("unknown builder `{b}` (hvm, linux or generic)"),
                    ));
                }
            };
        }
        if self.bool("pvh")? == Some(true) {
            c.guest_type = GuestType::Pvh;
        }
        Ok(())
    }

    fn boot(&mut self, c: &mut DomainConfig) -> Result<(), ConfigError> {
        let b = &mut c.boot;
        b.kernel = self.str("kernel")?;
        b.initrd = self.str("ramdisk")?;
        b.loader = self.str("loader")?;
        if let Some(f) = self.str("firmware")? {
            if f.contains('/') && b.loader.is_none() {
                b.loader = Some(f);
            } else {
                b.firmware = Some(f);
            }
        }
        // xl's firmware file path (libvirt reads it as `<loader>`, as with `bios = "ovmf"`).
        if let Some(p) = self.str("bios_path_override")? {
            if b.loader.is_none() {
                b.loader = Some(p);
            }
        }
        b.bootloader = self.str("bootloader")?;
        let args: Vec<String> = self
            .strs("bootloader_args")?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        if !args.is_empty() {
            b.bootloader_args = Some(args.join(" "));
        }
        // xm's spelling of the bootloader's arguments (one string), as libvirt reads it.
        if let Some(a) = self.str("bootargs")? {
            if b.bootloader_args.is_none() {
                b.bootloader_args = Some(a);
            }
        }
        // xl: `cmdline` replaces `root` and `extra`; otherwise root=ROOT EXTRA.
        match self.str("cmdline")? {
            Some(cmd) => {
                b.cmdline = Some(cmd);
                for k in ["root", "extra"] {
                    if let Some(v) = self.get(k) {
                        let off = v.offset;
                        self.warn_at(
                            off,
                            format!("`{k}` is ignored because `cmdline` is set (as xl does)"),
                        );
                    }
                }
            }
            None => {
                b.root = self.str("root")?;
                b.cmdline = self.str("extra")?;
            }
        }
        if let Some(order) = self.str("boot")? {
            let off = self.get("boot").map_or(0, |v| v.offset);
            for ch in order.chars() {
                let dev = BootDevice::from_letter(ch).ok_or_else(|| {
                    ConfigError::semantic(
                        self.span(off),
                        "boot",
                        format!(
                            "`{ch}` is not a boot device (a floppy, c disk, d cdrom, n network)"
                        ),
                    )
                })?;
                c.boot.order.push(dev);
            }
        }
        Ok(())
    }

    fn devices(&mut self, c: &mut DomainConfig) -> Result<(), ConfigError> {
        for (s, off) in self.strs("disk")? {
            let d = spec::parse_disk(&s).map_err(|m| {
                ConfigError::semantic(self.span(off), "disk", format!("`{s}`: {m}"))
            })?;
            // A qdisk target such as `rbd:pool/image:...` names a network disk, not a file.
            if let Some(proto) = d.source.as_deref().and_then(spec::network_disk_protocol) {
                self.warn_at(
                    off,
                    format!(
                        "disk `{}`: {proto} network disks are not modelled (file and block are); dropped",
                        d.target
                    ),
                );
                continue;
            }
            c.disks.push(d);
        }
        for (s, off) in self.strs("vif")? {
            let (nic, ignored) = spec::parse_vif(&s)
                .map_err(|m| ConfigError::semantic(self.span(off), "vif", format!("`{s}`: {m}")))?;
            for i in ignored {
                self.warn_at(off, format!("vif parameter `{i}` is not modelled; dropped"));
            }
            c.interfaces.push(nic);
        }
        // A serial port's place in the list is its port number: "none" keeps a place.
        for (port, (s, off)) in self.strs("serial")?.into_iter().enumerate() {
            match spec::parse_chardev(&s) {
                Ok(Some(d)) => c.serials.push(CharDev {
                    port: u32::try_from(port).ok(),
                    ..d
                }),
                Ok(None) => {}
                Err(m) => return Err(ConfigError::semantic(self.span(off), "serial", m)),
            }
        }
        // xm's HVM `cdrom = PATH`: the file-backed cdrom drive hdc.
        if let Some(path) = self.str("cdrom")? {
            c.disks.push(Disk {
                driver: Some("file".into()),
                source: Some(path).filter(|p| !p.is_empty()),
                target: "hdc".into(),
                device: DiskDevice::Cdrom,
                readonly: true,
                ..Default::default()
            });
        }
        for (s, _) in self.strs("usbdevice")? {
            c.inputs.push(Input {
                kind: s,
                bus: Some("usb".into()),
            });
        }
        Ok(())
    }

    fn graphics(&mut self, c: &mut DomainConfig) -> Result<(), ConfigError> {
        if self.bool("vnc")? == Some(true) {
            let mut g = Graphics {
                kind: "vnc".into(),
                autoport: self.bool("vncunused")?.unwrap_or(true),
                listen: self.str("vnclisten")?,
                passwd: self.str("vncpasswd")?,
                keymap: self.str("keymap")?,
                ..Default::default()
            };
            if let Some(d) = self.unsigned("vncdisplay")? {
                g.port = u32::try_from(d).ok().and_then(|d| d.checked_add(5900));
            }
            c.graphics.push(g);
        }
        if self.bool("sdl")? == Some(true) {
            c.graphics.push(Graphics {
                kind: "sdl".into(),
                display: self.str("display")?,
                xauth: self.str("xauthority")?,
                ..Default::default()
            });
        }
        if self.bool("spice")? == Some(true) {
            let port = self
                .unsigned("spiceport")?
                .and_then(|p| u32::try_from(p).ok());
            c.graphics.push(Graphics {
                kind: "spice".into(),
                port,
                listen: self.str("spicehost")?,
                passwd: self.str("spicepasswd")?,
                ..Default::default()
            });
        }
        for (s, off) in self.strs("vfb")? {
            let kv = spec::parse_kv(&s)
                .map_err(|m| ConfigError::semantic(self.span(off), "vfb", format!("`{s}`: {m}")))?;
            let mut g = Graphics::default();
            let mut unused = None;
            for (k, v) in kv {
                match k.as_str() {
                    "vnc" | "sdl" if v != "0" => g.kind = k.clone(),
                    "type" => g.kind = v.clone(),
                    "vnclisten" => g.listen = Some(v),
                    "vncdisplay" => {
                        g.port = v.parse::<u32>().ok().and_then(|d| d.checked_add(5900))
                    }
                    "port" => g.port = v.parse().ok(),
                    "vncunused" => unused = Some(v != "0"),
                    "vncpasswd" => g.passwd = Some(v),
                    "keymap" => g.keymap = Some(v),
                    "display" => g.display = Some(v),
                    "xauthority" => g.xauth = Some(v),
                    _ => self.warn_at(
                        off,
                        format!("vfb parameter `{k}={v}` is not modelled; dropped"),
                    ),
                }
            }
            g.autoport = unused.unwrap_or(g.kind == "vnc" && g.port.is_none());
            if g.kind.is_empty() {
                self.warn_at(
                    off,
                    format!("vfb `{s}` enables neither vnc nor sdl; dropped"),
                );
                continue;
            }
            c.graphics.push(g);
        }
        Ok(())
    }

    fn extensions(&mut self, c: &mut DomainConfig) -> Result<(), ConfigError> {
        c.hypervisor = self.str("domboot_hypervisor")?;
        c.arch = self.str("domboot_arch")?;
        c.machine = self.str("domboot_machine")?;
        c.description = self.str("domboot_description")?;
        if let Some(tz) = self.str("domboot_timezone")? {
            c.clock = Some(Clock::Timezone { timezone: tz });
        }
        for (f, _) in self.strs("domboot_features")? {
            c.features.other.insert(f);
        }
        for (f, _) in self.strs("domboot_features_off")? {
            c.features.set(&f, false);
            c.features.off.insert(f);
        }
        for key in ["domboot_disk_bus", "domboot_disk_kind"] {
            for (s, off) in self.strs(key)? {
                let bad = |m: String| ConfigError::semantic(self.span(off), key, m);
                let (target, v) = s
                    .split_once('=')
                    .ok_or_else(|| bad(format!("`{s}` is not TARGET=VALUE")))?;
                let disk = c
                    .disks
                    .iter_mut()
                    .find(|d| d.target == target)
                    .ok_or_else(|| bad(format!("no disk `{target}` in `disk`")))?;
                if key == "domboot_disk_bus" {
                    disk.bus = Some(v.to_string());
                } else {
                    disk.kind = match v {
                        "block" => DiskKind::Block,
                        "file" => DiskKind::File,
                        _ => return Err(bad(format!("`{v}` is not file or block"))),
                    };
                }
            }
        }
        for (s, off) in self.strs("domboot_console")? {
            let bad = |m: String| ConfigError::semantic(self.span(off), "domboot_console", m);
            let kv = spec::parse_kv(&s).map_err(bad)?;
            let mut d = CharDev::default();
            for (k, v) in kv {
                match k.as_str() {
                    "type" => {
                        d.kind = CharKind::parse(&v)
                            .ok_or_else(|| bad(format!("`{v}` is not a character device type")))?
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
                        d.port = Some(
                            v.parse()
                                .map_err(|_| bad(format!("port `{v}` is not a number")))?,
                        )
                    }
                    _ => return Err(bad(format!("unknown console parameter `{k}`"))),
                }
            }
            c.consoles.push(d);
        }
        for (s, off) in self.strs("domboot_input")? {
            let bad = |m: String| ConfigError::semantic(self.span(off), "domboot_input", m);
            let mut input = Input::default();
            for (k, v) in spec::parse_kv(&s).map_err(bad)? {
                match k.as_str() {
                    "type" => input.kind = v,
                    "bus" => input.bus = Some(v),
                    _ => return Err(bad(format!("unknown input parameter `{k}`"))),
                }
            }
            c.inputs.push(input);
        }
        Ok(())
    }

    fn unknown_keys(&mut self, settings: &[Setting]) {
        const KNOWN: &[&str] = &[
            "name",
            "uuid",
            "type",
            "builder",
            "pvh",
            "memory",
            "maxmem",
            "vcpus",
            "vcpu_avail",
            "cdrom",
            "maxvcpus",
            "kernel",
            "ramdisk",
            "loader",
            "firmware",
            "bios_path_override",
            "bootloader",
            "bootloader_args",
            "bootargs",
            "cmdline",
            "root",
            "extra",
            "boot",
            "on_poweroff",
            "on_reboot",
            "on_crash",
            "device_model",
            "device_model_override",
            "acpi",
            "apic",
            "pae",
            "hap",
            "viridian",
            "rtc_timeoffset",
            "localtime",
            "disk",
            "vif",
            "serial",
            "usbdevice",
            "vfb",
            "domboot_hypervisor",
            "domboot_arch",
            "domboot_machine",
            "domboot_description",
            "domboot_timezone",
            "domboot_features",
            "domboot_features_off",
            "domboot_console",
            "domboot_input",
            "vncunused",
            "vncdisplay",
            "vnclisten",
            "vncpasswd",
            "domboot_disk_bus",
            "domboot_disk_kind",
        ];
        for s in settings {
            let k = s.key.as_str();
            if KNOWN.contains(&k) || GRAPHICS_KEYS.contains(&k) {
                continue;
            }
            let typo = (!XL_KEYS.contains(&k))
                .then(|| {
                    let all: Vec<&str> = KNOWN
                        .iter()
                        .chain(GRAPHICS_KEYS.iter())
                        .chain(XL_KEYS.iter())
                        .copied()
                        .collect();
                    crate::suggest::did_you_mean(k, &all)
                })
                .flatten();
            match typo {
                Some(meant) => {
                    let at = self.span(s.key_offset);
                    self.warnings.push(Warning::typo(at, k, meant));
                }
                None => self.warn_at(
                    s.key_offset,
                    format!("`{k}` is not modelled by domboot; dropped"),
                ),
            }
        }
    }
}
