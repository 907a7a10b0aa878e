//! `<state>.lock`: keeps a second l5d-ecs off a state file, and names its holder. The lock is
//! the kernel's (`flock` on Unix, `LockFileEx` on Windows, through fs4): it goes with the
//! process that holds it, however that process ends, on every OS alike.

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fs4::FileExt;
use fs4::TryLockError;

pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// `<state>.lock`, locked exclusively, holding the pid and host of its holder and since when
/// it holds it (`pid=… host=… since=<RFC 3339>`), for the refusal of the next one.
pub(super) struct LockFile {
    path: PathBuf,
    file: File,
    /// The state's directory, when taking the lock made it: removed again with the lock if
    /// nothing was written into it, so a command that creates nothing leaves nothing.
    made_dir: Option<PathBuf>,
}

impl LockFile {
    pub(super) fn acquire(path: &Path) -> Result<Self> {
        let mut made_dir = None;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("creating directory {}", dir.display()))?;
                made_dir = Some(dir.to_owned());
            }
        }
        let holder = format!(
            "pid={} host={} since={}\n",
            std::process::id(),
            hostname(),
            crate::clock::now_rfc3339()
        );
        // The holder deletes the file as it lets go: a lock taken on a file that was deleted
        // meanwhile guards nothing, so it is taken again on the file that is there now.
        for _ in 0..5 {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            match FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut existing = String::new();
                    let _ = file.read_to_string(&mut existing);
                    bail!(
                        "another l5d-ecs is working on this stack ({}, lock file {}); wait \
                         for it to finish (the lock goes when that process ends)",
                        if existing.trim().is_empty() {
                            "holder unknown"
                        } else {
                            existing.trim()
                        },
                        path.display()
                    );
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            if !same_file(&file, path) {
                continue;
            }
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder.as_bytes()))
                .and_then(|()| file.flush())
                .with_context(|| format!("writing lock file {}", path.display()))?;
            return Ok(Self {
                path: path.to_owned(),
                file,
                made_dir,
            });
        }
        bail!("could not take the lock {}", path.display())
    }
}

/// Whether `file` is still the file at `path` (not deleted or replaced since it was opened).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Windows refuses to delete a file that is open, so an open file is the one at its path.
#[cfg(not(unix))]
fn same_file(_: &File, _: &Path) -> bool {
    true
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Deleted while still locked, so that no one locks a file on its way out.
        let _ = fs::remove_file(&self.path);
        let _ = FileExt::unlock(&self.file);
        if let Some(dir) = &self.made_dir {
            // Fails, and so keeps it, when the state file (or anything else) is in it.
            let _ = fs::remove_dir(dir);
        }
    }
}

pub(super) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackName;
    use crate::state::StateStore;

    fn stack() -> StackName {
        StackName::parse("t").unwrap()
    }

    async fn locked(path: &Path) -> Result<StateStore> {
        StateStore::open(path, &stack())?.lock(&stack()).await
    }

    #[tokio::test]
    async fn second_lock_is_refused_naming_the_holder_and_free_once_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let first = locked(&path).await.unwrap();
        let err = locked(&path).await.err().unwrap();
        let holder = format!("pid={} host={} since=20", std::process::id(), hostname());
        assert!(err.to_string().contains(&holder), "{err}");
        drop(first);
        assert!(!lock_path(&path).exists());
        assert!(locked(&path).await.is_ok());
    }

    #[tokio::test]
    async fn a_lock_file_left_without_a_holder_is_no_lock() {
        // What a killed holder leaves: the file, but no kernel lock on it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(lock_path(&path), "pid=999999999 host=elsewhere since=x\n").unwrap();
        let store = locked(&path).await.unwrap();
        let content = fs::read_to_string(lock_path(&path)).unwrap();
        assert!(
            content.contains(&format!("pid={}", std::process::id())),
            "{content}"
        );
        drop(store);
    }

    #[tokio::test]
    async fn a_lock_that_made_the_directory_removes_it_when_nothing_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join(".l5d-ecs");
        let path = state_dir.join("t.json");
        drop(locked(&path).await.unwrap());
        assert!(
            !state_dir.exists(),
            "an empty state directory was left behind"
        );

        // With a state file written, the directory stays (and the lock file goes).
        let store = locked(&path).await.unwrap();
        store.bind(&stack(), "us-east-1", "123456789012").unwrap();
        store.update(|s| s.serial += 0).await.unwrap();
        drop(store);
        assert!(path.exists());
        assert!(!lock_path(&path).exists());
    }
}
