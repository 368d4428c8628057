//! Disks and networks a domain configuration names, honoured by `run` on both backends
//! with Debian's cloud kernel and its own virtio modules: a libvirt XML's `<disk>` and
//! `<interface type='user'>`, an xl `disk=` (a second disk in mode `r`: a file under TCG,
//! a block device, `phy:`, on KVM) and `vif=` on a bridge, a xend SEXPR's
//! `(device (vbd ...))` and `(device (vif ...))` on a bridge, and `--net` replacing the
//! file's interfaces. The guest reports what it sees (its disk's first bytes and ID, its
//! NIC's MAC, its virtio devices) and moves data: it fetches from a TCP server on the host
//! over the user network, crosses the bridge both ways with the host's address on it, and
//! writes a sector the host then reads from the image file. Under TCG the bridges live in
//! a network namespace of the test's own (`unshare -n`, as root); on the KVM backend
//! (inside the nested bench, one outer boot for every check) in the outer guest.

mod devices_kit;

use devices_kit::{
    DOMBOOT, bench_modules, bench_networks, check_tap, field, in_network_namespace, modules_dir,
    serve_user_data, shown, tap_guest, tap_host_script, user_data, user_net_script,
};
use domboot_testkit::nested::Bench;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Bytes sent each way over a configuration's bridge.
const OVER_BRIDGE: u64 = 8 << 20;
/// What the guest writes into its disk's second sector (the host reads it back).
const GUEST_WROTE: &str = "written-by-the-guest";
/// The size of each configuration's disk image.
const IMAGE_MIB: usize = 8;

/// The guest's report on its devices: vda's first `marker_len` bytes (VDA) and its ID
/// (SERIAL), the status of writing [`GUEST_WROTE`] into its second sector (WROTE), and
/// the virtio device IDs the guest found (VIRTIO: 0x0001 is a NIC, 0x0002 a disk, 0x0004
/// the rng), which are all there once the initramfs has loaded the drivers.
fn disk_guest(marker_len: usize) -> String {
    format!(
        r#"i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "VDA $(head -c {marker_len} /dev/vda)"
echo "SERIAL $(cat /sys/block/vda/serial)"
echo {GUEST_WROTE} | dd of=/dev/vda bs=512 seek=1 conv=fsync 2>/dev/null; echo "WROTE $?"
echo "VIRTIO $(cat /sys/bus/virtio/devices/*/device | sort | tr '\n' ' ')"
"#
    )
}

/// How many of the guest's virtio devices (its VIRTIO line) are NICs.
fn nics(out: &str) -> usize {
    field(out, "VIRTIO")
        .unwrap_or("")
        .split_whitespace()
        .filter(|id| *id == "0x0001")
        .count()
}

/// The bytes of a disk image of [`IMAGE_MIB`] that starts with `marker`.
fn image_bytes(marker: &str) -> Vec<u8> {
    let mut data = vec![0u8; IMAGE_MIB << 20];
    data[..marker.len()].copy_from_slice(marker.as_bytes());
    data
}

/// That image, written by the host at `path`.
fn image(path: &Path, marker: &str) {
    std::fs::write(path, image_bytes(marker)).unwrap();
}

/// Shell that makes the same image at `path` (in the outer guest).
fn image_shell(path: &str, marker: &str) -> String {
    format!(
        "dd if=/dev/zero of={path} bs=1M count={IMAGE_MIB} 2>/dev/null; \
         printf {marker} | dd of={path} conv=notrunc 2>/dev/null"
    )
}

/// Shell printing HOST_SECTOR: what the image at `path` holds where the guest wrote.
fn host_sector(path: &str) -> String {
    format!(
        "echo \"HOST_SECTOR $(dd if={path} bs=512 skip=1 count=1 2>/dev/null | head -c {})\"",
        GUEST_WROTE.len()
    )
}

/// What the disk part of a guest's report must show: the image's marker, its file name as
/// the ID, the write done and found by the host in the image (`host_sector`).
fn check_disk(out: &str, marker: &str, file: &str, host_sector: &str, what: &str) {
    let f = |k| field(out, k).unwrap_or("");
    assert!(
        f("VDA") == marker && f("SERIAL") == file && f("WROTE") == "0",
        "{what}: the guest's vda is not the configuration's {file}\n{out}"
    );
    assert_eq!(
        host_sector, GUEST_WROTE,
        "{what}: the guest's write did not reach {file}\n{out}"
    );
}

/// A libvirt domain: the kernel, 512 MiB, a raw file disk as vda, a user-network
/// interface with `mac`, and two interfaces domboot does not provide: a `direct` one
/// (macvtap) and an Open vSwitch port.
fn libvirt_xml(kernel: &str, image: &str, mac: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>confnet-libvirt</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>{kernel}</kernel></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='{mac}'/>
      <model type='virtio'/>
    </interface>
    <interface type='direct'>
      <source dev='eth0' mode='bridge'/>
    </interface>
    <interface type='bridge'>
      <source bridge='ovsbr0'/>
      <virtualport type='openvswitch'/>
    </interface>
  </devices>
</domain>
"
    )
}

/// What domboot says about the libvirt domain's interfaces it leaves out.
const LEFT_OUT: [&str; 2] = [
    "interface[1] (direct eth0) is not supported",
    "interface[2] (bridge ovsbr0) is not supported yet: Open vSwitch ports",
];

/// An xl domain: the kernel, 512 MiB, `disk = [ 'file:IMAGE,xvda,w' ]` (and `ro_disk`,
/// such as `phy:/dev/loop0`, as xvdb in mode `r`) and a vif with `mac` on `bridge` (an
/// e1000 NIC, which the guest gets as virtio-net: [`MODEL_NOTE`]).
fn xl_cfg(kernel: &str, image: &str, ro_disk: Option<&str>, mac: &str, bridge: &str) -> String {
    let ro = ro_disk.map_or(String::new(), |d| format!(", '{d},xvdb,r'"));
    format!(
        "name = \"confnet-xl\"\nmemory = 512\nvcpus = 1\nkernel = \"{kernel}\"\n\
         disk = [ 'file:{image},xvda,w'{ro} ]\n\
         vif = [ 'mac={mac},bridge={bridge},model=e1000' ]\n"
    )
}

/// The first bytes of the xl domain's read-only disk.
const RO_MARKER: &str = "XL-RO-DISK";

/// The guest's report on its read-only vdb: its first bytes (VDB), its read-only flag
/// (RO_B) and the status of a write to it (WRITE_B).
fn ro_disk_guest() -> String {
    format!(
        r#"i=0; while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "VDB $(head -c {} /dev/vdb)"
echo "RO_B $(cat /sys/block/vdb/ro)"
dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; echo "WRITE_B $?"
"#,
        RO_MARKER.len()
    )
}

/// The read-only disk is the file's, read-only to the guest, and `host_head` (its first
/// bytes as the host reads them afterwards) unchanged.
fn check_ro_disk(out: &str, host_head: &str, what: &str) {
    let f = |k| field(out, k).unwrap_or("");
    assert!(
        f("VDB") == RO_MARKER
            && f("RO_B") == "1"
            && !f("WRITE_B").is_empty()
            && f("WRITE_B") != "0"
            && host_head == RO_MARKER,
        "{what}: xvdb (mode r) is not the guest's read-only vdb, or the guest's write reached \
         it\n{out}"
    );
}

/// What domboot says about the xl vif's model.
const MODEL_NOTE: &str = "interface[0] (model e1000) is the guest's virtio-net eth0";

/// A xend domain: the kernel, 512 MiB, a vbd on the file `image` as xvda and a vif with
/// `mac` on `bridge` through xend's vif-bridge script, its tap named `vifname`.
fn sxp_cfg(kernel: &str, image: &str, mac: &str, bridge: &str, vifname: &str) -> String {
    format!(
        "(vm
  (name confnet-sxp)
  (memory 512)
  (vcpus 1)
  (on_crash destroy)
  (image (linux (kernel {kernel})))
  (device (vbd (uname file:{image}) (dev xvda) (mode w)))
  (device (vif (mac {mac}) (bridge {bridge}) (script vif-bridge) (vifname {vifname})))
)
"
    )
}

/// `domboot run --accel tcg CONFIG --exec SCRIPT` with the busybox userland (its udhcpc
/// and nc), `more` arguments after the configuration.
fn run_tcg(config: &Path, more: &[&str], script: &str) -> Output {
    Command::new(DOMBOOT)
        .args(["run", "--accel", "tcg", "--timeout", "300"])
        .arg(config)
        .arg("--modules")
        .arg(modules_dir())
        .args(more)
        .args(["--rootfs", "busybox", "--exec", script])
        .output()
        .expect("domboot runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A domain configuration `name` in `dir` for the cloud kernel, its text from
/// `text(KERNEL, IMAGE)`, whose disk IMAGE is a fresh image `image_name` that starts with
/// `marker`: the configuration's path and the image's.
fn domain(
    dir: &Path,
    name: &str,
    image_name: &str,
    marker: &str,
    text: impl FnOnce(&str, &str) -> String,
) -> (PathBuf, PathBuf) {
    let img = dir.join(image_name);
    image(&img, marker);
    let kernel = domboot_testkit::debian_kernel("cloud");
    let cfg = dir.join(name);
    let contents = text(&kernel.vmlinuz.to_string_lossy(), &img.to_string_lossy());
    std::fs::write(&cfg, contents).unwrap();
    (cfg, img)
}

/// The second sector of the image at `path` as far as the guest's write goes.
fn sector_of(path: &Path) -> String {
    let data = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&data[512..512 + GUEST_WROTE.len()]).into_owned()
}

/// (a) libvirt: the `<disk>` is vda, the `<interface type='user'>` is eth0 with the file's
/// MAC and reaches the host, and the `direct` interface is named in a warning and left out.
#[test]
fn libvirt_disk_and_user_network_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let mac = "52:54:00:cf:00:01";
    let (xml, img) = domain(
        dir.path(),
        "guest.xml",
        "libvirt.img",
        "LIBVIRT-DISK",
        |kernel, image| libvirt_xml(kernel, image, mac),
    );
    let (port, want) = serve_user_data();
    let script = disk_guest(12) + &user_net_script("10.0.2.2", port);
    let out = run_tcg(&xml, &[], &script);
    let (stdout, stderr) = text(&out);
    eprintln!("libvirt under TCG:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    check_disk(
        &stdout,
        "LIBVIRT-DISK",
        "libvirt.img",
        &sector_of(&img),
        "libvirt",
    );
    assert_eq!(field(&stdout, "MAC"), Some(mac), "{stdout}");
    assert_eq!(field(&stdout, "DHCP"), Some("0"), "{stdout}");
    assert_eq!(field(&stdout, "FETCHED"), Some(want.as_str()), "{stdout}");
    assert_eq!(nics(&stdout), 1, "one NIC, the others left out\n{stdout}");
    for w in LEFT_OUT {
        assert!(stderr.contains(w), "{w}: {stderr}");
    }
}

/// In a network namespace of its own: a bridge br0 with the host's address, and the
/// configuration `config` run with [`tap_host_script`] (the guest's part after
/// `disk_part`), with br0's ports reported as BRPORT while the guest runs. Returns the
/// report (stdout, with domboot's own stdout and stderr in it) and the shell's stderr.
fn bridged_under_tcg(dir: &Path, config: &Path, disk_part: &str) -> (String, String) {
    let guest = dir.join("guest.sh");
    std::fs::write(&guest, disk_part.to_string() + &tap_guest(OVER_BRIDGE)).unwrap();
    let run = format!(
        "{DOMBOOT} run --accel tcg --timeout 600 {} --modules {} --rootfs busybox",
        config.display(),
        modules_dir().display()
    );
    // /sys/class/net shows the namespace that mounted /sys, not this one: ask ip.
    let ports = "ip -o link show master br0 | cut -d: -f2 | cut -d@ -f1 | tr -d ' '";
    let script = format!(
        "ip link set lo up; ip link add br0 type bridge; ip addr add 10.9.0.1/24 dev br0; \
         ip link set br0 up; {}{}; kill $(jobs -p) 2>/dev/null; true",
        report_ports(ports),
        tap_host_script(
            &run,
            None,
            &guest.to_string_lossy(),
            &dir.to_string_lossy(),
            "busybox nc",
            OVER_BRIDGE
        )
    );
    in_network_namespace(&script)
}

/// Shell, in the background (ends with `& `: follow it with a command): waits for br0 to have a port (the tap domboot or QEMU made)
/// and prints BRPORT with the port's name (`ports` lists them).
fn report_ports(ports: &str) -> String {
    format!(
        "(i=0; while [ -z \"$({ports})\" ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done; \
          echo \"BRPORT $({ports})\") & "
    )
}

/// (b) xl: `disk=` is vda, the `vif=` a tap domboot names and puts on br0, the NIC has the
/// file's MAC and data crosses the bridge both ways.
#[test]
fn xl_disk_and_bridged_vif_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("xl-ro.img");
    image(&ro, RO_MARKER);
    let ro_disk = format!("file:{}", ro.display());
    let mac = "00:16:3e:5a:00:01";
    let (cfg, img) = domain(dir.path(), "guest.cfg", "xl.img", "XL-DISK", |k, i| {
        xl_cfg(k, i, Some(&ro_disk), mac, "br0")
    });
    let (out, stderr) = bridged_under_tcg(dir.path(), &cfg, &(disk_guest(7) + &ro_disk_guest()));
    eprintln!("xl under TCG:\n{out}\n{stderr}");
    check_tap(&out, mac, OVER_BRIDGE, "xl vif on br0 under TCG");
    check_disk(&out, "XL-DISK", "xl.img", &sector_of(&img), "xl");
    let head = std::fs::read(&ro).unwrap();
    check_ro_disk(
        &out,
        &String::from_utf8_lossy(&head[..RO_MARKER.len()]),
        "xl",
    );
    assert_eq!(head, image_bytes(RO_MARKER), "xl-ro.img changed\n{out}");
    assert!(
        field(&out, "BRPORT").is_some_and(|p| p.starts_with("dbtap")),
        "br0's port is the tap domboot named\n{out}"
    );
    assert_eq!(nics(&out), 1, "{out}");
    assert!(out.contains(MODEL_NOTE), "{out}");
}

/// (c) xend: `(device (vbd ...))` is vda, `(device (vif ...))` a tap named as its
/// `vifname` on br0 (xend's vif-bridge script is what domboot does itself: no warning).
#[test]
fn xend_vbd_and_bridged_vif_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:16:3e:5a:00:02";
    let (cfg, img) = domain(dir.path(), "guest.sxp", "xend.img", "XEND-DISK", |k, i| {
        sxp_cfg(k, i, mac, "br0", "dbsxp0")
    });
    let (out, stderr) = bridged_under_tcg(dir.path(), &cfg, &disk_guest(9));
    eprintln!("xend under TCG:\n{out}\n{stderr}");
    check_tap(&out, mac, OVER_BRIDGE, "xend vif on br0 under TCG");
    check_disk(&out, "XEND-DISK", "xend.img", &sector_of(&img), "xend");
    assert_eq!(field(&out, "BRPORT"), Some("dbsxp0"), "{out}");
    // domboot's stderr is in the report (tap_host_script collects it).
    assert!(!out.contains("domboot: warning"), "{out}");
}

/// An xl configuration whose vif names a bridge no host has, and its disk: what (d) runs.
fn config_with_missing_bridge(dir: &Path) -> (PathBuf, PathBuf) {
    domain(dir, "guest.cfg", "over.img", "OVERRIDE-DISK", |k, i| {
        xl_cfg(k, i, None, CONFIG_MAC, MISSING_BRIDGE)
    })
}

/// A bridge name no host here has: the configuration's vif is attached (and fails before
/// the guest starts) unless `--net` replaces it.
const MISSING_BRIDGE: &str = "dbnobr9";
const CONFIG_MAC: &str = "00:16:3e:5a:00:03";

/// (d) `--net none` replaces the configuration's vif: the guest has its disk and no NIC.
/// Without it, the vif's missing bridge stops the run before the guest starts, naming it.
#[test]
fn net_none_replaces_a_configurations_vif_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, img) = config_with_missing_bridge(dir.path());
    let out = run_tcg(&cfg, &[], "true");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("no bridge {MISSING_BRIDGE}")),
        "the missing bridge is named: {stderr}"
    );
    let out = run_tcg(&cfg, &["--net", "none"], &disk_guest(13));
    let (stdout, stderr) = text(&out);
    eprintln!("--net none under TCG:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    check_disk(
        &stdout,
        "OVERRIDE-DISK",
        "over.img",
        &sector_of(&img),
        "--net none",
    );
    assert_eq!(nics(&stdout), 0, "--net none: no NIC\n{stdout}");
    assert!(
        !stderr.contains(MODEL_NOTE),
        "nothing is said about the file's replaced vif: {stderr}"
    );
    assert!(
        field(&stdout, "VIRTIO").is_some_and(|v| v.contains("0x0002")),
        "{stdout}"
    );
}

/// (d) `--net user` replaces the configuration's vif: the guest's one NIC is on the user
/// network (DHCP, the host's server reached), with a MAC of domboot's, not the file's.
#[test]
fn net_user_replaces_a_configurations_vif_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _img) = config_with_missing_bridge(dir.path());
    let (port, want) = serve_user_data();
    let script = disk_guest(13) + &user_net_script("10.0.2.2", port);
    let out = run_tcg(&cfg, &["--net", "user"], &script);
    let (stdout, stderr) = text(&out);
    eprintln!("--net user under TCG:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert_eq!(nics(&stdout), 1, "{stdout}");
    assert_eq!(field(&stdout, "DHCP"), Some("0"), "{stdout}");
    assert_eq!(field(&stdout, "FETCHED"), Some(want.as_str()), "{stdout}");
    let mac = field(&stdout, "MAC").unwrap_or("");
    assert!(
        mac.starts_with("52:54:00:") && mac != CONFIG_MAC,
        "the NIC is --net's, not the file's: {mac}\n{stdout}"
    );
    assert!(!stderr.contains(MODEL_NOTE), "{stderr}");
}

/// The libvirt and xl configurations on domboot's KVM backend, in one outer boot: the
/// libvirt domain's disk and user network (passt), the xl domain's disks (a file, and a
/// block device read-only: `phy:` on a loop device) and its vif on a bridge the outer
/// guest makes.
#[test]
fn configurations_on_the_kvm_backend() {
    let mut bench = Bench::new(Path::new(DOMBOOT));
    let kernel = bench.file(&domboot_testkit::debian_kernel("cloud").vmlinuz);
    let modules = bench_modules(&mut bench);
    bench_networks(&mut bench);
    for m in [
        "kernel/net/llc/llc.ko",
        "kernel/net/802/stp.ko",
        "kernel/net/bridge/bridge.ko",
    ] {
        bench.module(m);
    }
    let run = format!("domboot run --accel kvm --timeout 240 --modules {modules} --rootfs busybox");

    let lv_mac = "52:54:00:cf:00:11";
    let xml = bench.bytes(
        "/bench/guest.xml",
        libvirt_xml(&kernel, "/tmp/libvirt.img", lv_mac).as_bytes(),
    );
    bench.bytes("/bench/user-data", &user_data());
    let lv_guest = bench.bytes(
        "/bench/libvirt.sh",
        (disk_guest(12) + &user_net_script("10.0.2.2", 7003)).as_bytes(),
    );
    bench.check(
        "libvirt-user",
        &format!(
            "{make}; nc -l -p 7003 < /bench/user-data >/dev/null & \
             {run} {xml} --exec \"$(cat {lv_guest})\"; echo \"RC $?\"; {sector}; \
             kill $(jobs -p) 2>/dev/null; true",
            make = image_shell("/tmp/libvirt.img", "LIBVIRT-DISK"),
            sector = host_sector("/tmp/libvirt.img"),
        ),
    );

    let xl_mac = "00:16:3e:5a:00:11";
    let cfg = bench.bytes(
        "/bench/guest.cfg",
        xl_cfg(
            &kernel,
            "/tmp/xl.img",
            Some("phy:/dev/loop0"),
            xl_mac,
            "br0",
        )
        .as_bytes(),
    );
    let xl_guest = bench.bytes(
        "/bench/xl.sh",
        (disk_guest(7) + &ro_disk_guest() + &tap_guest(OVER_BRIDGE)).as_bytes(),
    );
    // The read-only disk is a block device (`phy:`): a loop device on /tmp/xl-ro.img.
    bench.module("kernel/drivers/block/loop.ko");
    bench.check(
        "xl-bridge",
        &format!(
            "{make}; {make_ro}; losetup /dev/loop0 /tmp/xl-ro.img; \
             ip link add br0 type bridge; ip addr add 10.9.0.1/24 dev br0; \
             ip link set br0 up; {ports}{exchange}; {sector}; \
             echo \"HOST_RO $(head -c {ro_len} /tmp/xl-ro.img)\"; \
             kill $(jobs -p) 2>/dev/null; true",
            make = image_shell("/tmp/xl.img", "XL-DISK"),
            make_ro = image_shell("/tmp/xl-ro.img", RO_MARKER),
            ro_len = RO_MARKER.len(),
            ports = report_ports("ls /sys/class/net/br0/brif"),
            exchange = tap_host_script(
                &format!("{run} {cfg}"),
                None,
                &xl_guest,
                "/tmp",
                "nc",
                OVER_BRIDGE
            ),
            sector = host_sector("/tmp/xl.img"),
        ),
    );
    bench.set_timeouts(Duration::from_secs(400));
    bench.retry_inner_faults(&[domboot_testkit::nested::RESET_TRIPLE_FAULT]);
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));

    let r = shown(&run, "libvirt-user", "libvirt on KVM");
    let out = r.stdout.as_str();
    let want = domboot_testkit::sha256_hex(&user_data());
    assert_eq!(field(out, "RC"), Some("0"), "{}", r.output());
    check_disk(
        out,
        "LIBVIRT-DISK",
        "libvirt.img",
        field(out, "HOST_SECTOR").unwrap_or(""),
        "libvirt on KVM",
    );
    assert_eq!(field(out, "MAC"), Some(lv_mac), "{}", r.output());
    assert_eq!(field(out, "DHCP"), Some("0"), "{}", r.output());
    assert_eq!(field(out, "FETCHED"), Some(want.as_str()), "{}", r.output());
    assert_eq!(nics(out), 1, "{}", r.output());
    for w in LEFT_OUT {
        assert!(r.stderr.contains(w), "{w}\n{}", r.output());
    }

    let r = shown(&run, "xl-bridge", "xl on KVM");
    let out = r.stdout.as_str();
    check_tap(out, xl_mac, OVER_BRIDGE, "xl vif on br0 on KVM");
    check_disk(
        out,
        "XL-DISK",
        "xl.img",
        field(out, "HOST_SECTOR").unwrap_or(""),
        "xl on KVM",
    );
    check_ro_disk(out, field(out, "HOST_RO").unwrap_or(""), "xl on KVM (phy:)");
    assert!(
        field(out, "BRPORT").is_some_and(|p| p.starts_with("dbtap")),
        "br0's port is the tap domboot named\n{}",
        r.output()
    );
    assert_eq!(nics(out), 1, "{}", r.output());
}
