//! The seeds' examples read as the seeds describe them, the compatibility rules, and
//! error messages with file:line:column and keys.
use domboot_config::*;
use std::path::Path;

fn golden(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/inputs")
        .join(name);
    std::fs::read_to_string(p).expect("golden input")
}

#[test]
fn seed_002_hvm_kernel_initrd_domain() {
    let c = libvirt_xml::parse(&golden("seed002_hvm_kernel.xml"), "seed002.xml").expect("parses");
    assert_eq!(c.name, "kernel");
    assert_eq!(c.guest_type, GuestType::Hvm);
    assert_eq!(
        c.boot.loader.as_deref(),
        Some("/usr/lib/xen/boot/hvmloader")
    );
    assert_eq!(c.boot.kernel.as_deref(), Some("/root/vmlinuz.f864"));
    assert_eq!(c.boot.initrd.as_deref(), Some("/root/initrd.img.f864"));
    assert_eq!(
        c.boot.cmdline.as_deref(),
        Some("console=ttyS0 console=tty0")
    );
    assert_eq!(c.memory, Some(MemSize::from_kib(531456)));
    assert_eq!(c.max_memory, Some(MemSize::from_kib(540672)));
    assert_eq!(c.on_crash, Some(LifecycleAction::Preserve));
    assert!(c.features.acpi && c.features.apic && c.features.pae);
    assert_eq!(c.emulator.as_deref(), Some("/usr/lib64/xen/bin/qemu-dm"));
    assert_eq!(c.interfaces[0].source.as_deref(), Some("xenbr0"));
    assert_eq!(c.disks[0].driver.as_deref(), Some("file"));
    assert!(c.graphics[0].autoport);
    // An HVM Xen guest's lone `<console tty='pty'/>` is serial port 0 (libvirt's rule),
    // which the console shows.
    assert_eq!(c.serials[0].kind, CharKind::Pty);
    assert!(c.consoles.is_empty());
    assert_eq!(c.inputs[0].bus.as_deref(), Some("ps2"));
    // xend's form of it: loader *and* kernel inside (image (hvm ...)), as the patch writes.
    let sx = sexpr::write_compact(&c);
    assert!(
        sx.contains(
            "(image (hvm (loader '/usr/lib/xen/boot/hvmloader')(kernel '/root/vmlinuz.f864')"
        ),
        "{sx}"
    );
}

#[test]
fn seed_002_switch_to_pv_drops_loader_and_emulator() {
    // "If we were to switch that domain to PV, the change would basically [be] to remove
    // os/loader and devices/emulator, change os/type to be linux".
    let mut c = libvirt_xml::parse(&golden("seed002_hvm_kernel.xml"), "s").expect("parses");
    c.guest_type = GuestType::Pv;
    c.boot.loader = None;
    c.emulator = None;
    // Its pty console is now the one libvirt gives every PV guest: implied, not kept.
    c.drop_implied_console();
    assert!(c.consoles.is_empty());
    let xml = libvirt_xml::write(&c);
    assert!(
        xml.contains("<console type='pty'>\n      <target type='xen' port='0'/>"),
        "{xml}"
    );
    assert!(xml.contains("<type>linux</type>"), "{xml}");
    let sx = sexpr::write_compact(&c);
    assert!(
        sx.contains("(image (linux (kernel '/root/vmlinuz.f864')"),
        "{sx}"
    );
    for s in Syntax::ALL {
        let mut want = c.clone();
        if s == Syntax::Sexpr {
            // xend's default on_crash (restart) is not the model's (destroy): it is written.
            want.on_crash.get_or_insert(LifecycleAction::Destroy);
        }
        assert_eq!(parse(&write(&c, s), s, "x"), Ok(want), "{s}");
    }
}

#[test]
fn seed_000_hvmdemo_xm_file() {
    let (c, warnings) =
        xl::parse_with_warnings(&golden("seed000_hvmdemo.cfg"), "hvmdemo.cfg").expect("parses");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.name, "hvmdemo");
    assert_eq!(c.guest_type, GuestType::Hvm);
    assert_eq!(c.memory, MemSize::from_mib(500), "memory = \"500\" is MiB");
    assert_eq!(
        c.boot.loader.as_deref(),
        Some("/usr/lib/xen/boot/hvmloader")
    );
    assert_eq!(
        c.boot.kernel.as_deref(),
        Some("/root/install/vmlinuz-f8-i386")
    );
    assert_eq!(
        c.boot.initrd.as_deref(),
        Some("/root/install/initrd.img-f8-i386")
    );
    assert_eq!(
        c.boot.effective_cmdline().as_deref(),
        Some("console=ttyS0 console=tty0")
    );
    assert_eq!(c.emulator.as_deref(), Some("/usr/lib/xen/bin/qemu-dm"));
    assert_eq!(
        c.serials,
        [CharDev {
            kind: CharKind::File,
            path: Some("/tmp/hvmdemo.log".into()),
            ..Default::default()
        }]
    );
    assert!(!c.features.acpi && !c.features.apic && !c.features.pae);
    assert_eq!(c.graphics.len(), 1);
    assert!(c.graphics[0].autoport);
    assert_eq!(c.disks[0].target, "hda");
    let items: Vec<String> = c.unsupported_items().into_iter().map(|u| u.item).collect();
    assert!(items.iter().any(|i| i == "graphics[0] (vnc)"), "{items:?}");
    // The seed's raw image is attached as the guest's first virtio disk now.
    assert!(!items.iter().any(|i| i.starts_with("disk[0]")), "{items:?}");
}

#[test]
fn hvm_kernel_naming_hvmloader_means_loader() {
    let text = "name='a'\nbuilder='hvm'\nkernel='/usr/lib/xen/boot/hvmloader'\n";
    let c = xl::parse(text, "a.cfg").expect("parses");
    assert_eq!(
        c.boot.loader.as_deref(),
        Some("/usr/lib/xen/boot/hvmloader")
    );
    assert_eq!(c.boot.kernel, None);
    // Written back, the firmware is named as the loader, never as the kernel.
    assert!(xl::write(&c).contains("loader = \"/usr/lib/xen/boot/hvmloader\""));
    assert!(!xl::write(&c).contains("kernel ="));

    // The same in xend's SEXPR (libvirt's old HVM form).
    let c = sexpr::parse(&golden("xend_fv_legacy.sexpr"), "fv.sexpr").expect("parses");
    assert_eq!(
        c.boot.loader.as_deref(),
        Some("/usr/lib/xen/boot/hvmloader")
    );
    assert_eq!(c.boot.kernel, None);

    // With a loader given, `kernel` is the kernel; for PV it is always the kernel.
    let c = xl::parse(&golden("seed000_hvmdemo.cfg"), "s").expect("parses");
    assert_eq!(
        c.boot.kernel.as_deref(),
        Some("/root/install/vmlinuz-f8-i386")
    );
    let c = xl::parse("name='a'\nkernel='/usr/lib/xen/boot/hvmloader'\n", "a").expect("parses");
    assert_eq!(
        c.boot.kernel.as_deref(),
        Some("/usr/lib/xen/boot/hvmloader")
    );
}

#[test]
fn root_and_extra_combine_as_xl_does() {
    let c = xl::parse(
        "name='a'\nroot='/dev/xvda1 ro'\nextra='console=hvc0'\n",
        "a",
    )
    .expect("ok");
    assert_eq!(
        c.boot.effective_cmdline().as_deref(),
        Some("root=/dev/xvda1 ro console=hvc0")
    );
    // One command line in the model, as libvirt's <cmdline> (issue 13: not a <root>).
    assert_eq!(c.boot.root, None);
    assert_eq!(
        c.boot.cmdline.as_deref(),
        Some("root=/dev/xvda1 ro console=hvc0")
    );
    let xml = libvirt_xml::write(&c);
    assert!(
        xml.contains("<cmdline>root=/dev/xvda1 ro console=hvc0</cmdline>")
            && !xml.contains("<root>"),
        "{xml}"
    );
    // A model built with `root` apart says the same.
    let mut apart = DomainConfig {
        name: "a".into(),
        ..Default::default()
    };
    apart.boot.root = Some("/dev/xvda1 ro".into());
    apart.boot.cmdline = Some("console=hvc0".into());
    assert_eq!(libvirt_xml::write(&apart), xml);
    for s in Syntax::ALL {
        let mut want = c.clone();
        if s == Syntax::Sexpr {
            // xend's default on_crash (restart) is not the model's (destroy): it is written.
            want.on_crash.get_or_insert(LifecycleAction::Destroy);
        }
        assert_eq!(parse(&write(&c, s), s, "x"), Ok(want), "{s}");
    }
    // `cmdline` replaces both, with a warning naming them.
    let (c, w) = xl::parse_with_warnings(
        "name='a'\nroot='/dev/xvda1'\nextra='quiet'\ncmdline='console=hvc0'\n",
        "a.cfg",
    )
    .expect("ok");
    assert_eq!(c.boot.effective_cmdline().as_deref(), Some("console=hvc0"));
    let msgs: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "a.cfg:2:6: `root` is ignored because `cmdline` is set (as xl does)",
            "a.cfg:3:7: `extra` is ignored because `cmdline` is set (as xl does)"
        ]
    );
}

#[test]
fn xend_vcpu_avail_and_memory() {
    let c = sexpr::parse(
        "(vm (name a)(memory 256)(maxmem 512)(vcpus 4)(vcpu_avail 3))",
        "a",
    )
    .expect("ok");
    assert_eq!((c.vcpus, c.max_vcpus), (Some(2), Some(4)));
    assert_eq!(
        (c.memory, c.max_memory),
        (MemSize::from_mib(256), MemSize::from_mib(512))
    );
    let c = sexpr::parse(&golden("xend_fv_kernel.sexpr"), "k").expect("ok");
    assert_eq!(
        c.boot.cmdline.as_deref(),
        Some(
            " method=http://download.fedora.devel.redhat.com/pub/fedora/linux/core/test/5.91/x86_64/os  "
        )
    );
    assert_eq!(c.disks[0].target, "xvda");
}

#[test]
fn unknown_keys_are_reported_not_silently_lost() {
    let (_, w) =
        xl::parse_with_warnings("name='a'\npci=['04:00.0']\ncpus=\"1-7\"\n", "a.cfg").expect("ok");
    let msgs: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "a.cfg:2:1: `pci` is not modelled by domboot; dropped",
            "a.cfg:3:1: `cpus` is not modelled by domboot; dropped"
        ]
    );
    let (_, w) = sexpr::parse_with_warnings("(vm (name a)(image (hvm (soundhw sb16))))", "a.sxp")
        .expect("ok");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].to_string().starts_with("a.sxp:1:25: `(soundhw ...)`"),
        "{}",
        w[0]
    );
}

fn err(syntax: Syntax, text: &str) -> ConfigError {
    parse(text, syntax, "bad.conf").expect_err("must fail")
}

#[test]
fn semantic_errors_name_key_and_position() {
    let e = err(Syntax::Xl, "name='a'\ntype='hvm2'\n");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:6: type: unknown guest type `hvm2` (pv, hvm or pvh)"
    );
    let e = err(Syntax::Xl, "name='a'\nbuilder='xen'\n");
    assert_eq!(e.key(), Some("builder"));
    let e = err(Syntax::Xl, "name='a'\nmemory='lots'\n");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:8: memory: expected a number, found \"lots\""
    );
    let e = err(Syntax::Xl, "name='a'\nvcpus=-1\n");
    assert_eq!(e.key(), Some("vcpus"));
    let e = err(Syntax::Xl, "name='a'\ndisk=['/x,raw,hda,rx']\n");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:7: disk: `/x,raw,hda,rx`: access `rx` is not r, ro, w, rw or w!"
    );
    let e = err(Syntax::Xl, "name='a'\non_crash='explode'\n");
    assert_eq!(e.key(), Some("on_crash"));
    let e = err(Syntax::Xl, "memory=1\n");
    assert_eq!(e.key(), Some("name"));
    let e = err(Syntax::Sexpr, "(vm (name a)\n (image (sparc (kernel k))))");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:9: image: unknown guest type `sparc` (linux, hvm or pvh)"
    );
    let e = err(Syntax::Sexpr, "(vm (name a)(memory many))");
    assert_eq!(
        e.to_string(),
        "bad.conf:1:13: memory: `many` is not a number"
    );
    let e = err(
        Syntax::Xml,
        "<domain>\n  <name>a</name>\n  <vcpu>two</vcpu>\n</domain>",
    );
    assert_eq!(e.to_string(), "bad.conf:3:3: vcpu: `two` is not a count");
    let e = err(Syntax::Toml, "name = 'a'\nvcpus = 'two'\n");
    assert_eq!(e.key(), Some("vcpus"));
    assert_eq!(e.span().map(|s| (s.line, s.column)), Some((2, 9)));
}

#[test]
fn syntax_errors_give_line_column_and_text() {
    let e = err(Syntax::Xl, "name = 'a'\nmemory = 512 MB\n");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:14: syntax error: expected a newline or `;` after the value (at `MB`)"
    );
    let e = err(Syntax::Sexpr, "(vm (name a)\n  (memory 512)))");
    assert_eq!(
        e.to_string(),
        "bad.conf:2:16: syntax error: unexpected text after the closing `)` (at `)`)"
    );
    let e = err(Syntax::Xml, "<domain><name>a</name></domian>");
    assert!(
        e.to_string().starts_with("bad.conf:1:23: syntax error:"),
        "{e}"
    );
    let e = err(Syntax::Toml, "name = 'a'\n[boot\nkernel = 'k'\n");
    assert!(e.to_string().starts_with("bad.conf:2:"), "{e}");
}

#[test]
fn losses_name_what_a_syntax_cannot_say() {
    let mut c = DomainConfig {
        name: "a".into(),
        memory: Some(MemSize::from_kib(1025)),
        ..Default::default()
    };
    assert_eq!(losses(&c, Syntax::Xml), Vec::<String>::new());
    assert_eq!(losses(&c, Syntax::Xl), ["memory: \"1025KiB\" → \"2MiB\""]);
    assert_eq!(
        losses(&c, Syntax::Sexpr),
        ["memory: \"1025KiB\" → \"2MiB\""]
    );
    c.memory = MemSize::from_mib(1);
    c.interfaces.push(Interface {
        kind: "user".into(),
        ..Default::default()
    });
    assert_eq!(
        losses(&c, Syntax::Xl),
        ["interface[0].type: \"user\" → \"ethernet\""]
    );
}

#[test]
fn readme_example_is_valid_toml_for_the_model() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let start = readme.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let len = readme[start..].find("```").expect("closed");
    let c = toml::parse(&readme[start..start + len], "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.name, "hvmdemo");
    assert_eq!(c.serials[0].path.as_deref(), Some("/tmp/hvmdemo.log"));
}

#[test]
fn validate_resolves_relative_paths_against_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = golden("native_example.toml");
    let c = toml::parse(&text, "native_example.toml").expect("parses");
    // Kernel and initrd are relative: missing next to the file, found once created.
    let e = c
        .validate(dir.path(), "native_example.toml")
        .expect_err("no kernel yet");
    assert_eq!(e.key(), Some("boot.kernel"));
    assert!(e.to_string().contains("arch/x86/boot/bzImage"), "{e}");
    std::fs::create_dir_all(dir.path().join("arch/x86/boot")).expect("mkdir");
    std::fs::write(dir.path().join("arch/x86/boot/bzImage"), b"k").expect("write");
    let e = c
        .validate(dir.path(), "native_example.toml")
        .expect_err("no initrd yet");
    assert_eq!(e.key(), Some("boot.initrd"));
    std::fs::write(dir.path().join("initramfs.cpio.gz"), b"i").expect("write");
    assert_eq!(c.validate(dir.path(), "native_example.toml"), Ok(vec![]));
    assert!(c.unsupported_items().is_empty());
}
