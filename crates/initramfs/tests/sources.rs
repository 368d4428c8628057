//! File lists in gen_init_cpio's format, TOML manifests and busybox, each checked by
//! extracting the result with GNU cpio or by parsing its headers.

mod common;

use common::*;
use domboot_initramfs::{Compression, Error, Initramfs, busybox};
use std::path::Path;

#[test]
fn gen_init_cpio_list_with_every_line_type() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    std::fs::write(base.join("kinit"), b"\x7fELF pretend").unwrap();
    std::fs::create_dir(base.join("tree")).unwrap();
    std::fs::write(base.join("tree/a"), b"A").unwrap();
    std::fs::write(base.join("single"), b"S").unwrap();
    let list = "\
# A simple initramfs (gen_init_cpio's own example, plus every other line type)
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/sda 0660 0 6 b 8 0
dir /root 0700 0 0
dir /sbin 0755 0 0
file /sbin/kinit kinit 0755 0 0 /sbin/kinit-link /bin/also
slink /bin/sh busybox 0777 0 0
pipe /run/pipe 0600 0 0
sock /run/sock 0600 0 0
file /etc/owned single 0640 1000 100

/opt tree
/etc/copy single
";
    let archive = Initramfs::new()
        .reproducible(true)
        .list_str(list, Path::new("list.txt"), base)
        .unwrap()
        .to_bytes(Compression::None)
        .unwrap();
    let entries = parse_newc(&archive);
    check_invariants(&entries);
    let get = |n: &str| {
        entries
            .iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert_eq!(get("dev/console").mode, 0o020600);
    assert_eq!(get("dev/sda").mode, 0o060660);
    assert_eq!((get("dev/sda").rdev, get("dev/sda").gid), ((8, 0), 6));
    assert_eq!(get("root").mode, 0o040700);
    assert_eq!(get("sbin/kinit").data, b"\x7fELF pretend");
    assert_eq!(get("sbin/kinit").mode, 0o100755);
    // Hard links become copies with inodes of their own.
    assert_eq!(get("sbin/kinit-link").data, b"\x7fELF pretend");
    assert_eq!(get("bin/also").data, b"\x7fELF pretend");
    assert_eq!(get("bin/sh").data, b"busybox");
    assert_eq!(get("run/pipe").mode, 0o010600);
    assert_eq!(get("run/sock").mode, 0o140600);
    // Explicit owners survive reproducible mode.
    assert_eq!((get("etc/owned").uid, get("etc/owned").gid), (1000, 100));
    assert_eq!(get("opt/a").data, b"A");
    assert_eq!(get("etc/copy").data, b"S");

    if is_root() {
        let out = tmp.path().join("out");
        cpio_extract(&archive, &out);
        let snap = snapshot(&out);
        assert!(matches!(
            snap["dev/console"],
            Node::Char { mode: 0o600, .. }
        ));
        assert!(matches!(snap["run/pipe"], Node::Fifo { mode: 0o600 }));
    }
}

#[test]
fn list_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("dir /x 0755 0", "takes 4 fields"),
        ("nod /d 0600 0 0 x 1 1", "neither b"),
        ("file /f missing-file 0644 0 0", "missing-file"),
        ("dir /x 0999 0 0", "not octal"),
        ("dir /x 100755 0 0", "outside the permission bits"),
        ("dir /x 0755 root 0", "uid"),
        ("frob /x", "`frob /x`: /x: No such file"),
        ("frob /x y z", "unknown entry type"),
        ("dir /../x 0755 0 0", ".."),
        (
            "file /f ${DOMBOOT_TEST_UNSET_VAR}/f 0644 0 0",
            "DOMBOOT_TEST_UNSET_VAR",
        ),
        ("slink / x 0777 0 0", "root"),
    ];
    for (line, want) in cases {
        let text = format!("# comment\n\n{line}\n");
        let err = Initramfs::new()
            .list_str(&text, Path::new("my.list"), tmp.path())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::List { line: 3, .. }), "{line}: {msg}");
        assert!(msg.starts_with("my.list:3: "), "{msg}");
        assert!(msg.contains(want), "{line}: {msg} lacks {want:?}");
    }
}

#[test]
fn manifest_builds_what_it_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    std::fs::write(dir.join("rootfs/etc/hostname"), b"tree\n").unwrap();
    std::fs::write(dir.join("rootfs/etc/motd"), b"from the tree\n").unwrap();
    std::fs::write(dir.join("init.sh"), b"#!/bin/sh\nexec sh\n").unwrap();
    chmod(&dir.join("init.sh"), 0o750);
    let manifest = r#"
# every kind of item
[[tree]]
source = "rootfs"

[[tree]]
source = "rootfs"
path = "/copy"

[[file]]
path = "/init"
source = "init.sh"

[[file]]
path = "/etc/motd"          # overrides the tree's
contents = "from the manifest\n"
mode = "0600"

[[dir]]
path = "/proc"

[[dir]]
path = "/home/user"
mode = "0700"
uid = 1000
gid = 1000

[[symlink]]
path = "/sbin"
target = "bin"

[[node]]
path = "/dev/console"
type = "char"
major = 5
minor = 1

[[node]]
path = "/dev/initctl"
type = "fifo"
"#;
    std::fs::write(dir.join("image.toml"), manifest).unwrap();
    let archive = Initramfs::new()
        .reproducible(true)
        .manifest(dir.join("image.toml"))
        .unwrap()
        .to_bytes(Compression::None)
        .unwrap();
    let entries = parse_newc(&archive);
    check_invariants(&entries);
    let get = |n: &str| {
        entries
            .iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert_eq!(get("init").mode, 0o100750, "mode from the source file");
    assert_eq!(get("etc/motd").data, b"from the manifest\n");
    assert_eq!(get("etc/motd").mode, 0o100600);
    assert_eq!(get("etc/hostname").data, b"tree\n");
    assert_eq!(get("copy/etc/hostname").data, b"tree\n");
    assert_eq!(get("proc").mode, 0o040755);
    assert_eq!(
        (get("home/user").mode, get("home/user").uid),
        (0o040700, 1000)
    );
    assert_eq!(get("sbin").data, b"bin");
    assert_eq!(
        (get("dev/console").mode, get("dev/console").rdev),
        (0o020600, (5, 1))
    );
    assert_eq!(get("dev/initctl").mode, 0o010644);
}

#[test]
fn manifest_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("[[file]]\npath = \"/x\"\n", "exactly one of"),
        (
            "[[file]]\npath = \"/x\"\ncontents = \"a\"\nsource = \"b\"\n",
            "exactly one of",
        ),
        ("[[dir]]\npath = \"/x\"\nmode = 755\n", "like \"0755\""),
        ("[[dir]]\npath = \"/x\"\nmode = \"0789\"\n", "not octal"),
        ("[[dir]]\npth = \"/x\"\n", "pth"),
        ("[[node]]\npath = \"/c\"\ntype = \"char\"\n", "major"),
        ("[[node]]\npath = \"/c\"\ntype = \"pipe\"\n", "pipe"),
        ("[[tree]]\nsource = \"nope\"\n", "nope"),
        ("[[file]]\npath = \"/\"\ncontents = \"\"\n", "root"),
        ("busybox = 3\n", "busybox"),
        ("this is not toml", "line 1"),
    ];
    for (text, want) in cases {
        let err = Initramfs::new()
            .manifest_str(text, Path::new("m.toml"), tmp.path())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{text:?}: {msg} lacks {want:?}");
        if !want.contains("nope") {
            assert!(msg.starts_with("m.toml: "), "{msg}");
        }
    }
}

#[test]
fn busybox_with_applet_links() {
    let bb = domboot_testkit::busybox();
    let applets = busybox::applets(&bb).unwrap();
    assert!(applets.iter().any(|a| a == "bin/sh"), "{applets:?}");
    assert!(applets.len() > 100);
    let archive = Initramfs::new()
        .reproducible(true)
        .file("/bin/sh", 0o755, "#!/not/busybox\n")
        .symlink("/usr/sbin", "../sbin")
        .busybox(&bb)
        .unwrap()
        .to_bytes(Compression::None)
        .unwrap();
    let entries = parse_newc(&archive);
    check_invariants(&entries);
    let get = |n: &str| entries.iter().find(|e| e.name == n);
    let binary = get("bin/busybox").unwrap();
    assert_eq!(binary.data, std::fs::read(&bb).unwrap());
    assert_eq!(binary.mode, 0o100755);
    // Links to /bin/busybox; an entry added otherwise wins over a link.
    assert_eq!(get("bin/sh").unwrap().data, b"#!/not/busybox\n");
    let mut links = 0;
    for a in &applets {
        if a == "bin/sh" {
            continue;
        }
        match get(a) {
            Some(e) => {
                assert_eq!(e.mode, 0o120777, "{a}");
                assert_eq!(e.data, b"/bin/busybox", "{a}");
                links += 1;
            }
            // Only links below the /usr/sbin symlink are left out.
            None => assert!(a.starts_with("usr/sbin/"), "{a} missing"),
        }
    }
    assert!(links > 100);

    let out = tempfile::tempdir().unwrap();
    cpio_extract(&archive, out.path());
    let run = std::process::Command::new(out.path().join("bin/busybox"))
        .args(["echo", "extracted busybox runs"])
        .output()
        .unwrap();
    assert_eq!(run.stdout, b"extracted busybox runs\n");
    let link = std::fs::read_link(out.path().join("usr/bin/awk")).unwrap();
    assert_eq!(link, Path::new("/bin/busybox"));
}

#[test]
fn busybox_must_be_static_and_present() {
    let err = Initramfs::new().busybox("/usr/bin/ls").unwrap_err();
    assert!(matches!(err, Error::BusyboxDynamic { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("/usr/bin/ls") && msg.contains("dynamically linked"));
    assert!(msg.contains("apt-get install busybox-static"), "{msg}");

    let err = Initramfs::new()
        .busybox("/nonexistent/busybox")
        .unwrap_err();
    assert!(matches!(err, Error::BusyboxMissing { .. }), "{err}");
    assert!(err.to_string().contains("apt-get install busybox-static"));

    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("busybox");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = Initramfs::new().busybox(&script).unwrap_err();
    assert!(matches!(err, Error::BusyboxInvalid { .. }), "{err}");
    assert!(err.to_string().contains("not an ELF"));

    // The host has Debian's busybox-static (scripts/setup.sh installs it).
    let found = busybox::find().unwrap();
    busybox::check_static(&found).unwrap();
}
