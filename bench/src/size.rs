//! Client size: the wasm module and the JS glue the npm package ships in `dist/`, raw and
//! gzipped (level 9), measured from the files themselves.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One shipped file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSize {
    /// File name inside `dist/`.
    pub name: String,
    /// Bytes on disk.
    pub raw: u64,
    /// Bytes after gzip -9.
    pub gzip: u64,
}

/// The shipped client, file by file and in total.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientSize {
    /// Every `.wasm` and `.js` file (type declarations and source maps are not shipped code).
    pub files: Vec<FileSize>,
    /// Sum of raw sizes.
    pub raw: u64,
    /// Sum of gzipped sizes (each file compressed on its own, as a server sends them).
    pub gzip: u64,
}

/// Measures `dist`; `None` when it does not exist (package not built).
pub fn measure(dist: &Path) -> Result<Option<ClientSize>> {
    if !dist.is_dir() {
        return Ok(None);
    }
    let mut size = ClientSize::default();
    let mut entries: Vec<_> = std::fs::read_dir(dist)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let shipped_code =
            (name.ends_with(".js") || name.ends_with(".mjs") || name.ends_with(".wasm"))
                && !name.ends_with(".d.ts");
        if !shipped_code || !entry.file_type()?.is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path())?;
        let gzip = gzip_len(&bytes)?;
        size.raw += bytes.len() as u64;
        size.gzip += gzip;
        size.files.push(FileSize {
            name,
            raw: bytes.len() as u64,
            gzip,
        });
    }
    Ok(Some(size))
}

fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_shrinks_repetitive_input() {
        let n = gzip_len(&[b'a'; 10_000]).unwrap();
        assert!(n < 100, "{n}");
    }

    #[test]
    fn missing_dist_is_none() {
        assert!(measure(Path::new("/nonexistent/dist")).unwrap().is_none());
    }
}
