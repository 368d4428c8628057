//! Output files are written whole or not at all: a temporary file in the destination's
//! folder, synced, then renamed over the destination. An error or a crash never leaves a
//! half-written file behind.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, with mode 0644.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Streams output produced by `fill` into `path` atomically, with mode 0644: on any error
/// the temporary file is removed and `path` is untouched.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".domboot-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    set_readable(tmp.as_file())?;
    tmp.persist(path)
        .with_context(|| format!("cannot rename the output into place at {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn set_readable(file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .context("cannot set the output's permissions")
}

#[cfg(not(unix))]
fn set_readable(_file: &std::fs::File) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        write_file(&out, b"first").unwrap();
        write_file(&out, b"second").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let err = write_file(Path::new("/nonexistent-dir/x"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir"));
    }
}
