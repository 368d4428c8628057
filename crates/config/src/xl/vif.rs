//! xl vif specs (`mac=..,bridge=..,script=..,model=..,ip=..,vifname=..,type=..`), with
//! libxl's Open vSwitch bridge syntax; shared with the xend reader and writer.
use super::spec::{kv_fits, parse_kv};
use crate::model::Interface;

/// Parse one vif spec: `mac=..,bridge=..,script=..,model=..,ip=..,vifname=..,type=..`.
pub fn parse_vif(spec: &str) -> Result<(Interface, Vec<String>), String> {
    let mut nic = Interface::default();
    let mut ignored = Vec::new();
    let mut network = None;
    let mut bridge = None;
    let mut pv_only = false;
    for (k, v) in parse_kv(spec)? {
        match k.as_str() {
            "mac" => nic.mac = Some(v),
            "bridge" => bridge = Some(v),
            "script" => nic.script = Some(v),
            "model" => nic.model = Some(v),
            "ip" => nic.ip = Some(v),
            "vifname" => nic.target = Some(v),
            "domboot_network" => network = Some(v),
            // xl's `type=vif` (xm's `type=netfront`) asks for a PV NIC only: libvirt's
            // model `netfront`. `type=ioemu` is the HVM default (emulated and PV).
            "type" if v == "vif" || v == "netfront" => pv_only = true,
            "type" if v == "ioemu" => {}
            _ => ignored.push(format!("{k}={v}")),
        }
    }
    if pv_only && nic.model.is_none() {
        nic.model = Some("netfront".into());
    }
    if let Some(b) = bridge {
        set_bridge(&mut nic, &b)?;
    }
    nic.kind = if let Some(n) = network {
        nic.source = Some(n);
        "network".into()
    } else if nic.source.is_some() || nic.script.as_deref().is_some_and(|s| s.contains("bridge")) {
        "bridge".into()
    } else {
        "ethernet".into()
    };
    Ok((nic, ignored))
}

/// libxl's bridge syntax for Open vSwitch, as libvirt reads it: `BRIDGE.TAG` is one
/// VLAN tag, `BRIDGE:TAG:TAG` a trunk; either means an `openvswitch` virtual port.
pub fn set_bridge(nic: &mut Interface, b: &str) -> Result<(), String> {
    let (name, tags, trunk) = match (b.split_once('.'), b.split_once(':')) {
        (Some((name, tag)), _) => (name, vec![tag], false),
        (None, Some((name, rest))) => (name, rest.split(':').collect(), true),
        (None, None) => {
            nic.source = Some(b.to_string());
            return Ok(());
        }
    };
    nic.source = Some(name.to_string());
    for t in tags {
        let tag = t
            .parse()
            .map_err(|_| format!("bridge `{b}`: VLAN tag `{t}` is not a number"))?;
        nic.vlan.push(tag);
    }
    nic.vlan_trunk = trunk;
    nic.virtualport = Some("openvswitch".into());
    Ok(())
}

/// `BRIDGE`, with its VLAN tags in libxl's syntax.
pub fn bridge_spec(n: &Interface, source: &str) -> String {
    let sep = if n.vlan_trunk || n.vlan.len() > 1 {
        ':'
    } else {
        '.'
    };
    let mut s = source.to_string();
    for t in &n.vlan {
        s.push(sep);
        s.push_str(&t.to_string());
    }
    s
}

/// Write one vif spec.
pub fn write_vif(n: &Interface) -> String {
    let mut parts = Vec::new();
    if let Some(m) = n.mac.as_deref().filter(|v| kv_fits(v)) {
        parts.push(format!("mac={m}"));
    }
    if let Some(s) = n.source.as_deref().filter(|v| kv_fits(v)) {
        match n.kind.as_str() {
            "network" => parts.push(format!("domboot_network={s}")),
            // An ethernet interface's source device has no xl key.
            "ethernet" => {}
            _ => parts.push(format!("bridge={}", bridge_spec(n, s))),
        }
    }
    // libvirt's model `netfront` is xl's `type=vif`.
    let model = n.model.as_ref().filter(|m| m.as_str() != "netfront");
    if n.model.as_deref() == Some("netfront") {
        parts.push("type=vif".into());
    }
    for (k, v) in [
        ("script", &n.script),
        ("model", &model.cloned()),
        ("ip", &n.ip),
        ("vifname", &n.target),
    ] {
        if let Some(v) = v.as_deref().filter(|v| kv_fits(v)) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(",")
}

/// The interface names xend gives a running domain's vifs: `vifDOMID.N`.
pub fn is_generated_vif_name(name: &str) -> bool {
    name.strip_prefix("vif")
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(d, n)| {
            !d.is_empty()
                && !n.is_empty()
                && d.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}
