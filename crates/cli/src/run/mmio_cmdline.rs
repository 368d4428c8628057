//! `--virtio-mmio-cmdline`: the guest's virtio devices announced on its kernel command line
//! as `virtio_mmio.device=<size>@<addr>:<gsi>`, one word per device in slot order, for
//! kernels built with VIRTIO_MMIO_CMDLINE_DEVICES (Debian's are not: they find the devices
//! in the DSDT, and ignore the words). On by default with `--no-acpi` on KVM, where
//! without a DSDT the words are the only way a guest can find the devices.
//!
//! The words go onto the image's command line here, before `image.build()`, rather than
//! into the plan inside the VMM: the builder places the command line and checks its length
//! against the kernel's `cmdline_size`, so a line the words make too long is refused like
//! any other (with a note saying how much of it the words are), and `--verbose` and the
//! plan show the command line the guest really gets. Which slot each device has is the
//! VMM's to say ([`domboot_vmm::virtio_mmio_cmdline`], the order its builder attaches them
//! in): nothing here orders devices. The VMM checks, without ACPI, that every device's
//! word is on the plan's command line.

use super::{Accel, Devices};
use domboot_builder::{BootPlan, BuildError, DomainImage};

/// Whether the words go on the command line: on KVM when `--virtio-mmio-cmdline` asks for
/// them or `--no-acpi` leaves the guest no other way to find its devices. Under TCG the
/// devices are QEMU's virtio-pci devices, which the words would not describe.
pub fn wanted(asked: bool, no_acpi: bool, accel: Accel) -> bool {
    accel == Accel::Kvm && (asked || no_acpi)
}

/// Appends the `virtio_mmio.device=` words for `devices` (those the command line does not
/// have already) to `image`'s command line when [`wanted`]; under TCG an explicit
/// `--virtio-mmio-cmdline` gets a one-line notice that it adds nothing. Returns the words
/// added.
pub fn apply(
    image: &mut DomainImage,
    devices: &Devices,
    asked: bool,
    no_acpi: bool,
    accel: Accel,
    verbose: bool,
) -> anyhow::Result<Vec<String>> {
    if asked && accel == Accel::Tcg {
        eprintln!(
            "domboot: --virtio-mmio-cmdline adds nothing under TCG: the guest's devices are \
             QEMU's virtio-pci devices, found on its PCI bus"
        );
    }
    if !wanted(asked, no_acpi, accel) {
        return Ok(Vec::new());
    }
    let words = devices.virtio_mmio_words()?;
    let added = append_missing(&mut image.cmdline, &words);
    if verbose && !added.is_empty() {
        eprintln!(
            "domboot: the guest's virtio devices, announced on its command line{}: {}",
            if asked { "" } else { " (--no-acpi)" },
            added.join(" ")
        );
    }
    Ok(added)
}

/// Appends each of `words` that `cmdline` does not have as a word already; returns those.
fn append_missing(cmdline: &mut String, words: &[String]) -> Vec<String> {
    let added: Vec<String> = words
        .iter()
        .filter(|w| !cmdline.split_whitespace().any(|have| have == w.as_str()))
        .cloned()
        .collect();
    for w in &added {
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(w);
    }
    added
}

/// `image.build()`; a command line too long for the kernel also says how many of its bytes
/// are the words [`apply`] added.
pub fn build(image: &DomainImage, added: &[String]) -> anyhow::Result<BootPlan> {
    image.build().map_err(|e| match e {
        BuildError::CmdlineTooLong { .. } if !added.is_empty() => {
            let bytes: usize = added.iter().map(|w| w.len() + 1).sum();
            anyhow::Error::new(e).context(format!(
                "the command line is too long with the virtio_mmio.device= words of the \
                 guest's {} virtio device(s), {bytes} bytes of it (--virtio-mmio-cmdline, on \
                 by default with --no-acpi): shorten --cmdline or give the guest fewer devices",
                added.len()
            ))
        }
        e => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::boot_entries::DiskArg;
    use crate::run::devices::{NetArg, parse_net};

    fn devices(disks: usize, nets: &[&str], rng: bool, virtio_console: bool) -> Devices {
        let disks: Vec<DiskArg> = (0..disks)
            .map(|i| DiskArg {
                path: format!("/images/d{i}.img").into(),
                read_only: i % 2 == 1,
            })
            .collect();
        let nets: Vec<NetArg> = nets.iter().map(|n| parse_net(n).unwrap()).collect();
        let mut d = Devices::from_args(&disks, &nets, rng, !rng);
        d.virtio_console = virtio_console;
        d
    }

    fn words(d: &Devices) -> Vec<String> {
        d.virtio_mmio_words().unwrap()
    }

    #[test]
    fn only_on_kvm_and_by_default_without_acpi() {
        assert!(wanted(true, false, Accel::Kvm));
        assert!(wanted(false, true, Accel::Kvm));
        assert!(!wanted(false, false, Accel::Kvm));
        assert!(!wanted(true, true, Accel::Tcg));
    }

    /// hvc0's device first, then the disks (vda, vdb), the interfaces and the rng: 4 KiB
    /// windows from 0xd0000000, interrupts from 16, in the syntax of vm_cmdline_set.
    #[test]
    fn the_words_name_each_device_in_slot_order() {
        let d = devices(2, &["user,mac=52:54:00:12:34:56", "tap:t0"], true, true);
        assert_eq!(
            words(&d),
            [
                "virtio_mmio.device=4K@0xd0000000:16",
                "virtio_mmio.device=4K@0xd0001000:17",
                "virtio_mmio.device=4K@0xd0002000:18",
                "virtio_mmio.device=4K@0xd0003000:19",
                "virtio_mmio.device=4K@0xd0004000:20",
                "virtio_mmio.device=4K@0xd0005000:21",
            ]
        );
    }

    /// The serial console is no virtio device: the first disk takes the first slot; the
    /// rng comes with a disk by default.
    #[test]
    fn a_disk_and_its_default_rng() {
        let disks = [DiskArg {
            path: "/images/d.img".into(),
            read_only: false,
        }];
        let d = Devices::from_args(&disks, &[], false, false);
        assert!(d.rng);
        assert_eq!(
            words(&d),
            [
                "virtio_mmio.device=4K@0xd0000000:16",
                "virtio_mmio.device=4K@0xd0001000:17",
            ]
        );
        assert!(words(&Devices::default()).is_empty());
    }

    /// The virtio-fs devices of --rootfs host come last, after the rng.
    #[test]
    fn virtio_fs_after_the_rng() {
        let mut d = devices(1, &[], true, false);
        d.virtiofs = vec![("domboot-root".into(), "/run/fs0.sock".into())];
        assert_eq!(
            words(&d).last().map(String::as_str),
            Some("virtio_mmio.device=4K@0xd0002000:18")
        );
    }

    #[test]
    fn words_already_there_are_not_repeated() {
        let mut cmdline = "console=ttyS0 virtio_mmio.device=4K@0xd0000000:16".to_string();
        let w = words(&devices(1, &[], true, false));
        let added = append_missing(&mut cmdline, &w);
        assert_eq!(added, ["virtio_mmio.device=4K@0xd0001000:17"]);
        assert_eq!(
            cmdline,
            "console=ttyS0 virtio_mmio.device=4K@0xd0000000:16 \
             virtio_mmio.device=4K@0xd0001000:17"
        );
        let mut empty = String::new();
        append_missing(&mut empty, &w);
        assert_eq!(empty, w.join(" "));
    }

    /// Too many devices for the machine's interrupts is an error naming the device, not a
    /// panic.
    #[test]
    fn too_many_devices_is_an_error() {
        let d = devices(14, &[], false, false);
        let err = d.virtio_mmio_words().unwrap_err().to_string();
        assert!(err.contains("vdn") && err.contains("at most 13"), "{err}");
    }
}
