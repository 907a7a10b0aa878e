//! `<state>.lock`: keeps a second l5d-ecs off a state file, and names its holder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// `<state>.lock`, created exclusively, holding the pid and host of its holder and since when
/// it holds it (`pid=… host=… since=<RFC 3339>`). A lock whose process is gone (same host)
/// is stale and taken over.
pub(super) struct LockFile {
    path: PathBuf,
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
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    f.write_all(holder.as_bytes())?;
                    return Ok(Self {
                        path: path.to_owned(),
                        made_dir,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let existing = fs::read_to_string(path).unwrap_or_default();
                    if lock_is_stale(&existing) {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    bail!(
                        "another l5d-ecs is working on this stack ({}, lock file {}); wait for \
                         it to finish, or remove the lock file if that process is gone",
                        existing.trim(),
                        path.display()
                    );
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock file {}", path.display()))
                }
            }
        }
        bail!("could not take the lock {}", path.display())
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = &self.made_dir {
            // Fails, and so keeps it, when the state file (or anything else) is in it.
            let _ = fs::remove_dir(dir);
        }
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn lock_is_stale(content: &str) -> bool {
    let field = |key: &str| {
        content
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key).map(str::to_owned))
    };
    let (Some(pid), Some(host)) = (field("pid="), field("host=")) else {
        return false;
    };
    host == hostname() && !Path::new("/proc").join(pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackName;
    use crate::state::StateStore;

    fn stack() -> StackName {
        StackName::parse("t").unwrap()
    }

    #[test]
    fn second_lock_is_refused_and_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let first = StateStore::open(&path, &stack()).unwrap().lock().unwrap();
        let err = StateStore::open(&path, &stack())
            .unwrap()
            .lock()
            .err()
            .unwrap();
        let holder = format!("pid={} host={} since=20", std::process::id(), hostname());
        assert!(err.to_string().contains(&holder), "{err}");
        drop(first);
        fs::write(
            lock_path(&path),
            format!("pid=999999999 host={}\n", hostname()),
        )
        .unwrap();
        assert!(StateStore::open(&path, &stack()).unwrap().lock().is_ok());
    }

    #[test]
    fn a_lock_that_made_the_directory_removes_it_when_nothing_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join(".l5d-ecs");
        let path = state_dir.join("t.json");
        drop(StateStore::open(&path, &stack()).unwrap().lock().unwrap());
        assert!(
            !state_dir.exists(),
            "an empty state directory was left behind"
        );

        // With a state file written, the directory stays (and the lock file goes).
        let store = StateStore::open(&path, &stack()).unwrap().lock().unwrap();
        store.bind(&stack(), "us-east-1", "123456789012").unwrap();
        store.update(|s| s.serial += 0).unwrap();
        drop(store);
        assert!(path.exists());
        assert!(!lock_path(&path).exists());
    }
}
