//! xl.cfg(5) and legacy xm configuration files.
//!
//! Reads `name`, `uuid`, `type`/`builder`/`pvh`, `memory`, `maxmem`, `vcpus`, `maxvcpus`,
//! xm's `vcpu_avail` and HVM `cdrom`,
//! `kernel`, `ramdisk`, `extra`, `root`, `cmdline`, `loader`, `firmware`, `bootloader`,
//! `bootloader_args`, `boot`, `disk` (positional, key=value and xm prefix forms), `vif`,
//! `serial`, `vnc*`, `sdl`, `spice*`, `vfb`, `usbdevice`, `on_poweroff`/`on_reboot`/
//! `on_crash`, `acpi`/`apic`/`pae`/`hap`/`viridian`, `localtime`, `rtc_timeoffset`,
//! `device_model` and `device_model_override`, plus domboot's `domboot_*` extension keys
//! (what xl has no key for; xl ignores them). Other keys are reported as warnings.
//!
//! Compatibility rules (from the seeds): an HVM file whose `kernel` names the firmware
//! (hvmloader) and has no `loader` means `loader`; `root` and `extra` combine into the
//! command line as xl does (see [`crate::Boot::effective_cmdline`]); `cmdline` replaces both.
mod chardev;
mod parse;
mod read;
pub mod spec;
mod vif;
mod write;

pub use parse::{Setting, Spanned, Value, parse as parse_settings, quote};
pub use write::write;

use crate::error::{ConfigError, Warning};
use crate::model::DomainConfig;

/// Parse an xl or xm configuration file.
pub fn parse(text: &str, source: &str) -> Result<DomainConfig, ConfigError> {
    parse_with_warnings(text, source).map(|(c, _)| c)
}

/// Parse, also returning the keys and values that were read but not kept.
pub fn parse_with_warnings(
    text: &str,
    source: &str,
) -> Result<(DomainConfig, Vec<Warning>), ConfigError> {
    let settings = parse::parse(text, source)?;
    let mut reader = read::Reader::new(text, source, &settings);
    let config = reader.read(&settings)?;
    Ok((config, reader.warnings))
}
