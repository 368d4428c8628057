//! The bench's book-keeping across outer boots: which checks are still to run, which
//! results count, which were set aside as faults of the bench, and whether another outer
//! boot is needed. Kept apart from the code that boots QEMU so that the retry rules can be
//! tested without booting anything.

use super::{Check, CheckResult, Ended, HANG_GRACE, MAX_INNER_RETRIES, MAX_SETUP_RETRIES, tail};
use std::time::Duration;

/// What the bench knows after some outer boots.
#[derive(Debug)]
pub(super) struct Ledger {
    /// Indices of checks that still have to run (in the order they will run).
    pub pending: Vec<usize>,
    /// Results that count, one per check.
    pub results: Vec<CheckResult>,
    /// Results set aside because they showed a fault of the bench (`Check::retry_on`).
    pub retried: Vec<CheckResult>,
    /// Checks during which the outer guest hung or died, once per time.
    pub hung_once: Vec<usize>,
    /// Outer boots that died between two checks.
    deaths_between: usize,
    /// Outer boots that froze or died before their first check ([`Ended::InSetUp`]).
    setup_failures: usize,
    /// How often a check may take its outer guest down before it counts as failed (and
    /// how many outer deaths between checks end the bench).
    max_retries: usize,
}

impl Ledger {
    pub fn new(checks: usize, max_retries: usize) -> Self {
        Ledger {
            pending: (0..checks).collect(),
            results: Vec::new(),
            retried: Vec::new(),
            hung_once: Vec::new(),
            deaths_between: 0,
            setup_failures: 0,
            max_retries,
        }
    }

    /// Files the results one outer boot reported, then decides from how it ended whether
    /// the bench goes on: `Ok(())` (another outer boot runs what is still pending, if
    /// anything) or the error that ends the bench. `console` is that boot's console.
    pub fn after_boot(
        &mut self,
        checks: &[Check],
        reported: Vec<CheckResult>,
        ended: Ended,
        console: &str,
        bench_timeout: Duration,
    ) -> Result<(), String> {
        // Checks set aside in this boot for a fault of the bench: they run again in the
        // next outer boot, so an outer guest that finished its list with only these left
        // has done its job.
        let mut requeued = Vec::new();
        for r in reported {
            self.pending.retain(|&i| checks[i].name != r.name);
            let Some(i) = checks.iter().position(|c| c.name == r.name) else {
                continue;
            };
            let fault = checks[i]
                .retry_on
                .iter()
                .find(|p| r.stdout.contains(p.as_str()) || r.stderr.contains(p.as_str()));
            let tries = self.retried.iter().filter(|f| f.name == r.name).count();
            match fault {
                Some(p) if tries < MAX_INNER_RETRIES => {
                    super::note(&format!(
                        "{}: a fault of the bench ({p:?}): running it again later",
                        r.name
                    ));
                    self.retried.push(r);
                    self.pending.push(i);
                    requeued.push(i);
                }
                _ => self.results.push(r),
            }
        }
        match ended {
            Ended::Finished | Ended::Died(_) if self.pending.is_empty() => Ok(()),
            Ended::Finished => {
                let unreported: Vec<&str> = self
                    .pending
                    .iter()
                    .filter(|i| !requeued.contains(i))
                    .map(|&i| checks[i].name.as_str())
                    .collect();
                if unreported.is_empty() {
                    return Ok(());
                }
                Err(format!(
                    "the outer guest finished without reporting {} check(s): {}\n\
                     --- outer console (tail) ---\n{}",
                    unreported.len(),
                    unreported.join(", "),
                    tail(console, 60)
                ))
            }
            Ended::OutOfTime => Err(format!(
                "the bench did not finish within {bench_timeout:?}; {} check(s) unreported\n\
                 --- outer console (tail) ---\n{}",
                self.pending.len(),
                tail(console, 60)
            )),
            Ended::InSetUp(how) => lost_boot(
                &mut self.setup_failures,
                MAX_SETUP_RETRIES,
                &what_happened(&how),
                "during its own set-up (modules, the held VM)",
                self.pending.len(),
                console,
            ),
            // Between two checks: nothing to blame, but a guest that keeps dying there
            // must not loop forever.
            Ended::Died(None) | Ended::Froze(None, ..) => lost_boot(
                &mut self.deaths_between,
                self.max_retries,
                &what_happened(&ended),
                "between checks",
                self.pending.len(),
                console,
            ),
            Ended::Hung(i) | Ended::Died(Some(i)) | Ended::Froze(Some(i), ..) => {
                self.pending.retain(|&p| p != i);
                let name = &checks[i].name;
                let what = what_happened(&ended);
                super::note(&format!(
                    "the outer guest {what} during {name}: rebooting it{}",
                    evidence(console)
                ));
                if self.hung_once.iter().filter(|&&h| h == i).count() >= self.max_retries {
                    self.results.push(CheckResult {
                        name: name.clone(),
                        status: None,
                        stdout: String::new(),
                        stderr: format!(
                            "the outer guest {what} during this check {} times\n\
                             --- outer console (tail) ---\n{}",
                            self.max_retries + 1,
                            tail(console, 30)
                        ),
                        elapsed: checks[i].timeout + HANG_GRACE,
                    });
                } else {
                    self.hung_once.push(i);
                    self.pending.push(i);
                }
                Ok(())
            }
        }
    }
}

/// One more outer boot lost `place`, where no check is to blame: noted, and the bench
/// boots again, unless `lost` now exceeds `budget`, which ends the bench.
fn lost_boot(
    lost: &mut usize,
    budget: usize,
    what: &str,
    place: &str,
    pending: usize,
    console: &str,
) -> Result<(), String> {
    *lost += 1;
    if *lost > budget {
        return Err(format!(
            "the outer guest {what} {place} ({lost} times); {pending} check(s) unreported\n\
             --- outer console (tail) ---\n{}",
            tail(console, 60)
        ));
    }
    super::note(&format!(
        "the outer guest {what} {place}: rebooting it{}",
        evidence(console)
    ));
    Ok(())
}

/// How an outer boot that did not finish ended, for notes and results.
fn what_happened(ended: &Ended) -> String {
    match ended {
        Ended::Hung(_) => format!(
            "hung (its heartbeat went on, but the check made no progress for its timeout + \
             {HANG_GRACE:?})"
        ),
        Ended::Froze(_, silent, qemu) => {
            format!("froze (no heartbeat for {} s; {qemu})", silent.as_secs())
        }
        Ended::Died(_) => "died (its kernel panicked or reset)".to_string(),
        Ended::InSetUp(how) => what_happened(how),
        Ended::Finished | Ended::OutOfTime => "ended".to_string(),
    }
}

/// The outer kernel's last words, for the note printed when an outer boot is given up:
/// a frozen guest's watchdogs (soft lockup, RCU stall) print the stuck vCPU's stack there,
/// and those notes are the only trace a passing test run leaves of its bench's faults.
fn evidence(console: &str) -> String {
    let last = tail(console, 40);
    if last.trim().is_empty() {
        String::new()
    } else {
        format!("; its console ended with:\n{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_RETRIES;
    use super::*;

    const FAULT: &str = "a fault of the bench";

    fn checks(names: &[&str]) -> Vec<Check> {
        names
            .iter()
            .map(|n| Check {
                name: n.to_string(),
                script: String::new(),
                timeout: Duration::from_secs(10),
                stdin: None,
                retry_on: vec![FAULT.to_string()],
            })
            .collect()
    }

    fn result(name: &str, stderr: &str) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            status: Some(0),
            stdout: String::new(),
            stderr: stderr.to_string(),
            elapsed: Duration::from_secs(1),
        }
    }

    fn boot(
        l: &mut Ledger,
        c: &[Check],
        reported: Vec<CheckResult>,
        ended: Ended,
    ) -> Result<(), String> {
        l.after_boot(c, reported, ended, "console", Duration::from_secs(60))
    }

    #[test]
    fn a_fault_in_the_last_check_of_a_finished_boot_runs_it_again() {
        // What CI saw: the last outer boot finished its list, and the one check it
        // re-ran showed the bench's fault again; that is a reason for one more boot, not
        // "finished without reporting".
        let c = checks(&["a", "b"]);
        let mut l = Ledger::new(2, MAX_RETRIES);
        let first = vec![result("a", ""), result("b", FAULT)];
        boot(&mut l, &c, first, Ended::Finished).unwrap();
        assert_eq!(l.pending, vec![1]);
        for _ in 1..MAX_INNER_RETRIES {
            boot(&mut l, &c, vec![result("b", FAULT)], Ended::Finished).unwrap();
            assert_eq!(l.pending, vec![1]);
        }
        // After MAX_INNER_RETRIES retries the fault is the check's result.
        boot(&mut l, &c, vec![result("b", FAULT)], Ended::Finished).unwrap();
        assert!(l.pending.is_empty());
        assert_eq!(l.retried.len(), MAX_INNER_RETRIES);
        assert_eq!(l.results.len(), 2);
        assert!(l.results[1].stderr.contains(FAULT));
    }

    #[test]
    fn a_finished_boot_that_skipped_a_check_is_an_error_naming_it() {
        let c = checks(&["a", "b", "c"]);
        let mut l = Ledger::new(3, MAX_RETRIES);
        let e = boot(
            &mut l,
            &c,
            vec![result("a", ""), result("c", FAULT)],
            Ended::Finished,
        )
        .unwrap_err();
        assert!(e.contains("without reporting 1 check(s): b\n"), "{e}");
    }

    #[test]
    fn a_hang_is_retried_then_counted_as_the_checks_failure() {
        let c = checks(&["a", "b"]);
        let mut l = Ledger::new(2, MAX_RETRIES);
        boot(&mut l, &c, vec![result("a", "")], Ended::Hung(1)).unwrap();
        assert_eq!(l.pending, vec![1]);
        for _ in 1..MAX_RETRIES {
            boot(&mut l, &c, vec![], Ended::Hung(1)).unwrap();
            assert_eq!(l.pending, vec![1]);
        }
        boot(&mut l, &c, vec![], Ended::Hung(1)).unwrap();
        assert!(l.pending.is_empty());
        let b = l.results.iter().find(|r| r.name == "b").unwrap();
        assert_eq!(b.status, None);
        assert!(b.stderr.contains("hung"), "{}", b.stderr);
    }

    #[test]
    fn a_freeze_counts_as_a_hang_of_its_check_or_a_death_between_checks() {
        let c = checks(&["a", "b"]);
        let mut l = Ledger::new(2, MAX_RETRIES);
        let silent = Duration::from_secs(50);
        boot(
            &mut l,
            &c,
            vec![result("a", "")],
            Ended::Froze(Some(1), silent, "QEMU".into()),
        )
        .unwrap();
        assert_eq!(l.pending, vec![1]);
        assert_eq!(l.hung_once, vec![1]);
        for _ in 0..MAX_RETRIES {
            boot(
                &mut l,
                &c,
                vec![],
                Ended::Froze(None, silent, "QEMU".into()),
            )
            .unwrap();
        }
        let e = boot(
            &mut l,
            &c,
            vec![],
            Ended::Froze(None, silent, "QEMU".into()),
        )
        .unwrap_err();
        assert!(
            e.contains("froze (no heartbeat for 50 s; QEMU) between checks"),
            "{e}"
        );
    }

    #[test]
    fn deaths_between_checks_are_bounded() {
        let c = checks(&["a"]);
        let mut l = Ledger::new(1, MAX_RETRIES);
        for _ in 0..MAX_RETRIES {
            boot(&mut l, &c, vec![], Ended::Died(None)).unwrap();
        }
        let e = boot(&mut l, &c, vec![], Ended::Died(None)).unwrap_err();
        assert!(
            e.contains("died (its kernel panicked or reset) between checks"),
            "{e}"
        );
    }

    #[test]
    fn set_up_failures_do_not_spend_the_checks_retries() {
        // A test of the bench allows its checks no retry; an outer boot that froze while
        // creating its held VM is still booted again, up to MAX_SETUP_RETRIES times.
        let c = checks(&["a"]);
        let mut l = Ledger::new(1, 0);
        let froze = || {
            Ended::InSetUp(Box::new(Ended::Froze(
                None,
                Duration::from_secs(45),
                "QEMU".into(),
            )))
        };
        for _ in 0..MAX_SETUP_RETRIES {
            boot(&mut l, &c, vec![], froze()).unwrap();
            assert_eq!(l.pending, vec![0]);
        }
        let e = boot(&mut l, &c, vec![], froze()).unwrap_err();
        assert!(
            e.contains("froze (no heartbeat for 45 s; QEMU) during its own set-up"),
            "{e}"
        );
        // The checks' own budget is untouched: with max_retries 0, one death between
        // checks (after the set-up) already ends the bench.
        let mut l = Ledger::new(1, 0);
        boot(&mut l, &c, vec![], froze()).unwrap();
        let e = boot(&mut l, &c, vec![], Ended::Died(None)).unwrap_err();
        assert!(e.contains("between checks (1 times)"), "{e}");
    }

    #[test]
    fn out_of_time_is_an_error() {
        let c = checks(&["a"]);
        let mut l = Ledger::new(1, MAX_RETRIES);
        let e = boot(&mut l, &c, vec![], Ended::OutOfTime).unwrap_err();
        assert!(e.contains("1 check(s) unreported"), "{e}");
    }
}
