//! The state dir's run lock: one apply run at a time, daemon or manual.

use super::RunError;

/// The state dir's run lock: one apply run at a time, daemon or manual. Released on drop.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(state_dir: &std::path::Path) -> Result<RunLock, RunError> {
        let path = state_dir.join("idsync.lock");
        let err = |detail: String| RunError::Lock {
            path: path.display().to_string(),
            detail,
        };
        crate::files::private_dir(state_dir).map_err(|e| err(e.to_string()))?;
        let file = crate::files::private_file(&path).map_err(|e| err(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(RunError::Busy {
                path: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_cannot_take_the_lock_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(RunError::Busy { .. })
        ));
        drop(first);
        assert!(RunLock::acquire(dir.path()).is_ok());
    }
}
