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

/// The installer itself, booted from the ISO by `run --bootloader` under TCG: Debian's
/// kernel with its 40 MB initrd reaches the installer's main menu on the serial console
/// (priority=low shows the menu before any question). The run is stopped once the menu is
/// there.
#[test]
fn netboot_installer_boots_to_its_main_menu() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("netboot.iso");
    let made = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-o"])
        .arg(&iso)
        .arg(tree())
        .output()
        .expect("xorriso runs (scripts/setup.sh installs it)");
    assert!(made.status.success());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_domboot"))
        .args([
            "run",
            "--accel",
            "tcg",
            "--memory",
            "1G",
            "--timeout",
            "240",
        ])
        .arg("--disk")
        .arg(format!("{},ro", iso.display()))
        .args(["--bootloader", "--boot-entry", "... Expert install"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut console = Vec::new();
    let mut buf = [0u8; 4096];
    const MENU: &str = "Debian installer main menu";
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => console.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&console).contains(MENU) {
            break;
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&console);
    let context = format!(
        "{}\n--- stderr ---\n{}",
        console
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(console.contains("Linux version 6.1"), "{context}");
    assert!(
        console.contains("Command line: priority=low vga=788 --- console=ttyS0 panic=-1"),
        "the entry's command line, with run's console: {context}"
    );
    assert!(console.contains("Run /init as init process"), "{context}");
    assert!(!console.contains("Initramfs unpacking failed"), "{context}");
    assert!(console.contains(MENU), "{context}");

    // domboot was killed with SIGKILL: its QEMU must not outlive it.
    let iso_arg = iso.display().to_string();
    let mut left = qemus_with(&iso_arg);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = qemus_with(&iso_arg);
    }
    assert!(left.is_empty(), "QEMU outlived domboot: pids {left:?}");
}

/// Processes whose command line mentions `needle`.
fn qemus_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("qemu-system") && cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}
