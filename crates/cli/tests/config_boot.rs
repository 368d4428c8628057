//! `domboot run|build|plan CONFIG`: domain configurations drive the builder, command-line
//! options override them, and what domboot cannot honour yet is a warning (or an error with
//! --strict).

use assert_cmd::Command;
use domboot_testkit as kit;
use std::path::Path;
use std::time::Duration;

fn domboot() -> Command {
    Command::cargo_bin("domboot").unwrap()
}

fn xl_config(dir: &Path, initrd: &Path, extra: &str) -> std::path::PathBuf {
    let kernel = kit::shared_kernel("bzImage-x64-pvh-gzip");
    let cfg = dir.join("guest.cfg");
    std::fs::write(
        &cfg,
        format!(
            "# an xl domain\nname = \"tiny\"\nkernel = \"{}\"\nramdisk = \"{}\"\n\
             root = \"/dev/ram0\"\nextra = \"console=ttyS0 panic=-1 quiet\"\n\
             memory = 256\nvcpus = 2\n{extra}",
            kernel.display(),
            initrd.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn an_xl_config_builds_an_image_that_boots() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), &marker, b"payload");
    // ramdisk is relative: resolved against the config file's folder.
    let cfg = xl_config(dir.path(), &initrd, "");
    let image = dir.path().join("image.elf");
    domboot()
        .arg("build")
        .arg(&cfg)
        .arg("-o")
        .arg(&image)
        .assert()
        .success();
    let r = kit::qemu_boot(&image, "256M", &[], Duration::from_secs(90));
    assert_eq!(r.marker.as_deref(), Some(marker.as_str()), "{}", r.console);
    // xl's rule: root and extra combine into the command line.
    assert_eq!(
        r.cmdline.as_deref(),
        Some("root=/dev/ram0 console=ttyS0 panic=-1 quiet")
    );
    let mem = r.mem_total_kib.unwrap();
    assert!(
        mem > 200 << 10 && mem < 256 << 10,
        "memory = 256 gives {mem} KiB"
    );
}

#[test]
fn command_line_options_override_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), "m", b"x");
    let cfg = xl_config(dir.path(), &initrd, "");
    let out = domboot()
        .arg("plan")
        .arg(&cfg)
        .args([
            "--memory",
            "1G",
            "--cmdline",
            "console=ttyS0 override",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["memory_size"], 1u64 << 30);
    let cmdline = plan["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cmdline")
        .unwrap();
    assert_eq!(cmdline["file_size"], "console=ttyS0 override".len() + 1);
}

#[test]
fn a_libvirt_domain_runs_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), &marker, b"p");
    let kernel = kit::shared_kernel("bzImage-x64-pvh-zstd");
    let xml = dir.path().join("guest.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='kvm'>\n  <name>tiny</name>\n  <memory unit='MiB'>300</memory>\n\
             <vcpu>1</vcpu>\n  <os>\n    <type>linux</type>\n    <kernel>{}</kernel>\n\
             <initrd>{}</initrd>\n    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>\n  </os>\n\
             <devices><graphics type='vnc' port='-1'/></devices>\n</domain>\n",
            kernel.display(),
            initrd.display()
        ),
    )
    .unwrap();
    let out = domboot()
        .arg("run")
        .arg(&xml)
        .args(["--accel", "tcg", "--timeout", "90"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(&format!("MARKER {marker}")), "{stdout}");
    assert!(
        stderr.contains("graphics[0] (vnc) is not supported yet"),
        "the VNC display is named in a warning: {stderr}"
    );

    let out = domboot()
        .arg("run")
        .arg(&xml)
        .args(["--strict", "--accel", "tcg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot honour yet (--strict)"));
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.cfg");
    std::fs::write(
        &cfg,
        "name = \"x\"\nkernel = \"missing-vmlinuz\"\nmemory = 0\n",
    )
    .unwrap();
    let out = domboot().arg("plan").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.cfg") && err.contains("memory"), "{err}");

    std::fs::write(&cfg, "name = \"x\"\nkernel = \"missing-vmlinuz\"\n").unwrap();
    let out = domboot().arg("plan").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kernel") && err.contains("missing-vmlinuz"),
        "{err}"
    );
}

/// A key one or two edits from a known one is a likely typo: a warning with "did you mean"
/// (the run goes on, the value dropped), an error under --strict; a real xl key domboot does
/// not model (`cpus`) is not taken for a typo of `vcpus`.
#[test]
fn likely_typos_get_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud").vmlinuz;
    let cfg = dir.path().join("typo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"t\"\nmemroy = 512\nkernel = \"{}\"\ncpus = \"0-1\"\n",
            kernel.display()
        ),
    )
    .unwrap();
    let plan = |strict: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_domboot"));
        c.arg("plan").arg(&cfg);
        if strict {
            c.arg("--strict");
        }
        c.output().unwrap()
    };
    let out = plan(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("typo.cfg:2:1: `memroy` is not a key domboot knows; did you mean `memory`?"),
        "{err}"
    );
    assert!(err.contains("`cpus` is not modelled by domboot"), "{err}");
    assert!(!err.contains("did you mean `vcpus`"), "{err}");
    let out = plan(true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("look like typos (--strict)"), "{err}");

    let xml = dir.path().join("typo.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='xen'><name>t</name><memroy unit='MiB'>256</memroy>\
             <os><type>linux</type><kernal>{0}</kernal><kernel>{0}</kernel></os></domain>",
            kernel.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_domboot"))
        .arg("plan")
        .arg(&xml)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "<memroy> in <domain> is not an element libvirt knows; did you mean <memory>?"
        ),
        "{err}"
    );
    assert!(err.contains("did you mean <kernel>?"), "{err}");
}
