//! Real Linux on domboot's own KVM backend, inside the nested bench (see
//! `domboot_testkit::nested`): Debian's cloud kernel and the tiny kernels through every
//! boot protocol, SMP, memory sizes, console in and out, every way a run ends, and
//! `run --exec`, and a kernel booted from a disk image's grub.cfg — all in one outer boot,
//! each check asserting what the inner guest itself reported.

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;
#[path = "nested_kvm/rootfs.rs"]
mod rootfs;

use domboot_testkit::nested::{Bench, BenchRun, CheckResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");

/// The inner guests' /init: reports what the guest sees, then does what `bench=` on its
/// command line asks (poweroff by default).
const INNER_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys 2>/dev/null
$B mount -t devtmpfs dev /dev 2>/dev/null
# Only emergencies (the panic check's lines) on the console from here: a kernel warning
# such as "hrtimer: interrupt took ..." must not land inside a report line.
echo 1 > /proc/sys/kernel/printk
A=poweroff
for w in $($B cat /proc/cmdline); do
    case $w in bench=*) A=${w#bench=} ;; esac
done
ram=0
for d in /sys/firmware/memmap/*; do
    [ "$($B cat $d/type 2>/dev/null)" = "System RAM" ] || continue
    ram=$((ram + $($B cat $d/end) - $($B cat $d/start) + 1))
done
echo
echo "MARKER $($B cat /marker)"
echo "CMDLINE $($B cat /proc/cmdline)"
echo "SUM $($B sha256sum /payload | $B cut -d' ' -f1)"
echo "NPROC $($B nproc)"
echo "RAM $ram"
echo "DATE $($B date +%s)"
echo "UNAME $($B uname -m)"
echo "TSCDL $($B grep -c tsc_deadline_timer /proc/cpuinfo)"
echo "CPUNAME $($B sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | $B head -n 1)"
case $A in
    reboot) $B reboot -f ;;
    panic) echo c > /proc/sysrq-trigger ;;
    read) echo READY; read line; echo "GOT $line"; $B poweroff -f ;;
    hang) while :; do $B sleep 100; done ;;
    dmesg) $B dmesg | $B sed 's/^/DMESG /'; $B reboot -f ;;
    *) $B poweroff -f ;;
esac
echo STILL-RUNNING
"#;

struct Fixture {
    dir: PathBuf,
    marker: String,
    payload_sum: String,
    rd64: String,
    rd32: String,
    cloud: String,
    cloud_elf: String,
}

fn fixture(bench: &mut Bench) -> Fixture {
    let dir = domboot_testkit::nested::tempdir("nested-kvm-test").expect("temp dir");
    let marker = domboot_testkit::marker();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let payload_sum = domboot_testkit::sha256_hex(&payload);
    let files: &[(&str, &[u8])] = &[("payload", &payload), ("marker", marker.as_bytes())];
    let make = |name: &str, busybox: &Path| {
        domboot_testkit::busybox_initramfs(&dir, busybox, name, INNER_INIT, files)
    };
    let rd64 = make("x86_64", &domboot_testkit::busybox());
    let rd32 = make("i386", &domboot_testkit::busybox_i386());
    let kernel = domboot_testkit::debian_kernel("cloud");
    let elf = dir.join("cloud-vmlinux");
    let out = Command::new(DOMBOOT)
        .arg("extract")
        .arg(&kernel.vmlinuz)
        .arg("-o")
        .arg(&elf)
        .output()
        .expect("domboot extract runs");
    assert!(out.status.success(), "extract: {out:?}");
    Fixture {
        rd64: bench.file(&rd64),
        rd32: bench.file(&rd32),
        cloud: bench.file(&kernel.vmlinuz),
        cloud_elf: bench.file(&elf),
        dir,
        marker,
        payload_sum,
    }
}

/// `domboot run --accel kvm` with the x86_64 initramfs and a command line asking for
/// `action`.
fn run_line(kernel: &str, rd: &str, action: &str, extra: &str) -> String {
    format!(
        "domboot run --accel kvm --kernel {kernel} --initrd {rd} --timeout 120 \
         --cmdline 'console=ttyS0 panic=-1 bench={action}' {extra}",
    )
}

/// The value after `KEY ` on the guest's report line (a line of its own: the kernel's
/// log also says "RAM " and "DATE ").
fn field<'a>(r: &'a CheckResult, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    r.stdout.lines().find_map(|l| {
        let l = l.trim_end_matches('\r');
        l.strip_prefix(&tag).map(str::trim)
    })
}

/// Collects failures instead of stopping at the first, so one outer boot reports all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// A guest that booted: status 0, our marker, our payload, our command line.
fn booted(fails: &mut Failures, run: &BenchRun, f: &Fixture, name: &str) -> Option<CheckResult> {
    let Some(r) = run.result(name) else {
        fails.0.push(format!("{name}: no result"));
        return None;
    };
    let ok = r.status == Some(0)
        && field(r, "MARKER") == Some(f.marker.as_str())
        && field(r, "SUM") == Some(f.payload_sum.as_str())
        && field(r, "CMDLINE").is_some_and(|c| c.contains("bench="));
    fails.check(ok, || {
        format!("{name}: did not boot and report\n{}", r.output())
    });
    Some(r.clone())
}

/// System RAM in the plan `domboot plan` makes for these arguments (what the guest's
/// /sys/firmware/memmap must add up to).
fn plan_ram(kernel: &Path, memory: &str) -> u64 {
    let out = Command::new(DOMBOOT)
        .arg("plan")
        .arg("--kernel")
        .arg(kernel)
        .args(["--memory", memory, "--json"])
        .output()
        .expect("domboot plan runs");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    plan["e820"]
        .as_array()
        .expect("e820")
        .iter()
        .filter(|e| e["type"] == "ram")
        .map(|e| e["size"].as_u64().unwrap_or(0))
        .sum()
}

/// The whole matrix in one outer boot (plus one more for any check the bench retries: an
/// outer guest that hung or died, or an inner run that shows one of the bench's own faults,
/// [`domboot_testkit::nested::INNER_FAULTS`]; both are listed at the end). Run it alone with
/// `cargo test -p domboot --test nested_kvm -- --nocapture`.
#[test]
fn real_linux_on_the_kvm_backend() {
    let mut bench = Bench::new(Path::new(DOMBOOT));
    let f = fixture(&mut bench);
    let (cloud, rd64, rd32) = (f.cloud.clone(), f.rd64.clone(), f.rd32.clone());

    // Boot protocols.
    for proto in ["linux64", "linux32"] {
        let line = run_line(&cloud, &rd64, "poweroff", "--memory 512M");
        bench.check(
            &format!("cloud-{proto}"),
            &format!("{line} --boot-protocol {proto}"),
        );
    }
    let line = run_line(&f.cloud_elf, &rd64, "poweroff", "--memory 512M");
    bench.check("cloud-pvh-elf", &format!("{line} --boot-protocol pvh"));

    // The tiny kernels: no ACPI, so they end with reboot -f (a reset ends the run).
    let mut tiny = BTreeMap::new();
    for (name, _, is64, relocatable, _) in domboot_testkit::TINY_KERNELS {
        let k = bench.file(&domboot_testkit::shared_kernel(&format!("bzImage-{name}")));
        tiny.insert(*name, k.clone());
        let rd = if *is64 { &rd64 } else { &rd32 };
        let line = run_line(&k, rd, "reboot", "--memory 256M");
        bench.check(&format!("tiny-{name}"), &line);
        if !relocatable && *is64 {
            bench.check(
                &format!("tiny-{name}-hook"),
                &format!("{line} --load-address 0x2000000"),
            );
        }
    }

    // --accel auto picks KVM where KVM is real (and TCG on this PVM host: run_accel.rs).
    let line = run_line(
        &tiny["x64-pvh-gzip"],
        &rd64,
        "reboot",
        "--memory 256M --verbose",
    );
    bench.check("accel-auto", &line.replace("--accel kvm", "--accel auto"));

    // SMP and memory sizes.
    for cpus in [1, 2, 4, 8] {
        let line = run_line(&cloud, &rd64, "poweroff", "--memory 512M");
        bench.check(&format!("smp-{cpus}"), &format!("{line} --cpus {cpus}"));
    }
    let sizes = ["128M", "1G", "3500M", "5G"];
    for mem in sizes {
        let line = run_line(&cloud, &rd64, "poweroff", &format!("--memory {mem}"));
        bench.check(&format!("mem-{mem}"), &line);
    }

    // Console input: a line on domboot's stdin reaches the guest's console.
    let line = run_line(&cloud, &rd64, "read", "--memory 512M");
    bench.check("console-in", &line).stdin = Some(b"hello-from-the-host\n".to_vec());

    // The platform as the kernel sees it: its log, and its clock.
    // The outer guest's CPU name first: the inner guest should see the same.
    let host_cpu =
        "echo \"HOSTCPU $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)\"; ";
    let line = run_line(&cloud, &rd64, "dmesg", "--memory 512M");
    bench.check("platform-log", &format!("{host_cpu}{line}"));
    let line = run_line(&tiny["x64-pvh-gzip"], &rd64, "dmesg", "--memory 256M");
    bench.check("platform-log-tiny", &format!("{host_cpu}{line}"));

    // How runs end.
    let line = run_line(&cloud, &rd64, "reboot", "--memory 512M");
    bench.check("end-reboot", &line);
    let line = run_line(&cloud, &rd64, "panic", "--memory 512M");
    bench.check("end-panic", &line);
    let no_init = bench.file(&domboot_testkit::no_init_initramfs(&f.dir));
    bench.check(
        "end-no-init",
        &run_line(&cloud, &no_init, "poweroff", "--memory 512M"),
    );
    let hang = run_line(&cloud, &rd64, "hang", "--memory 512M");
    bench.check(
        "end-timeout",
        &hang.replace("--timeout 120", "--timeout 20"),
    );
    bench.check(
        "end-sigterm",
        &format!("{hang} & pid=$!; sleep 15; kill -TERM $pid; wait $pid; echo \"rc=$?\""),
    );

    // A kernel option that turns the IOAPIC off: domboot warns on its ACPI platform, and
    // the guest works with --no-acpi (the MP table and 8259s), as the warning says.
    let line = run_line(&cloud, &rd64, "reboot noapic", "--memory 512M");
    bench.check("noapic-warns", &line);
    bench.check("noapic-no-acpi", &format!("{line} --no-acpi"));

    let exec = exec_checks(&mut bench, &cloud, &tiny["i386-norelo-xz"]);
    let host_rootfs = rootfs::checks(&mut bench, &cloud, &cloud_modules());
    disk_entry_checks(&mut bench, &f);

    // One inner boot takes 6-40 s here (120 s is each run's own --timeout); a check the outer
    // guest has not finished 180 s (+ the bench's grace) after it started is counted as a
    // hang of the bench and retried in a fresh outer boot. The --exec statuses check boots
    // three times.
    bench.set_timeouts(std::time::Duration::from_secs(180));
    bench.retry_inner_faults(domboot_testkit::nested::INNER_FAULTS);
    bench.set_timeout("exec-status", std::time::Duration::from_secs(400));
    let started = now();
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    let clock = (started - 5, now() + 5);
    let mut fails = Failures::default();
    for name in ["cloud-linux64", "cloud-linux32", "cloud-pvh-elf"] {
        booted(&mut fails, &run, &f, name);
    }
    for (name, _, is64, relocatable, _) in domboot_testkit::TINY_KERNELS {
        if let Some(r) = booted(&mut fails, &run, &f, &format!("tiny-{name}")) {
            let arch = if *is64 { "x86_64" } else { "i686" };
            fails.check(field(&r, "UNAME") == Some(arch), || {
                format!("tiny-{name}: uname -m is not {arch}\n{}", r.output())
            });
        }
        if !relocatable && *is64 {
            booted(&mut fails, &run, &f, &format!("tiny-{name}-hook"));
        }
    }
    if let Some(r) = booted(&mut fails, &run, &f, "accel-auto") {
        fails.check(r.stderr.contains("accelerator Kvm"), || {
            format!("accel-auto: did not pick KVM\n{}", r.output())
        });
    }
    for cpus in [1, 2, 4, 8] {
        if let Some(r) = booted(&mut fails, &run, &f, &format!("smp-{cpus}")) {
            fails.check(field(&r, "NPROC") == Some(&cpus.to_string()), || {
                format!("smp-{cpus}: nproc\n{}", r.output())
            });
        }
    }
    for mem in sizes {
        if let Some(r) = booted(&mut fails, &run, &f, &format!("mem-{mem}")) {
            let want = plan_ram(Path::new(&f.cloud), mem);
            fails.check(field(&r, "RAM") == Some(&want.to_string()), || {
                format!(
                    "mem-{mem}: guest RAM is not the plan's {want}\n{}",
                    r.output()
                )
            });
        }
    }
    if let Some(r) = booted(&mut fails, &run, &f, "console-in") {
        fails.check(field(&r, "GOT") == Some("hello-from-the-host"), || {
            format!("console-in: the line did not arrive whole\n{}", r.output())
        });
    }
    booted(&mut fails, &run, &f, "end-reboot");
    for name in ["platform-log", "platform-log-tiny"] {
        if let Some(r) = booted(&mut fails, &run, &f, name) {
            platform_log(&mut fails, &r);
        }
    }
    for name in ["platform-log", "tiny-x64-pvh-gzip", "tiny-i386-norelo-xz"] {
        if let Some(r) = run.result(name) {
            let date: Option<i64> = field(r, "DATE").and_then(|d| d.parse().ok());
            fails.check(date.is_some_and(|d| d >= clock.0 && d <= clock.1), || {
                format!(
                    "{name}: the guest's date {date:?} is not the host's {clock:?}\n{}",
                    r.output()
                )
            });
        }
    }
    ends(&mut fails, &run);
    const NOAPIC_WARNING: &str = "`noapic` on the kernel command line";
    if let Some(r) = run.result("noapic-warns") {
        fails.check(
            r.status == Some(0) && r.stderr.contains(NOAPIC_WARNING),
            || format!("noapic-warns: no warning, or not status 0\n{}", r.output()),
        );
    }
    if let Some(r) = booted(&mut fails, &run, &f, "noapic-no-acpi") {
        fails.check(!r.stderr.contains(NOAPIC_WARNING), || {
            format!("noapic-no-acpi: warned although --no-acpi\n{}", r.output())
        });
    }
    exec_results(&mut fails, &run, &exec);
    rootfs::results(&mut fails, &run, &host_rootfs);
    rootfs::user_results(&mut fails, &run, &host_rootfs);
    disk_entry_results(&mut fails, &run, &f);
    let _ = std::fs::remove_dir_all(&f.dir);
    eprintln!(
        "nested bench: {} checks in {:.1} s; the outer guest hung or died (and was rebooted) during: {:?}",
        run.results.len(),
        run.elapsed.as_secs_f64(),
        run.hung
    );
    for r in &run.retried {
        eprintln!(
            "  retried after a fault of the bench: {} (status {:?})\n{}",
            r.name,
            r.status,
            r.output()
        );
    }
    for r in &run.results {
        eprintln!(
            "  {:<24} status {:>4}  {:>7.2} s",
            r.name,
            r.status.map_or("?".into(), |s| s.to_string()),
            r.elapsed.as_secs_f64()
        );
    }
    assert!(fails.0.is_empty(), "{}", fails.0.join("\n\n"));
}

/// A GPT disk (sgdisk, mkfs.ext4 -d) whose grub.cfg offers Debian's cloud kernel with the
/// matrix's initramfs twice, "first" (the default) and "second", each saying which it is
/// on its command line; booted from the disk, with the disk attached (issue 12 on KVM).
fn disk_entry_checks(bench: &mut Bench, f: &Fixture) {
    let ver = "6.1.0-57-cloud-amd64";
    let entry = |name: &str| {
        format!(
            "menuentry '{name}' {{\n\tlinux /boot/vmlinuz-$ver console=ttyS0 panic=-1 \
             bench=poweroff domboot.entry={name}\n\tinitrd /boot/initrd.img-$ver\n}}\n"
        )
    };
    let grub = format!(
        "set default=0\nset ver={ver}\n{}{}",
        entry("first"),
        entry("second")
    );
    let tree = images::Tree::new()
        .text("/boot/grub/grub.cfg", &grub)
        .copy(&format!("/boot/vmlinuz-{ver}"), &images::kernel())
        .copy(
            &format!("/boot/initrd.img-{ver}"),
            &f.dir.join("initramfs-x86_64.cpio.gz"),
        );
    let root = images::ext4(&f.dir, "root", &tree, 40);
    let disk = bench.file(&images::gpt_disk(
        &f.dir,
        "boot",
        &[(Some(&root), "8300", "root")],
    ));
    let run =
        format!("domboot run --accel kvm --memory 512M --timeout 120 --disk {disk} --bootloader");
    bench.check("disk-entry-default", &run);
    bench.check("disk-entry-second", &format!("{run} --boot-entry second"));
}

fn disk_entry_results(fails: &mut Failures, run: &BenchRun, f: &Fixture) {
    for (name, entry) in [
        ("disk-entry-default", "first"),
        ("disk-entry-second", "second"),
    ] {
        if let Some(r) = booted(fails, run, f, name) {
            let want = format!("domboot.entry={entry}");
            fails.check(
                field(&r, "CMDLINE").is_some_and(|c| c.split(' ').any(|w| w == want)),
                || format!("{name}: not the {entry} entry\n{}", r.output()),
            );
        }
    }
}

/// What the `run --exec` checks expect.
struct ExecExpect {
    bytes_sum: String,
    bytes_len: usize,
}

/// The same `run --exec` tests as under TCG (crates/cli/tests/exec.rs, exec_io.rs,
/// run_defaults.rs), on KVM: statuses, byte-exact output, a module with its dependency,
/// output that streams, a panic, an i386 kernel, a bare `--memory 512` and `--json`.
fn exec_checks(bench: &mut Bench, cloud: &str, i386: &str) -> ExecExpect {
    let exec = format!("domboot run --accel kvm --kernel {cloud} --timeout 120");
    // Each line of the command's output stamped with the outer guest's clock as it arrives.
    bench.check(
        "exec-stream",
        &format!(
            "{exec} --exec 'echo early; sleep 5; echo late' | while read l; do \
             echo \"AT $(cut -d' ' -f1 /proc/uptime) $l\"; done; \
             echo \"END $(cut -d' ' -f1 /proc/uptime)\""
        ),
    );
    bench.check(
        "exec-panic",
        &format!("{exec} --exec 'echo c > /proc/sysrq-trigger'"),
    );
    bench.check(
        "exec-memory-json",
        &format!("{exec} --memory 512 --json --exec 'grep MemTotal /proc/meminfo'"),
    );
    // The i386 busybox is looked up in domboot's cache, which the bench carries in at the
    // host's path.
    let busybox = domboot_testkit::busybox_i386();
    bench.file(&busybox);
    bench.check(
        "exec-i386",
        &format!(
            "DOMBOOT_CACHE={} domboot run --accel kvm --kernel {i386} --timeout 120 \
             --exec 'uname -m'",
            domboot_testkit::cache_dir().display()
        ),
    );
    bench.check(
        "exec-status",
        &format!(
            "for c in true false 'exit 42'; do {exec} --exec \"$c\" > /tmp/o; \
             echo \"rc=$? bytes=$(wc -c < /tmp/o)\"; done"
        ),
    );
    // stdin (its end included) and stderr on ports of their own, as under TCG.
    bench.check(
        "exec-io",
        &format!(
            "printf 'a\\nb\\n' | {exec} --exec 'wc -l; echo to-stderr >&2; exit 7' \
             > /tmp/o 2> /tmp/e; echo \"rc=$?\"; echo \"OUT $(cat /tmp/o)\"; \
             echo \"ERR $(grep -c to-stderr /tmp/e)\""
        ),
    );
    // Every byte value, a 20 000-character line, and no newline at the end.
    let cmd = "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done; \
               head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'end without newline'";
    bench.bytes("/bench/exec-bytes.sh", cmd.as_bytes());
    bench.check(
        "exec-bytes",
        &format!(
            "{exec} --exec \"$(cat /bench/exec-bytes.sh)\" > /tmp/o; echo \"rc=$?\"; \
             echo \"SUM $(sha256sum < /tmp/o | cut -d' ' -f1)\"; echo \"LEN $(wc -c < /tmp/o)\""
        ),
    );
    let modules = cloud_modules();
    for m in ["kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko"] {
        bench.file(&modules.join(m));
    }
    bench.check(
        "exec-module",
        &format!(
            "{exec} --modules {} --module vfat --exec lsmod",
            modules.display()
        ),
    );
    let mut expect: Vec<u8> = (0..=255u8).collect();
    expect.extend(std::iter::repeat_n(b'x', 20000));
    expect.push(b'\n');
    expect.extend_from_slice(b"end without newline");
    ExecExpect {
        bytes_sum: domboot_testkit::sha256_hex(&expect),
        bytes_len: expect.len(),
    }
}

/// The cloud kernel's modules tree (its real path, which the outer guest gets).
fn cloud_modules() -> PathBuf {
    std::fs::canonicalize(
        domboot_testkit::debian_kernel("cloud")
            .vmlinuz
            .parent()
            .expect("cache folder")
            .join("modules"),
    )
    .expect("the cloud kernel's modules tree")
}

fn exec_results(fails: &mut Failures, run: &BenchRun, want: &ExecExpect) {
    if let Some(r) = run.result("exec-status") {
        let got: Vec<&str> = r.stdout.lines().collect();
        fails.check(
            got == ["rc=0 bytes=0", "rc=1 bytes=0", "rc=42 bytes=0"],
            || format!("exec-status: statuses\n{}", r.output()),
        );
    }
    if let Some(r) = run.result("exec-io") {
        fails.check(
            r.stdout.contains("rc=7")
                && field(r, "OUT") == Some("2")
                && field(r, "ERR") == Some("1"),
            || format!("exec-io: stdin, stdout, stderr\n{}", r.output()),
        );
    }
    if let Some(r) = run.result("exec-bytes") {
        fails.check(
            r.stdout.contains("rc=0")
                && field(r, "SUM") == Some(want.bytes_sum.as_str())
                && field(r, "LEN") == Some(&want.bytes_len.to_string()),
            || format!("exec-bytes: output not byte-exact\n{}", r.output()),
        );
    }
    exec_failure_results(fails, run);
    if let Some(r) = run.result("exec-module") {
        fails.check(
            r.status == Some(0)
                && r.stdout.lines().any(|l| l.starts_with("vfat "))
                && r.stdout.lines().any(|l| l.starts_with("fat ")),
            || format!("exec-module: vfat and fat not loaded\n{}", r.output()),
        );
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What Linux says when the platform it finds is incomplete or wrong; each was seen on
/// domboot before the device or table that silences it existed.
const COMPLAINTS: &[&str] = &[
    "i8042: Can't read CTR",
    "i8042: Failed",
    "atkbd",
    "APIC timer disabled",
    "Unable to read current time from RTC",
    "PCI: Fatal",
    "probe of rtc_cmos failed",
    "Firmware Bug",
    "ACPI Error",
    "ACPI BIOS Error",
    "ACPI Warning",
    "Unknown NMI",
    "BUG:",
];

/// The guest's kernel log has none of [`COMPLAINTS`]. One warning is the bench's own and
/// is allowed: under QEMU TCG's emulated SVM, CPUID leaf 0xD reports an XSAVE size for
/// features the nested guest cannot enable ("XSAVE consistency problem"); QEMU with
/// `-accel kvm -cpu host` in the same outer guest prints the same.
///
/// A kernel with ACPI is told there is no i8042 and does not probe it; one without (the
/// tiny kernels) probes it and must get its answers at once.
fn platform_log(fails: &mut Failures, r: &CheckResult) {
    let name = &r.name;
    let log: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("DMESG "))
        .collect();
    fails.check(log.len() > 20, || {
        format!("{name}: no kernel log\n{}", r.output())
    });
    // CPUID offers the LAPIC's TSC-deadline mode, so no kernel calibrates the LAPIC timer
    // against the PIT (which failed on loaded hosts: "APIC timer disabled").
    fails.check(field(r, "TSCDL").is_some_and(|n| n != "0"), || {
        format!(
            "{name}: no tsc_deadline_timer in /proc/cpuinfo\n{}",
            r.output()
        )
    });
    // CPUID names the host's processor, as QEMU's `-cpu host` does (KVM's template leaves
    // the name out, and Linux then took one from its family table: "AMD Hammer").
    let (guest_cpu, host_cpu) = (field(r, "CPUNAME"), field(r, "HOSTCPU"));
    fails.check(
        guest_cpu.is_some_and(|n| !n.is_empty()) && guest_cpu == host_cpu,
        || format!("{name}: the guest's CPU is {guest_cpu:?}, the host's {host_cpu:?}"),
    );
    for c in COMPLAINTS {
        if let Some(l) = log.iter().find(|l| l.contains(c)) {
            fails.0.push(format!("{name}: the kernel complains: {l}"));
        }
    }
}

/// Streaming, panic, i386, `--memory 512` and `--json` under `--exec` (issue 16's proof).
fn exec_failure_results(fails: &mut Failures, run: &BenchRun) {
    if let Some(r) = run.result("exec-stream") {
        let at = |what: &str| -> Option<f64> {
            r.stdout.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                let (tag, t) = (w.next()?, w.next()?.parse().ok()?);
                let rest: Vec<&str> = w.collect();
                (tag == what && (what == "END" || rest == ["early"])).then_some(t)
            })
        };
        let (early, end) = (at("AT"), at("END"));
        fails.check(
            matches!((early, end), (Some(e), Some(x)) if x - e >= 3.0)
                && r.stdout.contains(" late"),
            || {
                format!(
                    "exec-stream: the line before `sleep 5` did not arrive 3 s before the end \
                     ({early:?}, {end:?})\n{}",
                    r.output()
                )
            },
        );
    }
    if let Some(r) = run.result("exec-panic") {
        fails.check(
            r.status == Some(i32::from(domboot_vmm::EXIT_GUEST_PANIC))
                && r.stderr.contains("Kernel panic - not syncing"),
            || {
                format!(
                    "exec-panic: not the panic status with its line\n{}",
                    r.output()
                )
            },
        );
    }
    if let Some(r) = run.result("exec-memory-json") {
        let kib: Option<u64> = r
            .stdout
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok());
        let json: Option<serde_json::Value> = r
            .stderr
            .lines()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        fails.check(
            r.status == Some(0)
                && kib.is_some_and(|k| (400 * 1024..=512 * 1024).contains(&k))
                && json.as_ref().is_some_and(|j| {
                    j["status"] == 0 && j["boot_ms"].is_u64() && j["command_ms"].is_u64()
                }),
            || {
                format!(
                    "exec-memory-json: MemTotal {kib:?} KiB is not 400-512 MiB, or no JSON \
                     {json:?}\n{}",
                    r.output()
                )
            },
        );
    }
    if let Some(r) = run.result("exec-i386") {
        fails.check(r.status == Some(0) && r.stdout.trim() == "i686", || {
            format!("exec-i386: uname -m is not i686\n{}", r.output())
        });
    }
}

/// Panic, timeout and SIGTERM each end the run with their own status.
fn ends(fails: &mut Failures, run: &BenchRun) {
    if let Some(r) = run.result("end-panic") {
        fails.check(
            r.status == Some(i32::from(domboot_vmm::EXIT_GUEST_PANIC))
                && r.stderr.contains("Kernel panic - not syncing"),
            || format!("end-panic: no panic report\n{}", r.output()),
        );
    }
    if let Some(r) = run.result("end-no-init") {
        fails.check(
            r.status == Some(120)
                && r.stderr
                    .contains("Kernel panic - not syncing: No working init found"),
            || {
                format!(
                    "end-no-init: not status 120 with the panic line\n{}",
                    r.output()
                )
            },
        );
    }
    if let Some(r) = run.result("end-timeout") {
        fails.check(r.status == Some(124), || {
            format!("end-timeout: not 124\n{}", r.output())
        });
    }
    if let Some(r) = run.result("end-sigterm") {
        fails.check(r.stdout.contains("rc=143"), || {
            format!("end-sigterm: not 143\n{}", r.output())
        });
    }
}
