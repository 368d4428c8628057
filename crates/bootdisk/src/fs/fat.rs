//! FAT12/16/32 through `fatfs` (long names included; names match without regard to case,
//! as on FAT). FAT has no symlinks.

use super::{FileSystem, components, read_bounded};
use crate::disk::Region;
use crate::error::FsError;
use fatfs::{FileSystem as Fat, FsOptions};

pub struct FatFs(Fat<Region>);

/// A FAT boot sector: a jump instruction, 55 AA, a power-of-two sector size and a
/// non-zero cluster size; what fatfs itself then checks in detail.
pub fn looks_like_fat(boot: &[u8; 512]) -> bool {
    let jump = boot[0] == 0xEB || boot[0] == 0xE9;
    let bytes_per_sector = u16::from_le_bytes([boot[11], boot[12]]);
    let sectors_per_cluster = boot[13];
    jump && boot[510..] == [0x55, 0xAA]
        && (512..=4096).contains(&bytes_per_sector)
        && bytes_per_sector.is_power_of_two()
        && sectors_per_cluster.is_power_of_two()
}

pub fn open(region: &Region) -> Result<Box<dyn FileSystem>, FsError> {
    let fs = Fat::new(region.clone(), FsOptions::new())
        .map_err(|e| FsError::Bad(format!("FAT: {e}")))?;
    Ok(Box::new(FatFs(fs)))
}

fn fs_error(e: std::io::Error) -> FsError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FsError::NotFound,
        _ => FsError::bad(e),
    }
}

impl FileSystem for FatFs {
    fn kind(&self) -> &'static str {
        "fat"
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let path = components(path).collect::<Vec<_>>().join("/");
        let file = self.0.root_dir().open_file(&path).map_err(fs_error)?;
        read_bounded(file, limit)
    }

    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError> {
        let path = components(path).collect::<Vec<_>>().join("/");
        let root = self.0.root_dir();
        let dir = if path.is_empty() {
            root
        } else {
            root.open_dir(&path).map_err(fs_error)?
        };
        let mut names = Vec::new();
        for entry in dir.iter() {
            let name = entry.map_err(fs_error)?.file_name();
            if name == "." || name == ".." {
                continue;
            }
            if names.len() == limit {
                return Err(FsError::Bad(format!("more than {limit} directory entries")));
            }
            names.push(name);
        }
        Ok(names)
    }
}
