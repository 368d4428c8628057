//! virtio-vsock on Firecracker's hybrid vsock with real Linux (the Debian cloud kernel's
//! vsock, vmw_vsock_virtio_transport_common and vmw_vsock_virtio_transport modules): on
//! the KVM backend inside the nested bench, and under TCG (QEMU's vhost-user-vsock-pci,
//! served over vhost-user by the same device in domboot's process) on this host. Both
//! backends run the same guest and host scripts and are held to the same checks; both ends of each echo are `vsock_echo.c` (testkit), compiled static, in the
//! inner guest at /opt/vsock-echo from an extra `--initrd`.
//!
//! - host to guest: the host connects to the Unix socket, sends `CONNECT 6000`, gets
//!   `OK <port>` and sends random bytes the guest's echo server returns; at the same time
//!   a second connection does the same with port 6001;
//! - guest to host: the guest connects to CID 2 port 5000, which reaches the Unix socket
//!   `<socket>_5000` where the host's echo server returns its random bytes;
//! - the guest reads its CID from /dev/vsock.
//!
//! Each side checksums what it sent and what came back; the clients end their sending
//! with a half-close and read until the echo's EOF. `OK` names the host side's port (1 <<
//! 30 and up), a guest connection to a port with no `<socket>_<port>` listener is reset
//! at once, and the socket is gone after the run.

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

/// Shell that waits (up to 120 s) until the socket `$S` exists: host programs may connect
/// from then on (connections made before the guest listens are closed, and the echo
/// client retries them).
const WAIT_FOR_SOCKET: &str =
    "i=0; until [ -S $S ] || [ $i -ge 1200 ]; do sleep 0.1; i=$((i+1)); done";

/// Waits (up to 60 s, for loaded hosts) until the guest's vsock driver has bound the device.
const WAIT_FOR_DRIVER: &str = "i=0; until ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport \
     2>/dev/null | grep -q virtio || [ $i -gt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
     echo \"CID $(/opt/vsock-echo cid)\"\n";

/// What the inner guest runs for the echo checks.
fn guest_script() -> String {
    format!(
        r#"{WAIT_FOR_DRIVER}/opt/vsock-echo server 6000 & s=$!
/opt/vsock-echo server 6001 & s2=$!
echo READY
head -c {BYTES} /dev/urandom > /tmp/r
echo "GUEST_SENT $(sha256sum < /tmp/r | cut -d' ' -f1)"
echo "G2H_BACK $(/opt/vsock-echo client 2 5000 < /tmp/r | sha256sum | cut -d' ' -f1)"
/opt/vsock-echo client 2 5999 < /dev/null 2>/tmp/refused; echo "REFUSED $? $(cat /tmp/refused)"
wait $s; echo "SERVER $?"
wait $s2; echo "SERVER2 $?"
"#
    )
}

/// What the host runs for the echo checks, in `dir` (the outer guest's /tmp, or a
/// temporary folder on this host): `run` is the domboot command line without --vsock and
/// --exec, `echo` vsock_echo, `script` the file holding [`guest_script`].
fn host_script(run: &str, echo: &str, dir: &str, script: &str) -> String {
    format!(
        "V={echo}; S={dir}/v.sock; \
         head -c {BYTES} /dev/urandom > {dir}/h2g; \
         echo \"HOST_SENT $(sha256sum < {dir}/h2g | cut -d' ' -f1)\"; \
         head -c {BYTES} /dev/urandom > {dir}/h2g2; \
         echo \"HOST_SENT2 $(sha256sum < {dir}/h2g2 | cut -d' ' -f1)\"; \
         $V unix-server ${{S}}_5000 > /dev/null 2>{dir}/us & u=$!; \
         t0=$(date +%s); \
         {run} --vsock 3,$S --exec \"$(cat {script})\" > {dir}/g 2>&1 & \
         g=$!; {WAIT_FOR_SOCKET}; \
         ($V unix-client $S 6001 < {dir}/h2g2 2>{dir}/uc2 | sha256sum | cut -d' ' -f1 > {dir}/back2) & \
         c2=$!; \
         echo \"H2G_BACK $($V unix-client $S 6000 < {dir}/h2g 2>{dir}/uc | sha256sum | cut -d' ' -f1)\"; \
         wait $c2; echo \"H2G_BACK2 $(cat {dir}/back2)\"; \
         cat {dir}/uc; \
         wait $g; echo \"RC $?\"; echo \"SECONDS $(( $(date +%s) - t0 ))\"; cat {dir}/g; \
         kill $u 2>/dev/null; cat {dir}/us; \
         [ -e $S ] && echo 'SOCKET_LEFT yes' || echo 'SOCKET_LEFT no'"
    )
}

/// What went wrong in the output of [`host_script`].
fn echo_problems(out: &str) -> Vec<&'static str> {
    let f = |k| field(out, k).unwrap_or("");
    // Firecracker's answer names the host side's port.
    let ok_port = field(out, "vsock_echo: OK").and_then(|p| p.parse::<u32>().ok());
    let ok_port_right = ok_port.is_some_and(|p| p >= 1 << 30);
    // The device resets a connection nobody listens for at once (no 2 s timeout).
    let refused = f("REFUSED").contains("connect: Connection reset");
    [
        (f("RC") == "0", "the inner domboot failed"),
        (f("CID") == "3", "the guest's CID is not 3"),
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
            f("REFUSED").starts_with("1 ") && refused,
            "the guest's connection to a port nobody listens on did not fail as expected",
        ),
        (ok_port_right, "no OK <port> for the host's CONNECT"),
        (f("SOCKET_LEFT") == "no", "the Unix socket was left behind"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, why)| why)
    .collect()
}

/// A libvirt domain with a `<vsock>` of guest CID 4 and an `<rng>`, named `vs`.
fn libvirt_xml(kernel: &str) -> String {
    format!(
        "<domain type='kvm'><name>vs</name><memory unit='MiB'>256</memory>\
         <os><type arch='x86_64'>hvm</type><kernel>{kernel}</kernel></os><devices>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
         <vsock model='virtio'><cid auto='no' address='4'/></vsock></devices></domain>"
    )
}

/// What the guest of [`libvirt_xml`] runs: its CID, its rng, and an echo server.
fn config_guest_script() -> String {
    format!(
        "{WAIT_FOR_DRIVER}i=0; until grep -q virtio /sys/class/misc/hw_random/rng_available \
         2>/dev/null || [ $i -gt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
         echo \"RNG $(cat /sys/class/misc/hw_random/rng_available)\"\n\
         /opt/vsock-echo server 6000 & s=$!; echo READY; wait $s; echo \"SERVER $?\"\n"
    )
}

/// The host's side for [`libvirt_xml`]: the socket is $XDG_RUNTIME_DIR/domboot/vs.vsock.
fn config_host_script(run: &str, echo: &str, dir: &str, script: &str) -> String {
    format!(
        "V={echo}; mkdir -p {dir}/xdg; \
         head -c 1048576 /dev/urandom > {dir}/c; \
         echo \"CSENT $(sha256sum < {dir}/c | cut -d' ' -f1)\"; \
         XDG_RUNTIME_DIR={dir}/xdg {run} --exec \"$(cat {script})\" > {dir}/g2 2>&1 & \
         g=$!; S={dir}/xdg/domboot/vs.vsock; \
         {WAIT_FOR_SOCKET}; \
         echo \"CBACK $($V unix-client $S 6000 < {dir}/c 2>{dir}/uc3 | sha256sum | cut -d' ' -f1)\"; \
         wait $g; echo \"CRC $?\"; cat {dir}/uc3 {dir}/g2; \
         [ -e $S ] && echo 'SOCKET_LEFT yes' || echo 'SOCKET_LEFT no'"
    )
}

/// What went wrong in the output of [`config_host_script`].
fn config_problems(out: &str) -> Vec<&'static str> {
    let f = |k| field(out, k).unwrap_or("");
    [
        (f("CRC") == "0", "the inner domboot failed"),
        (f("CID") == "4", "the guest's CID is not the file's 4"),
        (f("RNG").contains("virtio_rng"), "no virtio rng"),
        (
            f("CSENT").len() == 64 && f("CBACK") == f("CSENT"),
            "the echo through $XDG_RUNTIME_DIR/domboot/vs.vsock differs",
        ),
        (f("SERVER") == "0", "the guest's echo server failed"),
        (f("SOCKET_LEFT") == "no", "the Unix socket was left behind"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, why)| why)
    .collect()
}

/// vsock_echo and the inner guest's extra initramfs (it at /opt/vsock-echo), in `dir`.
fn echo_and_cpio(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let echo = domboot_testkit::vsock_echo(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::copy(&echo, root.join("opt/vsock-echo")).unwrap();
    let cpio = dir.join("vsock.cpio");
    domboot_testkit::host_cpio(&root, &cpio, false).unwrap();
    (echo, cpio)
}

/// The cloud kernel's modules tree.
fn cloud_modules() -> std::path::PathBuf {
    let modules = domboot_testkit::debian_kernel("cloud")
        .vmlinuz
        .parent()
        .unwrap()
        .join("modules");
    std::fs::canonicalize(modules).expect("the cloud kernel's modules tree")
}

/// Runs a host script with `sh` on this host: (stdout, stderr).
fn sh(script: &str) -> (String, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn echo_both_ways_under_tcg() {
    let tmp = tempfile::tempdir().unwrap();
    let (echo, cpio) = echo_and_cpio(tmp.path());
    let dir = tmp.path().display().to_string();
    let script = tmp.path().join("vsock.sh");
    std::fs::write(&script, guest_script()).unwrap();
    let run = format!(
        "{DOMBOOT} run --accel tcg --kernel {} --memory 256M --timeout 200 --modules {} \
         --initrd {}",
        domboot_testkit::debian_kernel("cloud").vmlinuz.display(),
        cloud_modules().display(),
        cpio.display()
    );
    let started = std::time::Instant::now();
    let (out, err) = sh(&host_script(
        &run,
        &echo.display().to_string(),
        &dir,
        &script.display().to_string(),
    ));
    eprintln!(
        "vsock under TCG ({} ms):\n{out}\n{err}",
        started.elapsed().as_millis()
    );
    let problems = echo_problems(&out);
    assert!(problems.is_empty(), "vsock: {problems:?}\n{out}\n{err}");
}

/// What the KVM backend refuses, refused under TCG too before booting: a path already
/// taken, left alone.
#[test]
fn vsock_refusals_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let taken = dir.path().join("taken.sock");
    std::fs::write(&taken, "someone's file").unwrap();
    let run = |socket: &Path| {
        let started = std::time::Instant::now();
        let mut cmd = Command::new(DOMBOOT);
        cmd.args(["run", "--accel", "tcg", "--serial", "none", "--kernel"])
            .arg(&kernel.vmlinuz)
            .arg("--vsock")
            .arg(format!("3,{}", socket.display()))
            .args(["--timeout", "60"]);
        let out = cmd.output().expect("domboot runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            started.elapsed().as_secs() < 30,
            "refused at once: {stderr}"
        );
        stderr
    };
    let stderr = run(&taken);
    assert!(
        stderr.contains(&format!(
            "vsock: {}: already exists (a socket left over? remove it or choose another path)",
            taken.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&taken).unwrap(),
        "someone's file",
        "the file in the way is left alone"
    );
}

/// A libvirt XML's `<vsock>` and `<rng>` under TCG: the rng is QEMU's virtio-rng-pci (the
/// guest has a hardware rng with no disk or interface to imply one); the vsock is the
/// hybrid vsock on $XDG_RUNTIME_DIR/domboot/vs.vsock with the file's CID, as on KVM.
#[test]
fn libvirt_vsock_and_rng_under_tcg() {
    let tmp = tempfile::tempdir().unwrap();
    let (echo, cpio) = echo_and_cpio(tmp.path());
    let dir = tmp.path().display().to_string();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let xml = tmp.path().join("vs.xml");
    std::fs::write(&xml, libvirt_xml(&kernel.vmlinuz.display().to_string())).unwrap();
    let script = tmp.path().join("vs.sh");
    std::fs::write(&script, config_guest_script()).unwrap();
    let run = format!(
        "{DOMBOOT} run --accel tcg {} --timeout 200 --modules {} --initrd {}",
        xml.display(),
        cloud_modules().display(),
        cpio.display()
    );
    let started = std::time::Instant::now();
    let (out, err) = sh(&config_host_script(
        &run,
        &echo.display().to_string(),
        &dir,
        &script.display().to_string(),
    ));
    eprintln!(
        "config vsock under TCG ({} ms):\n{out}\n{err}",
        started.elapsed().as_millis()
    );
    let problems = config_problems(&out);
    assert!(
        problems.is_empty(),
        "config vsock: {problems:?}\n{out}\n{err}"
    );
}

#[test]
fn echo_both_ways_on_the_kvm_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let (echo, cpio) = echo_and_cpio(tmp.path());

    let mut bench = Bench::new(Path::new(DOMBOOT));
    let kernel = bench.file(&domboot_testkit::debian_kernel("cloud").vmlinuz);
    let modules = cloud_modules();
    for m in [
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/char/hw_random/virtio-rng.ko",
        "kernel/net/vmw_vsock/vsock.ko",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
    ] {
        bench.file(&modules.join(m));
    }
    bench.bytes("/bench/vsock-echo", &std::fs::read(&echo).unwrap());
    bench.bytes("/bench/vsock.cpio", &std::fs::read(&cpio).unwrap());
    bench.bytes("/bench/vsock.sh", guest_script().as_bytes());
    let modules = modules.display();
    bench.check(
        "vsock",
        &format!(
            "chmod +x /bench/vsock-echo; {}",
            host_script(
                &format!(
                    "domboot run --accel kvm --kernel {kernel} --memory 256M --timeout 200 \
                     --modules {modules} --initrd /bench/vsock.cpio"
                ),
                "/bench/vsock-echo",
                "/tmp",
                "/bench/vsock.sh",
            )
        ),
    );
    // A libvirt XML's <vsock>: the socket is $XDG_RUNTIME_DIR/domboot/NAME.vsock.
    bench.bytes("/bench/vs.xml", libvirt_xml(&kernel).as_bytes());
    bench.bytes("/bench/vs.sh", config_guest_script().as_bytes());
    bench.check(
        "config-vsock",
        &format!(
            "chmod +x /bench/vsock-echo; {}",
            config_host_script(
                &format!(
                    "domboot run --accel kvm /bench/vs.xml --timeout 200 --modules {modules} \
                     --initrd /bench/vsock.cpio"
                ),
                "/bench/vsock-echo",
                "/tmp",
                "/bench/vs.sh",
            )
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
    let problems = config_problems(&r.stdout);
    assert!(
        problems.is_empty(),
        "config-vsock: {problems:?}\n{}",
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
    let problems = echo_problems(&r.stdout);
    assert!(problems.is_empty(), "vsock: {problems:?}\n{}", r.output());
}
