//! Static files from `--static-dir` (GET/HEAD), with content types browsers need for ES
//! modules and WebAssembly, and no way out of the directory.

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The content type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Maps a URL path to a file under `root`; `None` for anything that could escape it.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for seg in url_path.split('/') {
        if seg.is_empty() {
            continue;
        }
        if seg == "." || seg == ".." || seg.contains(['\\', '%', '\0', ':']) {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

/// Reads the file for `url_path`: `(content type, bytes)`, or `None` (404).
pub async fn load(root: &Path, url_path: &str) -> Option<(&'static str, Bytes)> {
    let mut path = resolve(root, url_path)?;
    let meta = tokio::fs::metadata(&path).await.ok()?;
    if meta.is_dir() {
        path.push("index.html");
    }
    // Symlinks pointing outside the root are refused too.
    let canonical_root = tokio::fs::canonicalize(root).await.ok()?;
    let canonical = tokio::fs::canonicalize(&path).await.ok()?;
    if !canonical.starts_with(&canonical_root) {
        return None;
    }
    let data = tokio::fs::read(&canonical).await.ok()?;
    Some((content_type(&canonical), Bytes::from(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        let root = Path::new("/srv/www");
        assert_eq!(
            resolve(root, "/a/b.js"),
            Some(PathBuf::from("/srv/www/a/b.js"))
        );
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/www")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/x"), None);
        assert_eq!(resolve(root, "/a\\..\\x"), None);
    }

    #[test]
    fn types() {
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert!(content_type(Path::new("x.js")).starts_with("text/javascript"));
    }
}
