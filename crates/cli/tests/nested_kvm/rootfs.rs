//! `run --exec --rootfs host` on the KVM backend (its virtio-mmio vhost-user-fs devices,
//! served by virtiofsd): in the outer guest "the host" is the outer guest's own / (its
//! initramfs), so the checks assert what only that / has: a file with this run's marker,
//! the current directory, a --rodir's file and its refusal of writes, a --rwdir write that
//! lands in the outer guest's folder, and an overlay write that does not. A second check
//! kills a virtiofsd while the command runs: the run ends at once, saying so.

use super::{Failures, field};
use domboot_testkit::nested::{Bench, BenchRun};
use std::path::Path;

/// Where the outer guest gets virtiofsd: not a place domboot looks by itself, so the other
/// `--exec` checks keep their busybox userland; this one names it in $DOMBOOT_VIRTIOFSD.
const VIRTIOFSD: &str = "/bench/virtiofsd";

/// The modules the inner guest loads for the host's / on KVM, from the cloud kernel's tree.
const MODULES: [&str; 7] = [
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/fs/fuse/fuse.ko",
    "kernel/fs/fuse/virtiofs.ko",
    "kernel/fs/overlayfs/overlay.ko",
    "modules.builtin",
];

/// What the check expects.
pub struct Expect {
    marker: String,
}

/// Adds the check `exec-rootfs-host`.
pub fn checks(bench: &mut Bench, cloud: &str, modules: &Path) -> Expect {
    let marker = domboot_testkit::marker();
    bench.program(
        &domboot_testkit::cache_dir().join("virtiofsd/bin/virtiofsd"),
        VIRTIOFSD,
    );
    for m in MODULES {
        bench.file(&modules.join(m));
    }
    bench.bytes("/bench/rootfs-marker", marker.as_bytes());
    // The command runs with the outer guest's busybox sh (its /bin/sh), in its current
    // directory; what it prints is kept in /vufs/o (the bench owns /tmp/out and /tmp/err).
    let inner = "echo \"MARKER $(cat /bench/rootfs-marker)\"; echo \"PWD $(pwd)\"; \
                 echo \"RO $(cat /vufs/ro/file)\"; \
                 if { echo x > /vufs/ro/nope; } 2>/dev/null; then echo 'ROWRITE ok'; \
                 else echo 'ROWRITE refused'; fi; \
                 echo \"rw-$(cat /bench/rootfs-marker)\" > /vufs/rw/written; \
                 echo y > /bench/overlay-write && echo 'OVERLAY ok'";
    bench.bytes("/bench/rootfs-cmd.sh", inner.as_bytes());
    bench.check(
        "exec-rootfs-host",
        &format!(
            "mkdir -p /vufs/cwd /vufs/rw /vufs/ro && \
             echo \"ro-$(cat /bench/rootfs-marker)\" > /vufs/ro/file && cd /vufs/cwd && \
             DOMBOOT_VIRTIOFSD={VIRTIOFSD} domboot run --accel kvm --kernel {cloud} \
             --modules {} --timeout 120 --rootfs host --rwdir /vufs/rw --rodir /vufs/ro \
             --exec \"$(cat /bench/rootfs-cmd.sh)\" > /vufs/o; echo \"rc=$?\"; cat /vufs/o; \
             echo \"RW $(cat /vufs/rw/written)\"; \
             if [ -e /bench/overlay-write ]; then echo 'LEAK yes'; else echo 'LEAK no'; fi; \
             echo \"LEFT $(ps | grep -c '[v]irtiofsd')\"",
            modules.display()
        ),
    );
    // The virtiofsd serving /vufs/k is killed once the command has started: the VMM sees
    // its socket close and stops the VM, instead of leaving the guest waiting on its files.
    bench.check(
        "exec-rootfs-virtiofsd-killed",
        &format!(
            "mkdir -p /vufs/k && cd /vufs/k && \
             ( DOMBOOT_VIRTIOFSD={VIRTIOFSD} domboot run --accel kvm --kernel {cloud} \
             --modules {} --timeout 120 --rootfs host --rwdir /vufs/k \
             --exec 'echo ready; sleep 1000; echo never' > /vufs/ko 2> /vufs/ke; \
             echo \"rc=$?\" > /vufs/krc ) & \
             i=0; while ! grep -q ready /vufs/ko 2>/dev/null && [ $i -lt 1200 ]; do \
             sleep 0.1; i=$((i+1)); done; t0=$(date +%s); \
             for p in $(pidof virtiofsd); do \
             grep -q /vufs/k /proc/$p/cmdline && kill -9 $p && echo \"KILLED $p\"; done; \
             wait; echo \"ELAPSED $(( $(date +%s) - t0 ))\"; cat /vufs/krc /vufs/ko; \
             echo \"ERR $(tr '\\n' ' ' < /vufs/ke)\"; \
             echo \"LEFT $(ps | grep -c '[v]irtiofsd')\"",
            modules.display()
        ),
    );
    Expect { marker }
}

pub fn results(fails: &mut Failures, run: &BenchRun, want: &Expect) {
    host_rootfs(fails, run, want);
    virtiofsd_killed(fails, run);
}

fn virtiofsd_killed(fails: &mut Failures, run: &BenchRun) {
    let Some(r) = run.result("exec-rootfs-virtiofsd-killed") else {
        fails.check(false, || "exec-rootfs-virtiofsd-killed: no result".into());
        return;
    };
    let expected = field(r, "KILLED").map(|pid| {
        format!("virtiofsd serving /vufs/k to the guest (pid {pid}) was killed by signal 9")
    });
    fails.check(
        r.stdout.contains("rc=2")
            && r.stdout.contains("ready")
            && !r.stdout.contains("never")
            && field(r, "ELAPSED")
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|s| s < 30)
            && expected.is_some_and(|e| field(r, "ERR").is_some_and(|err| err.contains(&e)))
            && field(r, "LEFT") == Some("0"),
        || {
            format!(
                "exec-rootfs-virtiofsd-killed: status 2 at once, naming the folder and the \
                 signal\n{}",
                r.output()
            )
        },
    );
}

fn host_rootfs(fails: &mut Failures, run: &BenchRun, want: &Expect) {
    let Some(r) = run.result("exec-rootfs-host") else {
        fails.check(false, || "exec-rootfs-host: no result".into());
        return;
    };
    let m = want.marker.as_str();
    let ro = format!("ro-{m}");
    let rw = format!("rw-{m}");
    fails.check(
        r.stdout.contains("rc=0")
            && field(r, "MARKER") == Some(m)
            && field(r, "PWD") == Some("/vufs/cwd")
            && field(r, "RO") == Some(ro.as_str())
            && field(r, "ROWRITE") == Some("refused")
            && field(r, "OVERLAY") == Some("ok")
            && field(r, "RW") == Some(rw.as_str())
            && field(r, "LEAK") == Some("no")
            && field(r, "LEFT") == Some("0"),
        || {
            format!(
                "exec-rootfs-host: the outer guest's / through virtio-fs on KVM\n{}",
                r.output()
            )
        },
    );
}
