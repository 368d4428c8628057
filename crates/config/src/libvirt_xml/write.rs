//! Model → libvirt domain XML, indented as libvirt prints it.
use super::devices::devices;
use crate::model::*;
use std::fmt::Write as _;

/// The firmware libvirt names for an HVM Xen guest that does not name its own.
pub const XEN_HVMLOADER: &str = "/usr/lib/xen/boot/hvmloader";

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

pub(super) struct Xml {
    pub(super) out: String,
    pub(super) depth: usize,
}

impl Xml {
    pub(super) fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }
    pub(super) fn text(&mut self, tag: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.line(&format!("<{tag}>{}</{tag}>", esc(v)));
        }
    }
    pub(super) fn open(&mut self, s: &str) {
        self.line(s);
        self.depth += 1;
    }
    pub(super) fn close(&mut self, tag: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line(&format!("</{tag}>"));
    }
}

/// ` name='value'` for each present attribute.
pub(super) fn attrs(list: &[(&str, Option<&str>)]) -> String {
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
        for name in c.features.off.iter().filter(|n| is_xml_name(n)) {
            x.line(&format!("<{name} state='off'/>"));
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
        Some(Clock::Variable { adjustment, basis }) => x.line(&format!(
            "<clock offset='variable' adjustment='{adjustment}' basis='{}'/>",
            basis.as_str()
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
    // libvirt names Xen's hvmloader for an HVM Xen guest that names no firmware.
    let xen = c.hypervisor.as_deref().is_none_or(|h| h == "xen");
    let default_loader =
        (c.guest_type == GuestType::Hvm && xen && b.firmware.is_none()).then_some(XEN_HVMLOADER);
    x.text("loader", b.loader.as_deref().or(default_loader));
    x.text("kernel", b.kernel.as_deref());
    x.text("initrd", b.initrd.as_deref());
    // libvirt has no <root>: xl's `root` is part of the command line.
    x.text("cmdline", b.effective_cmdline().as_deref());
    for d in &b.order {
        x.line(&format!("<boot dev='{}'/>", d.as_str()));
    }
    x.close("os");
}
