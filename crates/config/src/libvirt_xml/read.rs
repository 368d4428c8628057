//! libvirt domain XML → model.
use crate::error::{ConfigError, Span, Warning};
use crate::model::*;
use roxmltree::{Document, Node};

pub struct Reader<'a> {
    text: &'a str,
    source: &'a str,
    pub warnings: Vec<Warning>,
}

type R<T> = Result<T, ConfigError>;

fn text_of(n: Node) -> String {
    n.text().unwrap_or("").to_string()
}

fn trimmed(n: Node) -> String {
    n.text().unwrap_or("").trim().to_string()
}

fn attr(n: Node, name: &str) -> Option<String> {
    n.attribute(name).map(str::to_string)
}

/// The children libvirt's domain XML has at the top level and in <os> (formatdomain),
/// for telling a typo (<memroy>) from an element domboot does not model (<cputune>).
const DOMAIN_ELEMENTS: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "maxMemory",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "cputune",
    "memtune",
    "blkiotune",
    "numatune",
    "resource",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
    "keywrap",
    "launchSecurity",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "throttlegroups",
];
const OS_ELEMENTS: &[&str] = &[
    "type",
    "loader",
    "nvram",
    "kernel",
    "initrd",
    "cmdline",
    "dtb",
    "boot",
    "bootmenu",
    "smbios",
    "bios",
    "init",
    "initarg",
    "initenv",
    "initdir",
    "inituser",
    "initgroup",
    "acpi",
    "firmware",
    "shim",
];

fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

pub fn parse_document(text: &str, source: &str) -> R<(DomainConfig, Vec<Warning>)> {
    let doc = Document::parse(text).map_err(|e| {
        let pos = e.pos();
        let at = Span::new(source, pos.row, pos.col);
        let offset = byte_offset(text, pos.row, pos.col);
        let message = e.to_string();
        let suffix = format!(" at {}:{}", pos.row, pos.col);
        let message = message.strip_suffix(&suffix).unwrap_or(&message);
        ConfigError::syntax(at, message, text.get(offset..).unwrap_or(""))
    })?;
    let mut r = Reader {
        text,
        source,
        warnings: Vec::new(),
    };
    let c = r.domain(doc.root_element())?;
    Ok((c, r.warnings))
}

/// Byte offset of a 1-based row and column (in characters).
fn byte_offset(text: &str, row: u32, col: u32) -> usize {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == row as usize {
            return offset
                + line
                    .char_indices()
                    .nth(col.saturating_sub(1) as usize)
                    .map_or(line.len(), |(b, _)| b);
        }
        offset += line.len();
    }
    text.len()
}

impl Reader<'_> {
    fn span(&self, n: Node) -> Span {
        Span::at_offset(self.source, self.text, n.range().start)
    }

    fn bad(&self, n: Node, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::semantic(self.span(n), key, msg)
    }

    fn warn(&mut self, n: Node, msg: String) {
        let at = self.span(n);
        self.warnings.push(Warning::new(at, msg));
    }

    fn dropped(&mut self, n: Node, parent: &str) {
        let name = n.tag_name().name();
        let known: &[&str] = match parent {
            "domain" => DOMAIN_ELEMENTS,
            "os" => OS_ELEMENTS,
            _ => &[],
        };
        if !known.contains(&name)
            && let Some(meant) = crate::suggest::did_you_mean(name, known)
        {
            let at = self.span(n);
            let mut w = Warning::typo(at, name, meant);
            w.message = format!(
                "<{name}> in <{parent}> is not an element libvirt knows; did you mean <{meant}>?"
            );
            self.warnings.push(w);
            return;
        }
        self.warn(
            n,
            format!("<{name}> in <{parent}> is not modelled by domboot; dropped"),
        );
    }

    fn domain(&mut self, d: Node) -> R<DomainConfig> {
        if d.tag_name().name() != "domain" {
            return Err(self.bad(
                d,
                "domain",
                format!(
                    "the root element is <{}>, not <domain>",
                    d.tag_name().name()
                ),
            ));
        }
        let mut c = DomainConfig {
            hypervisor: attr(d, "type"),
            ..Default::default()
        };
        let mut max_mem = None;
        let mut cur_mem = None;
        let mut name = None;
        for n in elements(d) {
            match n.tag_name().name() {
                "name" => name = Some(trimmed(n)),
                "uuid" => {
                    let u = trimmed(n);
                    c.uuid = Some(
                        Uuid::parse(&u)
                            .ok_or_else(|| self.bad(n, "uuid", format!("`{u}` is not a UUID")))?,
                    );
                }
                "description" => c.description = Some(text_of(n)),
                "memory" => max_mem = Some(self.memory(n, "memory")?),
                "currentMemory" => cur_mem = Some(self.memory(n, "currentMemory")?),
                "vcpu" => {
                    let max = self.number(n, "vcpu", &trimmed(n))?;
                    match attr(n, "current") {
                        Some(cur) => {
                            c.vcpus = Some(self.number(n, "vcpu/@current", &cur)?);
                            c.max_vcpus = Some(max);
                        }
                        None => c.vcpus = Some(max),
                    }
                }
                "os" => self.os(n, &mut c)?,
                "bootloader" => c.boot.bootloader = Some(trimmed(n)),
                "bootloader_args" => c.boot.bootloader_args = Some(text_of(n)),
                "on_poweroff" => c.on_poweroff = Some(self.action(n)?),
                "on_reboot" => c.on_reboot = Some(self.action(n)?),
                "on_crash" => c.on_crash = Some(self.action(n)?),
                "features" => self.features(n, &mut c),
                "clock" => c.clock = Some(self.clock(n)?),
                "devices" => self.devices(n, &mut c)?,
                _ => self.dropped(n, "domain"),
            }
        }
        c.name = name.ok_or_else(|| self.bad(d, "name", "missing: <domain> needs a <name>"))?;
        match (max_mem, cur_mem) {
            (Some(max), Some(cur)) => {
                c.memory = Some(cur);
                c.max_memory = Some(max);
            }
            (max, cur) => c.memory = cur.or(max),
        }
        // After normalizing: a pty console with a stray path is still the implied one.
        c.normalize();
        c.console_implies_serial();
        c.drop_implied_console();
        Ok(c)
    }

    fn memory(&self, n: Node, key: &str) -> R<MemSize> {
        let unit = match n.attribute("unit") {
            None => Unit::Kib,
            Some(u) => Unit::parse(u)
                .ok_or_else(|| self.bad(n, key, format!("`{u}` is not a memory unit")))?,
        };
        MemSize::parse_with_default(&trimmed(n), unit).map_err(|m| self.bad(n, key, m))
    }

    fn number(&self, n: Node, key: &str, text: &str) -> R<u32> {
        text.trim()
            .parse()
            .map_err(|_| self.bad(n, key, format!("`{text}` is not a count")))
    }

    fn action(&self, n: Node) -> R<LifecycleAction> {
        let a = trimmed(n);
        LifecycleAction::parse(&a).ok_or_else(|| {
            self.bad(n, n.tag_name().name(), format!("`{a}` is not an action (destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart)"))
        })
    }

    fn os(&mut self, os: Node, c: &mut DomainConfig) -> R<()> {
        c.boot.firmware = attr(os, "firmware");
        for n in elements(os) {
            match n.tag_name().name() {
                "type" => {
                    let t = trimmed(n);
                    c.guest_type = match t.as_str() {
                        "hvm" => GuestType::Hvm,
                        "linux" | "xen" => GuestType::Pv,
                        "xenpvh" | "pvh" => GuestType::Pvh,
                        _ => {
                            return Err(self.bad(
                                n,
                                "os/type",
                                format!("unknown guest type `{t}` (hvm, linux, xen or xenpvh)"),
                            ));
                        }
                    };
                    c.arch = attr(n, "arch");
                    c.machine = attr(n, "machine");
                }
                "loader" => {
                    // UEFI in a flash device (xl's `bios = "ovmf"`) is not modelled: the
                    // firmware file is kept, the way it is loaded is not.
                    if let Some(t) = n.attribute("type").filter(|t| *t != "rom") {
                        self.warn(
                            n,
                            format!(
                                "the <loader> type `{t}` is not modelled by domboot (xl's \
                                 `bios`); read as the firmware file"
                            ),
                        );
                    }
                    c.boot.loader = Some(trimmed(n));
                }
                "kernel" => c.boot.kernel = Some(trimmed(n)),
                "initrd" => c.boot.initrd = Some(trimmed(n)),
                "cmdline" => c.boot.cmdline = Some(text_of(n)),
                "root" => c.boot.root = Some(text_of(n)),
                "boot" => {
                    let dev = attr(n, "dev").unwrap_or_default();
                    let d = BootDevice::parse(&dev).ok_or_else(|| {
                        self.bad(
                            n,
                            "os/boot",
                            format!("`{dev}` is not a boot device (hd, cdrom, fd, network)"),
                        )
                    })?;
                    c.boot.order.push(d);
                }
                _ => self.dropped(n, "os"),
            }
        }
        Ok(())
    }

    fn features(&mut self, f: Node, c: &mut DomainConfig) {
        for n in elements(f) {
            let name = n.tag_name().name();
            let on = n.attribute("state") != Some("off");
            if name == "xen" {
                // Xen's own features (e820_host, passthrough): each is named.
                for x in elements(n) {
                    let x_name = x.tag_name().name();
                    self.warn(
                        x,
                        format!("the Xen feature <{x_name}> is not modelled; dropped"),
                    );
                }
                continue;
            }
            if elements(n).next().is_some() {
                self.warn(
                    n,
                    format!(
                        "the settings inside <{name}> are not modelled; kept as a plain feature"
                    ),
                );
            }
            let named = c.features.set(name, on);
            if !on {
                c.features.off.insert(name.to_string());
            } else if !named {
                c.features.other.insert(name.to_string());
            }
        }
    }

    fn clock(&mut self, n: Node) -> R<Clock> {
        for t in elements(n) {
            match t
                .attribute("name")
                .filter(|_| t.tag_name().name() == "timer")
            {
                Some(name) => self.warn(
                    t,
                    format!(
                        "the clock timer `{name}` (<timer>) is not modelled by domboot; dropped"
                    ),
                ),
                None => self.dropped(t, "clock"),
            }
        }
        let offset = attr(n, "offset").unwrap_or_else(|| "utc".into());
        Ok(match offset.as_str() {
            "utc" => Clock::Utc,
            "localtime" => Clock::Localtime,
            "variable" => {
                let adj = attr(n, "adjustment").unwrap_or_else(|| "0".into());
                let basis = match n.attribute("basis").unwrap_or("utc") {
                    "utc" => ClockBasis::Utc,
                    "localtime" => ClockBasis::Localtime,
                    other => {
                        return Err(self.bad(
                            n,
                            "clock/@basis",
                            format!("`{other}` is not utc or localtime"),
                        ));
                    }
                };
                Clock::Variable {
                    basis,
                    adjustment: adj.trim().parse().map_err(|_| {
                        self.bad(
                            n,
                            "clock/@adjustment",
                            format!("`{adj}` is not a number of seconds"),
                        )
                    })?,
                }
            }
            "timezone" => Clock::Timezone {
                timezone: attr(n, "timezone").ok_or_else(|| {
                    self.bad(n, "clock/@timezone", "missing for offset='timezone'")
                })?,
            },
            other => {
                return Err(self.bad(
                    n,
                    "clock/@offset",
                    format!("`{other}` is not utc, localtime, variable or timezone"),
                ));
            }
        })
    }

    fn devices(&mut self, devs: Node, c: &mut DomainConfig) -> R<()> {
        for n in elements(devs) {
            match n.tag_name().name() {
                "emulator" => c.emulator = Some(trimmed(n)),
                "disk" => {
                    if let Some(d) = self.disk(n)? {
                        c.disks.push(d);
                    }
                }
                "interface" => c.interfaces.push(self.interface(n)),
                "serial" => c.serials.push(self.chardev(n, "serial")?),
                "console" => c.consoles.push(self.chardev(n, "console")?),
                "graphics" => c.graphics.push(self.graphics(n)),
                "input" => c.inputs.push(Input {
                    kind: attr(n, "type").unwrap_or_default(),
                    bus: attr(n, "bus"),
                }),
                "rng" => c.rngs.push(self.rng(n)),
                "vsock" => {
                    if c.vsock.is_some() {
                        self.warn(n, "a second <vsock>: libvirt allows one; dropped".into());
                    } else {
                        c.vsock = Some(self.vsock(n)?);
                    }
                }
                _ => self.dropped(n, "devices"),
            }
        }
        Ok(())
    }

    /// `<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>`, or
    /// `<backend model='builtin'/>`; `<rate>` and addresses are not modelled.
    fn rng(&mut self, n: Node) -> Rng {
        let mut r = Rng {
            model: attr(n, "model"),
            ..Default::default()
        };
        for e in elements(n) {
            match e.tag_name().name() {
                "backend" => {
                    r.backend = attr(e, "model").unwrap_or_default();
                    let text = trimmed(e);
                    r.source = (!text.is_empty()).then_some(text);
                }
                "address" | "alias" => {}
                _ => self.dropped(e, "rng"),
            }
        }
        r
    }

    /// `<vsock model='virtio'><cid auto='no' address='3'/></vsock>` (or `auto='yes'`).
    fn vsock(&mut self, n: Node) -> R<Vsock> {
        let mut v = Vsock {
            model: attr(n, "model"),
            ..Default::default()
        };
        for e in elements(n) {
            match e.tag_name().name() {
                "cid" => {
                    let auto = e.attribute("auto") == Some("yes");
                    v.cid = match (auto, e.attribute("address")) {
                        (false, Some(a)) => Some(a.trim().parse().map_err(|_| {
                            self.bad(e, "vsock/cid/@address", format!("`{a}` is not a number"))
                        })?),
                        _ => None,
                    };
                }
                "address" | "alias" => {}
                _ => self.dropped(e, "vsock"),
            }
        }
        Ok(v)
    }

    fn disk(&mut self, n: Node) -> R<Option<Disk>> {
        let mut d = Disk::default();
        match n.attribute("type").unwrap_or("file") {
            "file" => d.kind = DiskKind::File,
            "block" => d.kind = DiskKind::Block,
            other => {
                let target = elements(n)
                    .find(|e| e.tag_name().name() == "target")
                    .and_then(|e| e.attribute("dev"))
                    .unwrap_or("?");
                let protocol = elements(n)
                    .find(|e| e.tag_name().name() == "source")
                    .and_then(|e| e.attribute("protocol"))
                    .map_or(String::new(), |p| format!(" ({p})"));
                self.warn(
                    n,
                    format!(
                        "disk `{target}`: <disk type='{other}'>{protocol} is not modelled (file and block are); dropped"
                    ),
                );
                return Ok(None);
            }
        }
        d.device = match n.attribute("device").unwrap_or("disk") {
            "disk" => DiskDevice::Disk,
            "cdrom" => DiskDevice::Cdrom,
            "floppy" => DiskDevice::Floppy,
            other => {
                return Err(self.bad(
                    n,
                    "disk/@device",
                    format!("`{other}` is not disk, cdrom or floppy"),
                ));
            }
        };
        let mut target = None;
        for e in elements(n) {
            match e.tag_name().name() {
                "driver" => {
                    d.driver = attr(e, "name");
                    d.format = attr(e, "type");
                }
                "source" => d.source = attr(e, "file").or_else(|| attr(e, "dev")),
                "target" => {
                    target = attr(e, "dev");
                    d.bus = attr(e, "bus");
                }
                "readonly" => d.readonly = true,
                "shareable" => d.shareable = true,
                _ => self.dropped(e, "disk"),
            }
        }
        d.target =
            target.ok_or_else(|| self.bad(n, "disk/target", "missing <target dev='...'/>"))?;
        Ok(Some(d))
    }

    fn interface(&mut self, n: Node) -> Interface {
        let mut i = Interface {
            kind: attr(n, "type").unwrap_or_else(|| "bridge".into()),
            ..Default::default()
        };
        for e in elements(n) {
            match e.tag_name().name() {
                "source" => {
                    i.source = attr(e, "bridge")
                        .or_else(|| attr(e, "network"))
                        .or_else(|| attr(e, "dev"))
                }
                "mac" => i.mac = attr(e, "address"),
                "script" => i.script = attr(e, "path"),
                "model" => i.model = attr(e, "type"),
                "ip" => {
                    // One <ip> per address; the model lists them as xl does.
                    if let Some(a) = attr(e, "address") {
                        i.ip = Some(match i.ip.take() {
                            Some(prev) => format!("{prev} {a}"),
                            None => a,
                        });
                    }
                }
                "target" => i.target = attr(e, "dev"),
                "vlan" => {
                    i.vlan_trunk = e.attribute("trunk") == Some("yes");
                    for t in elements(e).filter(|t| t.tag_name().name() == "tag") {
                        let id = t.attribute("id").unwrap_or("");
                        match id.trim().parse() {
                            Ok(id) => i.vlan.push(id),
                            Err(_) => {
                                self.warn(t, format!("vlan tag `{id}` is not a number; dropped"))
                            }
                        }
                    }
                }
                "virtualport" => i.virtualport = attr(e, "type"),
                _ => self.dropped(e, "interface"),
            }
        }
        i
    }

    fn chardev(&mut self, n: Node, what: &str) -> R<CharDev> {
        let mut d = CharDev::default();
        // Old Xen consoles: <console tty='/dev/pts/5'/> (a pty, path known at run time).
        let kind = match (n.attribute("type"), n.attribute("tty")) {
            (Some(t), _) => t.to_string(),
            (None, _) => "pty".to_string(),
        };
        d.kind = CharKind::parse(&kind).ok_or_else(|| {
            self.bad(
                n,
                &format!("{what}/@type"),
                format!("`{kind}` is not a character device type"),
            )
        })?;
        for e in elements(n) {
            match e.tag_name().name() {
                "source" => {
                    // udp has a bind source (the local address) and a connect one (the
                    // peer).
                    if d.kind == CharKind::Udp && e.attribute("mode") == Some("bind") {
                        d.bind_host = attr(e, "host").or(d.bind_host);
                        d.bind_service = attr(e, "service").or(d.bind_service);
                        continue;
                    }
                    d.path = attr(e, "path").or(d.path);
                    d.host = attr(e, "host").or(d.host);
                    d.service = attr(e, "service").or(d.service);
                    d.listen = e.attribute("mode") == Some("bind");
                }
                "protocol" => d.telnet = e.attribute("type") == Some("telnet"),
                "target" => {
                    if what == "console" {
                        d.target = attr(e, "type");
                    }
                    if let Some(p) = e.attribute("port") {
                        d.port = Some(p.trim().parse().map_err(|_| {
                            self.bad(
                                e,
                                &format!("{what}/target/@port"),
                                format!("`{p}` is not a port number"),
                            )
                        })?);
                    }
                }
                _ => self.dropped(e, what),
            }
        }
        Ok(d)
    }

    fn graphics(&mut self, n: Node) -> Graphics {
        let mut g = Graphics {
            kind: attr(n, "type").unwrap_or_default(),
            listen: attr(n, "listen"),
            passwd: attr(n, "passwd"),
            keymap: attr(n, "keymap"),
            display: attr(n, "display"),
            xauth: attr(n, "xauth"),
            autoport: n.attribute("autoport") == Some("yes"),
            ..Default::default()
        };
        for a in n.attributes() {
            let known = [
                "type", "port", "autoport", "listen", "passwd", "keymap", "display", "xauth",
            ];
            if !known.contains(&a.name()) {
                self.warn(
                    n,
                    format!(
                        "graphics attribute `{}` is not modelled by domboot; dropped",
                        a.name()
                    ),
                );
            }
        }
        match n.attribute("port").map(|p| p.trim().parse::<i64>()) {
            Some(Ok(-1)) => g.autoport = true,
            Some(Ok(p)) => g.port = u32::try_from(p).ok(),
            Some(Err(_)) => self.warn(n, "graphics port is not a number; dropped".into()),
            None => {}
        }
        for e in elements(n) {
            match e.tag_name().name() {
                "listen" if g.listen.is_none() => g.listen = attr(e, "address"),
                "listen" => {}
                _ => self.dropped(e, "graphics"),
            }
        }
        g
    }
}
