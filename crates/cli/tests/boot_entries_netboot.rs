//! Debian's netboot installer (Debian package debian-installer-12-netboot-amd64): an
//! ISO9660 made of its netboot tree lists the installer's GRUB entries (with their
//! submenus) and its PXELINUX menus (includes, submenus, help text), and `plan
//! --bootloader` with a named entry plans exactly what the package's kernel and initrd
//! with that command line plan.

use assert_cmd::Command;
use std::path::Path;

const TREE: &str = "/usr/lib/debian-installer/images/12/amd64/text";

fn tree() -> &'static Path {
    let t = Path::new(TREE);
    assert!(
        t.join("debian-installer/amd64/linux").exists(),
        "{TREE} missing: install the Debian package debian-installer-12-netboot-amd64 (scripts/setup.sh does)"
    );
    t
}

fn domboot(args: &[&str]) -> String {
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "domboot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn netboot_installer_entries_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("netboot.iso");
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-o"])
        .arg(&iso)
        .arg(tree())
        .output()
        .expect("xorriso runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let iso = iso.to_str().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&domboot(&["boot-entries", iso, "--json"])).unwrap();
    let entries = json["entries"].as_array().unwrap();
    let row = |e: &serde_json::Value| {
        format!(
            "{} {} {} {}",
            e["kind"].as_str().unwrap(),
            e["title"].as_str().unwrap(),
            e["kernel"].as_str().unwrap(),
            e["cmdline"].as_str().unwrap()
        )
    };
    let rows: Vec<String> = entries.iter().map(row).collect();
    const K: &str = "/debian-installer/amd64/linux";
    assert_eq!(rows[0], format!("grub Install {K} vga=788 --- quiet"));
    assert_eq!(
        rows[1],
        format!("grub ... Expert install {K} priority=low vga=788 ---")
    );
    for want in [
        format!("grub ... Rescue mode {K} vga=788 rescue/enable=true --- quiet"),
        format!("extlinux Install {K} vga=788 --- quiet"),
        format!("extlinux Expert install {K} priority=low vga=788 ---"),
        format!("extlinux Automated install {K} auto=true priority=critical vga=788 --- quiet"),
        format!("extlinux Rescue mode {K} vga=788 rescue/enable=true theme=dark --- quiet"),
    ] {
        assert!(rows.contains(&want), "{want:?} not in {rows:#?}");
    }
    assert!(
        entries
            .iter()
            .all(|e| e["initrds"] == serde_json::json!(["/debian-installer/amd64/initrd.gz"]))
    );
    assert_eq!(json["default"], 0);

    let from_disk = domboot(&[
        "plan",
        "--no-rng-seed",
        "--disk",
        &format!("{iso},ro"),
        "--bootloader",
        "--boot-entry",
        "... Expert install",
    ]);
    let amd64 = tree().join("debian-installer/amd64");
    let from_files = domboot(&[
        "plan",
        "--no-rng-seed",
        "--kernel",
        amd64.join("linux").to_str().unwrap(),
        "--initrd",
        amd64.join("initrd.gz").to_str().unwrap(),
        "--cmdline",
        "priority=low vga=788 ---",
    ]);
    assert_eq!(from_disk, from_files);
}
