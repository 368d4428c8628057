//! libvirt's own conversion test data (xlconfigdata, xmconfigdata, and the sexpr2xml /
//! xml2sexpr suites libvirt removed in 2019; see tests/libvirt/README.md) against
//! domboot's conversions, fact by fact, in each direction libvirt's suite has and in
//! round trips through domboot. Run with `-- --nocapture` for the per-suite counts.
mod libvirt_harness;

use libvirt_harness::{Class, SUITES, named_pairs, pairs, run_named_pair, run_pair};

#[test]
fn libvirt_pairs_agree_fact_by_fact() {
    let mut bugs = Vec::new();
    let mut total_pairs = 0;
    // LIBVIRT_PAIR=test-fullvirt-sound prints every difference of that pair and its class
    // (LIBVIRT_PAIR=all: of every pair).
    let show = std::env::var("LIBVIRT_PAIR").ok();
    for suite in &SUITES {
        let stems = pairs(suite);
        let named: Vec<_> = named_pairs(suite).collect();
        let count = stems.len() + named.len();
        total_pairs += count;
        let (mut facts, mut unmodelled, mut documented, mut bug) = (0, 0, 0, 0);
        let outcomes = stems
            .iter()
            .flat_map(|stem| run_pair(suite, stem))
            .chain(named.iter().flat_map(|p| run_named_pair(suite, p)));
        {
            for o in outcomes {
                facts += o.facts;
                for (d, c) in o.diffs {
                    if show.as_deref().is_some_and(|p| p == d.pair || p == "all") {
                        println!(
                            "  {c:?} {}/{} {}: {} libvirt={:?} domboot={:?}",
                            d.suite, d.pair, d.direction, d.key, d.expected, d.actual
                        );
                    }
                    match c {
                        Class::Unmodelled => unmodelled += 1,
                        Class::Documented => documented += 1,
                        Class::Bug => {
                            bug += 1;
                            bugs.push(d);
                        }
                    }
                }
            }
        }
        println!(
            "libvirt {:<9} {:>3} pairs, {:>5} facts compared: {:>3} differ through bugs, \
             {:>3} unmodelled (warned), {:>3} documented",
            suite.name, count, facts, bug, unmodelled, documented
        );
    }
    for d in &bugs {
        println!(
            "  BUG {}/{} {}: {} libvirt={:?} domboot={:?}",
            d.suite, d.pair, d.direction, d.key, d.expected, d.actual
        );
    }
    assert!(total_pairs >= 20, "libvirt test data missing");
    assert!(
        bugs.is_empty(),
        "{} facts differ from libvirt through domboot bugs",
        bugs.len()
    );
}
