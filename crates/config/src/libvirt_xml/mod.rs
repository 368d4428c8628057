//! libvirt domain XML (formatdomain): `<os>` unified for PV and HVM as in seed 002
//! (`<type>` hvm | linux | xen | xenpvh, `<loader>`, `<kernel>`, `<initrd>`, `<cmdline>`,
//! `<boot dev>`; domboot's old `<root>` is read into the command line), `<memory>` and
//! `<currentMemory>` with units, `<vcpu current>`,
//! `<features>`, `<clock>`, `<on_*>`, `<bootloader>`, and the devices `<emulator>`,
//! `<disk>`, `<interface>`, `<serial>`, `<console>`, `<graphics>`, `<input>`.
//! Elements outside that set are reported as warnings.
mod devices;
mod read;
mod write;

pub use write::{XEN_HVMLOADER, esc, is_xml_name, write};

use crate::error::{ConfigError, Warning};
use crate::model::DomainConfig;

/// Parse a libvirt domain XML document.
pub fn parse(text: &str, source: &str) -> Result<DomainConfig, ConfigError> {
    parse_with_warnings(text, source).map(|(c, _)| c)
}

/// Parse, also returning the elements that were read but not kept.
pub fn parse_with_warnings(
    text: &str,
    source: &str,
) -> Result<(DomainConfig, Vec<Warning>), ConfigError> {
    read::parse_document(text, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn memory_units_and_current() {
        let c = parse(
            "<domain type='kvm'><name>a</name><memory unit='GiB'>1</memory>\
             <currentMemory unit='MiB'>512</currentMemory><vcpu current='1'>4</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os></domain>",
            "a.xml",
        )
        .expect("parses");
        assert_eq!(c.memory, MemSize::from_mib(512));
        assert_eq!(c.max_memory, MemSize::from_mib(1024));
        assert_eq!((c.vcpus, c.max_vcpus), (Some(1), Some(4)));
        assert_eq!(c.hypervisor.as_deref(), Some("kvm"));
        assert_eq!(c.arch.as_deref(), Some("x86_64"));
        assert_eq!(parse(&write(&c), "b.xml"), Ok(c));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("<domain>\n  <name>a</name\n</domain>", "a.xml").expect_err("error");
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "a.xml:3:1: syntax error: expected '>' not '<' (at `</domain>`)"
        );
        let e = parse(
            "<domain>\n<name>a</name>\n<os><type>sparc</type></os></domain>",
            "a.xml",
        )
        .expect_err("error");
        assert_eq!(e.key(), Some("os/type"));
        assert!(
            e.to_string()
                .starts_with("a.xml:3:5: os/type: unknown guest type `sparc`"),
            "{e}"
        );
        let e = parse(
            "<domain><name>a</name><memory unit='parsec'>1</memory></domain>",
            "a.xml",
        )
        .err();
        assert_eq!(e.as_ref().and_then(|e| e.key()), Some("memory"));
        let e = parse("<domain><memory>1</memory></domain>", "a.xml").err();
        assert_eq!(e.as_ref().and_then(|e| e.key()), Some("name"));
        let e = parse("<vm/>", "a.xml").err();
        assert_eq!(e.as_ref().and_then(|e| e.key()), Some("domain"));
    }

    #[test]
    fn unknown_elements_warn() {
        let (_, w) = parse_with_warnings(
            "<domain><name>a</name><cpu mode='host-passthrough'/><devices><video/></devices></domain>",
            "a.xml",
        )
        .expect("parses");
        let msgs: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "a.xml:1:23: <cpu> in <domain> is not modelled by domboot; dropped",
                "a.xml:1:62: <video> in <devices> is not modelled by domboot; dropped"
            ]
        );
    }

    #[test]
    fn odd_feature_names_do_not_break_the_document() {
        let mut c = DomainConfig {
            name: "a".into(),
            ..Default::default()
        };
        c.features.other.insert("not a name".into());
        c.description = Some("a <b> & 'c'\n\"d\"".into());
        let back = parse(&write(&c), "x").expect("still XML");
        assert!(back.features.other.is_empty());
        assert_eq!(back.description, c.description);
    }

    /// libvirt's own forms (tests/qemuxmlconfdata: vhost-vsock*, virtio-rng-*).
    #[test]
    fn vsock_and_rng_read_write_and_round_trip() {
        let text = "<domain type='kvm'><name>v</name><memory>219100</memory>\
             <os><type arch='x86_64'>hvm</type></os><devices>\
             <rng model='virtio'><rate period='1000' bytes='1234'/>\
             <backend model='random'>/dev/urandom</backend>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></rng>\
             <rng model='virtio'><backend model='builtin'/></rng>\
             <vsock model='virtio'><cid auto='no' address='4'/>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/></vsock>\
             </devices></domain>";
        let (c, warnings) = parse_with_warnings(text, "v.xml").expect("parses");
        assert_eq!(
            c.rngs,
            vec![
                Rng {
                    model: None,
                    backend: "random".into(),
                    source: Some("/dev/urandom".into()),
                },
                Rng {
                    model: None,
                    backend: "builtin".into(),
                    source: None,
                },
            ]
        );
        assert_eq!(
            c.vsock,
            Some(Vsock {
                cid: Some(4),
                model: None
            })
        );
        assert_eq!(warnings.len(), 1, "<rate> is dropped, named: {warnings:?}");
        assert!(warnings[0].message.contains("<rate>"), "{warnings:?}");
        assert!(c.unsupported_items().is_empty());
        let xml = write(&c);
        assert!(
            xml.contains("<backend model='random'>/dev/urandom</backend>"),
            "{xml}"
        );
        assert!(xml.contains("<cid auto='no' address='4'/>"), "{xml}");
        assert_eq!(parse(&xml, "w.xml"), Ok(c.clone()));
        let toml = crate::toml::write(&c);
        assert_eq!(crate::toml::parse(&toml, "w.toml"), Ok(c));

        let auto = parse(
            "<domain><name>a</name><devices><vsock model='virtio'><cid auto='yes'/></vsock>\
             </devices></domain>",
            "a.xml",
        )
        .expect("parses");
        assert_eq!(auto.vsock.as_ref().map(Vsock::guest_cid), Some(3));
        assert!(write(&auto).contains("<cid auto='yes'/>"));
        let e = parse(
            "<domain><name>a</name><devices><vsock><cid address='x'/></vsock></devices></domain>",
            "a.xml",
        )
        .expect_err("not a number");
        assert!(e.to_string().contains("vsock/cid/@address"), "{e}");
    }

    #[test]
    fn unusable_rng_and_vsock_are_named() {
        let c = parse(
            "<domain><name>a</name><devices>\
             <rng model='virtio'><backend model='egd' type='udp'/></rng>\
             <rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>\
             <vsock model='virtio'><cid auto='no' address='2'/></vsock></devices></domain>",
            "a.xml",
        )
        .expect("parses");
        let items: Vec<String> = c.unsupported_items().into_iter().map(|u| u.item).collect();
        assert_eq!(
            items,
            [
                "rng[0] (egd)",
                "rng[1] (random /dev/hwrng)",
                "vsock (cid 2)"
            ]
        );
    }
}
