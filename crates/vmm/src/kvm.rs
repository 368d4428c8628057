//! Opening `/dev/kvm`: what is usable, what is not, and what the user should do about it.
//!
//! Detection is split in two so every message can be tested without the machine that
//! produces it: [`probe`] reads the system (device node, CPU flags, loaded modules) into a
//! [`Probe`], and [`Probe::status`] turns that into a [`KvmStatus`].

use kvm_ioctls::{Cap, Kvm};
use std::path::{Path, PathBuf};

/// The KVM API version every kernel since 2.6.22 reports.
pub const KVM_API_VERSION: i32 = 12;

/// Where the system keeps the facts [`probe`] reads.
#[derive(Clone, Debug)]
pub struct ProbePaths {
    pub dev_kvm: PathBuf,
    /// `/sys/module`: a `kvm_pvm` directory there means the PVM module is loaded.
    pub sys_module: PathBuf,
    /// `/proc/modules` (what `lsmod` reads), the second way to see kvm_pvm.
    pub proc_modules: PathBuf,
    pub cpuinfo: PathBuf,
}

impl Default for ProbePaths {
    fn default() -> Self {
        ProbePaths {
            dev_kvm: "/dev/kvm".into(),
            sys_module: "/sys/module".into(),
            proc_modules: "/proc/modules".into(),
            cpuinfo: "/proc/cpuinfo".into(),
        }
    }
}

/// What the system looks like, as far as KVM is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub dev_kvm: PathBuf,
    /// The device node exists.
    pub dev_exists: bool,
    /// `errno` of opening it read-write, if that failed.
    pub open_errno: Option<i32>,
    /// KVM_GET_API_VERSION, when it opened.
    pub api_version: Option<i32>,
    /// The CPU advertises VMX (Intel) or SVM (AMD).
    pub cpu_virt: bool,
    /// The CPU says it runs under a hypervisor (so VMX/SVM would have to be nested).
    pub under_hypervisor: bool,
    /// The PVM module (`kvm_pvm`) is loaded: `/dev/kvm` is PVM's.
    pub pvm: bool,
}

/// Whether KVM can run guests here, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmStatus {
    /// `/dev/kvm` opens and speaks API version 12. `pvm`: it is the PVM module's, which
    /// runs only PVM-aware kernels (and freestanding guests), not stock Linux.
    Usable { pvm: bool },
    /// There is no `/dev/kvm`. `cpu_virt`: the CPU has VMX/SVM (so the module is just not
    /// loaded); `under_hypervisor`: we are a guest ourselves.
    Missing {
        cpu_virt: bool,
        under_hypervisor: bool,
    },
    /// `/dev/kvm` exists but we may not open it (EACCES / EPERM).
    NoPermission { path: PathBuf },
    /// `/dev/kvm` exists but could not be used for another reason.
    Unusable { path: PathBuf, why: String },
}

impl KvmStatus {
    pub fn is_usable(&self) -> bool {
        matches!(self, KvmStatus::Usable { .. })
    }

    /// True when `/dev/kvm` is PVM's.
    pub fn is_pvm(&self) -> bool {
        matches!(self, KvmStatus::Usable { pvm: true })
    }

    /// A plain-language explanation with what to do next.
    pub fn advice(&self) -> String {
        match self {
            KvmStatus::Usable { pvm: false } => "KVM is usable.".into(),
            KvmStatus::Usable { pvm: true } => PVM_ADVICE.into(),
            KvmStatus::Missing { cpu_virt: true, .. } => {
                "/dev/kvm does not exist, although the CPU supports hardware virtualization: \
                  load the KVM module (`modprobe kvm_intel` or `modprobe kvm_amd`), or use the \
                  TCG fallback (QEMU without KVM)."
                    .into()
            }
            KvmStatus::Missing {
                cpu_virt: false,
                under_hypervisor: true,
            } => "/dev/kvm does not exist and this machine is itself a virtual machine whose CPU \
                  shows no VMX/SVM: nested virtualization is off. Enable it on the host (e.g. \
                  `kvm_intel nested=1` / `kvm_amd nested=1`, or the cloud provider's nested \
                  virtualization option), or use the TCG fallback (QEMU without KVM)."
                .into(),
            KvmStatus::Missing {
                cpu_virt: false,
                under_hypervisor: false,
            } => "/dev/kvm does not exist and the CPU shows no VMX/SVM: hardware virtualization \
                  is absent or disabled in the firmware (enable VT-x / AMD-V in the BIOS setup), \
                  or use the TCG fallback (QEMU without KVM)."
                .into(),
            KvmStatus::NoPermission { path } => format!(
                "no permission to open {}: add yourself to the kvm group \
                 (`sudo usermod -aG kvm $USER`, then log in again) or run as root.",
                path.display()
            ),
            KvmStatus::Unusable { path, why } => format!("{} is not usable: {why}", path.display()),
        }
    }
}

const PVM_ADVICE: &str = "/dev/kvm here is PVM (the kvm_pvm module), a paravirtual KVM: stock \
    Linux kernels cannot run on it. PVM runs a guest that is not PVM-aware through KVM's \
    instruction emulator: far too slowly to boot, and only until an instruction the emulator \
    lacks (a stock kernel stops at XRSTOR). Freestanding guests that use only port I/O, with \
    no interrupts and no IDT, do run. To boot a stock kernel, use the TCG fallback (QEMU \
    without KVM) or a host with VMX/SVM.";

impl Probe {
    pub fn status(&self) -> KvmStatus {
        if !self.dev_exists {
            return KvmStatus::Missing {
                cpu_virt: self.cpu_virt,
                under_hypervisor: self.under_hypervisor,
            };
        }
        match self.open_errno {
            Some(libc::EACCES) | Some(libc::EPERM) => {
                return KvmStatus::NoPermission {
                    path: self.dev_kvm.clone(),
                };
            }
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                return KvmStatus::Missing {
                    cpu_virt: self.cpu_virt,
                    under_hypervisor: self.under_hypervisor,
                };
            }
            Some(e) => {
                return KvmStatus::Unusable {
                    path: self.dev_kvm.clone(),
                    why: format!(
                        "opening it failed: {}",
                        std::io::Error::from_raw_os_error(e)
                    ),
                };
            }
            None => {}
        }
        match self.api_version {
            Some(KVM_API_VERSION) | None => KvmStatus::Usable { pvm: self.pvm },
            Some(v) => KvmStatus::Unusable {
                path: self.dev_kvm.clone(),
                why: format!("it speaks KVM API version {v}, not {KVM_API_VERSION}"),
            },
        }
    }
}

/// True when the PVM module is loaded (its sysfs directory, or a line in /proc/modules).
pub fn pvm_loaded(paths: &ProbePaths) -> bool {
    if paths.sys_module.join("kvm_pvm").exists() {
        return true;
    }
    std::fs::read_to_string(&paths.proc_modules)
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().next() == Some("kvm_pvm"))
        })
        .unwrap_or(false)
}

/// Reads the system into a [`Probe`] (opens and closes the device once).
pub fn probe(paths: &ProbePaths) -> Probe {
    let flags = cpu_flags(&paths.cpuinfo);
    let has = |f: &str| flags.iter().any(|x| x == f);
    let dev_exists = paths.dev_kvm.exists();
    let (open_errno, api_version) = if dev_exists {
        match Kvm::new_with_path(path_cstring(&paths.dev_kvm)) {
            Ok(kvm) => (None, Some(kvm.get_api_version())),
            Err(e) => (Some(e.errno()), None),
        }
    } else {
        (None, None)
    };
    Probe {
        dev_kvm: paths.dev_kvm.clone(),
        dev_exists,
        open_errno,
        api_version,
        cpu_virt: has("vmx") || has("svm"),
        under_hypervisor: has("hypervisor"),
        pvm: pvm_loaded(paths),
    }
}

fn path_cstring(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// The `flags` of the first CPU in a cpuinfo file.
fn cpu_flags(cpuinfo: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(cpuinfo).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The status of this machine's `/dev/kvm`.
pub fn kvm_status() -> KvmStatus {
    probe(&ProbePaths::default()).status()
}

/// Opens `/dev/kvm`, checking the API version and the capabilities domboot needs.
///
/// The device is opened once; the full [`probe`] (cpuinfo flags, a second open) runs only
/// to explain a failure, so start-up does not pay for it.
pub(crate) fn open() -> Result<(Kvm, bool), crate::VmmError> {
    let paths = ProbePaths::default();
    let kvm = Kvm::new_with_path(path_cstring(&paths.dev_kvm)).map_err(|e| {
        let status = probe(&paths).status();
        crate::VmmError::Kvm(if status.is_usable() {
            // It opened for the probe: say what failed here.
            KvmStatus::Unusable {
                path: paths.dev_kvm.clone(),
                why: format!(
                    "opening it failed: {}",
                    std::io::Error::from_raw_os_error(e.errno())
                ),
            }
        } else {
            status
        })
    })?;
    let status = Probe {
        dev_kvm: paths.dev_kvm.clone(),
        dev_exists: true,
        api_version: Some(kvm.get_api_version()),
        pvm: pvm_loaded(&paths),
        ..Default::default()
    }
    .status();
    if !status.is_usable() {
        return Err(crate::VmmError::Kvm(status));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(crate::VmmError::Kvm(KvmStatus::Unusable {
                path: paths.dev_kvm.clone(),
                why: format!("it lacks {name}, which domboot needs"),
            }));
        }
    }
    Ok((kvm, status.is_pvm()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Probe {
        Probe {
            dev_kvm: "/dev/kvm".into(),
            dev_exists: true,
            api_version: Some(12),
            ..Default::default()
        }
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let missing = Probe {
            dev_exists: false,
            api_version: None,
            under_hypervisor: true,
            ..base()
        }
        .status();
        assert!(missing.advice().contains("nested virtualization is off"));
        let bare = Probe {
            dev_exists: false,
            api_version: None,
            ..base()
        }
        .status();
        assert!(bare.advice().contains("BIOS"));
        let unloaded = Probe {
            dev_exists: false,
            cpu_virt: true,
            ..base()
        }
        .status();
        assert!(unloaded.advice().contains("modprobe kvm_intel"));
        let denied = Probe {
            open_errno: Some(libc::EACCES),
            api_version: None,
            ..base()
        }
        .status();
        assert_eq!(
            denied,
            KvmStatus::NoPermission {
                path: "/dev/kvm".into()
            }
        );
        assert!(denied.advice().contains("add yourself to the kvm group"));
        let old = Probe {
            api_version: Some(11),
            ..base()
        }
        .status();
        assert!(old.advice().contains("API version 11"));
        assert_eq!(base().status(), KvmStatus::Usable { pvm: false });
    }

    #[test]
    fn pvm_is_said_plainly() {
        let s = Probe {
            pvm: true,
            ..base()
        }
        .status();
        assert!(s.is_pvm());
        assert!(s.advice().contains("stock Linux kernels cannot run on it"));
    }

    #[test]
    fn probe_reads_files_it_is_pointed_at() {
        let dir = tempfile::tempdir().unwrap();
        let cpuinfo = dir.path().join("cpuinfo");
        std::fs::write(&cpuinfo, "processor : 0\nflags : fpu vme hypervisor lm\n").unwrap();
        let modules = dir.path().join("modules");
        std::fs::write(
            &modules,
            "kvm_pvm 1234 0 - Live 0x0\nkvm 99 1 kvm_pvm, Live 0x0\n",
        )
        .unwrap();
        let paths = ProbePaths {
            dev_kvm: dir.path().join("no-kvm"),
            sys_module: dir.path().join("sys"),
            proc_modules: modules,
            cpuinfo,
        };
        let p = probe(&paths);
        assert!(p.pvm && p.under_hypervisor && !p.cpu_virt && !p.dev_exists);
        assert!(matches!(p.status(), KvmStatus::Missing { .. }));
    }
}
