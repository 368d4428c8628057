//! What the device tests share (`devices.rs`, `config_devices.rs`): the guest's report
//! lines, the cloud kernel's modules, both sides of the user-network fetch and of the tap
//! exchange, and the nested bench's share of them (the inner guest's modules, passt).

use domboot_testkit::nested::{Bench, BenchRun, CheckResult};
use std::path::{Path, PathBuf};

pub const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");

/// Bytes the guest fetches over the user network.
pub const OVER_USER: u64 = 1 << 20;

/// The value after `KEY ` on a line of its own.
pub use domboot_testkit::report_field as field;

/// The cloud kernel's modules tree (the guests load their virtio drivers from it).
pub fn modules_dir() -> PathBuf {
    let kernel = domboot_testkit::debian_kernel("cloud");
    std::fs::canonicalize(kernel.vmlinuz.parent().unwrap().join("modules"))
        .expect("the cloud kernel's modules tree")
}

/// What the host serves over the user network: `OVER_USER` bytes of a pattern.
pub fn user_data() -> Vec<u8> {
    (0..OVER_USER as u32)
        .map(|i| (i * 13 + i / 4096) as u8)
        .collect()
}

/// A TCP server on the host's loopback that sends [`user_data`] to its first client (a
/// guest on QEMU's user network reaches it at 10.0.2.2:PORT): its port, and the checksum
/// the guest must report. The thread is left alone: a guest that never connects leaves it
/// waiting until the test ends.
pub fn serve_user_data() -> (u16, String) {
    let data = user_data();
    let want = domboot_testkit::sha256_hex(&data);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(&data);
        }
    });
    (port, want)
}

/// Guest shell: waits (up to 10 s) for eth0, whose driver the initramfs has loaded.
pub const WAIT_ETH0: &str =
    "i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done";

/// A udhcpc script that configures the lease (busybox ships none).
const DHCP_SCRIPT: &str = "printf '%s\\n' '#!/bin/sh' '[ \"$1\" = bound ] || exit 0' \
    'ip addr add $ip/${mask:-24} dev $interface' 'ip route add default via ${router%% *}' \
    > /tmp/dhcp; chmod +x /tmp/dhcp";

/// The guest side of the user-network check: DHCP, then `OVER_USER` bytes from
/// `server:port`, checksummed. Prints DHCP, MAC and FETCHED.
pub fn user_net_script(server: &str, port: u16) -> String {
    format!(
        "{DHCP_SCRIPT}
{WAIT_ETH0}
ip link set eth0 up
udhcpc -i eth0 -s /tmp/dhcp -q -n -t 10 >/dev/null 2>&1; echo \"DHCP $?\"
echo \"MAC $(cat /sys/class/net/eth0/address)\"
mkfifo /tmp/hold-in; exec 3<>/tmp/hold-in
echo \"FETCHED $(nc {server} {port} <&3 | head -c {OVER_USER} | sha256sum | cut -d' ' -f1)\"
"
    )
}

/// The guest side of the tap exchange: a static address, `bytes` bytes from the host's
/// port 7001 and as many random bytes to its port 7002, each checksummed. The guest
/// powers off when its command ends, so it waits for the host to say it has every byte
/// (a connection to the guest's port 7003) before it ends: what nc left in the socket's
/// send queue would be lost otherwise. Each busybox nc listener reads an input that never
/// ends (a FIFO held open, /dev/zero): one whose input ends closes its connection.
pub fn tap_guest(bytes: u64) -> String {
    format!(
        r#"{WAIT_ETH0}
echo "MAC $(cat /sys/class/net/eth0/address)"
ip addr add 10.9.0.2/24 dev eth0; ip link set eth0 up
i=0; until ping -c 1 -W 1 10.9.0.1 >/dev/null 2>&1 || [ $i -gt 60 ]; do i=$((i+1)); done
# --exec passes domboot's stdin (here at its end at once), and busybox's nc client stops
# at the end of its input: a FIFO held open keeps it reading until the host closes.
mkfifo /tmp/hold-in; exec 3<>/tmp/hold-in
echo "FROM_HOST $(nc 10.9.0.1 7001 <&3 | head -c {bytes} | sha256sum | cut -d' ' -f1)"
head -c {bytes} /dev/urandom > /tmp/r
echo "GUEST_BLOB $(sha256sum < /tmp/r | cut -d' ' -f1)"
nc -l -p 7003 < /dev/zero > /tmp/ack &
nc 10.9.0.1 7002 < /tmp/r
wait
echo "ACK $(cat /tmp/ack)"
"#
    )
}

/// The host's side of the tap exchange, as shell: serves `bytes` random bytes on port
/// 7001, takes as many on port 7002, tells the guest on its port 7003 when all have
/// arrived, and runs `RUN --exec "$(cat GUEST)"` (`run` names the network: `--net tap:...`
/// or a configuration's). With a `tap`, it gives that tap the host's address 10.9.0.1 once
/// domboot (or QEMU) has created it; without, the caller has given it to a bridge. Prints
/// HOST_BLOB, RC, SECONDS, the guest's output and HOST_RECV. `tmp` is a folder for its
/// files, `nc` busybox's nc.
pub fn tap_host_script(
    run: &str,
    tap: Option<&str>,
    guest: &str,
    tmp: &str,
    nc: &str,
    bytes: u64,
) -> String {
    let address = match tap {
        Some(tap) => format!(
            "i=0; while ! ip link show {tap} >/dev/null 2>&1 && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
             ip addr add 10.9.0.1/24 dev {tap}; "
        ),
        None => String::new(),
    };
    format!(
        "head -c {bytes} /dev/urandom > {tmp}/blob; \
         echo \"HOST_BLOB $(sha256sum < {tmp}/blob | cut -d' ' -f1)\"; \
         {nc} -l -p 7001 < {tmp}/blob >/dev/null & \
         mkfifo {tmp}/hold; exec 3<>{tmp}/hold; \
         {nc} -l -p 7002 <&3 > {tmp}/recv & rx=$!; \
         (while [ \"$(stat -c %s {tmp}/recv 2>/dev/null || echo 0)\" -lt {bytes} ]; do sleep 0.2; done; \
          echo got-all | {nc} 10.9.0.2 7003 > /dev/null) & \
         t0=$(date +%s); \
         {run} --exec \"$(cat {guest})\" > {tmp}/g 2>&1 & \
         g=$!; {address}\
         wait $g; echo \"RC $?\"; echo \"SECONDS $(( $(date +%s) - t0 ))\"; cat {tmp}/g; \
         echo \"HOST_RECV $(head -c {bytes} {tmp}/recv | sha256sum | cut -d' ' -f1)\"; kill $rx"
    )
}

/// The tap exchange's report (`out`, from [`tap_host_script`]) shows `bytes` bytes
/// crossing intact both ways, and the guest's MAC is `mac`.
pub fn check_tap(out: &str, mac: &str, bytes: u64, what: &str) {
    let f = |k| field(out, k).unwrap_or("");
    assert!(
        f("RC") == "0"
            && f("MAC") == mac
            && f("HOST_BLOB").len() == 64
            && f("FROM_HOST") == f("HOST_BLOB")
            && f("GUEST_BLOB").len() == 64
            && f("HOST_RECV") == f("GUEST_BLOB")
            && f("ACK") == "got-all",
        "{what}: {bytes} bytes did not cross the tap intact both ways, or the MAC is not {mac}\n{out}"
    );
}

/// The modules the KVM guest loads, copied into the outer guest at their host paths;
/// returns the modules tree's path for `--modules`.
pub fn bench_modules(bench: &mut Bench) -> String {
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

/// What the outer guest needs for inner guests' networks: taps (tun), and passt for the
/// user network, with a network of its own (QEMU's user network) for a default route.
pub fn bench_networks(bench: &mut Bench) {
    bench.module("kernel/drivers/net/tun.ko");
    bench.network();
    bench.program(Path::new("/usr/bin/passt"), "/usr/bin/passt");
    // passt drops root for "nobody".
    bench.bytes(
        "/etc/passwd",
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    bench.bytes("/etc/group", b"root:x:0:\nnogroup:x:65534:\n");
}

/// Runs `script` with sh in a network namespace of its own (`unshare -n`, which needs
/// root): its taps, bridges and addresses never touch the host's network. Returns its
/// stdout and stderr; fails the test if it did not exit 0.
pub fn in_network_namespace(script: &str) -> (String, String) {
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "unshare -n (a network namespace needs root): {:?}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

pub fn result<'a>(run: &'a BenchRun, name: &str) -> &'a CheckResult {
    run.result(name)
        .unwrap_or_else(|| panic!("{name}: no result from the bench"))
}

/// The result of the check `name`, shown on stderr (as `what`, with its time) before the
/// test looks at it.
pub fn shown<'a>(run: &'a BenchRun, name: &str, what: &str) -> &'a CheckResult {
    let r = result(run, name);
    eprintln!("{what} ({} ms):\n{}", r.elapsed.as_millis(), r.output());
    r
}
