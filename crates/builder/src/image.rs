//! `DomainImage`: the one struct that holds the domain under construction — its inputs,
//! the parsed kernel and the build options — from which [`crate::x86_64`] makes a plan.

use crate::error::BuildError;
use crate::memory::MemoryMap;
use crate::plan::{BootPlan, FileBacking};
use bytes::Bytes;
use domboot_formats::{Chain, ChainOptions, Format, MappedFile};
use std::path::{Path, PathBuf};

/// Which boot protocol to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtocolChoice {
    /// linux64 for a 64-bit bzImage, linux32 for a 32-bit one, pvh for an ELF with the PVH
    /// note, the ELF entry conventions otherwise.
    #[default]
    Auto,
    Linux64,
    Linux32,
    Pvh,
}

/// Everything about the build that is not an input file.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub memory: u64,
    pub protocol: ProtocolChoice,
    /// Where the kernel's protected-mode code goes (relocatable: any kernel_alignment
    /// multiple; non-relocatable: anywhere, through the code32_start hook).
    pub load_address: Option<u64>,
    /// Pick a random kernel_alignment-aligned load address.
    pub kaslr: bool,
    /// Makes --kaslr reproducible.
    pub seed: Option<u64>,
    /// Put the initrd above 4 GiB when the kernel allows it (XLF_CAN_BE_LOADED_ABOVE_4G)
    /// and the guest has RAM there.
    pub initrd_above_4g: bool,
    /// Pass fresh entropy to the kernel as SETUP_RNG_SEED (linux protocols).
    pub rng_seed: bool,
    pub max_decompressed: Option<u64>,
    /// Decompress a bzImage's payload once while building, even for the linux protocols
    /// (which hand the kernel its compressed payload), so a corrupt payload or one larger
    /// than `max_decompressed` is an error here rather than a halt in the guest's
    /// decompressor. Costs one decompression (tens to hundreds of milliseconds).
    pub verify_payload: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            memory: 512 << 20,
            protocol: ProtocolChoice::Auto,
            load_address: None,
            kaslr: false,
            seed: None,
            initrd_above_4g: false,
            rng_seed: true,
            max_decompressed: None,
            verify_payload: true,
        }
    }
}

/// An initrd file, mapped, not copied.
#[derive(Clone, Debug)]
pub struct Initrd {
    pub path: PathBuf,
    pub data: Bytes,
}

/// The domain under construction.
pub struct DomainImage {
    pub kernel_path: PathBuf,
    /// The kernel's layers, unwrapped up to the first bzImage (a bzImage entered through
    /// the boot protocol needs no decompression) or to the ELF.
    pub kernel: Chain,
    /// Initrds in order; the guest sees them concatenated.
    pub initrds: Vec<Initrd>,
    /// Command line: the one given, or the UKI's, or empty.
    pub cmdline: String,
    pub memory: MemoryMap,
    pub options: BuildOptions,
    /// The mapped input files (kernel, initrds): a segment whose bytes are a slice of one
    /// of them is marked as file-backed in the plan.
    pub inputs: Vec<MappedFile>,
}

impl DomainImage {
    /// Opens the kernel and the initrds. A UKI's embedded initrd comes first and the given
    /// initrds follow it, as systemd-stub appends the boot loader's initrd to the UKI's
    /// `.initrd`; the UKI's `.cmdline` is used when no command line is given.
    pub fn new(
        kernel: &Path,
        initrds: &[PathBuf],
        cmdline: Option<&str>,
        options: BuildOptions,
    ) -> Result<DomainImage, BuildError> {
        let memory = MemoryMap::new(options.memory)?;
        let (chain, kernel_file) = domboot_formats::open_mapped(
            kernel,
            &ChainOptions {
                max_decompressed: options.max_decompressed,
                stop_at: vec![Format::BzImage],
                ..Default::default()
            },
        )?;
        let mut files = Vec::with_capacity(initrds.len());
        let mut inputs = vec![kernel_file];
        for path in initrds {
            let mapped =
                domboot_formats::map_file_with_handle(path).map_err(|error| BuildError::Io {
                    path: path.clone(),
                    error,
                })?;
            files.push(Initrd {
                path: path.clone(),
                data: mapped.bytes.clone(),
            });
            inputs.push(mapped);
        }
        let uki = chain.uki();
        if let Some(data) = uki.and_then(|u| u.initrd.clone()) {
            files.insert(
                0,
                Initrd {
                    path: PathBuf::from(format!("{}:.initrd", kernel.display())),
                    data,
                },
            );
        }
        let cmdline = match cmdline {
            Some(c) => c.to_string(),
            None => uki.and_then(|u| u.cmdline.clone()).unwrap_or_default(),
        };
        Ok(DomainImage {
            kernel_path: kernel.to_owned(),
            kernel: chain,
            initrds: files,
            cmdline,
            memory,
            options,
            inputs,
        })
    }

    /// Total initrd bytes.
    pub fn initrd_size(&self) -> u64 {
        self.initrds.iter().map(|i| i.data.len() as u64).sum()
    }

    /// The kernel's ELF, unwrapping a bzImage payload if the chain stopped at it.
    pub fn kernel_elf(&self) -> Result<Chain, BuildError> {
        if self.kernel.kernel_elf().is_some() {
            return Ok(self.kernel.clone());
        }
        let Some(bz) = self.kernel.bzimage() else {
            return Err(BuildError::Unsupported(format!(
                "{}: no bzImage or ELF kernel inside (layers: {})",
                self.kernel_path.display(),
                self.layer_names()
            )));
        };
        let payload = bz
            .bzimage()
            .and_then(|b| b.payload.as_ref())
            .map(|p| bz.data.slice(p.file_offset as usize..(p.file_offset + p.length) as usize))
            .ok_or_else(|| {
                BuildError::Unsupported(format!(
                    "{}: the bzImage declares no payload (boot protocol before 2.08), so its ELF kernel cannot be reached",
                    self.kernel_path.display()
                ))
            })?;
        let opts = ChainOptions {
            max_decompressed: self.options.max_decompressed,
            ..Default::default()
        };
        let mut inner = domboot_formats::unwrap_bytes(payload, &opts).map_err(|error| {
            BuildError::Kernel(domboot_formats::ChainError::Layer {
                path: self.kernel_path.clone(),
                error,
            })
        })?;
        inner.path = Some(self.kernel_path.clone());
        Ok(inner)
    }

    /// Decompresses the bzImage's payload (within `max_decompressed`) and checks that it
    /// holds an ELF kernel. A bzImage without a payload field (boot protocol before 2.08)
    /// has nothing to check.
    pub fn check_payload(&self) -> Result<(), BuildError> {
        let declared = self
            .kernel
            .bzimage()
            .and_then(|l| l.bzimage())
            .is_some_and(|b| b.payload.is_some());
        if declared && self.check_payload_streaming()? {
            return Ok(());
        }
        if declared {
            let inner = self.kernel_elf()?;
            if inner.kernel_elf().is_none() {
                return Err(BuildError::Unsupported(format!(
                    "{}: the bzImage payload unwraps to {}, not an ELF kernel",
                    self.kernel_path.display(),
                    inner
                        .layers
                        .iter()
                        .map(|l| l.format.name())
                        .collect::<Vec<_>>()
                        .join(" → ")
                )));
            }
        }
        Ok(())
    }

    /// [`crate::payload::verify`] on the bzImage payload: `Ok(true)` when it checked it,
    /// `Ok(false)` for a format it does not stream (the caller then unwraps it in memory).
    fn check_payload_streaming(&self) -> Result<bool, BuildError> {
        let Some(bz) = self.kernel.bzimage() else {
            return Ok(false);
        };
        let Some(p) = bz.bzimage().and_then(|b| b.payload.as_ref()) else {
            return Ok(false);
        };
        let Some(payload) = bz
            .data
            .get(p.file_offset as usize..(p.file_offset + p.length) as usize)
        else {
            return Ok(false);
        };
        let Some(format) = domboot_formats::compression::probe(payload) else {
            return Ok(false);
        };
        let limit = self
            .options
            .max_decompressed
            .unwrap_or(domboot_formats::DEFAULT_MAX_DECOMPRESSED);
        let path = self.kernel_path.display();
        let name = format.name();
        let verdict = crate::payload::verify(format, payload, limit);
        if self.backing_of(payload).is_some() {
            release_file_pages(payload);
        }
        match verdict {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(crate::payload::PayloadFault::Corrupt(why))) => Err(BuildError::Unsupported(
                format!("{path}: the bzImage payload ({name}) is corrupt: {why}"),
            )),
            Some(Err(crate::payload::PayloadFault::TooLarge(limit))) => {
                Err(BuildError::Unsupported(format!(
                    "{path}: the bzImage payload ({name}) decompresses to more than {limit} \
                     bytes (the --max-decompressed limit)"
                )))
            }
            Some(Err(crate::payload::PayloadFault::NotElf(head))) => {
                Err(BuildError::Unsupported(format!(
                    "{path}: the bzImage payload ({name}) does not hold an ELF kernel (it \
                     starts with {:02x} {:02x} {:02x} {:02x})",
                    head[0], head[1], head[2], head[3]
                )))
            }
        }
    }

    pub fn layer_names(&self) -> String {
        self.kernel
            .layers
            .iter()
            .map(|l| l.format.name())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// Builds the boot plan.
    pub fn build(&self) -> Result<BootPlan, BuildError> {
        let mut plan = crate::x86_64::build(self)?;
        for seg in &mut plan.segments {
            seg.backing = self.backing_of(&seg.data);
        }
        Ok(plan)
    }

    /// The input file `data` is an unchanged slice of, if any.
    fn backing_of(&self, data: &[u8]) -> Option<FileBacking> {
        self.inputs.iter().find_map(|input| {
            input.offset_of(data).map(|offset| FileBacking {
                file: input.file.clone(),
                offset,
            })
        })
    }
}

/// Unmaps the pages of `bytes`, a slice of an input file's private read-only mapping, from
/// this process; they stay in the page cache, and a later read maps them again with the
/// same contents. Why: the payload check reads every page of the payload (14 MiB for
/// Debian's kernel), and the mapping lives as long as the plan, which `run` keeps while the
/// guest runs: without this, a kernel's first run (every run, for a developer rebuilding
/// it) carried those pages in its resident memory to the end. The guest's copy of the
/// kernel is a mapping of its own. Only whole pages inside `bytes` are released.
fn release_file_pages(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let start = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (bytes.as_ptr() as usize + bytes.len()) & !(PAGE - 1);
    if end <= start {
        return;
    }
    // SAFETY: [start, end) lies inside `bytes`, which the caller checked is a slice of an
    // input file's mapping (`backing_of`): MAP_PRIVATE and PROT_READ, so no page of it was
    // ever written (copied on write) and MADV_DONTNEED only drops page-table entries; every
    // later access, from any thread, faults the same file bytes back in. No reference into
    // it becomes invalid. A failure (it cannot fail for a valid range) changes nothing.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}
