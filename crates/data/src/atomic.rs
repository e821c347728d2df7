//! Atomic file writes: a temporary file in the same folder, synced, then renamed, so a
//! crash leaves the previous complete file and never a half-written one. Used for
//! downloads here and for every file of a run directory in `bottleneck-train`.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Writes `path` atomically through `fill`, which receives the temporary file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    fill(tmp.as_file_mut()).map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    tmp.as_file().sync_all()?;
    // Temporary files are private (0600); results are ordinary files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .map_err(|e| std::io::Error::new(e.error.kind(), format!("renaming into {}: {}", path.display(), e.error)))?;
    // The rename is durable only once the directory entry is: sync the folder too.
    sync_dir(dir)
}

/// Syncs a directory (its entries: a rename or a new file in it survives a crash).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        // Some filesystems cannot sync a directory handle; the data itself is synced.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput || e.raw_os_error() == Some(22) => Ok(()),
        r => r,
    }
}
