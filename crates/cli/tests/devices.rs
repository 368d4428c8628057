//! Guest devices with real Linux and its own virtio drivers (loaded as modules by
//! `run --exec`): two disks (one read-only), network interfaces and the rng, on the KVM
//! backend inside the nested bench (virtio-mmio, found through the DSDT) and under
//! `--accel tcg` (QEMU's virtio-pci). The guest writes random data to vda and reports its
//! checksum; the host reads the image file and must find the same bytes; the read-only
//! vdb refuses the guest's write and is unchanged; the guest writes 256 MiB into a file on
//! vdc's ext4 (made by the host's mkfs.ext4), and the host's e2fsck finds the filesystem
//! clean and its debugfs reads the file back with the guest's checksum. Over a tap, data crosses both ways
//! and arrives with the checksum it left with; over the user network (passt on KVM,
//! QEMU's under TCG) the guest fetches data from a TCP server on the host.

mod devices_kit;

use devices_kit::{
    DOMBOOT, bench_modules, bench_networks, check_tap, field, in_network_namespace, modules_dir,
    result, serve_user_data, shown, tap_guest, tap_host_script, user_data, user_net_script,
};
use domboot_testkit::nested::Bench;
use std::path::{Path, PathBuf};
use std::process::Command;
/// Bytes the guest writes to vda.
const WRITTEN: u64 = 16 << 20;
/// Bytes the guest writes into a file on vdc's ext4 filesystem.
const ON_EXT4: u64 = 256 << 20;
/// The size of vdc (ext4, made by the host's mkfs.ext4: busybox has none; Debian's cloud
/// kernel has ext4 built in).
const EXT4_MIB: u64 = 320;

const RO_MARKER: &str = "READ-ONLY-DISK";
/// Bytes sent each way over the tap.
const OVER_TAP: u64 = 64 << 20;

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
mkdir -p /mnt/c; mount -t ext4 /dev/vdc /mnt/c; echo "MOUNT_C $?"
echo "FS_SUM $(head -c {fs_bytes} /dev/urandom | tee /mnt/c/data | sha256sum | cut -d' ' -f1)"
umount /mnt/c; echo "UMOUNT_C $?"
"#,
        marker_len = RO_MARKER.len(),
        mib = WRITTEN >> 20,
        bytes = WRITTEN,
        fs_bytes = ON_EXT4,
    )
}

/// The host's side of the ext4 check: the filesystem on `image` is clean (`e2fsck -fn`)
/// and its /data, read by debugfs (no mount needed), has the checksum the guest reported.
/// Shell lines that print `FSCK_C` and `HOST_FS_SUM`.
fn ext4_host_check(image: &str) -> String {
    format!(
        "e2fsck -fn {image} >/dev/null 2>&1; echo \"FSCK_C $?\"; \
         debugfs -R 'dump /data /tmp/data-c' {image} >/dev/null 2>&1; \
         echo \"HOST_FS_SUM $(sha256sum < /tmp/data-c | cut -d' ' -f1)\"; rm -f /tmp/data-c"
    )
}

/// `mkfs.ext4` of a fresh `EXT4_MIB` image at `image` (shell).
fn ext4_make(image: &str) -> String {
    format!(
        "dd if=/dev/zero of={image} bs=1M count=0 seek={EXT4_MIB} 2>/dev/null; \
         mkfs.ext4 -q -F {image}"
    )
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
        (f("MOUNT_C") == "0", "mounting vdc's ext4 failed"),
        (f("FS_SUM").len() == 64, "no checksum of the file on ext4"),
        (f("UMOUNT_C") == "0", "unmounting vdc failed"),
        (f("FSCK_C") == "0", "e2fsck finds vdc's filesystem unclean"),
        (
            f("HOST_FS_SUM") == f("FS_SUM"),
            "the file the host reads from vdc's ext4 differs from what the guest wrote",
        ),
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

#[test]
fn disks_and_rng_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = images(dir.path());
    let b_before = std::fs::read(&b).unwrap();
    let c = dir.path().join("c.img");
    let made = Command::new("sh")
        .args(["-c", &ext4_make(&c.to_string_lossy())])
        .status()
        .expect("sh runs");
    assert!(made.success(), "mkfs.ext4 (e2fsprogs) failed");
    let kernel = domboot_testkit::debian_kernel("cloud");
    let out = Command::new(DOMBOOT)
        .args([
            "run",
            "--accel",
            "tcg",
            "--memory",
            "512M",
            "--timeout",
            "600",
        ])
        .arg("--kernel")
        .arg(&kernel.vmlinuz)
        .arg("--modules")
        .arg(modules_dir())
        .arg("--disk")
        .arg(&a)
        .arg("--disk")
        .arg(format!("{},ro", b.display()))
        .arg("--disk")
        .arg(&c)
        // The devices, not the userland, are under test: busybox's tools.
        .args(["--rootfs", "busybox", "--exec"])
        .arg(guest_script())
        .output()
        .expect("domboot runs");
    let host = Command::new("sh")
        .args(["-c", &ext4_host_check(&c.to_string_lossy())])
        .output()
        .expect("sh runs");
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&host.stdout);
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

/// A tap under TCG: QEMU creates it, domboot's script brings it up (as the KVM backend
/// does), and 64 MiB cross it both ways. All in a network namespace of its own
/// (`unshare -n`, as root), so the test gives a tap an address without touching the
/// host's network.
#[test]
fn tap_network_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().to_string_lossy().into_owned();
    let guest = dir.path().join("tap.sh");
    std::fs::write(&guest, tap_guest(OVER_TAP)).unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let run = format!(
        "{DOMBOOT} run --accel tcg --kernel {} --modules {} --memory 512M --timeout 600 \
         --rootfs busybox",
        kernel.vmlinuz.display(),
        modules_dir().display()
    );
    // Whatever is still running at the end (a listener whose peer never came) goes, so
    // that the pipes close and the test ends.
    let script = format!(
        "ip link set lo up; {}; kill $(jobs -p) 2>/dev/null; true",
        tap_host_script(
            &format!("{run} --net tap:ttap0,mac=52:54:00:00:00:44"),
            Some("ttap0"),
            &guest.to_string_lossy(),
            &tmp,
            "busybox nc",
            OVER_TAP
        )
    );
    let (stdout, _) = in_network_namespace(&script);
    eprintln!("tap under TCG:\n{stdout}");
    check_tap(&stdout, "52:54:00:00:00:44", OVER_TAP, "tap under TCG");
}

#[test]
fn user_network_under_tcg() {
    let (port, want) = serve_user_data();
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
        // busybox's udhcpc and nc (the host's userland need not have them).
        .args([
            "--net",
            "user,mac=52:54:00:00:00:51",
            "--rootfs",
            "busybox",
            "--exec",
        ])
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
    // e2fsprogs' tools, carried in with their libraries, make and check vdc's ext4.
    for tool in ["mkfs.ext4", "e2fsck", "debugfs"] {
        let host = Path::new("/usr/sbin").join(tool);
        bench.program(&host, &format!("/bin/{tool}"));
    }
    bench.check(
        "disks",
        &format!(
            "{make}; {ext4_make}; {disk_run} --disk /tmp/a.img --disk /tmp/b.img,ro --disk /tmp/c.img \
             --exec \"$(cat /bench/devices.sh)\"; \
             echo \"RC $?\"; \
             echo \"HOST_SUM $(head -c {WRITTEN} /tmp/a.img | sha256sum | cut -d' ' -f1)\"; \
             [ \"$(sha256sum < /tmp/b.img)\" = \"$B\" ] && echo 'B_UNCHANGED yes'; \
             {host_check}",
            ext4_make = ext4_make("/tmp/c.img"),
            // 256 MiB from /dev/urandom through ext4 takes minutes in a nested guest.
            disk_run = run.replace("--timeout 150", "--timeout 600"),
            host_check = ext4_host_check("/tmp/c.img"),
        ),
    );
    // A disk a running domboot writes cannot be opened by a second one. The first takes
    // its lock while it builds the VM, long before its guest boots; the second fails at
    // once, before any vCPU of its own runs (two nested guests at a time are slow here).
    bench.check(
        "disk-lock",
        &format!(
            "dd if=/dev/zero of=/tmp/c.img bs=1M count=1 2>/dev/null; \
             {run} --disk /tmp/c.img --exec 'sleep 30' >/dev/null 2>&1 & first=$!; \
             sleep 8; \
             {run} --disk /tmp/c.img,ro --exec true 2>/tmp/lock.err >/dev/null; \
             echo \"SECOND $?\"; cat /tmp/lock.err; kill $first; wait"
        ),
    );
    net_checks(&mut bench, &run);
    let dir = tempfile::tempdir().unwrap();
    let mut modules = VIRTIO_CORE.to_vec();
    modules.extend([
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/char/virtio_console.ko",
    ]);
    let hvc = bench.file(&hvc_initramfs(dir.path(), &modules));
    bench
        .check(
            "console-virtio",
            &format!(
                "domboot run --accel kvm --kernel {kernel} --memory 256M --timeout 120 \
                 --console virtio --initrd {hvc}"
            ),
        )
        .stdin = Some(b"typed-on-the-host\n".to_vec());
    bench.set_timeouts(std::time::Duration::from_secs(300));
    bench.set_timeout("disks", std::time::Duration::from_secs(700));
    bench.retry_inner_faults(&[domboot_testkit::nested::RESET_TRIPLE_FAULT]);
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    // The network first: a disk check that fails (or times out on a loaded host) then
    // does not hide how the network did.
    net_results(&run);
    let r = shown(&run, "disks", "disks on KVM");
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
    let r = result(&run, "console-virtio");
    assert_eq!(r.status, Some(0), "console-virtio\n{}", r.output());
    check_hvc(&r.stdout, "KVM");
}

/// Tap (domboot creates dtap0 in the outer guest, which then gives it an address) and the
/// user network through passt (the outer guest has QEMU's user network for a route).
fn net_checks(bench: &mut Bench, run: &str) {
    bench_networks(bench);
    bench.bytes("/bench/tap.sh", tap_guest(OVER_TAP).as_bytes());
    bench.check(
        "net-tap",
        &tap_host_script(
            &format!("{run} --net tap:dtap0,mac=52:54:00:00:00:42"),
            Some("dtap0"),
            "/bench/tap.sh",
            "/tmp",
            "nc",
            OVER_TAP,
        ),
    );
    bench.bytes("/bench/user-data", &user_data());
    bench.bytes(
        "/bench/user.sh",
        user_net_script("10.0.2.2", 7003).as_bytes(),
    );
    bench.check(
        "net-user",
        &format!(
            "echo \"OUTER_ROUTE $(ip route | grep default)\"; \
             nc -l -p 7003 < /bench/user-data >/dev/null & \
             {run} --net user,mac=52:54:00:00:00:43 --exec \"$(cat /bench/user.sh)\"; echo \"RC $?\""
        ),
    );
}

fn net_results(run: &domboot_testkit::nested::BenchRun) {
    eprintln!("net-user:\n{}", result(run, "net-user").output());
    let r = result(run, "net-tap");
    eprintln!("net-tap:\n{}", r.output());
    check_tap(&r.output(), "52:54:00:00:00:42", OVER_TAP, "net-tap (KVM)");
    let r = result(run, "net-user");
    let want = domboot_testkit::sha256_hex(&user_data());
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

/// The seed's own example configuration (seed 000, "hvmdemo"), its disk pointing at an
/// image the test made and its kernel at Debian's: the disk is attached, as the guest's
/// vda, instead of being warned about and dropped.
#[test]
fn seed_hvmdemo_config_boots_with_its_disk_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("hvmdemo.img");
    let mut data = vec![0u8; 4 << 20];
    data[..15].copy_from_slice(b"HVMDEMO-DISK-OK");
    std::fs::write(&image, &data).unwrap();
    let kernel = domboot_testkit::debian_kernel("cloud");
    let cfg = dir.path().join("hvmdemo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"hvmdemo\"\nbuilder = \"hvm\"\nmemory = \"500\"\n\
             disk = [ \"file:{},hda,w\" ]\n\
             uuid = \"0a696059-d2e8-2691-86e7-1daeed939649\"\n\
             device_model = \"/usr/lib/xen/bin/qemu-dm\"\n\
             loader = \"/usr/lib/xen/boot/hvmloader\"\n\
             kernel = \"{}\"\nextra = \"console=ttyS0 console=tty0\"\n\
             serial = \"file:/tmp/hvmdemo.log\"\nvnc=1\nvncunused=1\napic=0\nacpi=0\npae=0\n",
            image.display(),
            kernel.vmlinuz.display()
        ),
    )
    .unwrap();
    let out = Command::new(DOMBOOT)
        .args(["run", "--accel", "tcg", "--timeout", "300"])
        .arg(&cfg)
        .arg("--modules")
        .arg(modules_dir())
        .args([
            "--rootfs",
            "busybox",
            "--exec",
            "i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             echo \"VDA $(head -c 15 /dev/vda)\"; echo hello-from-the-guest | dd of=/dev/vda \
             bs=512 seek=1 conv=fsync 2>/dev/null; echo \"WROTE $?\"",
        ])
        .output()
        .expect("domboot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert_eq!(
        field(&stdout, "VDA"),
        Some("HVMDEMO-DISK-OK"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(field(&stdout, "WROTE"), Some("0"), "{stdout}");
    let after = std::fs::read(&image).unwrap();
    assert_eq!(&after[512..533], b"hello-from-the-guest\n");
    assert!(
        stderr.contains("disk hda") && stderr.contains("vda"),
        "the hda -> vda mapping is said: {stderr}"
    );
    assert!(
        !stderr.contains("disk[0]"),
        "the disk is not warned about: {stderr}"
    );
}

/// The guest's /init for the console check: loads the virtio drivers it was given (in
/// the order of /modules/list), waits for hvc0, and talks only through it.
const HVC_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules/list); do $B insmod /modules/$m.ko 2>/dev/null; done
i=0; while [ ! -e /dev/hvc0 ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
exec 0</dev/hvc0 1>/dev/hvc0 2>&1
echo "<3>kernel-log-on-hvc0" > /dev/kmsg
echo "CONSOLES $($B cat /proc/consoles | $B cut -d' ' -f1 | $B tr '\n' ' ')"
echo READY
read line
echo "GOT $line"
$B poweroff -f
"#;

/// An initramfs with busybox, [`HVC_INIT`] and the modules named (paths in the cloud
/// kernel's modules tree), loaded in that order.
fn hvc_initramfs(dir: &Path, modules: &[&str]) -> PathBuf {
    domboot_testkit::busybox_initramfs_with_modules(
        dir,
        &domboot_testkit::busybox(),
        "hvc",
        HVC_INIT,
        &modules_dir(),
        modules,
    )
}

/// virtio_ring first: virtio uses its symbols.
const VIRTIO_CORE: [&str; 2] = [
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
];

/// What the console check must show: the kernel's log (a message logged once hvc0 is the
/// console, with the kernel's timestamp), hvc0 as the only console, and the host's line
/// read back.
fn check_hvc(out: &str, what: &str) {
    assert!(
        out.contains("] kernel-log-on-hvc0"),
        "{what}: no kernel log on hvc0\n{out}"
    );
    assert_eq!(field(out, "CONSOLES"), Some("hvc0"), "{what}\n{out}");
    assert_eq!(
        field(out, "GOT"),
        Some("typed-on-the-host"),
        "{what}\n{out}"
    );
}

#[test]
fn virtio_console_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let mut modules = VIRTIO_CORE.to_vec();
    modules.extend([
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/char/virtio_console.ko",
    ]);
    let rd = hvc_initramfs(dir.path(), &modules);
    let kernel = domboot_testkit::debian_kernel("cloud");
    let mut child = Command::new(DOMBOOT)
        .args([
            "run",
            "--accel",
            "tcg",
            "--console",
            "virtio",
            "--timeout",
            "120",
        ])
        .arg("--kernel")
        .arg(&kernel.vmlinuz)
        .arg("--initrd")
        .arg(&rd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("domboot runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed-on-the-host\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    check_hvc(&stdout, "TCG");
}
