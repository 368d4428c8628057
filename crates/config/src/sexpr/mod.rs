//! xend S-expressions: `(vm (name ...)(memory ...)(image (hvm (loader ...)(kernel ...)))
//! (device (vbd ...))...)`, as xend took them for `xm create` and libvirt's Xen driver
//! wrote them (seed 002). `(domain ...)` as xend reports a live domain is read too (its
//! run-time keys are skipped).
//!
//! Read: `name`, `uuid`, `description`, `memory`, `maxmem`, `vcpus`, `vcpu_avail`, `on_*`,
//! `bootloader`, `bootloader_args`, `localtime`, `image` with `linux` / `hvm` / `pvh` and
//! its `kernel`, `ramdisk`, `args`, `root`, `loader`, `device_model`, `boot`, `acpi`,
//! `apic`, `pae`, `hap`, `viridian`, `localtime`, `rtc_timeoffset`, `serial`, `usbdevice`,
//! `cdrom`, `vnc*`, `sdl`, `display`, `xauthority`, `keymap`; devices `vbd` / `tap`,
//! `vif`, `vfb`; and domboot's `(domboot ...)` extension (what xend has no key for).
//! The seeds' rule applies: an HVM `kernel` naming the firmware without `loader` is the
//! loader. As libvirt does, a file whose last lists are left open is read as closed (with
//! a warning), and a live domain's `(domid N)` names its interfaces `vifN.I` (not its VNC
//! display). An HVM guest's clock is read as libvirt's newest reader reads it: a variable
//! offset ([`hvm_clock`]). The writer indents (one key per line) for readable diffs;
//! [`write_compact`] prints the single-line form.
mod parse;
mod read;
mod write;

pub use parse::{Sexp, parse as parse_tree, parse_lenient as parse_tree_lenient};

use crate::error::{ConfigError, Warning};
use crate::model::{Clock, ClockBasis, DomainConfig};

/// Parse a xend S-expression.
pub fn parse(text: &str, source: &str) -> Result<DomainConfig, ConfigError> {
    parse_with_warnings(text, source).map(|(c, _)| c)
}

/// Parse, also returning what was read but not kept.
pub fn parse_with_warnings(
    text: &str,
    source: &str,
) -> Result<(DomainConfig, Vec<Warning>), ConfigError> {
    let (tree, mut warnings) = parse::parse_lenient(text, source)?;
    let mut r = read::Reader::new(text, source);
    let c = r.read(&tree)?;
    warnings.append(&mut r.warnings);
    Ok((c, warnings))
}

/// The indented form (one item per line), ending with a newline.
pub fn write(config: &DomainConfig) -> String {
    let mut out = String::new();
    parse::to_indented(&write::tree(config), 0, &mut out);
    out.push('\n');
    out
}

/// The single-line form xend and libvirt print.
pub fn write_compact(config: &DomainConfig) -> String {
    let mut out = String::new();
    parse::to_compact(&write::tree(config), &mut out);
    out
}

/// The tree [`write`] prints.
pub fn to_tree(config: &DomainConfig) -> Sexp {
    write::tree(config)
}

/// The clock an HVM guest whose clock is `clock` has once written to xend and read back.
/// libvirt's newest xend reader (xen_sxpr.c), and domboot's, read an HVM guest's emulated
/// RTC as a variable offset from UTC, or from local time with `(localtime 1)`: 0 when no
/// `rtc_timeoffset` says otherwise. That is the RTC `utc` and `localtime` (and no clock:
/// UTC) name, spelled as libvirt spells it; domboot's timezone clock stays what it is.
pub fn hvm_clock(clock: Option<&Clock>) -> Option<Clock> {
    let at = |basis| Clock::Variable {
        adjustment: 0,
        basis,
    };
    match clock {
        None | Some(Clock::Utc) => Some(at(ClockBasis::Utc)),
        Some(Clock::Localtime) => Some(at(ClockBasis::Localtime)),
        Some(c) => Some(c.clone()),
    }
}
