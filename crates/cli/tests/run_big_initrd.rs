//! Big initrds arrive intact under `run --accel tcg`. With SeaBIOS as `-M pc`'s firmware
//! they did not: QEMU copies the exported ELF's segments into RAM at reset, and SeaBIOS then
//! wrote over a few spots of an initrd lying 4-5 MiB below the top of RAM while it started
//! ("Initramfs unpacking failed: uncompression error", a different checksum every run).
//! Real distribution initrds are 30-60 MB, so every size that lands in those spots is
//! tried: incompressible payloads of 12 to 28 MiB in a 512 MiB guest, each checksummed by
//! the guest's own sha256sum against the host's.

use domboot_testkit as kit;
use std::path::Path;
use std::process::Command;

const INIT: &str = "#!/bin/busybox sh\n\
                    B=/bin/busybox\n\
                    $B mount -t proc proc /proc\n\
                    echo \"PAYLOAD $($B sha256sum /payload | $B cut -d' ' -f1)\"\n\
                    $B poweroff -f\n";

/// Deterministic, incompressible bytes (xorshift64*), so gzip keeps the archive as big as
/// the payload.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn host_sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn initrds_of_12_to_28_mib_arrive_intact_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    let mut failures = Vec::new();
    for mib in [12usize, 16, 20, 24, 28] {
        let bytes = payload(mib << 20, mib as u64);
        let file = dir.path().join(format!("payload-{mib}"));
        std::fs::write(&file, &bytes).unwrap();
        let want = host_sha256(&file);
        let initrd = kit::busybox_initramfs(
            dir.path(),
            &kit::busybox(),
            &format!("big-{mib}"),
            INIT,
            &[("payload", &bytes)],
        );
        let out = Command::new(env!("CARGO_BIN_EXE_domboot"))
            .args([
                "run",
                "--accel",
                "tcg",
                "--memory",
                "512M",
                "--timeout",
                "180",
            ])
            .arg("--kernel")
            .arg(&kernel)
            .arg("--initrd")
            .arg(&initrd)
            .output()
            .unwrap();
        let console = String::from_utf8_lossy(&out.stdout);
        let got = console
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("PAYLOAD "))
            .map(str::to_string);
        if got.as_deref() != Some(want.as_str()) {
            let tail: Vec<&str> = console.lines().rev().take(15).collect();
            failures.push(format!(
                "{mib} MiB: guest sum {got:?}, host {want}; status {:?}\n{}\n{}",
                out.status.code(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::remove_file(&initrd).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
