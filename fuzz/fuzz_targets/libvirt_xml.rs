#![no_main]
//! The libvirt domain XML reader on arbitrary UTF-8: never panics; what it accepts writes
//! out in every syntax, and the XML output reads back. Writing fills in libvirt's defaults
//! (an HVM guest's hvmloader) once: from then on, XML → model → XML is a fixed point.
use domboot_config::{Syntax, libvirt_xml, parse, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = libvirt_xml::parse(text, "fuzz.xml") {
        for s in Syntax::ALL {
            let _ = write(&config, s);
        }
        let again = libvirt_xml::write(&config);
        let back = match parse(&again, Syntax::Xml, "again.xml") {
            Ok(back) => back,
            Err(e) => panic!("XML output of an accepted file does not read back: {e}\n{again}"),
        };
        let third = libvirt_xml::write(&back);
        match parse(&third, Syntax::Xml, "third.xml") {
            Ok(b) if b == back => {}
            Ok(b) => panic!("XML round trips do not settle:\n{third}\n{b:?}\n{back:?}"),
            Err(e) => panic!("XML output does not read back: {e}\n{third}"),
        }
    }
});
