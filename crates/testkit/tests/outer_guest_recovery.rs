//! The nested bench survives its outer guest dying: a check during which the outer kernel
//! panics is retried in fresh outer boots and finally reported as failed, and the checks
//! after it still run (CI once lost 19 checks of the matrix to one outer panic). An outer
//! guest whose user processes all stop (its heartbeat with them) is given up within
//! `Heartbeat::FROZEN_AFTER`, not the check's timeout. And the cause of the freezes the
//! bench used to see, KVM making the outer kernel patch its code, no longer occurs.

use domboot_testkit::nested::Bench;
use std::path::Path;
use std::time::Duration;

#[test]
fn a_check_that_panics_the_outer_kernel_fails_alone() {
    // The bench carries a domboot in; these checks do not use it.
    let mut bench = Bench::new(Path::new("/bin/true"));
    bench.check("before", "echo BEFORE");
    bench.check(
        "boom",
        "echo c > /proc/sysrq-trigger; sleep 30; echo SURVIVED",
    );
    bench.check("after", "echo AFTER");
    let run = bench.run().expect("the bench itself runs");

    let before = run.result("before").expect("before reported");
    assert_eq!((before.status, before.stdout.trim()), (Some(0), "BEFORE"));
    let after = run
        .result("after")
        .expect("after reported despite the panic");
    assert_eq!((after.status, after.stdout.trim()), (Some(0), "AFTER"));

    let boom = run.result("boom").expect("boom reported as failed");
    assert_eq!(boom.status, None, "{boom:?}");
    assert!(
        boom.stderr.contains("the outer guest died"),
        "{}",
        boom.stderr
    );
    // Tried three times: the first boot and two retries, each one a death.
    assert_eq!(run.hung, ["boom", "boom"], "{}", run.console);
}

#[test]
fn a_frozen_outer_guest_is_given_up_early() {
    let mut bench = Bench::new(Path::new("/bin/true"));
    // One outer boot for the freeze, one for the check after it.
    bench.max_retries = 0;
    bench.check("before", "echo BEFORE");
    // Every user process of the outer guest (its /init and heartbeat included) into one
    // cgroup, frozen: the kernel runs on, nothing else does, as when the outer guest
    // hangs. Without the heartbeat the bench would wait for the check's timeout + grace.
    bench.check(
        "freeze",
        "mount -t cgroup2 none /sys/fs/cgroup && mkdir /sys/fs/cgroup/frozen || exit 1\n\
         for p in /proc/[0-9]*; do echo ${p#/proc/} > /sys/fs/cgroup/frozen/cgroup.procs; done 2>/dev/null\n\
         echo 1 > /sys/fs/cgroup/frozen/cgroup.freeze\n\
         sleep 5; echo NOT-FROZEN",
    );
    bench.set_timeout("freeze", Duration::from_secs(900));
    bench.check("after", "echo AFTER");
    let run = bench.run().expect("the bench itself runs");

    let freeze = run.result("freeze").expect("freeze reported as failed");
    assert_eq!(freeze.status, None, "{freeze:?}");
    assert!(
        freeze.stderr.contains("froze (no heartbeat for"),
        "{}",
        freeze.stderr
    );
    // What the outer QEMU's monitor said about its vCPUs (here: idle in the outer kernel).
    for shown in ["CPU #0", "RIP=", "CR3="] {
        assert!(freeze.stderr.contains(shown), "{shown}: {}", freeze.stderr);
    }
    for (name, out) in [("before", "BEFORE"), ("after", "AFTER")] {
        let r = run.result(name).expect("reported");
        assert_eq!((r.status, r.stdout.trim()), (Some(0), out), "{r:?}");
    }
    // Two outer boots and a freeze of FROZEN_AFTER (45 s): far less than the 900 s the
    // check's timeout would have cost.
    assert!(run.elapsed < Duration::from_secs(600), "{:?}", run.elapsed);
}

#[test]
fn creating_and_destroying_vms_no_longer_freezes_the_outer_guest() {
    // Each first VM and last VM flips KVM's static keys, and the outer kernel patches
    // __schedule with INT3; under QEMU TCG that froze the outer guest (3 of 3 boots, before
    // 100 VMs, without the VM the outer /init now holds: see kvm_pin.c). One outer boot,
    // no retry: a freeze fails this test.
    let mut bench = Bench::new(Path::new("/bin/true"));
    bench.max_retries = 0;
    bench.check(
        "churn",
        "pidof kvm_pin > /dev/null || { echo 'no VM held'; exit 1; }\n\
         (while :; do sleep 0.01; done) & (while :; do sleep 0.013; done) &\n\
         /bin/kvm_pin churn 1000 | tail -1",
    );
    bench.set_timeout("churn", Duration::from_secs(600));
    let run = bench.run().expect("the bench itself runs");
    let churn = run.result("churn").expect("reported");
    assert_eq!(
        (churn.status, churn.stdout.trim()),
        (Some(0), "kvm_pin: 1000 VMs created and destroyed"),
        "{churn:?}"
    );
    assert!(run.hung.is_empty(), "{:?}: {}", run.hung, run.console);
}
