//! Kernel, initrd and layout options shared by `build`, `plan` (and later `run`).

use super::domain_config::{self, FromConfig, Overrides};
use crate::units::{parse_guest_memory, parse_size};
use domboot_builder::{BuildOptions, DomainImage, ProtocolChoice};
use std::path::PathBuf;

/// Guest RAM when neither --memory nor a configuration says.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

#[derive(clap::Args, Clone, Debug)]
pub struct BootArgs {
    /// A domain configuration (TOML, libvirt XML, xl/xm or xend SEXPR; detected) giving
    /// kernel, initrd, command line, memory and vCPUs; options given here override it.
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// With CONFIG: fail on items domboot keeps but cannot honour yet (a VNC display, a
    /// bridge, disks) instead of warning.
    #[arg(long, requires = "config")]
    pub strict: bool,
    /// Kernel image: bzImage, vmlinux ELF, UKI or a compressed kernel. (`run --exec`
    /// defaults to /boot/vmlinuz-$(uname -r), then the kernel scripts/setup.sh cached.)
    #[arg(long, short = 'k', value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk; repeat to concatenate several (in order).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub initrd: Vec<PathBuf>,
    /// Kernel command line (default: a UKI's embedded one, or empty; `run` adds
    /// console=ttyS0 and panic=-1 unless it names a console and a panic=). QEMU's spelling
    /// --append works too.
    #[arg(long, short = 'c', visible_alias = "append", value_name = "TEXT")]
    pub cmdline: Option<String>,
    /// Guest RAM: a bare number is MiB (as QEMU's -m), or K/M/G/T, decimals allowed
    /// (1.5G); default: the configuration's, else 512M.
    #[arg(long, short = 'm', value_name = "SIZE", value_parser = parse_guest_memory)]
    pub memory: Option<u64>,
    /// How to enter the kernel: auto picks linux64 for a 64-bit bzImage, linux32 for a
    /// 32-bit one, pvh for an ELF with the PVH note.
    #[arg(long, value_enum, default_value_t = Protocol::Auto)]
    pub boot_protocol: Protocol,
    /// Physical load address of the kernel (relocatable: a kernel_alignment multiple;
    /// non-relocatable: anywhere, through a code32_start hook). Hex with 0x.
    #[arg(long, value_name = "ADDR", value_parser = parse_size)]
    pub load_address: Option<u64>,
    /// Load a relocatable kernel at a random aligned address.
    #[arg(long)]
    pub kaslr: bool,
    /// Seed for --kaslr, for a reproducible placement.
    #[arg(long, value_name = "N", requires = "kaslr")]
    pub seed: Option<u64>,
    /// Put the initrd above 4 GiB (needs a kernel with XLF_CAN_BE_LOADED_ABOVE_4G and RAM
    /// above 4 GiB).
    #[arg(long)]
    pub initrd_above_4g: bool,
    /// Do not pass a SETUP_RNG_SEED to the kernel (makes the output reproducible).
    #[arg(long)]
    pub no_rng_seed: bool,
    /// Most bytes decompressing the kernel may produce.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_decompressed: Option<u64>,
    /// A disk image (`FILE` or `FILE,ro`); repeat for several. `run` gives them to the
    /// guest as virtio disks, the first as /dev/vda; plan and build read only the first, and
    /// only with --bootloader.
    #[arg(long, value_name = "FILE[,ro]", value_parser = super::boot_entries::parse_disk)]
    pub disk: Vec<super::boot_entries::DiskArg>,
    /// Boot what the first --disk's boot loader would: the kernel, initrds and command line
    /// of one of its boot entries (BLS, UKI, grub.cfg, extlinux/syslinux/isolinux,
    /// menu.lst; list them with `domboot boot-entries IMAGE`), read from the image without
    /// mounting it. --initrd adds initrds after the entry's; --cmdline replaces its command
    /// line. `run --bootloader` also attaches the disks to the guest.
    #[arg(long, requires = "disk", conflicts_with_all = ["kernel", "config"])]
    pub bootloader: bool,
    /// With --bootloader: the entry to boot, by index (from 0), title or id (default: the
    /// boot loader's default); `menu` asks on the terminal (`run` only).
    #[arg(long, value_name = "N|TITLE|menu", requires = "bootloader")]
    pub boot_entry: Option<String>,
}

/// A domain to boot: its image, and the configuration file's settings when one was given
/// (vCPUs, disks, interfaces: what `run` needs beyond the image).
pub struct Domain {
    pub image: DomainImage,
    pub config: Option<FromConfig>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Protocol {
    Auto,
    Linux64,
    Linux32,
    Pvh,
}

impl BootArgs {
    /// The kernel given with --kernel, or an error saying it is needed.
    pub fn kernel(&self) -> anyhow::Result<&PathBuf> {
        self.kernel
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--kernel FILE (or a CONFIG file) is required"))
    }

    /// The configuration file's settings with the command line's applied, when a CONFIG was
    /// given.
    pub fn config_settings(&self) -> anyhow::Result<Option<FromConfig>> {
        let Some(path) = &self.config else {
            return Ok(None);
        };
        let over = Overrides {
            kernel: self.kernel.as_deref(),
            initrds: &self.initrd,
            cmdline: self.cmdline.as_deref(),
        };
        domain_config::load(path, &over, self.strict).map(Some)
    }

    pub fn image(&self) -> anyhow::Result<DomainImage> {
        self.domain(false).map(|d| d.image)
    }

    /// The domain, with what the configuration (if any) says beyond the boot image.
    /// `interactive`: `--boot-entry menu` may ask on the terminal (`run`).
    pub fn domain(&self, interactive: bool) -> anyhow::Result<Domain> {
        if self.bootloader {
            return Ok(Domain {
                image: super::boot_entries::image_from_disk(self, interactive)?,
                config: None,
            });
        }
        match self.config_settings()? {
            Some(c) => {
                let image = match (&c.kernel, &c.disk_boot) {
                    (Some(kernel), _) => {
                        self.image_from(kernel, &c.initrds, c.cmdline.as_deref(), c.memory, c.pvh)?
                    }
                    (None, Some(d)) => super::boot_entries::image_from_boot_disk(
                        self,
                        &super::boot_entries::DiskBoot {
                            disk: &d.disk,
                            entry: self.boot_entry.as_deref().or(d.entry.as_deref()),
                            cmdline: self.cmdline.as_deref(),
                            append: d.append.as_deref(),
                            menu_allowed: interactive,
                        },
                    )?,
                    (None, None) => anyhow::bail!("the configuration names no kernel"),
                };
                Ok(Domain {
                    image,
                    config: Some(c),
                })
            }
            None => {
                let kernel = self.kernel()?.clone();
                Ok(Domain {
                    image: self.image_of(&kernel, &[], self.cmdline.as_deref())?,
                    config: None,
                })
            }
        }
    }

    /// The domain for `kernel`, with `extra_initrds` after the user's and `cmdline`.
    pub fn image_of(
        &self,
        kernel: &std::path::Path,
        extra_initrds: &[PathBuf],
        cmdline: Option<&str>,
    ) -> anyhow::Result<DomainImage> {
        let mut initrds = self.initrd.clone();
        initrds.extend_from_slice(extra_initrds);
        self.image_from(kernel, &initrds, cmdline, None, false)
    }

    /// The domain from resolved inputs; `memory` and `pvh` are a configuration's defaults,
    /// which --memory and --boot-protocol override.
    pub fn image_from(
        &self,
        kernel: &std::path::Path,
        initrds: &[PathBuf],
        cmdline: Option<&str>,
        memory: Option<u64>,
        pvh: bool,
    ) -> anyhow::Result<DomainImage> {
        let options = BuildOptions {
            memory: self.memory.or(memory).unwrap_or(DEFAULT_MEMORY),
            protocol: match self.boot_protocol {
                Protocol::Auto if pvh => ProtocolChoice::Pvh,
                Protocol::Auto => ProtocolChoice::Auto,
                Protocol::Linux64 => ProtocolChoice::Linux64,
                Protocol::Linux32 => ProtocolChoice::Linux32,
                Protocol::Pvh => ProtocolChoice::Pvh,
            },
            load_address: self.load_address,
            kaslr: self.kaslr,
            seed: self.seed,
            initrd_above_4g: self.initrd_above_4g,
            rng_seed: !self.no_rng_seed,
            max_decompressed: self.max_decompressed,
            // Checked below, once per kernel file (see `verified`), not on every build.
            verify_payload: false,
        };
        let pvh = options.protocol == ProtocolChoice::Pvh;
        let image = DomainImage::new(kernel, initrds, cmdline, options)?;
        // The linux protocols hand the kernel its compressed payload: decompress it once
        // here so a corrupt or oversized one is an error now, not a silent halt in the
        // guest's decompressor. (PVH boots the ELF inside, which the build unwraps anyway.)
        if !pvh {
            let limit = self
                .max_decompressed
                .unwrap_or(domboot_formats::DEFAULT_MAX_DECOMPRESSED);
            let marks = super::verified::dir();
            if !super::verified::known(&marks, kernel, limit) {
                image.check_payload()?;
                super::verified::remember(&marks, kernel, limit);
            }
        }
        Ok(image)
    }
}
