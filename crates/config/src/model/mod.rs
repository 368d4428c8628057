//! `DomainConfig`: the one model every syntax reads into and writes from.
//!
//! It keeps everything the four syntaxes say about a domain, including what domboot does
//! not run yet (graphics, bridges, disks), so converting between syntaxes loses nothing
//! the target syntax can say. Its serde form *is* the native TOML format (see the crate's
//! README for the schema).
mod devices;
mod units;
mod validate;

pub use devices::*;
pub use units::{MemSize, Unit, Uuid};
pub use validate::{MAX_VCPUS, Unsupported, resolve_path};

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A whole domain configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// libvirt's `<domain type=...>` (`kvm`, `qemu`, ...). `None` means `xen`, which is
    /// what xl, xm and xend files describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// How the guest boots: PV-style direct kernel, HVM (firmware, or kernel), PVH.
    #[serde(rename = "type", default)]
    pub guest_type: GuestType,
    /// CPU architecture and machine type (libvirt `<type arch= machine=>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Memory at start (xl `memory`, libvirt `<currentMemory>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemSize>,
    /// Maximum memory when above `memory` (xl `maxmem`, libvirt `<memory>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<MemSize>,
    /// vCPUs online at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// Maximum vCPUs when above `vcpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_poweroff: Option<LifecycleAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reboot: Option<LifecycleAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_crash: Option<LifecycleAction>,
    /// Device model (QEMU) path: libvirt `<emulator>`, xl `device_model_override`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
    #[serde(default, skip_serializing_if = "Boot::is_empty")]
    pub boot: Boot,
    #[serde(default, skip_serializing_if = "Features::is_empty")]
    pub features: Features,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    #[serde(default, rename = "disk", skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    #[serde(default, rename = "interface", skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, rename = "serial", skip_serializing_if = "Vec::is_empty")]
    pub serials: Vec<CharDev>,
    #[serde(default, rename = "console", skip_serializing_if = "Vec::is_empty")]
    pub consoles: Vec<CharDev>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graphics: Vec<Graphics>,
    #[serde(default, rename = "input", skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// Random number generators (libvirt `<rng>`); none means domboot's default (a
    /// virtio-rng with disks or interfaces).
    #[serde(default, rename = "rng", skip_serializing_if = "Vec::is_empty")]
    pub rngs: Vec<Rng>,
    /// libvirt `<vsock>` (at most one per domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<Vsock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    /// Paravirtual-style direct kernel boot (libvirt `linux`/`xen`, xl `pv`).
    #[default]
    Pv,
    /// Full virtualisation: firmware (`loader`) and optionally a kernel to boot directly.
    Hvm,
    /// PVH: 32-bit entry through the Xen ELF note (libvirt `xenpvh`).
    Pvh,
}

impl GuestType {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Hvm => "hvm",
            GuestType::Pvh => "pvh",
        }
    }
}

/// What to do when the guest powers off, reboots or crashes (same names in every syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleAction {
    Destroy,
    Restart,
    RenameRestart,
    Preserve,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

impl LifecycleAction {
    pub const ALL: [LifecycleAction; 7] = [
        LifecycleAction::Destroy,
        LifecycleAction::Restart,
        LifecycleAction::RenameRestart,
        LifecycleAction::Preserve,
        LifecycleAction::CoredumpDestroy,
        LifecycleAction::CoredumpRestart,
        LifecycleAction::SoftReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Destroy => "destroy",
            LifecycleAction::Restart => "restart",
            LifecycleAction::RenameRestart => "rename-restart",
            LifecycleAction::Preserve => "preserve",
            LifecycleAction::CoredumpDestroy => "coredump-destroy",
            LifecycleAction::CoredumpRestart => "coredump-restart",
            LifecycleAction::SoftReset => "soft-reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// Firmware file for HVM guests (xm `loader`, libvirt `<loader>`), e.g. hvmloader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<String>,
    /// Firmware by name (xl `firmware="uefi"`, libvirt `<os firmware="efi">`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// Kernel command line (xl `extra` or `cmdline`, libvirt `<cmdline>`, xend `args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Root device, prepended to the command line as `root=...` (xl `root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Host-side bootloader such as pygrub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader_args: Option<String>,
    /// Firmware boot device order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<BootDevice>,
}

impl Boot {
    pub fn is_empty(&self) -> bool {
        *self == Boot::default()
    }

    /// The command line the kernel gets, combining `root` and `cmdline` as xl does:
    /// `root=ROOT CMDLINE`.
    pub fn effective_cmdline(&self) -> Option<String> {
        match (&self.root, &self.cmdline) {
            (None, None) => None,
            (None, Some(c)) => Some(c.clone()),
            (Some(r), None) => Some(format!("root={r}")),
            (Some(r), Some(c)) => Some(format!("root={r} {c}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    Hd,
    Cdrom,
    Fd,
    Network,
}

impl BootDevice {
    /// The letter xl, xm and xend use (`boot="dc"`).
    pub fn letter(self) -> char {
        match self {
            BootDevice::Fd => 'a',
            BootDevice::Hd => 'c',
            BootDevice::Cdrom => 'd',
            BootDevice::Network => 'n',
        }
    }

    pub fn from_letter(c: char) -> Option<Self> {
        Some(match c {
            'a' => BootDevice::Fd,
            'c' => BootDevice::Hd,
            'd' => BootDevice::Cdrom,
            'n' => BootDevice::Network,
            _ => return None,
        })
    }

    /// libvirt's `<boot dev=...>` name.
    pub fn as_str(self) -> &'static str {
        match self {
            BootDevice::Hd => "hd",
            BootDevice::Cdrom => "cdrom",
            BootDevice::Fd => "fd",
            BootDevice::Network => "network",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            BootDevice::Hd,
            BootDevice::Cdrom,
            BootDevice::Fd,
            BootDevice::Network,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// `"dc"` for `[Cdrom, Hd]`.
    pub fn letters(order: &[BootDevice]) -> String {
        order.iter().map(|d| d.letter()).collect()
    }
}

/// CPU and platform features. Absent means off, as in libvirt XML; xl's HVM defaults
/// (acpi, apic, pae, hap on) are applied when an xl file is read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    #[serde(default, skip_serializing_if = "is_false")]
    pub acpi: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub apic: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pae: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hap: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub viridian: bool,
    /// Other libvirt features by element name (kept for conversion).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub other: BTreeSet<String>,
    /// Features turned off explicitly where that differs from leaving them out
    /// (libvirt `<hap state='off'/>`, xl `hap = 0`: xl's default is on).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub off: BTreeSet<String>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

impl Features {
    pub fn is_empty(&self) -> bool {
        *self == Features::default()
    }

    /// The named boolean features, in a fixed order.
    pub fn named(&self) -> [(&'static str, bool); 5] {
        [
            ("acpi", self.acpi),
            ("apic", self.apic),
            ("pae", self.pae),
            ("hap", self.hap),
            ("viridian", self.viridian),
        ]
    }

    /// Set a named feature; false if the name is not one of [`Features::named`].
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        let slot = match name {
            "acpi" => &mut self.acpi,
            "apic" => &mut self.apic,
            "pae" => &mut self.pae,
            "hap" => &mut self.hap,
            "viridian" => &mut self.viridian,
            _ => return false,
        };
        *slot = on;
        true
    }
}

/// The guest's real-time clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "offset", rename_all = "lowercase", deny_unknown_fields)]
pub enum Clock {
    Utc,
    Localtime,
    /// Offset in seconds from `basis` (xl `rtc_timeoffset`, with `localtime = 1` for a
    /// local-time basis).
    Variable {
        adjustment: i64,
        #[serde(default, skip_serializing_if = "ClockBasis::is_utc")]
        basis: ClockBasis,
    },
    Timezone {
        timezone: String,
    },
}

/// What a variable clock's offset counts from (libvirt `basis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockBasis {
    #[default]
    Utc,
    Localtime,
}

impl ClockBasis {
    fn is_utc(&self) -> bool {
        *self == ClockBasis::Utc
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClockBasis::Utc => "utc",
            ClockBasis::Localtime => "localtime",
        }
    }
}

impl DomainConfig {
    /// Put equivalent spellings into one form, so that every reader gives the same model
    /// for the same meaning: a maximum equal to the current value is no maximum, `xen` is
    /// the default hypervisor, a fixed port is dropped when autoport is on, a disk bus the
    /// target implies is not repeated.
    pub fn normalize(&mut self) {
        if self.max_memory.is_some() && self.max_memory == self.memory {
            self.max_memory = None;
        }
        if self.max_vcpus.is_some() && self.max_vcpus == self.vcpus {
            self.max_vcpus = None;
        }
        if self.hypervisor.as_deref() == Some("xen") {
            self.hypervisor = None;
        }
        for g in &mut self.graphics {
            if g.autoport {
                g.port = None;
            }
        }
        // virtio is the default model of both; only `random` reads a device file.
        if let Some(v) = &mut self.vsock
            && v.model.as_deref() == Some("virtio")
        {
            v.model = None;
        }
        for r in &mut self.rngs {
            if r.model.as_deref() == Some("virtio") {
                r.model = None;
            }
            if r.backend != "random" && r.backend != "egd" {
                r.source = None;
            }
        }
        // libvirt's default bus for an input that names none: on an HVM guest a mouse or
        // keyboard is PS/2 (left unnamed, as every writer reads it), anything else (a
        // tablet) USB, the only bus an emulated tablet has.
        if self.guest_type == GuestType::Hvm {
            for i in self.inputs.iter_mut().filter(|i| i.bus.is_none()) {
                if !matches!(i.kind.as_str(), "mouse" | "keyboard") {
                    i.bus = Some("usb".into());
                }
            }
        }
        // xl and xend keep USB inputs apart from the others: list them first.
        self.inputs.sort_by_key(|i| i.bus.as_deref() != Some("usb"));
        for d in &mut self.disks {
            if d.bus.is_some() && d.bus.as_deref() == implied_bus(&d.target) {
                d.bus = None;
            }
            // raw is every backend's default format, and blktap's `aio` is its raw
            // driver (libvirt writes `tap:aio:` as `<driver name='tap' type='raw'/>`).
            let tap = matches!(d.driver.as_deref(), Some("tap" | "tap2"));
            if d.format.as_deref() == Some("raw") || (tap && d.format.as_deref() == Some("aio")) {
                d.format = None;
            }
        }
        // An empty bootloader (a live xend domain's `(bootloader )`) is none.
        for b in [&mut self.boot.bootloader, &mut self.boot.bootloader_args] {
            if b.as_deref() == Some("") {
                *b = None;
            }
        }
        // xl's rule: `root` and `extra` combine into one command line (libvirt has only
        // <cmdline>), so every syntax reads the same model.
        if self.boot.root.is_some() {
            self.boot.cmdline = self.boot.effective_cmdline();
            self.boot.root = None;
        }
        let on: Vec<&'static str> = self
            .features
            .named()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect();
        let other = self.features.other.clone();
        self.features
            .off
            .retain(|n| !on.contains(&n.as_str()) && !other.contains(n));
        for (i, s) in self.serials.iter_mut().enumerate() {
            if s.port.is_some_and(|p| usize::try_from(p).ok() == Some(i)) {
                s.port = None;
            }
        }
        for d in &mut self.consoles {
            if d.port == Some(0) {
                d.port = None;
            }
        }
        for d in self.serials.iter_mut().chain(&mut self.consoles) {
            d.keep_relevant();
        }
        for n in &mut self.interfaces {
            // Several VLAN tags are a trunk (libvirt refuses several without one).
            if n.vlan.len() > 1 {
                n.vlan_trunk = true;
            }
            if n.vlan.is_empty() {
                n.vlan_trunk = false;
            }
        }
    }

    /// A console that is only what libvirt fills in for a Xen guest (a PV guest's pty `xen`
    /// console, an HVM guest's console on its first serial port) says nothing of its own: the
    /// model leaves it out, and the XML writer puts it back.
    /// libvirt's rule for an HVM Xen guest: a console with no serial device (an old
    /// `<console tty='/dev/pts/N'/>`) is serial port 0, which the console then shows.
    pub fn console_implies_serial(&mut self) {
        if self.guest_type != GuestType::Hvm
            || !self.serials.is_empty()
            || self.hypervisor.as_deref().is_some_and(|h| h != "xen")
        {
            return;
        }
        let [console] = self.consoles.as_slice() else {
            return;
        };
        if console.target.as_deref().is_some_and(|t| t != "serial") {
            return;
        }
        let serial = CharDev {
            target: None,
            port: None,
            ..console.clone()
        };
        self.serials.push(serial);
    }

    pub fn drop_implied_console(&mut self) {
        let c = self;
        let [console] = c.consoles.as_slice() else {
            return;
        };
        if c.hypervisor.as_deref().is_some_and(|h| h != "xen") {
            return;
        }
        let mut bare = console.clone();
        let target = bare.target.take();
        let port = bare.port.take().unwrap_or(0);
        let implied = match c.guest_type {
            GuestType::Pv | GuestType::Pvh => {
                target.as_deref().is_none_or(|t| t == "xen")
                    && port == 0
                    && bare == CharDev::default()
            }
            GuestType::Hvm => {
                let first = c.serials.first().map(|s| CharDev {
                    port: None,
                    ..s.clone()
                });
                target.as_deref().is_none_or(|t| t == "serial")
                    && first.as_ref() == Some(&bare)
                    && c.serial_ports().first() == Some(&port)
            }
        };
        if implied {
            c.consoles.clear();
        }
    }

    /// The port of each serial device: its `port`, or its place in the list.
    pub fn serial_ports(&self) -> Vec<u32> {
        self.serials
            .iter()
            .enumerate()
            .map(|(i, s)| s.port.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX)))
            .collect()
    }

    /// The firmware-path compatibility rule of the seeds: an HVM configuration whose
    /// `kernel` names the HVM firmware (hvmloader) and that has no `loader` means
    /// `loader`. Returns true when it applied.
    pub fn apply_hvm_kernel_is_loader_rule(&mut self) -> bool {
        if self.guest_type != GuestType::Hvm || self.boot.loader.is_some() {
            return false;
        }
        match self.boot.kernel.take() {
            Some(k) if is_firmware_path(&k) => {
                self.boot.loader = Some(k);
                true
            }
            other => {
                self.boot.kernel = other;
                false
            }
        }
    }
}

/// Whether a path names HVM firmware rather than a kernel: its file name contains
/// `hvmloader` (Xen's firmware loader), `ovmf`, `seabios`, `rombios` or is `bios.bin`.
pub fn is_firmware_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    ["hvmloader", "ovmf", "seabios", "rombios"]
        .iter()
        .any(|f| name.contains(f))
        || name == "bios.bin"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_cmdline_combines_root_like_xl() {
        let mut b = Boot::default();
        assert_eq!(b.effective_cmdline(), None);
        b.cmdline = Some("console=hvc0".into());
        assert_eq!(b.effective_cmdline().as_deref(), Some("console=hvc0"));
        b.root = Some("/dev/xvda1 ro".into());
        assert_eq!(
            b.effective_cmdline().as_deref(),
            Some("root=/dev/xvda1 ro console=hvc0")
        );
        b.cmdline = None;
        assert_eq!(b.effective_cmdline().as_deref(), Some("root=/dev/xvda1 ro"));
    }

    #[test]
    fn hvm_kernel_naming_firmware_means_loader() {
        let mut c = DomainConfig {
            guest_type: GuestType::Hvm,
            ..Default::default()
        };
        c.boot.kernel = Some("/usr/lib/xen/boot/hvmloader".into());
        assert!(c.apply_hvm_kernel_is_loader_rule());
        assert_eq!(
            c.boot.loader.as_deref(),
            Some("/usr/lib/xen/boot/hvmloader")
        );
        assert_eq!(c.boot.kernel, None);

        // A real kernel stays a kernel; a PV kernel is never firmware.
        let mut c = DomainConfig {
            guest_type: GuestType::Hvm,
            ..Default::default()
        };
        c.boot.kernel = Some("/root/vmlinuz".into());
        assert!(!c.apply_hvm_kernel_is_loader_rule());
        assert_eq!(c.boot.kernel.as_deref(), Some("/root/vmlinuz"));
        let mut c = DomainConfig::default();
        c.boot.kernel = Some("/usr/lib/xen/boot/hvmloader".into());
        assert!(!c.apply_hvm_kernel_is_loader_rule());
    }

    #[test]
    fn letters_round_trip() {
        for c in ['a', 'c', 'd', 'n'] {
            assert_eq!(BootDevice::from_letter(c).map(BootDevice::letter), Some(c));
        }
        assert_eq!(BootDevice::from_letter('z'), None);
        assert_eq!(
            BootDevice::letters(&[BootDevice::Cdrom, BootDevice::Hd]),
            "dc"
        );
    }

    #[test]
    fn normalize_merges_equivalent_spellings() {
        let mut c = DomainConfig {
            memory: MemSize::from_mib(512),
            max_memory: MemSize::from_mib(512),
            vcpus: Some(2),
            max_vcpus: Some(2),
            hypervisor: Some("xen".into()),
            ..Default::default()
        };
        c.disks.push(Disk {
            target: "hda".into(),
            bus: Some("ide".into()),
            ..Default::default()
        });
        c.normalize();
        assert_eq!(c.max_memory, None);
        assert_eq!(c.max_vcpus, None);
        assert_eq!(c.hypervisor, None);
        assert_eq!(c.disks[0].bus, None);
    }
}
