//! Model → libvirt domain XML, indented as libvirt prints it.
use crate::model::*;
use std::fmt::Write as _;

/// Escape text and attribute values (attributes are single-quoted, as libvirt writes them).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            // Keep whitespace control characters exact through attribute normalisation.
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o
}

/// A plain XML element name (what a libvirt feature can be called).
pub fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }
    fn text(&mut self, tag: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.line(&format!("<{tag}>{}</{tag}>", esc(v)));
        }
    }
    fn open(&mut self, s: &str) {
        self.line(s);
        self.depth += 1;
    }
    fn close(&mut self, tag: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line(&format!("</{tag}>"));
    }
}

/// ` name='value'` for each present attribute.
fn attrs(list: &[(&str, Option<&str>)]) -> String {
    let mut s = String::new();
    for (k, v) in list {
        if let Some(v) = v {
            let _ = write!(s, " {k}='{}'", esc(v));
        }
    }
    s
}

pub fn write(c: &DomainConfig) -> String {
    let mut x = Xml {
        out: String::new(),
        depth: 0,
    };
    x.open(&format!(
        "<domain type='{}'>",
        esc(c.hypervisor.as_deref().unwrap_or("xen"))
    ));
    x.text("name", Some(&c.name));
    x.text("uuid", c.uuid.map(|u| u.to_string()).as_deref());
    x.text("description", c.description.as_deref());
    let kib = |m: MemSize| m.kib().to_string();
    // libvirt: <memory> is the maximum, <currentMemory> what the guest starts with.
    x.text("memory", c.max_memory.or(c.memory).map(kib).as_deref());
    if c.max_memory.is_some() {
        x.text("currentMemory", c.memory.map(kib).as_deref());
    }
    match (c.vcpus, c.max_vcpus) {
        (Some(cur), Some(max)) => x.line(&format!("<vcpu current='{cur}'>{max}</vcpu>")),
        (None, Some(max)) => x.text("vcpu", Some(&max.to_string())),
        (Some(v), None) => x.text("vcpu", Some(&v.to_string())),
        (None, None) => {}
    }
    x.text("bootloader", c.boot.bootloader.as_deref());
    x.text("bootloader_args", c.boot.bootloader_args.as_deref());
    os(&mut x, c);
    x.text("on_poweroff", c.on_poweroff.map(LifecycleAction::as_str));
    x.text("on_reboot", c.on_reboot.map(LifecycleAction::as_str));
    x.text("on_crash", c.on_crash.map(LifecycleAction::as_str));
    if !c.features.is_empty() {
        x.open("<features>");
        for (name, on) in c.features.named() {
            if on {
                x.line(&format!("<{name}/>"));
            }
        }
        for name in &c.features.other {
            if is_xml_name(name) {
                x.line(&format!("<{name}/>"));
            } else {
                x.line(&format!(
                    "<!-- feature {:?} is not an XML name; not written -->",
                    name.replace("--", "- -")
                ));
            }
        }
        x.close("features");
    }
    match &c.clock {
        None => {}
        Some(Clock::Utc) => x.line("<clock offset='utc'/>"),
        Some(Clock::Localtime) => x.line("<clock offset='localtime'/>"),
        Some(Clock::Variable { adjustment }) => x.line(&format!(
            "<clock offset='variable' adjustment='{adjustment}' basis='utc'/>"
        )),
        Some(Clock::Timezone { timezone }) => x.line(&format!(
            "<clock offset='timezone' timezone='{}'/>",
            esc(timezone)
        )),
    }
    devices(&mut x, c);
    x.close("domain");
    x.out
}

fn os(x: &mut Xml, c: &DomainConfig) {
    let b = &c.boot;
    x.open(&format!(
        "<os{}>",
        attrs(&[("firmware", b.firmware.as_deref())])
    ));
    let t = match c.guest_type {
        GuestType::Pv => "linux",
        GuestType::Hvm => "hvm",
        GuestType::Pvh => "xenpvh",
    };
    let a = attrs(&[
        ("arch", c.arch.as_deref()),
        ("machine", c.machine.as_deref()),
    ]);
    x.line(&format!("<type{a}>{t}</type>"));
    x.text("loader", b.loader.as_deref());
    x.text("kernel", b.kernel.as_deref());
    x.text("initrd", b.initrd.as_deref());
    x.text("cmdline", b.cmdline.as_deref());
    x.text("root", b.root.as_deref());
    for d in &b.order {
        x.line(&format!("<boot dev='{}'/>", d.as_str()));
    }
    x.close("os");
}

fn devices(x: &mut Xml, c: &DomainConfig) {
    let empty = c.emulator.is_none()
        && c.disks.is_empty()
        && c.interfaces.is_empty()
        && c.serials.is_empty()
        && c.consoles.is_empty()
        && c.graphics.is_empty()
        && c.inputs.is_empty();
    if empty {
        return;
    }
    x.open("<devices>");
    x.text("emulator", c.emulator.as_deref());
    for d in &c.disks {
        let kind = match d.kind {
            DiskKind::File => "file",
            DiskKind::Block => "block",
        };
        x.open(&format!(
            "<disk type='{kind}' device='{}'>",
            d.device.as_str()
        ));
        if d.driver.is_some() || d.format.is_some() {
            x.line(&format!(
                "<driver{}/>",
                attrs(&[("name", d.driver.as_deref()), ("type", d.format.as_deref())])
            ));
        }
        if let Some(s) = &d.source {
            let a = if d.kind == DiskKind::Block {
                "dev"
            } else {
                "file"
            };
            x.line(&format!("<source {a}='{}'/>", esc(s)));
        }
        x.line(&format!(
            "<target{}/>",
            attrs(&[("dev", Some(&d.target)), ("bus", d.bus.as_deref())])
        ));
        if d.readonly {
            x.line("<readonly/>");
        }
        if d.shareable {
            x.line("<shareable/>");
        }
        x.close("disk");
    }
    for n in &c.interfaces {
        x.open(&format!("<interface type='{}'>", esc(&n.kind)));
        if let Some(s) = &n.source {
            let a = match n.kind.as_str() {
                "network" => "network",
                "bridge" => "bridge",
                _ => "dev",
            };
            x.line(&format!("<source {a}='{}'/>", esc(s)));
        }
        for (tag, a, v) in [
            ("mac", "address", &n.mac),
            ("ip", "address", &n.ip),
            ("script", "path", &n.script),
            ("target", "dev", &n.target),
            ("model", "type", &n.model),
        ] {
            if let Some(v) = v {
                x.line(&format!("<{tag} {a}='{}'/>", esc(v)));
            }
        }
        x.close("interface");
    }
    for (i, s) in c.serials.iter().enumerate() {
        chardev(x, "serial", s, Some(i));
    }
    for s in &c.consoles {
        chardev(x, "console", s, None);
    }
    for g in &c.graphics {
        let port = g.port.map(|p| p.to_string());
        let a = attrs(&[
            (
                "port",
                if g.autoport {
                    Some("-1")
                } else {
                    port.as_deref()
                },
            ),
            ("autoport", g.autoport.then_some("yes")),
            ("listen", g.listen.as_deref()),
            ("passwd", g.passwd.as_deref()),
            ("keymap", g.keymap.as_deref()),
            ("display", g.display.as_deref()),
            ("xauth", g.xauth.as_deref()),
        ]);
        x.line(&format!("<graphics type='{}'{a}/>", esc(&g.kind)));
    }
    for i in &c.inputs {
        x.line(&format!(
            "<input{}/>",
            attrs(&[("type", Some(&i.kind)), ("bus", i.bus.as_deref())])
        ));
    }
    x.close("devices");
}

fn chardev(x: &mut Xml, tag: &str, d: &CharDev, port: Option<usize>) {
    let bare = matches!(
        d.kind,
        CharKind::Pty | CharKind::Null | CharKind::Stdio | CharKind::Vc
    ) && port.is_none()
        && d.target.is_none();
    if bare {
        x.line(&format!("<{tag} type='{}'/>", d.kind.as_str()));
        return;
    }
    x.open(&format!("<{tag} type='{}'>", d.kind.as_str()));
    let mode = if d.listen { "bind" } else { "connect" };
    match d.kind {
        CharKind::Pty | CharKind::Null | CharKind::Stdio | CharKind::Vc => {}
        CharKind::File | CharKind::Dev | CharKind::Pipe => x.line(&format!(
            "<source{}/>",
            attrs(&[("path", d.path.as_deref())])
        )),
        CharKind::Unix => x.line(&format!(
            "<source{}/>",
            attrs(&[("mode", Some(mode)), ("path", d.path.as_deref())])
        )),
        CharKind::Tcp | CharKind::Udp => {
            x.line(&format!(
                "<source{}/>",
                attrs(&[
                    ("mode", Some(mode)),
                    ("host", d.host.as_deref()),
                    ("service", d.service.as_deref())
                ])
            ));
            if d.kind == CharKind::Tcp {
                let p = if d.telnet { "telnet" } else { "raw" };
                x.line(&format!("<protocol type='{p}'/>"));
            }
        }
    }
    match port {
        Some(p) => x.line(&format!("<target port='{p}'/>")),
        None => {
            if let Some(t) = &d.target {
                x.line(&format!("<target type='{}' port='0'/>", esc(t)));
            }
        }
    }
    x.close(tag);
}
