//! Files that hold personal data (the journal, saved plans, reports) are the service's
//! alone, whatever the umask: directories 0700, files 0600, written through a randomly
//! named temporary file (created exclusively, so a planted file or symlink is never
//! followed or reused) and renamed into place.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) and makes it 0700. An existing directory that idsync may
/// not chmod (owned by another user, e.g. a shared one) is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700);
    Ok(())
}

/// Opens (creating it if need be) a file that only its owner may read: 0600, never through
/// a symlink.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Makes an existing file or directory `mode` if it is looser (best effort: a file owned
/// by someone else keeps its mode).
pub fn tighten(path: &Path, mode: u32) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let current = meta.permissions().mode() & 0o777;
        if !meta.file_type().is_symlink() && current & !mode != 0 {
            if let Err(e) = std::fs::set_permissions(path, Permissions::from_mode(mode)) {
                tracing::warn!(path = %path.display(), error = %e, "cannot make it private");
            }
        }
    }
}

/// Writes `text` to `path` via a random, exclusively created 0600 temporary file in the same
/// directory and a rename: a reader never sees half a file, and nothing planted at a
/// predictable temporary name is followed.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_private_and_replace_a_planted_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_private(&out, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{}");
        assert_eq!(mode(&out), 0o600);
    }

    #[test]
    fn private_files_refuse_symlinks_and_existing_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        private_dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        let loose = state.join("journal");
        std::fs::write(&loose, "").unwrap();
        std::fs::set_permissions(&loose, Permissions::from_mode(0o644)).unwrap();
        private_file(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
        let link = state.join("lock");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(private_file(&link).is_err());
    }
}
