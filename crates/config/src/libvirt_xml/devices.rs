//! Model → the `<devices>` of a libvirt domain XML, with the defaults libvirt fills in
//! when it reads a Xen configuration: the disk bus and raw format, the implicit PV console,
//! the HVM console that mirrors the first serial port.
use super::write::{Xml, attrs, esc};
use crate::model::*;

pub(super) fn devices(x: &mut Xml, c: &DomainConfig) {
    let consoles = consoles(c);
    let empty = c.emulator.is_none()
        && c.disks.is_empty()
        && c.interfaces.is_empty()
        && c.serials.is_empty()
        && consoles.is_empty()
        && c.graphics.is_empty()
        && c.inputs.is_empty()
        && c.rngs.is_empty()
        && c.vsock.is_none();
    if empty {
        return;
    }
    x.open("<devices>");
    x.text("emulator", c.emulator.as_deref());
    for d in &c.disks {
        disk(x, d);
    }
    for n in &c.interfaces {
        interface(x, n);
    }
    for (s, port) in c.serials.iter().zip(c.serial_ports()) {
        chardev(x, "serial", s, None, port);
    }
    for (s, target, port) in &consoles {
        chardev(x, "console", s, Some(target.as_deref()), *port);
    }
    for g in &c.graphics {
        graphics(x, g);
    }
    for i in &c.inputs {
        x.line(&format!(
            "<input{}/>",
            attrs(&[("type", Some(&i.kind)), ("bus", i.bus.as_deref())])
        ));
    }
    for r in &c.rngs {
        rng(x, r);
    }
    if let Some(v) = &c.vsock {
        x.open(&format!(
            "<vsock model='{}'>",
            esc(v.model.as_deref().unwrap_or("virtio"))
        ));
        x.line(&match v.cid {
            Some(cid) => format!("<cid auto='no' address='{cid}'/>"),
            None => "<cid auto='yes'/>".to_string(),
        });
        x.close("vsock");
    }
    x.close("devices");
}

fn rng(x: &mut Xml, r: &Rng) {
    x.open(&format!(
        "<rng model='{}'>",
        esc(r.model.as_deref().unwrap_or("virtio"))
    ));
    match &r.source {
        Some(s) => x.line(&format!(
            "<backend model='{}'>{}</backend>",
            esc(&r.backend),
            esc(s)
        )),
        None => x.line(&format!("<backend model='{}'/>", esc(&r.backend))),
    }
    x.close("rng");
}

/// The consoles to write, with their target type and port: the model's own, or the one
/// libvirt fills in for a Xen guest: a PV (or PVH) guest's `xen` console on a pty, an HVM
/// guest's console on its first serial port.
pub(super) fn consoles(c: &DomainConfig) -> Vec<(CharDev, Option<String>, u32)> {
    if !c.consoles.is_empty() {
        return c
            .consoles
            .iter()
            .map(|d| (d.clone(), d.target.clone(), d.port.unwrap_or(0)))
            .collect();
    }
    if c.hypervisor.as_deref().is_some_and(|h| h != "xen") {
        return Vec::new();
    }
    match c.guest_type {
        GuestType::Hvm => match (c.serials.first(), c.serial_ports().first()) {
            (Some(s), Some(port)) => vec![(s.clone(), Some("serial".into()), *port)],
            _ => Vec::new(),
        },
        GuestType::Pv | GuestType::Pvh => vec![(CharDev::default(), Some("xen".into()), 0)],
    }
}

fn disk(x: &mut Xml, d: &Disk) {
    let kind = match d.kind {
        DiskKind::File => "file",
        DiskKind::Block => "block",
    };
    x.open(&format!(
        "<disk type='{kind}' device='{}'>",
        d.device.as_str()
    ));
    // libvirt names the format of every backend it knows; raw is the default.
    let format = d.format.as_deref().or(d.driver.as_ref().map(|_| "raw"));
    if d.driver.is_some() || format.is_some() {
        x.line(&format!(
            "<driver{}/>",
            attrs(&[("name", d.driver.as_deref()), ("type", format)])
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
    let bus = d.bus.as_deref().or(implied_bus(&d.target));
    x.line(&format!(
        "<target{}/>",
        attrs(&[("dev", Some(&d.target)), ("bus", bus)])
    ));
    if d.readonly {
        x.line("<readonly/>");
    }
    if d.shareable {
        x.line("<shareable/>");
    }
    x.close("disk");
}

fn interface(x: &mut Xml, n: &Interface) {
    x.open(&format!("<interface type='{}'>", esc(&n.kind)));
    if let Some(m) = &n.mac {
        x.line(&format!("<mac address='{}'/>", esc(m)));
    }
    if let Some(s) = &n.source {
        let a = match n.kind.as_str() {
            "network" => "network",
            "bridge" => "bridge",
            _ => "dev",
        };
        x.line(&format!("<source {a}='{}'/>", esc(s)));
    }
    if !n.vlan.is_empty() {
        x.open(if n.vlan_trunk {
            "<vlan trunk='yes'>"
        } else {
            "<vlan>"
        });
        for t in &n.vlan {
            x.line(&format!("<tag id='{t}'/>"));
        }
        x.close("vlan");
    }
    if let Some(v) = &n.virtualport {
        x.line(&format!("<virtualport type='{}'/>", esc(v)));
    }
    // libvirt has one <ip> per address; xl lists them in one `ip=` separated by spaces.
    for ip in n.ip.iter().flat_map(|s| s.split_whitespace()) {
        let family = if ip.contains(':') { "ipv6" } else { "ipv4" };
        x.line(&format!("<ip address='{}' family='{family}'/>", esc(ip)));
    }
    for (tag, a, v) in [
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

fn graphics(x: &mut Xml, g: &Graphics) {
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

/// A serial port (`target` None) or console (`Some` of its target type, if it names one).
fn chardev(x: &mut Xml, tag: &str, d: &CharDev, target: Option<Option<&str>>, port: u32) {
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
        CharKind::Tcp => {
            x.line(&format!(
                "<source{}/>",
                attrs(&[
                    ("mode", Some(mode)),
                    ("host", d.host.as_deref()),
                    ("service", d.service.as_deref())
                ])
            ));
            let p = if d.telnet { "telnet" } else { "raw" };
            x.line(&format!("<protocol type='{p}'/>"));
        }
        CharKind::Udp => {
            // udp sends to its peer (connect) from a local address (bind).
            if d.bind_host.is_some() || d.bind_service.is_some() {
                x.line(&format!(
                    "<source{}/>",
                    attrs(&[
                        ("mode", Some("bind")),
                        ("host", d.bind_host.as_deref()),
                        ("service", d.bind_service.as_deref())
                    ])
                ));
            }
            x.line(&format!(
                "<source{}/>",
                attrs(&[
                    ("mode", Some("connect")),
                    ("host", d.host.as_deref()),
                    ("service", d.service.as_deref())
                ])
            ));
        }
    }
    match target.flatten() {
        Some(t) => x.line(&format!("<target type='{}' port='{port}'/>", esc(t))),
        None => x.line(&format!("<target port='{port}'/>")),
    }
    x.close(tag);
}
