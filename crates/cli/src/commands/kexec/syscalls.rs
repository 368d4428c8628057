//! The kexec system calls: `kexec_load` with the plan's segments and our purgatory,
//! `kexec_file_load` for `--file`, `reboot(LINUX_REBOOT_CMD_KEXEC)` for `exec`, and
//! unloading.

use super::LoadArgs;
use anyhow::{Context, bail};
use domboot_export::{KEXEC_SEGMENT_MAX, KexecImage};
use std::path::Path;
use std::process::ExitCode;

/// `struct kexec_segment` of the kexec_load system call.
#[repr(C)]
pub(super) struct RawSegment {
    buf: *const libc::c_void,
    bufsz: libc::size_t,
    mem: libc::size_t,
    memsz: libc::size_t,
}

pub(super) const KEXEC_ARCH_DEFAULT: libc::c_ulong = 0;
pub(super) const KEXEC_FILE_UNLOAD: libc::c_ulong = 1;
pub(super) const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 4;

pub(super) fn kexec_error(call: &str, err: std::io::Error) -> anyhow::Error {
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) => {
            " (needs root with CAP_SYS_BOOT and /proc/sys/kernel/kexec_load_disabled = 0; under lockdown only `--file` with a signed kernel works)"
        }
        Some(libc::ENOSYS) => " (this kernel is built without kexec support)",
        Some(libc::EBUSY) => " (another kexec load or unload is in progress)",
        Some(libc::EINVAL) => {
            " (the kernel rejected the segments: unaligned or overlapping, or more than half of its RAM)"
        }
        Some(libc::EADDRNOTAVAIL) => " (a segment lies beyond the memory kexec can load to)",
        Some(libc::EKEYREJECTED) | Some(libc::EBADMSG) => {
            " (the running kernel requires a signed kernel image)"
        }
        _ => "",
    };
    anyhow::anyhow!("{call} failed: {err}{hint}")
}

pub(super) fn kexec_load(image: &KexecImage) -> anyhow::Result<()> {
    if image.segments.len() > KEXEC_SEGMENT_MAX {
        bail!(
            "{} kexec segments, more than the {KEXEC_SEGMENT_MAX} kexec_load takes",
            image.segments.len()
        );
    }
    let raw: Vec<RawSegment> = image
        .segments
        .iter()
        .map(|s| RawSegment {
            buf: s.data.as_ptr().cast(),
            bufsz: s.data.len(),
            mem: s.addr as libc::size_t,
            memsz: s.mem_size as libc::size_t,
        })
        .collect();
    // SAFETY: kexec_load reads `raw.len()` segment descriptors from `raw`, and from each
    // `bufsz` bytes at `buf`; both stay alive (borrowed from `image`) for the whole call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            image.entry as libc::c_ulong,
            raw.len() as libc::c_ulong,
            raw.as_ptr(),
            KEXEC_ARCH_DEFAULT,
        )
    };
    if rc != 0 {
        return Err(kexec_error("kexec_load", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub(super) fn kernel_path(args: &LoadArgs) -> anyhow::Result<&Path> {
    args.kernel
        .as_deref()
        .context("--kernel FILE (or --disk DISK --bootloader) is required")
}

pub(super) fn load_file(args: &LoadArgs, cmdline: &str) -> anyhow::Result<ExitCode> {
    use std::os::fd::AsRawFd;
    let kernel_file = kernel_path(args)?;
    let kernel = std::fs::File::open(kernel_file)
        .with_context(|| format!("opening the kernel {}", kernel_file.display()))?;
    let mut head = [0u8; 0x210];
    {
        use std::io::Read;
        let mut k = &kernel;
        k.read_exact(&mut head).ok();
    }
    if &head[0x202..0x206] != b"HdrS" {
        bail!(
            "--file: {} is not a bzImage (no \"HdrS\" at 0x202); kexec_file_load takes only a bzImage, load other formats without --file",
            kernel_file.display()
        );
    }
    let mut flags = 0;
    let initrd = match args.initrd.as_slice() {
        [] => {
            flags |= KEXEC_FILE_NO_INITRAMFS;
            None
        }
        [one] => Some(
            std::fs::File::open(one)
                .with_context(|| format!("opening the initrd {}", one.display()))?,
        ),
        several => {
            // Several initrds: concatenated into an anonymous file.
            let mut all = tempfile::tempfile().context("a temporary file for the initrds")?;
            for p in several {
                let mut f = std::fs::File::open(p)
                    .with_context(|| format!("opening the initrd {}", p.display()))?;
                std::io::copy(&mut f, &mut all)
                    .with_context(|| format!("reading the initrd {}", p.display()))?;
            }
            Some(all)
        }
    };
    let initrd_text: Vec<String> = args
        .initrd
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if args.dry_run {
        println!(
            "kexec_file_load: kernel {}, initrd {}, command line {cmdline:?}\ndry run: nothing loaded",
            kernel_file.display(),
            if initrd_text.is_empty() {
                "none".into()
            } else {
                initrd_text.join(" + ")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let c = std::ffi::CString::new(cmdline).context("the command line holds a NUL byte")?;
    let len = c.as_bytes_with_nul().len();
    // SAFETY: the descriptors are open for the call; `c` is a NUL-terminated string of
    // `len` bytes (NUL included) that lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            len as libc::c_ulong,
            c.as_ptr(),
            flags,
        )
    };
    if rc != 0 {
        return Err(kexec_error(
            "kexec_file_load",
            std::io::Error::last_os_error(),
        ));
    }
    println!(
        "kexec: {} loaded by the running kernel (kexec_file_load), initrd {}, command line {cmdline:?}",
        kernel_file.display(),
        if initrd_text.is_empty() {
            "none".into()
        } else {
            initrd_text.join(" + ")
        }
    );
    println!(
        "loaded; nothing changes until `domboot kexec exec`, which replaces the running kernel at once"
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn exec() -> anyhow::Result<ExitCode> {
    let loaded = std::fs::read_to_string("/sys/kernel/kexec_loaded").unwrap_or_default();
    if loaded.trim() != "1" {
        bail!(
            "no kernel is loaded for kexec (/sys/kernel/kexec_loaded is not 1): run `domboot kexec load` first"
        );
    }
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    // SAFETY: reboot with LINUX_REBOOT_CMD_KEXEC takes no pointer; on success it does not
    // return (the loaded kernel runs).
    let rc = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC) };
    let err = std::io::Error::last_os_error();
    if rc != 0 {
        return Err(kexec_error("reboot(LINUX_REBOOT_CMD_KEXEC)", err));
    }
    bail!("reboot(LINUX_REBOOT_CMD_KEXEC) returned without booting the loaded kernel")
}

pub(super) fn unload() -> anyhow::Result<ExitCode> {
    // SAFETY: no segments: kexec_load reads no memory and unloads the loaded image.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            std::ptr::null::<RawSegment>(),
            KEXEC_ARCH_DEFAULT,
        )
    };
    if rc != 0 {
        let load_err = std::io::Error::last_os_error();
        // A kernel that refuses kexec_load (lockdown) still unloads through kexec_file_load.
        // SAFETY: KEXEC_FILE_UNLOAD ignores the descriptors and the (null) command line.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                -1,
                -1,
                0 as libc::c_ulong,
                std::ptr::null::<libc::c_char>(),
                KEXEC_FILE_UNLOAD,
            )
        };
        if rc != 0 {
            return Err(kexec_error("kexec_load (unload)", load_err));
        }
    }
    println!("kexec: unloaded");
    Ok(ExitCode::SUCCESS)
}
