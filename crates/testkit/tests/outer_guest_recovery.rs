//! The nested bench survives its outer guest dying: a check during which the outer kernel
//! panics is retried in fresh outer boots and finally reported as failed, and the checks
//! after it still run (CI once lost 19 checks of the matrix to one outer panic).

use domboot_testkit::nested::Bench;
use std::path::Path;

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
