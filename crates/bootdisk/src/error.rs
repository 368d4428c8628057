//! Errors name the image, the partition and the path inside it, and say what is wrong.

use std::path::PathBuf;

/// Where in a disk image something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub image: PathBuf,
    /// "partition 2 (gpt)", "whole disk", or None before partitions are known.
    pub partition: Option<String>,
    /// A path inside the partition's filesystem.
    pub path: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.image.display())?;
        if let Some(p) = &self.partition {
            write!(f, ", {p}")?;
        }
        if let Some(p) = &self.path {
            write!(f, ", {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{at}: cannot read the image: {source}")]
    Io {
        at: Location,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: corrupt {scheme} partition table: {reason}")]
    Table {
        at: Location,
        scheme: &'static str,
        reason: String,
    },
    #[error("{at}: {reason}")]
    Filesystem { at: Location, reason: String },
    #[error("{at}: {size} bytes is more than the {limit}-byte limit for {what}")]
    TooLarge {
        at: Location,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{image}: no boot entries found (looked for {looked} on {searched})")]
    NoEntries {
        image: PathBuf,
        looked: String,
        searched: String,
    },
    #[error("{image}: no boot entry {wanted} (there are {count}: {titles})")]
    NoSuchEntry {
        image: PathBuf,
        wanted: String,
        count: usize,
        titles: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a filesystem reader reports before the caller adds image and partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    /// The path exists but is a directory, a device, ...; or it is corrupt.
    Bad(String),
    TooLarge {
        size: u64,
        limit: u64,
    },
}

impl FsError {
    pub fn bad(e: impl std::fmt::Display) -> FsError {
        FsError::Bad(e.to_string())
    }
}
