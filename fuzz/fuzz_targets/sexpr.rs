#![no_main]
//! The xend S-expression parser on arbitrary UTF-8: never panics; what it accepts writes
//! out in every syntax, and the SEXPR output reads back.
use domboot_config::{Syntax, parse, sexpr, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = sexpr::parse_tree(text, "fuzz.sexpr");
    if let Ok(config) = sexpr::parse(text, "fuzz.sexpr") {
        for s in Syntax::ALL {
            let _ = write(&config, s);
        }
        let again = sexpr::write(&config);
        if parse(&again, Syntax::Sexpr, "again.sexpr").is_err() {
            panic!("SEXPR output of an accepted file does not read back:\n{again}");
        }
    }
});
