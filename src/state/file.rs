//! The state file on disk: read (refusing what this version cannot read, untouched), and
//! written atomically with a backup of the previous copy, readable by its owner only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::records::{State, FORMAT_VERSION};
use crate::stack::StateLocation;

pub(super) fn read_state(path: &Path) -> Result<Option<State>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading state file {}", path.display())),
    };
    parse_state(
        &text,
        &StateLocation::Local(path.to_owned()).described(),
        &backup_path(path).display().to_string(),
    )
    .map(Some)
}

/// The state document in `text`, read from `what` ("state file PATH", "state s3://…") whose
/// previous copy is at `backup`, refusing what this version cannot read.
pub(super) fn parse_state(text: &str, what: &str, backup: &str) -> Result<State> {
    let value: serde_json::Value = serde_json::from_str(text).with_context(|| {
        format!(
            "the {what} is not valid JSON; it was left untouched (restore {backup} \
             or move it away)"
        )
    })?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        bail!(
            "the {what} has format version {}, this l5d-ecs reads version \
             {FORMAT_VERSION}; it was left untouched",
            version.map_or("(none)".to_owned(), |v| v.to_string())
        );
    }
    serde_json::from_value(value).with_context(|| {
        format!("the {what} does not have the expected shape; it was left untouched")
    })
}

/// Temp file in the same directory, fsync, keep the previous copy as `.backup`, rename, fsync
/// the directory: a crash at any point leaves either the old or the new file, never a torn one.
pub(super) fn write_atomically(path: &Path, state: &State) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".l5d-ecs-state")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    set_private(tmp.path())?;
    serde_json::to_writer_pretty(&mut tmp, state).context("serialising state")?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all().context("syncing state file")?;
    if path.exists() {
        fs::copy(path, backup_path(path))
            .with_context(|| format!("keeping a backup of {}", path.display()))?;
        set_private(&backup_path(path))?;
    }
    tmp.persist(path)
        .with_context(|| format!("writing state file {}", path.display()))?;
    if let Ok(d) = fs::File::open(dir) {
        // Best effort: some filesystems do not support syncing a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> Result<()> {
    Ok(())
}

pub(super) fn backup_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".backup");
    PathBuf::from(p)
}
