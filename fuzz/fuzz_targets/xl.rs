#![no_main]
//! The xl/xm parser on arbitrary UTF-8: never panics; what it accepts writes out in
//! every syntax, and the xl output reads back.
use domboot_config::{Syntax, parse, write, xl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = xl::parse_settings(text, "fuzz.cfg");
    if let Ok(config) = xl::parse(text, "fuzz.cfg") {
        for s in Syntax::ALL {
            let _ = write(&config, s);
        }
        let again = xl::write(&config);
        if parse(&again, Syntax::Xl, "again.cfg").is_err() {
            panic!("xl output of an accepted file does not read back:\n{again}");
        }
    }
});
