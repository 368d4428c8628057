//! virtio-vsock on Firecracker's hybrid vsock with real Linux (the Debian cloud kernel's
//! vsock, vmw_vsock_virtio_transport_common and vmw_vsock_virtio_transport modules) on
//! the KVM backend inside the nested bench. Both ends of each echo are `vsock_echo.c`
//! (testkit), compiled static: in the outer guest at /bench/vsock-echo, in the inner one
//! at /opt/vsock-echo from an extra `--initrd`.
//!
//! - host to guest: the outer guest connects to the Unix socket, sends `CONNECT 6000`,
//!   gets `OK <port>` and sends random bytes the guest's echo server returns; at the same
//!   time a second connection does the same with port 6001;
//! - guest to host: the guest connects to CID 2 port 5000, which reaches the Unix socket
//!   `<socket>_5000` where the outer guest's echo server returns its random bytes.
//!
//! Each side checksums what it sent and what came back. A guest connection to a port
//! with no `<socket>_<port>` listener is refused (the device answers with a RST). Under
//! TCG `--vsock` is refused.

use domboot_testkit::nested::Bench;
use std::path::Path;
use std::process::Command;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");
/// Bytes each echo carries (many times the 256 KiB credit either side gives).
const BYTES: u64 = 8 << 20;

/// The value after `KEY ` on a line of its own.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

/// What the inner guest runs.
fn guest_script() -> String {
    format!(
        r#"i=0; until ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport 2>/dev/null | grep -q virtio || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done
/opt/vsock-echo server 6000 & s=$!
/opt/vsock-echo server 6001 & s2=$!
head -c {BYTES} /dev/urandom > /tmp/r
echo "GUEST_SENT $(sha256sum < /tmp/r | cut -d' ' -f1)"
echo "G2H_BACK $(/opt/vsock-echo client 2 5000 < /tmp/r | sha256sum | cut -d' ' -f1)"
/opt/vsock-echo client 2 5999 < /dev/null 2>/tmp/refused; echo "REFUSED $? $(cat /tmp/refused)"
wait $s; echo "SERVER $?"
wait $s2; echo "SERVER2 $?"
"#
    )
}

#[test]
fn vsock_is_refused_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("v.sock");
    let kernel = domboot_testkit::debian_kernel("cloud");
    let started = std::time::Instant::now();
    let out = Command::new(DOMBOOT)
        .args(["run", "--accel", "tcg", "--kernel"])
        .arg(&kernel.vmlinuz)
        .arg("--vsock")
        .arg(format!("3,{}", socket.display()))
        .args(["--exec", "true"])
        .output()
        .expect("domboot runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("QEMU under TCG cannot offer it"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs() < 10, "refused at once");
    assert!(!socket.exists());
}

/// A libvirt XML's `<vsock>` and `<rng>` under TCG: the rng is QEMU's virtio-rng-pci (the
/// guest has a hardware rng with no disk or interface to imply one); the vsock is QEMU's
/// vhost-vsock-pci where /dev/vhost-vsock opens, and named in a warning where not.
#[test]
fn libvirt_vsock_and_rng_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let cfg = dir.path().join("vs.xml");
    std::fs::write(
        &cfg,
        format!(
            "<domain type='kvm'><name>vs</name><memory unit='MiB'>256</memory>\
             <os><type arch='x86_64'>hvm</type><kernel>{}</kernel></os><devices>\
             <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
             <vsock model='virtio'><cid auto='no' address='3'/></vsock>\
             </devices></domain>",
            kernel.vmlinuz.display()
        ),
    )
    .unwrap();
    let out = Command::new(DOMBOOT)
        .args(["run", "--accel", "tcg", "--timeout", "300"])
        .arg(&cfg)
        .env("XDG_RUNTIME_DIR", dir.path())
        .args([
            "--exec",
            "i=0; until grep -q virtio /sys/class/misc/hw_random/rng_available 2>/dev/null \
             || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             echo \"RNG $(cat /sys/class/misc/hw_random/rng_available)\"",
        ])
        .output()
        .expect("domboot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        field(&stdout, "RNG").is_some_and(|r| r.contains("virtio_rng")),
        "{stdout}\n{stderr}"
    );
    if Path::new("/dev/vhost-vsock").exists() {
        return;
    }
    assert!(
        stderr.contains("vsock (cid 3) is not supported under TCG here"),
        "{stderr}"
    );
}

#[test]
fn echo_both_ways_on_the_kvm_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let echo = domboot_testkit::vsock_echo(tmp.path());
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::copy(&echo, root.join("opt/vsock-echo")).unwrap();
    let cpio = tmp.path().join("vsock.cpio");
    domboot_testkit::host_cpio(&root, &cpio, false).unwrap();

    let mut bench = Bench::new(Path::new(DOMBOOT));
    let kernel = bench.file(&domboot_testkit::debian_kernel("cloud").vmlinuz);
    let modules = domboot_testkit::debian_kernel("cloud")
        .vmlinuz
        .parent()
        .unwrap()
        .join("modules");
    let modules = std::fs::canonicalize(modules).expect("the cloud kernel's modules tree");
    for m in [
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/net/vmw_vsock/vsock.ko",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
    ] {
        bench.file(&modules.join(m));
    }
    bench.bytes("/bench/vsock-echo", &std::fs::read(&echo).unwrap());
    bench.bytes("/bench/vsock.cpio", &std::fs::read(&cpio).unwrap());
    bench.bytes("/bench/vsock.sh", guest_script().as_bytes());
    bench.check(
        "vsock",
        &format!(
            "chmod +x /bench/vsock-echo; V=/bench/vsock-echo; \
             head -c {BYTES} /dev/urandom > /tmp/h2g; \
             echo \"HOST_SENT $(sha256sum < /tmp/h2g | cut -d' ' -f1)\"; \
             head -c {BYTES} /dev/urandom > /tmp/h2g2; \
             echo \"HOST_SENT2 $(sha256sum < /tmp/h2g2 | cut -d' ' -f1)\"; \
             $V unix-server /tmp/v.sock_5000 & \
             t0=$(date +%s); \
             domboot run --accel kvm --kernel {kernel} --memory 256M --timeout 200 \
                 --modules {modules} --vsock 3,/tmp/v.sock --initrd /bench/vsock.cpio \
                 --exec \"$(cat /bench/vsock.sh)\" > /tmp/g 2>&1 & \
             g=$!; i=0; while [ ! -S /tmp/v.sock ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
             ($V unix-client /tmp/v.sock 6001 < /tmp/h2g2 2>/tmp/uc2 | sha256sum | cut -d' ' -f1 > /tmp/back2) & \
             c2=$!; \
             echo \"H2G_BACK $($V unix-client /tmp/v.sock 6000 < /tmp/h2g 2>/tmp/uc | sha256sum | cut -d' ' -f1)\"; \
             wait $c2; echo \"H2G_BACK2 $(cat /tmp/back2)\"; \
             cat /tmp/uc; \
             wait $g; echo \"RC $?\"; echo \"SECONDS $(( $(date +%s) - t0 ))\"; cat /tmp/g; \
             [ -e /tmp/v.sock ] && echo 'SOCKET_LEFT yes' || echo 'SOCKET_LEFT no'",
            modules = modules.display(),
        ),
    );
    // A libvirt XML's <vsock>: the socket is $XDG_RUNTIME_DIR/domboot/NAME.vsock.
    bench.bytes(
        "/bench/vs.xml",
        format!(
            "<domain type='kvm'><name>vs</name><memory unit='MiB'>256</memory>\
             <os><type arch='x86_64'>hvm</type><kernel>{kernel}</kernel></os><devices>\
             <vsock model='virtio'><cid auto='no' address='4'/></vsock></devices></domain>"
        )
        .as_bytes(),
    );
    bench.bytes(
        "/bench/vs.sh",
        b"i=0; until ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport 2>/dev/null | grep -q virtio || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
          /opt/vsock-echo server 6000; echo \"SERVER $?\"\n",
    );
    bench.check(
        "config-vsock",
        &format!(
            "chmod +x /bench/vsock-echo; V=/bench/vsock-echo; mkdir -p /tmp/xdg; \
             head -c 1048576 /dev/urandom > /tmp/c; \
             echo \"CSENT $(sha256sum < /tmp/c | cut -d' ' -f1)\"; \
             XDG_RUNTIME_DIR=/tmp/xdg domboot run --accel kvm /bench/vs.xml --timeout 200 \
                 --modules {modules} --initrd /bench/vsock.cpio \
                 --exec \"$(cat /bench/vs.sh)\" > /tmp/g2 2>&1 & \
             g=$!; S=/tmp/xdg/domboot/vs.vsock; \
             i=0; while [ ! -S $S ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
             echo \"CBACK $($V unix-client $S 6000 < /tmp/c 2>/tmp/uc3 | sha256sum | cut -d' ' -f1)\"; \
             wait $g; echo \"CRC $?\"; cat /tmp/uc3 /tmp/g2",
            modules = modules.display(),
        ),
    );
    bench.set_timeouts(std::time::Duration::from_secs(300));
    bench.retry_inner_faults(&[domboot_testkit::nested::RESET_TRIPLE_FAULT]);
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    let r = run
        .result("config-vsock")
        .expect("config-vsock: no result from the bench");
    eprintln!(
        "config-vsock ({} ms):\n{}",
        r.elapsed.as_millis(),
        r.output()
    );
    let out = r.stdout.as_str();
    assert_eq!(field(out, "CRC"), Some("0"), "{}", r.output());
    assert!(
        field(out, "CSENT").is_some_and(|s| s.len() == 64)
            && field(out, "CBACK") == field(out, "CSENT"),
        "config-vsock: the echo through $XDG_RUNTIME_DIR/domboot/vs.vsock differs\n{}",
        r.output()
    );
    let r = run
        .result("vsock")
        .expect("vsock: no result from the bench");
    eprintln!(
        "vsock on KVM ({} ms):\n{}",
        r.elapsed.as_millis(),
        r.output()
    );
    let out = r.stdout.as_str();
    let f = |k| field(out, k).unwrap_or("");
    let problems: Vec<&str> = [
        (f("RC") == "0", "the inner domboot failed"),
        (f("HOST_SENT").len() == 64, "no host checksum"),
        (
            f("H2G_BACK") == f("HOST_SENT"),
            "host -> guest: the echo differs from what the host sent",
        ),
        (f("GUEST_SENT").len() == 64, "no guest checksum"),
        (
            f("G2H_BACK") == f("GUEST_SENT"),
            "guest -> host: the echo differs from what the guest sent",
        ),
        (
            f("HOST_SENT2").len() == 64 && f("H2G_BACK2") == f("HOST_SENT2"),
            "host -> guest: the second, concurrent echo differs",
        ),
        (
            f("SERVER") == "0" && f("SERVER2") == "0",
            "the guest's echo servers failed",
        ),
        (
            f("REFUSED").starts_with("1 ") && f("REFUSED").contains("connect: Connection reset"),
            "the guest's connection to a port nobody listens on was not reset",
        ),
        (
            field(out, "vsock_echo: OK")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| p >= 1 << 30),
            "no OK <port> for the host's CONNECT",
        ),
        (f("SOCKET_LEFT") == "no", "the Unix socket was left behind"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, why)| why)
    .collect();
    assert!(problems.is_empty(), "vsock: {problems:?}\n{}", r.output());
}
