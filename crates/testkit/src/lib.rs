//! Test support shared by the crates' integration tests: locating the real kernels tests run
//! against (the prebuilt tiny kernels in ../shared and the Debian kernels that
//! scripts/setup.sh fetches into the cache).

use std::path::PathBuf;

/// `$DOMBOOT_SHARED`, or the `shared` folder beside the repository.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOMBOOT_SHARED") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared");
    assert!(
        dir.join("kernels").is_dir(),
        "the test kernels are missing: expected {} (set DOMBOOT_SHARED)",
        dir.display()
    );
    dir
}

pub fn shared_kernel(name: &str) -> PathBuf {
    shared_dir().join("kernels").join(name)
}

/// `$DOMBOOT_CACHE`, or `~/.cache/domboot`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOMBOOT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/domboot"),
    }
}

/// A Debian kernel fetched by scripts/setup.sh (`flavour` is "cloud" or "generic").
pub struct DebianKernel {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    /// e.g. "6.1.0-56-cloud-amd64"
    pub release: String,
    /// e.g. "6.1.192-2"
    pub package_version: String,
}

pub fn debian_kernel(flavour: &str) -> DebianKernel {
    let dir = cache_dir().join("debian").join(flavour);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run scripts/setup.sh --install-only to fetch the Debian kernels",
                    dir.join(name).display()
                )
            })
            .trim()
            .to_string()
    };
    DebianKernel {
        vmlinuz: dir.join("vmlinuz"),
        config: dir.join("config"),
        release: read("kernel-release"),
        package_version: read("package-version"),
    }
}

/// The tiny kernels of ../shared/kernels: (name, payload format, is 64-bit, relocatable, PVH).
pub const TINY_KERNELS: &[(&str, &str, bool, bool, bool)] = &[
    ("x64-pvh-gzip", "gzip", true, true, true),
    ("x64-pvh-bzip2", "bzip2", true, true, true),
    ("x64-pvh-lzma", "lzma", true, true, true),
    ("x64-pvh-xz", "xz", true, true, true),
    ("x64-pvh-lzo", "lzo", true, true, true),
    ("x64-pvh-lz4", "lz4", true, true, true),
    ("x64-pvh-zstd", "zstd", true, true, true),
    ("x64-norelo-gzip", "gzip", true, false, false),
    ("i386-norelo-xz", "xz", false, false, false),
];
