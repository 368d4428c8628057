//! What running domboot on kernels nobody here built found (issue 14), through the CLI:
//! linux-loader's note images and a vmlinux whose PT_NOTE says p_align 8, corrupt
//! payloads, --initrd-above-4g without RAM there, the RAM an image needs, UKIs with an
//! extra initrd, the JSON setup header and Xen note numbers in hex.

use assert_cmd::Command;
use domboot_testkit as kit;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn domboot() -> Command {
    Command::cargo_bin("domboot").unwrap()
}

fn cloud() -> PathBuf {
    kit::debian_kernel("cloud").vmlinuz
}

fn linux_loader_image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/fixtures/linux-loader")
        .join(name)
}

/// Runs domboot, expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = domboot().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs domboot, expecting success; returns (stdout, stderr).
fn succeeds(args: &[&str]) -> (String, String) {
    let out = domboot().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_setup_header_has_every_boot_rst_field_and_text_shows_xen_numbers_in_hex() {
    let k = cloud();
    let (json, _) = succeeds(&["inspect", "--json", s(&k)]);
    let v: Value = serde_json::from_str(&json).unwrap();
    let h = v["layers"][0]["setup_header"].as_object().unwrap();
    // Documentation/arch/x86/boot.rst, 0x1F1 to 0x268, in order.
    let fields = [
        "setup_sects",
        "root_flags",
        "syssize",
        "ram_size",
        "vid_mode",
        "root_dev",
        "boot_flag",
        "jump",
        "header",
        "version",
        "realmode_swtch",
        "start_sys_seg",
        "kernel_version",
        "type_of_loader",
        "loadflags",
        "setup_move_size",
        "code32_start",
        "ramdisk_image",
        "ramdisk_size",
        "bootsect_kludge",
        "heap_end_ptr",
        "ext_loader_ver",
        "ext_loader_type",
        "cmd_line_ptr",
        "initrd_addr_max",
        "kernel_alignment",
        "relocatable_kernel",
        "min_alignment",
        "xloadflags",
        "cmdline_size",
        "hardware_subarch",
        "hardware_subarch_data",
        "payload_offset",
        "payload_length",
        "setup_data",
        "pref_address",
        "init_size",
        "handover_offset",
        "kernel_info_offset",
    ];
    for f in fields {
        assert!(h.contains_key(f), "setup_header lacks {f}: {h:?}");
    }
    assert_eq!(h["header"], "HdrS");

    let (text, _) = succeeds(&["inspect", s(&k)]);
    let elf = v["layers"][2].clone();
    let p2m = elf["xen"]["init_p2m"].as_u64().unwrap();
    let hv = elf["xen"]["hv_start_low"].as_u64().unwrap();
    let pvh = elf["pvh_entry"].as_u64().unwrap();
    for n in [p2m, hv, pvh] {
        assert!(
            text.contains(&format!("{n:#x}")),
            "{n:#x} not in hex:\n{text}"
        );
        assert!(
            !text.contains(&n.to_string()),
            "{n} printed in decimal:\n{text}"
        );
    }
}

#[test]
fn linux_loader_note_images_and_a_p_align_8_vmlinux() {
    let dir = tempfile::tempdir().unwrap();
    let eight = linux_loader_image("test_elfnote_8byte_align.bin");
    let (json, _) = succeeds(&["inspect", "--json", s(&eight)]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["layers"][0]["pvh_entry"], 0x1e1fe1f);
    // A 2-byte PHYS32_ENTRY: refused by every command, naming file, field and offset.
    let bad = linux_loader_image("test_invalid_pvh_note.bin");
    let out = dir.path().join("out");
    for args in [
        vec!["inspect", s(&bad)],
        vec!["extract", s(&bad), "-o", s(&out)],
        vec!["build", "--kernel", s(&bad), "-o", s(&out)],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("test_invalid_pvh_note.bin")
                && err.contains("n_descsz")
                && err.contains("0xb4"),
            "{args:?}: {err}"
        );
        assert!(!out.exists());
    }
    // A real kernel whose PT_NOTE says p_align 8 (its notes are 4-byte aligned, as Linux
    // writes them): inspect, extract and build all work.
    let mut data = std::fs::read(kit::shared_kernel("vmlinux-x64-pvh-gzip")).unwrap();
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes([data[0x38], data[0x39]]) as usize;
    let mut patched = 0;
    for i in 0..phnum {
        let at = phoff + i * 56;
        if u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) == 4 {
            data[at + 48..at + 56].copy_from_slice(&8u64.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 1);
    let vmlinux = dir.path().join("vmlinux-p_align-8");
    std::fs::write(&vmlinux, &data).unwrap();
    let (json, _) = succeeds(&["inspect", "--json", s(&vmlinux)]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(v["layers"][0]["pvh_entry"].is_u64(), "{json}");
    succeeds(&["extract", s(&vmlinux), "-o", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let image = dir.path().join("image.elf");
    let (_, msg) = succeeds(&["build", "--kernel", s(&vmlinux), "-o", s(&image)]);
    assert!(msg.contains("pvh protocol"), "{msg}");
}

#[test]
fn build_checks_the_payload_and_the_initrd_above_4g_request() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    let mut data = std::fs::read(kit::shared_kernel("bzImage-x64-pvh-gzip")).unwrap();
    let middle = data.len() / 2;
    for b in &mut data[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("bzImage-corrupt");
    std::fs::write(&corrupt, &data).unwrap();
    // inspect refuses it, and so does build, whatever the protocol.
    let err = fails(&["inspect", s(&corrupt)]);
    assert!(err.contains("bzImage-corrupt"), "{err}");
    for protocol in ["auto", "linux64", "linux32", "pvh"] {
        let err = fails(&[
            "build",
            "--kernel",
            s(&corrupt),
            "--boot-protocol",
            protocol,
            "-o",
            s(&image),
        ]);
        assert!(
            err.contains("bzImage-corrupt") && err.contains("gzip"),
            "{protocol}: {err}"
        );
        assert!(!image.exists());
    }
    let good = kit::shared_kernel("bzImage-x64-pvh-gzip");
    let err = fails(&[
        "build",
        "--kernel",
        s(&good),
        "--boot-protocol",
        "linux64",
        "--max-decompressed",
        "1M",
        "-o",
        s(&image),
    ]);
    assert!(err.contains("1048576") || err.contains("1 MiB"), "{err}");
    assert!(!image.exists());
    let err = fails(&[
        "build",
        "--kernel",
        s(&cloud()),
        "--memory",
        "2G",
        "--initrd-above-4g",
        "-o",
        s(&image),
    ]);
    assert!(
        err.contains("--initrd-above-4g") && err.contains("none above 4 GiB"),
        "{err}"
    );
    assert!(!image.exists());
}

#[test]
fn build_says_what_the_image_and_the_kernel_need() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, vec![1u8; 4 << 20]).unwrap();
    let image = dir.path().join("image.elf");
    let k = cloud();
    let (_, msg) = succeeds(&[
        "build",
        "--kernel",
        s(&k),
        "--initrd",
        s(&initrd),
        "--memory",
        "512M",
        "-o",
        s(&image),
    ]);
    // Debian's cloud kernel decompresses at 16 MiB into init_size 51.5 MiB: 68 MiB, not
    // where the initrd sits near the top of 512 MiB.
    assert!(
        msg.contains("the kernel and its boot data alone need 68.0 MiB"),
        "{msg}"
    );
    assert!(
        msg.contains("near the top of the 512.0 MiB it was built for"),
        "{msg}"
    );
    assert!(msg.contains("ELF64"), "{msg}");
    // 66 MiB used to be accepted, and reset in the guest's decompressor.
    let err = fails(&[
        "build",
        "--kernel",
        s(&k),
        "--memory",
        "66M",
        "-o",
        s(&image),
    ]);
    assert!(err.contains("pref_address"), "{err}");
    let (_, msg) = succeeds(&[
        "build",
        "--kernel",
        s(&k),
        "--memory",
        "68M",
        "-o",
        s(&image),
    ]);
    assert!(msg.contains("it needs 68.0 MiB of RAM or more"), "{msg}");
}

#[test]
fn too_little_ram_ends_qemu_with_a_failing_status() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), "m", b"x");
    let image = dir.path().join("image.elf");
    let kernel = kit::shared_kernel("bzImage-x64-pvh-gzip");
    succeeds(&[
        "build",
        "--kernel",
        s(&kernel),
        "--initrd",
        s(&initrd),
        "--memory",
        "1G",
        "-o",
        s(&image),
    ]);
    let (status, console) = kit::qemu_run(
        &image,
        &[
            "-M",
            "pc",
            "-m",
            "256M",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ],
        BOOT_TIMEOUT,
    );
    assert!(
        console.contains("give the VM at least 1024 MiB"),
        "{console}"
    );
    let want = i32::from(domboot_export::NO_RAM_EXIT) << 1 | 1;
    assert_eq!(status.and_then(|s| s.code()), Some(want), "{console}");
}
