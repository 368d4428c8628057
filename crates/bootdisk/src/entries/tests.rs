//! The BLS, extlinux and menu.lst parsers: examples and properties.

use super::{bls, extlinux, menulst};
use proptest::prelude::*;

#[test]
fn bls_sorting_and_default() {
    let mut es: Vec<bls::BlsEntry> = [
        ("fedora-6.5.6", "title F 6.5.6\nversion 6.5.6\nlinux /v1\n"),
        (
            "fedora-6.10.1",
            "title F 6.10.1\nversion 6.10.1\nlinux /v2\n",
        ),
        ("keyed-b", "sort-key b\nlinux /v3\n"),
        ("keyed-a", "sort-key a\nversion 1\nlinux /v4\n"),
        ("no-linux", "title UKI entry\nuki /x.efi\n"),
    ]
    .iter()
    .filter_map(|(id, t)| bls::parse_entry(id, t))
    .collect();
    bls::sort(&mut es);
    let ids: Vec<&str> = es.iter().map(|e| e.entry.id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["keyed-a", "keyed-b", "fedora-6.10.1", "fedora-6.5.6"]);
    assert_eq!(es[0].entry.title, "keyed-a (1)");
    assert_eq!(bls::default_index(&ids, Some("fedora-6.5*")), Some(3));
    assert_eq!(bls::default_index(&ids, Some("fedora-6.5.6.conf")), Some(3));
    assert_eq!(bls::default_index(&ids, Some("@saved")), Some(0));
    assert_eq!(bls::default_index(&ids, None), Some(0));
    assert_eq!(bls::default_index(&[], None), None);
    assert_eq!(
        bls::loader_default("timeout 3\ndefault  arch-*  \n"),
        Some("arch-*".into())
    );
}

#[test]
fn extlinux_default_label_global_append_and_com32() {
    let m = extlinux::parse(
        "APPEND quiet\nDEFAULT two\nLABEL one\n KERNEL /a\nLABEL two\n MENU LABEL ^Second\n LINUX b\n INITRD x,y\n APPEND initrd=z ro\nLABEL menu\n COM32 menu.c32\nLABEL local\n LOCALBOOT 0\n",
        &mut |_| None,
    )
    .unwrap();
    let t: Vec<(&str, &str, &str)> = m
        .entries
        .iter()
        .map(|e| (e.title.as_str(), e.kernel.as_str(), e.cmdline.as_str()))
        .collect();
    assert_eq!(t, [("one", "/a", "quiet"), ("Second", "b", "ro")]);
    assert_eq!(m.entries[1].initrds, ["z"]);
    assert_eq!(m.default, Some(1));
}

#[test]
fn menu_lst_default_root_and_kernel_devices() {
    let m = menulst::parse("default 1\ntitle A\nroot (hd0,1)\nkernel /a x\ntitle B\nkernel (hd0,0)/b y z\ninitrd (hd0,0)/ib\ntitle NoKernel\nchainloader +1\n").unwrap();
    let t: Vec<(&str, Option<u32>, &str)> = m
        .entries
        .iter()
        .map(|e| (e.title.as_str(), e.partition, e.cmdline.as_str()))
        .collect();
    assert_eq!(t, [("A", Some(2), "x"), ("B", Some(1), "y z")]);
    assert_eq!(m.entries[1].initrds, ["/ib"]);
    assert_eq!(m.default, Some(1));
    assert_eq!(
        menulst::parse("default 7\ntitle A\nkernel /a\n")
            .unwrap()
            .default,
        Some(0)
    );
}

#[test]
fn extlinux_include_depth_is_bounded() {
    let err = extlinux::parse("INCLUDE self.cfg\n", &mut |_| {
        Some("INCLUDE self.cfg\n".into())
    })
    .unwrap_err();
    assert!(err.0.contains("included more than"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bls_parses_any_text(text in "((title|linux|initrd|options|sort-key|version|#)[ \t][ -~]{0,20}\n){0,12}") {
        if let Some(e) = bls::parse_entry("id", &text) {
            prop_assert!(e.entry.kernel.starts_with('/'));
            prop_assert!(!e.entry.title.is_empty());
        }
    }

    #[test]
    fn bls_sort_is_a_total_order(ids in proptest::collection::vec("[a-z0-9.~-]{1,10}", 0..12), key in proptest::option::of("[a-c]")) {
        let mut es: Vec<bls::BlsEntry> = ids.iter().enumerate().filter_map(|(i, id)| {
            let sk = if i % 2 == 0 { key.clone().map(|k| format!("sort-key {k}\n")).unwrap_or_default() } else { String::new() };
            bls::parse_entry(id, &format!("{sk}linux /k\n"))
        }).collect();
        bls::sort(&mut es);
        for w in es.windows(2) {
            prop_assert!(w[0].sort_key.is_some() || w[1].sort_key.is_none(), "keyed entries first");
        }
        let picked = bls::default_index(&es.iter().map(|e| e.entry.id.as_deref().unwrap()).collect::<Vec<_>>(), Some("*"));
        prop_assert_eq!(picked, (!es.is_empty()).then_some(0));
    }

    #[test]
    fn extlinux_parses_any_text(text in "((label|kernel|linux|append|initrd|default|menu label|menu default|include|com32)[ \t][ -~]{0,20}\n){0,16}") {
        let mut include = |_: &str| Some(text.clone());
        if let Ok(m) = extlinux::parse(&text, &mut include) {
            prop_assert!(m.entries.iter().all(|e| !e.kernel.is_empty()));
            prop_assert!(m.default.is_none_or(|d| d < m.entries.len()));
        }
    }

    #[test]
    fn menu_lst_parses_any_text(text in "((title|root|kernel|initrd|default)[ \t=][ -~]{0,20}\n){0,16}") {
        let m = menulst::parse(&text).unwrap();
        prop_assert!(m.entries.iter().all(|e| e.kernel.starts_with('/')));
        prop_assert!(m.default.is_none_or(|d| d < m.entries.len()));
    }

    #[test]
    fn glob_star_matches_everything(text in "[ -~]{0,30}") {
        prop_assert!(bls::glob("*", &text));
        prop_assert!(bls::glob(&text.replace(['*', '?'], ""), &text.replace(['*', '?'], "")));
    }
}

#[test]
fn extlinux_submenus_and_help_text() {
    let m = extlinux::parse(
        "LABEL a\n KERNEL /a\nMENU BEGIN adv\n MENU LABEL Advanced\n LABEL b\n  MENU LABEL B\n  KERNEL /b\n  TEXT HELP\n  kernel /not-this\n  ENDTEXT\nMENU END\n",
        &mut |_| None,
    )
    .unwrap();
    let t: Vec<(&str, &str)> = m
        .entries
        .iter()
        .map(|e| (e.title.as_str(), e.kernel.as_str()))
        .collect();
    assert_eq!(t, [("a", "/a"), ("B", "/b")]);
}

proptest! {
    #[test]
    fn version_order_is_antisymmetric(a in "[a-z0-9.~^-]{0,12}", b in "[a-z0-9.~^-]{0,12}") {
        use super::version::compare;
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        prop_assert_eq!(compare(&a, &a), std::cmp::Ordering::Equal);
    }
}

#[test]
fn includes_are_bounded_in_total_not_only_in_depth() {
    let fan_out = "INCLUDE a\n".repeat(20) + &"#".repeat(600_000);
    let err = extlinux::parse(&fan_out, &mut |_| Some(fan_out.clone())).unwrap_err();
    assert!(err.0.contains("add up to more than"), "{err}");
    let fan_out = "source /a\n".repeat(20) + &"#".repeat(600_000);
    let err = super::grub::parse(&fan_out, &mut |_| Some(fan_out.clone())).unwrap_err();
    assert!(err.0.contains("add up to more than"), "{err}");
}

#[test]
fn bls_options_expand_from_grubenv() {
    let env = "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto\nsaved_entry=x\n";
    assert_eq!(
        bls::expand_grubenv("$kernelopts $tuned_params quiet", env),
        "root=/dev/mapper/rhel-root ro crashkernel=auto $tuned_params quiet"
    );
    assert_eq!(
        bls::expand_grubenv("${kernelopts}", env),
        "root=/dev/mapper/rhel-root ro crashkernel=auto"
    );
}
