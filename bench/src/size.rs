//! Client size: what an app ships of the npm package, measured from `dist/` itself: the wasm
//! module plus the JS (entry, core and wasm-bindgen glue) bundled and minified by esbuild,
//! each gzipped at level 9. Every `.js`/`.wasm` file is also listed raw and gzipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSize {
    /// Path inside `dist/` (or a description for the bundle).
    pub name: String,
    /// Bytes.
    pub raw: u64,
    /// Bytes after gzip -9.
    pub gzip: u64,
}

/// The shipped client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSize {
    /// Every `.js` and `.wasm` file under `dist/` (type declarations are not code).
    pub files: Vec<FileSize>,
    /// What a browser app loads: the wasm module and the minified JS bundle.
    pub shipped: Vec<FileSize>,
    /// Sum of `shipped` raw sizes.
    pub raw: u64,
    /// Sum of `shipped` gzipped sizes (each file compressed on its own, as a server sends them).
    pub gzip: u64,
    /// How the JS was minified (or why it was not).
    pub minifier: String,
}

/// Measures `dist`; `None` when it has no `index.js` (package not built).
pub fn measure(dist: &Path) -> Result<Option<ClientSize>> {
    if !dist.join("index.js").is_file() {
        return Ok(None);
    }
    let mut size = ClientSize::default();
    let mut paths = Vec::new();
    walk(dist, &mut paths)?;
    paths.sort();
    let mut wasm = None;
    let mut plain_js = 0u64;
    for path in paths {
        let bytes = std::fs::read(&path)?;
        let name = path
            .strip_prefix(dist)
            .unwrap_or(&path)
            .display()
            .to_string();
        let f = FileSize {
            raw: bytes.len() as u64,
            gzip: gzip_len(&bytes)?,
            name,
        };
        if f.name.ends_with(".wasm") {
            wasm.get_or_insert_with(|| f.clone());
        } else if !["workerd", "react", "shared"]
            .iter()
            .any(|p| f.name.starts_with(p))
        {
            plain_js += f.gzip;
        }
        size.files.push(f);
    }
    size.shipped.extend(wasm);
    match minify(&dist.join("index.js")) {
        Some(min) => {
            size.minifier = "esbuild --bundle --minify (browser, ESM)".into();
            size.shipped.push(FileSize {
                name: "index.js bundled + minified".into(),
                raw: min.len() as u64,
                gzip: gzip_len(&min)?,
            });
        }
        None => {
            size.minifier = "none (esbuild not installed): JS counted unminified".into();
            size.shipped.push(FileSize {
                name: "JS, unminified".into(),
                raw: 0,
                gzip: plain_js,
            });
        }
    }
    size.raw = size.shipped.iter().map(|f| f.raw).sum();
    size.gzip = size.shipped.iter().map(|f| f.gzip).sum();
    Ok(Some(size))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "js" || e == "mjs" || e == "wasm")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The entry bundled and minified by the project's esbuild, if installed.
fn minify(entry: &Path) -> Option<Vec<u8>> {
    let esbuild = Path::new("node_modules/.bin/esbuild");
    if !esbuild.is_file() {
        return None;
    }
    let out = Command::new(esbuild)
        .arg(entry)
        .args(["--bundle", "--minify", "--format=esm", "--platform=browser"])
        // Imported on demand by `connect(url, { shared: true })`: a chunk of its own in an
        // app's bundle, loaded only by apps that share one socket between tabs.
        .arg("--external:./shared.js")
        .arg("--log-level=error")
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
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
