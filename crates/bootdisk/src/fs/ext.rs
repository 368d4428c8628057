//! ext2/3/4 through `ext4-view`, which follows symlinks itself (at most 40) and checks the
//! metadata checksums.

use super::FileSystem;
use crate::disk::Region;
use crate::error::FsError;
use ext4_view::{Ext4, Ext4Error};

pub struct Ext(Ext4);

pub fn open(region: &Region) -> Result<Box<dyn FileSystem>, FsError> {
    let fs =
        Ext4::load(Box::new(region.clone())).map_err(|e| FsError::Bad(format!("ext2/3/4: {e}")))?;
    Ok(Box::new(Ext(fs)))
}

fn fs_error(e: Ext4Error) -> FsError {
    match e {
        Ext4Error::NotFound => FsError::NotFound,
        e => FsError::bad(e),
    }
}

impl FileSystem for Ext {
    fn kind(&self) -> &'static str {
        "ext4"
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let size = self.0.metadata(path).map_err(fs_error)?.len();
        if size > limit {
            return Err(FsError::TooLarge { size, limit });
        }
        self.0.read(path).map_err(fs_error)
    }

    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError> {
        let mut names = Vec::new();
        for entry in self.0.read_dir(path).map_err(fs_error)? {
            let entry = entry.map_err(fs_error)?;
            let name = entry.file_name();
            let Ok(name) = name.as_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if names.len() == limit {
                return Err(FsError::Bad(format!("more than {limit} directory entries")));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }
}
