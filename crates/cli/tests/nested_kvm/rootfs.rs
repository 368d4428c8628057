//! `run --exec --rootfs host` on the KVM backend (its virtio-mmio vhost-user-fs devices,
//! served by virtiofsd): in the outer guest "the host" is the outer guest's own / (its
//! initramfs), so the checks assert what only that / has: a file with this run's marker,
//! the current directory, a --rodir's file and its refusal of writes, a --rwdir write that
//! lands in the outer guest's folder, and an overlay write that does not; the command runs
//! as root there. `exec-rootfs-user` runs `--user` as a caller that is not root: the inner
//! command runs with the caller's uid, gid and HOME, and its --rwdir write lands owned by
//! that uid. `exec-rootfs-virtiofsd-killed` kills a virtiofsd while the command runs: the
//! run ends at once, saying so.

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

/// Where the outer guest gets util-linux's setpriv: busybox's (the outer guest's /bin/setpriv)
/// has no --reuid/--regid, which both the caller's switch to a plain user and domboot's
/// `--user` need. The `--user` check puts this folder first on its caller's PATH, so domboot
/// finds util-linux's setpriv the way it would on a Debian host.
const SETPRIV_DIR: &str = "/usr/local/bin";

/// The caller of the `--user` check: a uid and a different gid, named in the outer guest's
/// /etc/passwd and /etc/group (which the inner guest reads through virtio-fs).
const USER: (u32, u32) = (4321, 4322);

/// What the checks expect.
pub struct Expect {
    marker: String,
}

/// Adds the checks `exec-rootfs-host` and `exec-rootfs-user`.
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
                 echo \"ID $(id -u):$(id -g)\"; \
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
    user_check(bench, cloud, modules);
    Expect { marker }
}

/// `exec-rootfs-user`: root in the outer guest makes the user (passwd and group entries, a
/// home, a --rwdir it owns, /dev/kvm open to its group, /tmp world-writable as on a real
/// host), then runs domboot as that user through util-linux's setpriv, named by its path:
/// busybox sh looks a command up in its own PATH, not in the one assigned before it.
fn user_check(bench: &mut Bench, cloud: &str, modules: &Path) {
    bench.program(
        Path::new("/usr/bin/setpriv"),
        &format!("{SETPRIV_DIR}/setpriv"),
    );
    let (uid, gid) = USER;
    // What the inner command reports: who it is, its HOME and folder, and a --rwdir write.
    let inner = "echo \"ID $(id -u):$(id -g)\"; echo \"NAME $(id -un):$(id -gn)\"; \
                 echo \"HOME $HOME\"; echo \"PWD $(pwd)\"; \
                 echo \"user-$(cat /bench/rootfs-marker)\" > written && echo 'WROTE ok'";
    bench.bytes("/bench/rootfs-user-cmd.sh", inner.as_bytes());
    bench.check(
        "exec-rootfs-user",
        &format!(
            "U=/vufs/user && mkdir -p /etc $U/home $U/rw && \
             echo 'bench:x:{uid}:{gid}:bench:/vufs/user/home:/bin/sh' >> /etc/passwd && \
             echo 'benchgrp:x:{gid}:' >> /etc/group && \
             chown -R {uid}:{gid} $U && chmod 1777 /tmp && \
             kvm=$(stat -c %g:%a /dev/kvm) && chgrp {gid} /dev/kvm && chmod 660 /dev/kvm && \
             cd $U/rw && \
             HOME=$U/home PATH={SETPRIV_DIR}:$PATH DOMBOOT_VIRTIOFSD={VIRTIOFSD} \
             {SETPRIV_DIR}/setpriv --reuid={uid} --regid={gid} --clear-groups -- \
             domboot run --accel kvm --kernel {cloud} --modules {} --timeout 120 \
             --rootfs host --user --rwdir $U/rw \
             --exec \"$(cat /bench/rootfs-user-cmd.sh)\" > $U/o; echo \"rc=$?\"; cat $U/o; \
             chgrp ${{kvm%:*}} /dev/kvm; chmod ${{kvm#*:}} /dev/kvm; \
             echo \"OWNER $(stat -c %u:%g $U/rw/written)\"; echo \"RW $(cat $U/rw/written)\"",
            modules.display()
        ),
    );
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
            && field(r, "ID") == Some("0:0")
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

pub fn user_results(fails: &mut Failures, run: &BenchRun, want: &Expect) {
    let Some(r) = run.result("exec-rootfs-user") else {
        fails.check(false, || "exec-rootfs-user: no result".into());
        return;
    };
    let (uid, gid) = USER;
    let ids = format!("{uid}:{gid}");
    let rw = format!("user-{}", want.marker);
    fails.check(
        r.stdout.contains("rc=0")
            && field(r, "ID") == Some(ids.as_str())
            && field(r, "NAME") == Some("bench:benchgrp")
            && field(r, "HOME") == Some("/vufs/user/home")
            && field(r, "PWD") == Some("/vufs/user/rw")
            && field(r, "WROTE") == Some("ok")
            && field(r, "OWNER") == Some(ids.as_str())
            && field(r, "RW") == Some(rw.as_str()),
        || {
            format!(
                "exec-rootfs-user: --user as uid {uid} gid {gid} through virtio-fs on KVM\n{}",
                r.output()
            )
        },
    );
}
