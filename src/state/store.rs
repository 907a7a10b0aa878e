//! The state of one stack: loaded once per command, bound to an account and region, and
//! saved after every change; also the idempotency tokens of creates under way.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::file::{backup_path, read_state, write_atomically};
use super::lock::{lock_path, LockFile};
use super::records::{Creates, PendingCreate, Resources, State, FORMAT_VERSION};
use crate::ids::{ClientToken, TokenApi};
use crate::stack::StackName;

/// The state of one stack, loaded once per command and saved after every change.
pub struct StateStore {
    path: PathBuf,
    state: Mutex<Option<State>>,
    _lock: Option<LockFile>,
}

impl StateStore {
    /// Reads the state file if there is one. A file that does not parse or has an unknown
    /// format version is an error, and is left untouched.
    pub fn open(path: &Path, stack: &StackName) -> Result<Self> {
        let state = read_state(path)?;
        if let Some(state) = &state {
            if &state.stack != stack {
                bail!(
                    "the state file {} belongs to stack {:?}, not {:?}; pass --stack {} or \
                     another --state",
                    path.display(),
                    state.stack.as_str(),
                    stack.as_str(),
                    state.stack
                );
            }
        }
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(state),
            _lock: None,
        })
    }

    /// Takes the lock that keeps a second l5d-ecs off this state file.
    pub fn lock(mut self) -> Result<Self> {
        self._lock = Some(LockFile::acquire(&lock_path(&self.path))?);
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn snapshot(&self) -> Option<State> {
        self.guard().clone()
    }

    pub fn resources(&self) -> Resources {
        self.guard()
            .as_ref()
            .map(|s| s.resources.clone())
            .unwrap_or_default()
    }

    /// Makes sure a state exists for this account and region, refusing a file that names
    /// another account or region than the current credentials.
    pub fn bind(&self, stack: &StackName, region: &str, account_id: &str) -> Result<()> {
        let mut guard = self.guard();
        match guard.as_ref() {
            Some(state) => {
                if state.region != region || state.account_id != account_id {
                    return Err(crate::stack::usage(format!(
                        "the state file {} is for account {} in {}, but the current credentials \
                         are for account {account_id} in {region}; use the matching --profile / \
                         --region, or another --state",
                        self.path.display(),
                        state.account_id,
                        state.region
                    )));
                }
                Ok(())
            }
            None => {
                *guard = Some(State {
                    format_version: FORMAT_VERSION,
                    lineage: new_lineage()?,
                    serial: 0,
                    stack: stack.clone(),
                    region: region.to_owned(),
                    account_id: account_id.to_owned(),
                    resources: Resources::default(),
                    instance: None,
                });
                Ok(())
            }
        }
    }

    /// Applies a change and writes the file before returning, so that the file always says
    /// what exists.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T> {
        let mut guard = self.guard();
        let state = guard
            .as_mut()
            .context("internal error: state updated before it was bound to an account")?;
        let before = serde_json::to_value(&*state).context("serialising state")?;
        let out = change(state);
        let on_disk = self.path.exists();
        if on_disk && serde_json::to_value(&*state).context("serialising state")? == before {
            return Ok(out);
        }
        state.serial += 1;
        write_atomically(&self.path, state)?;
        Ok(out)
    }

    /// The idempotency token for `what`, made by `request` (a [`request_digest`]): the pending
    /// one when an earlier try of the same request may have reached AWS, else a fresh one,
    /// written to the state file before it is sent so that a crash cannot lose it.
    pub fn client_token(
        &self,
        what: Creates<'_>,
        request: &str,
        api: TokenApi,
    ) -> Result<ClientToken> {
        let key = what.key();
        let pending = self
            .guard()
            .as_ref()
            .and_then(|s| s.resources.pending_creates.get(&key))
            .filter(|p| p.request == request && p.token.fits(api))
            .map(|p| p.token.clone());
        if let Some(token) = pending {
            return Ok(token);
        }
        let token = ClientToken::generate(api)?;
        self.update(|s| {
            s.resources.pending_creates.insert(
                key,
                PendingCreate {
                    token: token.clone(),
                    request: request.to_owned(),
                },
            );
        })?;
        Ok(token)
    }

    /// Forgets the pending token of `what`: its request failed for good, or answered with a
    /// resource that is gone, so the next try must be a new request.
    pub fn drop_token(&self, what: Creates<'_>) -> Result<()> {
        self.update(|s| s.resources.created(what))
    }

    /// Removes the state file (and its backup) once nothing is left.
    pub fn remove(&self) -> Result<()> {
        *self.guard() = None;
        for path in [self.path.clone(), backup_path(&self.path)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        }
        Ok(())
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        // A panic while holding the lock cannot leave a half-written state: writes go to a
        // temp file first. So a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A random v4 UUID, given when the file is first written. Older files have 16 hex digits
/// instead: the lineage is only ever compared as a string, so both read.
fn new_lineage() -> Result<String> {
    Ok(crate::ids::random_uuid()
        .context("cannot make the state file's lineage")?
        .hyphenated()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Arn;
    use crate::state::{ClusterRecord, LogGroupRecord};

    fn stack() -> StackName {
        StackName::parse("t").unwrap()
    }

    #[test]
    fn writes_atomically_with_backup_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store
            .update(|s| {
                s.resources.cluster = Some(ClusterRecord {
                    name: "t".into(),
                    arn: Arn("arn:aws:ecs:us-west-1:123456789012:cluster/t".into()),
                })
            })
            .unwrap();
        store.update(|_| ()).unwrap();
        store.update(|s| s.resources.cluster = None).unwrap();
        let reread = StateStore::open(&path, &stack())
            .unwrap()
            .snapshot()
            .unwrap();
        // The update that changed nothing wrote nothing.
        assert_eq!(reread.serial, 2);
        assert!(reread.resources.cluster.is_none());
        assert!(backup_path(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.remove().unwrap();
        assert!(!path.exists());
        assert!(!backup_path(&path).exists());
    }

    #[test]
    fn a_token_is_kept_until_its_resource_is_recorded_then_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        let what = Creates::ConsulServer;
        let first = store
            .client_token(what, "req-a", TokenApi::RunInstances)
            .unwrap();
        // A retry of the same request, also by the next run (the token is on disk).
        let reread = StateStore::open(&path, &stack()).unwrap();
        assert_eq!(
            reread
                .client_token(what, "req-a", TokenApi::RunInstances)
                .unwrap(),
            first
        );
        // Another request for the same resource must not send a known token.
        let other = store
            .client_token(what, "req-b", TokenApi::RunInstances)
            .unwrap();
        assert_ne!(other, first);
        // Recorded: the next creation of that resource (after a down) gets a new token.
        store.update(|s| s.resources.created(what)).unwrap();
        let again = store
            .client_token(what, "req-b", TokenApi::RunInstances)
            .unwrap();
        assert_ne!(again, other);
        assert_ne!(again, first);
        // Tokens of different resources never meet.
        let service = store
            .client_token(
                Creates::DaemonService("t-linkerd"),
                "req-b",
                TokenApi::CreateService,
            )
            .unwrap();
        assert!(service.fits(TokenApi::CreateService));
        assert_ne!(service, again);
        // Pending tokens alone do not keep a state file alive.
        assert!(store.resources().is_empty());
    }

    #[test]
    fn a_state_file_without_pending_tokens_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(
            &path,
            r#"{"format_version":1,"lineage":"ab","serial":3,"stack":"t","region":"us-west-1",
               "account_id":"123456789012","resources":{"cluster":{"name":"t","arn":"arn:x"}}}"#,
        )
        .unwrap();
        let state = StateStore::open(&path, &stack())
            .unwrap()
            .snapshot()
            .unwrap();
        assert!(state.resources.pending_creates.is_empty());
        assert!(state.resources.cluster.is_some());
    }

    #[test]
    fn a_new_lineage_is_a_v4_uuid_and_an_old_16_hex_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store.update(|_| ()).unwrap();
        let lineage = store.snapshot().unwrap().lineage;
        let uuid = uuid::Uuid::parse_str(&lineage).unwrap();
        assert_eq!(uuid.get_version_num(), 4, "{lineage}");
        assert_eq!(lineage, uuid.hyphenated().to_string());
        // A file written before lineages were UUIDs: read, and kept on the next write.
        let old = "0123456789abcdef";
        fs::write(
            &path,
            format!(
                r#"{{"format_version":1,"lineage":"{old}","serial":3,"stack":"t",
                   "region":"us-west-1","account_id":"123456789012"}}"#
            ),
        )
        .unwrap();
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store
            .update(|s| s.resources.log_group = Some(LogGroupRecord { name: "g".into() }))
            .unwrap();
        let reread = StateStore::open(&path, &stack())
            .unwrap()
            .snapshot()
            .unwrap();
        assert_eq!((reread.lineage.as_str(), reread.serial), (old, 4));
    }

    #[test]
    fn refuses_other_account_or_region() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store.update(|_| ()).unwrap();
        let store = StateStore::open(&path, &stack()).unwrap();
        assert!(store.bind(&stack(), "us-east-1", "123456789012").is_err());
        assert!(store.bind(&stack(), "us-west-1", "999999999999").is_err());
        assert!(store.bind(&stack(), "us-west-1", "123456789012").is_ok());
    }

    #[test]
    fn corrupt_or_unknown_version_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        for content in ["{not json", r#"{"format_version": 99}"#] {
            fs::write(&path, content).unwrap();
            let err = StateStore::open(&path, &stack()).err().unwrap();
            assert!(format!("{err:#}").contains("left untouched"), "{err:#}");
            assert_eq!(fs::read_to_string(&path).unwrap(), content);
        }
    }
}
