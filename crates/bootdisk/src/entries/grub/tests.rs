use super::parse;
use crate::entries::Menu;

fn menu(text: &str) -> Menu {
    parse(text, &mut |_| None).unwrap()
}

fn titles(m: &Menu) -> Vec<&str> {
    m.entries.iter().map(|e| e.title.as_str()).collect()
}

#[test]
fn quoting_escapes_and_variables() {
    let m = menu(
        "set v=6.1\nset opts=\"a b\"\nmenuentry \"It's \\\"x\\\"\" {\n linux /vmlinuz-${v} $opts 'c d' e\\ f\n initrd /a /b\n}\n",
    );
    assert_eq!(titles(&m), ["It's \"x\""]);
    let e = &m.entries[0];
    assert_eq!(e.kernel, "/vmlinuz-6.1");
    assert_eq!(e.cmdline, "a b c d e f");
    assert_eq!(e.initrds, ["/a", "/b"]);
}

#[test]
fn default_by_number_title_id_and_submenu_path() {
    let cfg = |d: &str| {
        format!(
            "set default={d}\nmenuentry A --id a {{ linux /a }}\nsubmenu S {{\n menuentry B {{ linux /b }}\n menuentry C --id c {{ linux /c }}\n}}\nmenuentry D {{ linux /d }}\n"
        )
    };
    for (d, want) in [
        ("0", 0),
        ("1", 1),
        ("2", 3),
        ("1>1", 2),
        ("'S>C'", 2),
        ("S>c", 2),
        ("a", 0),
        ("D", 3),
        ("nope", 0),
        ("9", 0),
    ] {
        assert_eq!(menu(&cfg(d)).default, Some(want), "default={d}");
    }
}

#[test]
fn saved_default_and_last_set_wins_across_branches() {
    let m = menu(
        "set saved_entry=B\nif [ x ]; then\n set default=\"${next_entry}\"\nelse\n set default=saved\nfi\nmenuentry A { linux /a }\nmenuentry B { linux /b }\n",
    );
    assert_eq!(m.default, Some(1));
}

#[test]
fn root_and_devices_give_partitions() {
    let m = menu(
        "set root=(hd0,gpt3)\nmenuentry A { linux /a }\nmenuentry B { set root='hd0,msdos1'\n linux /b }\nmenuentry C { linux (hd0,5)/c }\nmenuentry D { linux ($root)/d }\nmenuentry E { linux (cd)/e }\n",
    );
    let p: Vec<Option<u32>> = m.entries.iter().map(|e| e.partition).collect();
    assert_eq!(p, [Some(3), Some(1), Some(5), Some(3), None]);
    assert_eq!(m.entries[3].kernel, "/d");
}

#[test]
fn entries_without_a_kernel_and_functions_are_skipped() {
    let m = menu(
        "function f {\n menuentry Hidden { linux /h }\n}\nmenuentry 'Firmware' { fwsetup }\nmenuentry Chain { chainloader +1 }\nmenuentry L { linuxefi /l\n initrdefi /i }\n",
    );
    assert_eq!(titles(&m), ["L"]);
    assert_eq!(m.entries[0].initrds, ["/i"]);
}

#[test]
fn source_includes_are_followed_and_bounded() {
    let mut include = |p: &str| match p {
        "/boot/grub/entries.cfg" => Some("menuentry Inc { linux /inc }\n".to_string()),
        "/loop.cfg" => Some("source /loop.cfg\n".to_string()),
        _ => None,
    };
    let m = parse(
        "source /boot/grub/entries.cfg\nsource /missing.cfg\n",
        &mut include,
    )
    .unwrap();
    assert_eq!(titles(&m), ["Inc"]);
    let err = parse("source /loop.cfg\n", &mut include).unwrap_err();
    assert!(err.0.contains("included more than"), "{err}");
}

#[test]
fn hostile_inputs_are_bounded() {
    let nested = "submenu x {\n".repeat(100);
    assert!(
        parse(&nested, &mut |_| None)
            .unwrap_err()
            .0
            .contains("nested")
    );
    let doubling = "set a=aaaaaaaa\n".to_string() + &"set a=$a$a\n".repeat(40);
    assert!(
        parse(&doubling, &mut |_| None)
            .unwrap_err()
            .0
            .contains("expands to more than")
    );
    let unterminated = menu("menuentry 'A { linux /a");
    assert!(unterminated.entries.is_empty());
}

mod properties {
    use super::super::parse;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text parses without a panic, and every entry has a kernel path.
        #[test]
        fn never_panics(text in "(menuentry|submenu|set|linux|initrd|source|[{}'\"$;\\\\ \n]|[a-z=0-9>/()]){0,200}") {
            let mut include = |_: &str| Some(text.clone());
            if let Ok(m) = parse(&text, &mut include) {
                prop_assert!(m.entries.iter().all(|e| e.kernel.starts_with('/')));
                prop_assert!(m.default.is_none_or(|d| d < m.entries.len()));
            }
        }

        /// Generated menus come back with their titles, kernels and command lines.
        #[test]
        fn round_trips_generated_menus(
            entries in proptest::collection::vec(("[A-Za-z0-9(][A-Za-z0-9 ()._-]{0,19}", "[a-z0-9_.-]{1,12}", proptest::collection::vec("[a-z0-9=/._-]{1,10}", 0..4)), 1..6),
            default in 0usize..8,
        ) {
            let mut cfg = format!("set default=\"{default}\"\n");
            for (title, kernel, args) in &entries {
                cfg.push_str(&format!("menuentry '{title}' {{\n\tlinux /{kernel} {}\n\tinitrd /initrd-{kernel}\n}}\n", args.join(" ")));
            }
            let m = parse(&cfg, &mut |_| None).unwrap();
            prop_assert_eq!(m.entries.len(), entries.len());
            for (e, (title, kernel, args)) in m.entries.iter().zip(&entries) {
                prop_assert_eq!(&e.title, title);
                prop_assert_eq!(&e.kernel, &format!("/{kernel}"));
                prop_assert_eq!(&e.cmdline, &args.join(" "));
                prop_assert_eq!(&e.initrds, &vec![format!("/initrd-{kernel}")]);
            }
            prop_assert_eq!(m.default, Some(if default < entries.len() { default } else { 0 }));
        }
    }
}
