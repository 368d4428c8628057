//! Guest devices with real Linux and its own virtio drivers (loaded as modules by
//! `run --exec`): two disks (one read-only), network interfaces and the rng, on the KVM
//! backend inside the nested bench (virtio-mmio, found through the DSDT) and under
//! `--accel tcg` (QEMU's virtio-pci). The guest writes random data to vda and reports its
//! checksum; the host reads the image file and must find the same bytes; the read-only
//! vdb refuses the guest's write and is unchanged. Over a tap, data crosses both ways
//! and arrives with the checksum it left with; over the user network (passt on KVM,
//! QEMU's under TCG) the guest fetches data from a TCP server on the host.

use domboot_testkit::nested::{Bench, CheckResult};
use std::path::{Path, PathBuf};
use std::process::Command;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");
/// Bytes the guest writes to vda.
const WRITTEN: u64 = 16 << 20;
const RO_MARKER: &str = "READ-ONLY-DISK";
/// Bytes sent each way over the tap.
const OVER_TAP: u64 = 64 << 20;
/// Bytes the guest fetches over the user network.
const OVER_USER: u64 = 1 << 20;

/// A udhcpc script that configures the lease (busybox ships none).
const DHCP_SCRIPT: &str = "printf '%s\\n' '#!/bin/sh' '[ \"$1\" = bound ] || exit 0' \
    'ip addr add $ip/${mask:-24} dev $interface' 'ip route add default via ${router%% *}' \
    > /tmp/dhcp; chmod +x /tmp/dhcp";

/// The guest side of the user-network check: DHCP, then `OVER_USER` bytes from
/// `server:port`, checksummed.
fn user_net_script(server: &str, port: u16) -> String {
    format!(
        "{DHCP_SCRIPT}
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
udhcpc -i eth0 -s /tmp/dhcp -q -n -t 10 >/dev/null 2>&1; echo \"DHCP $?\"
echo \"MAC $(cat /sys/class/net/eth0/address)\"
echo \"FETCHED $(nc {server} {port} | head -c {OVER_USER} | sha256sum | cut -d' ' -f1)\"
"
    )
}

/// What the guest runs: waits for both disks, reports what it sees, writes vda, tries to
/// write vdb, reads the rng, and reads vda back from the device (caches dropped).
fn guest_script() -> String {
    format!(
        r#"i=0; while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "SERIAL_A $(cat /sys/block/vda/serial)"
echo "SERIAL_B $(cat /sys/block/vdb/serial)"
echo "RO_A $(cat /sys/block/vda/ro)"
echo "RO_B $(cat /sys/block/vdb/ro)"
echo "SIZE_A $(cat /sys/block/vda/size)"
echo "HEAD_B $(head -c {marker_len} /dev/vdb)"
dd if=/dev/urandom of=/tmp/r bs=1M count={mib} 2>/dev/null
echo "GUEST_SUM $(sha256sum < /tmp/r | cut -d' ' -f1)"
dd if=/tmp/r of=/dev/vda bs=1M conv=fsync 2>/dev/null; echo "WRITE_A $?"
dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; echo "WRITE_B $?"
sync; echo 3 > /proc/sys/vm/drop_caches
echo "READBACK $(head -c {bytes} /dev/vda | sha256sum | cut -d' ' -f1)"
echo "RNG $(cat /sys/class/misc/hw_random/rng_current)"
echo "HWRNG $(head -c 1048576 /dev/hwrng | wc -c)"
"#,
        marker_len = RO_MARKER.len(),
        mib = WRITTEN >> 20,
        bytes = WRITTEN,
    )
}

/// The value after `KEY ` on a line of its own.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

/// Checks the guest's report (`out`) and the host's view of the images.
fn check_report(out: &str, host_sum: &str, ro_unchanged: bool, what: &str) {
    let f = |k| field(out, k).unwrap_or("");
    let guest_sum = f("GUEST_SUM");
    let problems: Vec<String> = [
        (f("SERIAL_A") == "a.img", "vda's serial is not a.img"),
        (f("SERIAL_B") == "b.img", "vdb's serial is not b.img"),
        (f("RO_A") == "0" && f("RO_B") == "1", "ro flags"),
        (
            f("SIZE_A") == ((64u64 << 20) / 512).to_string(),
            "vda's size",
        ),
        (f("HEAD_B") == RO_MARKER, "vdb's first bytes"),
        (f("WRITE_A") == "0", "writing vda failed"),
        (
            f("WRITE_B") != "0" && !f("WRITE_B").is_empty(),
            "writing vdb worked",
        ),
        (guest_sum.len() == 64, "no guest checksum"),
        (f("READBACK") == guest_sum, "vda read back differs"),
        (
            host_sum == guest_sum,
            "the host's a.img differs from what the guest wrote",
        ),
        (ro_unchanged, "the read-only b.img changed"),
        (
            f("RNG").starts_with("virtio_rng"),
            "virtio_rng is not the current rng",
        ),
        (f("HWRNG") == "1048576", "1 MiB from /dev/hwrng"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, why)| why.to_string())
    .collect();
    assert!(
        problems.is_empty(),
        "{what}: {problems:?}\nguest output:\n{out}"
    );
}

/// a.img (64 MiB of zeros) and b.img (8 MiB starting with the marker) in `dir`.
fn images(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("a.img");
    let b = dir.join("b.img");
    std::fs::write(&a, vec![0u8; 64 << 20]).unwrap();
    let mut bb = vec![0u8; 8 << 20];
    bb[..RO_MARKER.len()].copy_from_slice(RO_MARKER.as_bytes());
    std::fs::write(&b, bb).unwrap();
    (a, b)
}

fn modules_dir() -> PathBuf {
    let kernel = domboot_testkit::debian_kernel("cloud");
    std::fs::canonicalize(kernel.vmlinuz.parent().unwrap().join("modules"))
        .expect("the cloud kernel's modules tree")
}

#[test]
fn disks_and_rng_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = images(dir.path());
    let b_before = std::fs::read(&b).unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let out = Command::new(DOMBOOT)
        .args([
            "run",
            "--accel",
            "tcg",
            "--memory",
            "512M",
            "--timeout",
            "300",
        ])
        .arg("--kernel")
        .arg(&kernel.vmlinuz)
        .arg("--modules")
        .arg(modules_dir())
        .arg("--disk")
        .arg(&a)
        .arg("--disk")
        .arg(format!("{},ro", b.display()))
        .arg("--exec")
        .arg(guest_script())
        .output()
        .expect("domboot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("disks under TCG:\n{stdout}");
    let data = std::fs::read(&a).unwrap();
    let host_sum = domboot_testkit::sha256_hex(&data[..WRITTEN as usize]);
    let unchanged = std::fs::read(&b).unwrap() == b_before;
    check_report(&stdout, &host_sum, unchanged, "TCG");
}

#[test]
fn user_network_under_tcg() {
    let data: Vec<u8> = (0..OVER_USER as u32)
        .map(|i| (i * 13 + i / 4096) as u8)
        .collect();
    let want = domboot_testkit::sha256_hex(&data);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(&data);
        }
    });
    let kernel = domboot_testkit::debian_kernel("cloud");
    let out = Command::new(DOMBOOT)
        .args([
            "run",
            "--accel",
            "tcg",
            "--memory",
            "256M",
            "--timeout",
            "300",
        ])
        .arg("--kernel")
        .arg(&kernel.vmlinuz)
        .arg("--modules")
        .arg(modules_dir())
        .args(["--net", "user,mac=52:54:00:00:00:51", "--exec"])
        // QEMU's user network: the host is the gateway, 10.0.2.2.
        .arg(user_net_script("10.0.2.2", port))
        .output()
        .expect("domboot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("user network under TCG:\n{stdout}");
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "DHCP"), Some("0"), "{stdout}");
    assert_eq!(field(&stdout, "MAC"), Some("52:54:00:00:00:51"), "{stdout}");
    assert_eq!(field(&stdout, "FETCHED"), Some(want.as_str()), "{stdout}");
    let _ = server.join();
}

/// The modules the KVM guest loads, copied into the outer guest at their host paths.
fn bench_modules(bench: &mut Bench) -> String {
    let dir = modules_dir();
    for m in [
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/drivers/char/hw_random/virtio-rng.ko",
        "kernel/net/core/failover.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko",
    ] {
        bench.file(&dir.join(m));
    }
    dir.to_string_lossy().into_owned()
}

fn result<'a>(run: &'a domboot_testkit::nested::BenchRun, name: &str) -> &'a CheckResult {
    run.result(name)
        .unwrap_or_else(|| panic!("{name}: no result from the bench"))
}

#[test]
fn disks_and_rng_on_the_kvm_backend() {
    let mut bench = Bench::new(Path::new(DOMBOOT));
    let kernel = bench.file(&domboot_testkit::debian_kernel("cloud").vmlinuz);
    let modules = bench_modules(&mut bench);
    bench.bytes("/bench/devices.sh", guest_script().as_bytes());
    let run = format!(
        "domboot run --accel kvm --kernel {kernel} --memory 512M --timeout 150 \
         --modules {modules}"
    );
    let make = format!(
        "dd if=/dev/zero of=/tmp/a.img bs=1M count=64 2>/dev/null; \
         dd if=/dev/zero of=/tmp/b.img bs=1M count=8 2>/dev/null; \
         printf {RO_MARKER} | dd of=/tmp/b.img conv=notrunc 2>/dev/null; \
         B=$(sha256sum < /tmp/b.img)"
    );
    bench.check(
        "disks",
        &format!(
            "{make}; {run} --disk /tmp/a.img --disk /tmp/b.img,ro --exec \"$(cat /bench/devices.sh)\"; \
             echo \"RC $?\"; \
             echo \"HOST_SUM $(head -c {WRITTEN} /tmp/a.img | sha256sum | cut -d' ' -f1)\"; \
             [ \"$(sha256sum < /tmp/b.img)\" = \"$B\" ] && echo 'B_UNCHANGED yes'"
        ),
    );
    // A disk a running domboot writes cannot be opened by a second one.
    bench.check(
        "disk-lock",
        &format!(
            "dd if=/dev/zero of=/tmp/c.img bs=1M count=1 2>/dev/null; \
             {run} --disk /tmp/c.img --exec 'sleep 60' >/dev/null 2>&1 & \
             i=0; while [ $i -lt 100 ]; do \
                 {run} --disk /tmp/c.img,ro --exec true 2>/tmp/err >/dev/null; rc=$?; \
                 grep -q 'in use' /tmp/err && break; sleep 1; i=$((i+1)); done; \
             echo \"SECOND $rc\"; cat /tmp/err; kill %1; wait"
        ),
    );
    net_checks(&mut bench, &run);
    bench.set_timeouts(std::time::Duration::from_secs(300));
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    let r = result(&run, "disks");
    eprintln!(
        "disks on KVM ({} ms):\n{}",
        r.elapsed.as_millis(),
        r.output()
    );
    let out = r.stdout.as_str();
    assert_eq!(field(out, "RC"), Some("0"), "disks:\n{}", r.output());
    let host_sum = field(out, "HOST_SUM").unwrap_or("").to_string();
    let unchanged = field(out, "B_UNCHANGED") == Some("yes");
    check_report(out, &host_sum, unchanged, "KVM");
    let r = result(&run, "disk-lock");
    assert!(
        field(&r.stdout, "SECOND") == Some("2") && r.stdout.contains("in use by another process"),
        "disk-lock: the second domboot was not refused\n{}",
        r.output()
    );
    net_results(&run);
}

/// The guest side of the tap check: a static address, `OVER_TAP` bytes from the host's
/// port 7001 and as many random bytes to its port 7002, each checksummed.
const TAP_GUEST: &str = r#"i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "MAC $(cat /sys/class/net/eth0/address)"
ip addr add 10.9.0.2/24 dev eth0; ip link set eth0 up
i=0; until ping -c 1 -W 1 10.9.0.1 >/dev/null 2>&1 || [ $i -gt 60 ]; do i=$((i+1)); done
echo "FROM_HOST $(nc 10.9.0.1 7001 | head -c BYTES | sha256sum | cut -d' ' -f1)"
head -c BYTES /dev/urandom > /tmp/r
echo "GUEST_BLOB $(sha256sum < /tmp/r | cut -d' ' -f1)"
nc 10.9.0.1 7002 < /tmp/r
"#;

/// Tap (domboot creates dtap0 in the outer guest, which then gives it an address) and the
/// user network through passt (the outer guest has QEMU's user network for a route).
fn net_checks(bench: &mut Bench, run: &str) {
    bench.module("kernel/drivers/net/tun.ko");
    bench.network();
    bench.program(Path::new("/usr/bin/passt"), "/usr/bin/passt");
    // passt drops root for "nobody".
    bench.bytes(
        "/etc/passwd",
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    bench.bytes("/etc/group", b"root:x:0:\nnogroup:x:65534:\n");
    bench.bytes(
        "/bench/tap.sh",
        TAP_GUEST.replace("BYTES", &OVER_TAP.to_string()).as_bytes(),
    );
    bench.check(
        "net-tap",
        &format!(
            "head -c {OVER_TAP} /dev/urandom > /tmp/blob; \
             echo \"HOST_BLOB $(sha256sum < /tmp/blob | cut -d' ' -f1)\"; \
             nc -l -p 7001 < /tmp/blob >/dev/null & \
             (nc -l -p 7002 | head -c {OVER_TAP} > /tmp/recv) & \
             t0=$(date +%s); \
             {run} --net tap:dtap0,mac=52:54:00:00:00:42 --exec \"$(cat /bench/tap.sh)\" > /tmp/g 2>&1 & \
             g=$!; i=0; while [ ! -e /sys/class/net/dtap0 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
             ip addr add 10.9.0.1/24 dev dtap0; \
             wait $g; echo \"RC $?\"; echo \"SECONDS $(( $(date +%s) - t0 ))\"; cat /tmp/g; \
             echo \"HOST_RECV $(sha256sum < /tmp/recv | cut -d' ' -f1)\""
        ),
    );
    let data: Vec<u8> = (0..OVER_USER as u32)
        .map(|i| (i * 13 + i / 4096) as u8)
        .collect();
    bench.bytes("/bench/user-data", &data);
    bench.bytes(
        "/bench/user.sh",
        user_net_script("10.0.2.2", 7003).as_bytes(),
    );
    bench.check(
        "net-user",
        &format!(
            "nc -l -p 7003 < /bench/user-data >/dev/null & \
             {run} --net user,mac=52:54:00:00:00:43 --exec \"$(cat /bench/user.sh)\"; echo \"RC $?\""
        ),
    );
}

fn net_results(run: &domboot_testkit::nested::BenchRun) {
    let r = result(run, "net-tap");
    eprintln!("net-tap:\n{}", r.output());
    let out = r.stdout.as_str();
    let f = |k| field(out, k).unwrap_or("");
    assert!(
        f("RC") == "0"
            && f("MAC") == "52:54:00:00:00:42"
            && f("HOST_BLOB").len() == 64
            && f("FROM_HOST") == f("HOST_BLOB")
            && f("GUEST_BLOB").len() == 64
            && f("HOST_RECV") == f("GUEST_BLOB"),
        "net-tap: {OVER_TAP} bytes did not cross the tap intact both ways\n{}",
        r.output()
    );
    let r = result(run, "net-user");
    eprintln!("net-user:\n{}", r.output());
    let data: Vec<u8> = (0..OVER_USER as u32)
        .map(|i| (i * 13 + i / 4096) as u8)
        .collect();
    let want = domboot_testkit::sha256_hex(&data);
    let out = r.stdout.as_str();
    assert!(
        field(out, "RC") == Some("0")
            && field(out, "DHCP") == Some("0")
            && field(out, "MAC") == Some("52:54:00:00:00:43")
            && field(out, "FETCHED") == Some(want.as_str()),
        "net-user: the guest did not fetch the host's data through passt\n{}",
        r.output()
    );
}
