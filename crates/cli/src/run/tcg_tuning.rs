//! Kernel command-line options that shorten a throwaway `--exec` guest's boot under QEMU's
//! TCG, where every instruction is emulated and the kernel's own start-up checks dominate
//! the run (issue 16: Debian's cloud kernel spends ~0.6 s of a 2.4 s `--exec true` in
//! crypto self-tests alone).
//!
//! Only options that change nothing a command normally depends on are added (no ACPI means
//! a platform without power buttons or CPU hot-plug, for one), each only when the
//! user's command line does not set the same parameter (so `--cmdline cryptomgr.notests=0`
//! keeps the self-tests), and `--no-boot-tuning` turns them all off. On KVM none of this is
//! needed: there these checks cost milliseconds.

/// Where the options apply: what the guest has.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub cpus: u8,
    /// Any PCI device: virtio disks, interfaces, rng, virtio-fs, a virtio console, vsock.
    pub pci_devices: bool,
}

/// One option and why it is safe.
struct Tuning {
    option: &'static str,
    /// Applies only to a guest of one vCPU with no PCI devices.
    bare_only: bool,
}

const TUNINGS: &[Tuning] = &[
    // The crypto manager's self-tests of every algorithm the kernel registers: ~0.3-0.6 s
    // under TCG (crypto_algapi_init's initcall, measured with initcall_debug). They check
    // the kernel's own code, which does not change between runs.
    Tuning {
        option: "cryptomgr.notests",
        bare_only: false,
    },
    // The CTR-KDF self-test, which cryptomgr.notests does not cover: ~0.1 s under TCG.
    // The initcall only tests (the KDF is a library the kernel calls directly); a kernel
    // without it ignores the name.
    Tuning {
        option: "initcall_blacklist=crypto_kdf108_init",
        bare_only: false,
    },
    // Skips the check that the IO-APIC's timer interrupt arrives, a busy wait under TCG;
    // on a loaded host it once failed outright ("IO-APIC + timer doesn't work!", a panic).
    Tuning {
        option: "no_timer_check",
        bare_only: false,
    },
    // No ACPI: ~0.1-0.2 s of AML interpretation saved. Without ACPI the kernel finds no
    // second CPU (MADT) and no PCI interrupt routing, so only a single-vCPU guest with no
    // PCI devices gets it; with no MP table from qboot either it runs on the 8259 PIC
    // alone, and it powers off through QEMU's isa-debug-exit port either way.
    Tuning {
        option: "acpi=off",
        bare_only: true,
    },
];

/// The options to append to `cmdline` for a guest like `machine`, in order.
pub fn options(cmdline: &str, machine: Machine) -> Vec<&'static str> {
    let bare = machine.cpus == 1 && !machine.pci_devices;
    TUNINGS
        .iter()
        .filter(|t| bare || !t.bare_only)
        .filter(|t| !sets(cmdline, param_name(t.option)))
        .map(|t| t.option)
        .collect()
}

/// The parameter an option sets: the text before `=`.
fn param_name(option: &str) -> &str {
    option.split_once('=').map_or(option, |(name, _)| name)
}

/// Whether `cmdline` sets parameter `name`. The kernel treats `-` and `_` in parameter
/// names alike; a value in double quotes may hold spaces; `--` ends the kernel's
/// parameters (the rest is init's).
fn sets(cmdline: &str, name: &str) -> bool {
    let same = |a: &str| {
        a.len() == name.len() && a.bytes().zip(name.bytes()).all(|(x, y)| norm(x) == norm(y))
    };
    words(cmdline)
        .take_while(|w| *w != "--")
        .any(|w| same(param_name(w)))
}

fn norm(b: u8) -> u8 {
    if b == b'-' { b'_' } else { b }
}

/// The command line's words, as the kernel splits them: spaces outside double quotes.
fn words(cmdline: &str) -> impl Iterator<Item = &str> {
    let mut rest = cmdline;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                !quoted && matches!(c, ' ' | '\t' | '\n')
            })
            .map_or(rest.len(), |(i, _)| i);
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: Machine = Machine {
        cpus: 1,
        pci_devices: false,
    };

    #[test]
    fn a_bare_guest_gets_them_all() {
        assert_eq!(
            options("console=ttyS0 panic=-1", BARE),
            [
                "cryptomgr.notests",
                "initcall_blacklist=crypto_kdf108_init",
                "no_timer_check",
                "acpi=off"
            ]
        );
    }

    #[test]
    fn acpi_stays_on_for_smp_and_pci() {
        let smp = Machine { cpus: 2, ..BARE };
        let pci = Machine {
            pci_devices: true,
            ..BARE
        };
        for m in [smp, pci] {
            assert_eq!(
                options("", m),
                [
                    "cryptomgr.notests",
                    "initcall_blacklist=crypto_kdf108_init",
                    "no_timer_check"
                ]
            );
        }
    }

    #[test]
    fn the_users_own_setting_wins() {
        assert_eq!(
            options(
                "cryptomgr.notests=0 acpi=force no-timer-check initcall_blacklist=x",
                BARE
            ),
            Vec::<&str>::new()
        );
        // After `--` the words are init's, not the kernel's.
        assert_eq!(options("quiet -- acpi=off", BARE).len(), 4);
        // A quoted value is one word: this sets only `foo`.
        assert_eq!(options("foo=\"a acpi=off\"", BARE).len(), 4);
        // A prefix is not the parameter.
        assert_eq!(options("acpi_rsdp=0x1", BARE).len(), 4);
    }

    #[test]
    fn words_split_as_the_kernel_does() {
        let w: Vec<&str> = words("  a  b=\"c d\"\te ").collect();
        assert_eq!(w, ["a", "b=\"c d\"", "e"]);
    }
}
