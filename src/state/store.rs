//! The state of one stack: loaded once per command, bound to an account and region, and
//! saved after every change, to a local file or to S3; also the idempotency tokens of creates
//! under way.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::file::{backup_path, parse_state, read_state, write_atomically};
use super::lock::{lock_path, LockFile};
use super::records::{Creates, PendingCreate, Resources, State, FORMAT_VERSION};
use super::remote::{RemoteLock, RemoteState};
use crate::ids::{ClientToken, TokenApi};
use crate::stack::{StackName, StateLocation};

/// The state of one stack, loaded once per command and saved after every change.
pub struct StateStore {
    location: StateLocation,
    backend: Backend,
    state: Mutex<Option<State>>,
    /// Held while a change is written, so that writes land in the order of their serials.
    writing: tokio::sync::Mutex<()>,
    _lock: Option<Lock>,
}

enum Backend {
    File(std::path::PathBuf),
    S3(RemoteState),
}

/// Held until the store is dropped.
enum Lock {
    File(#[allow(dead_code)] LockFile),
    S3(#[allow(dead_code)] RemoteLock),
}

impl StateStore {
    /// Reads the state file if there is one. A file that does not parse or has an unknown
    /// format version is an error, and is left untouched.
    pub fn open(path: &Path, stack: &StackName) -> Result<Self> {
        let state = read_state(path)?;
        let location = StateLocation::Local(path.to_owned());
        check_stack(&location, state.as_ref(), stack)?;
        Ok(Self {
            location,
            backend: Backend::File(path.to_owned()),
            state: Mutex::new(state),
            writing: tokio::sync::Mutex::new(()),
            _lock: None,
        })
    }

    /// Reads the state from S3 if it is there, with the same checks as a file's.
    pub async fn open_remote(remote: RemoteState, stack: &StackName) -> Result<Self> {
        let location = StateLocation::S3(remote.object().clone());
        let state = read_remote(&remote, &location).await?;
        check_stack(&location, state.as_ref(), stack)?;
        let store = Self::unread_remote(remote);
        *store.guard() = state;
        Ok(store)
    }

    /// The S3 state not read yet: for [`Self::lock`], which reads it under the lock.
    pub fn unread_remote(remote: RemoteState) -> Self {
        Self {
            location: StateLocation::S3(remote.object().clone()),
            backend: Backend::S3(remote),
            state: Mutex::new(None),
            writing: tokio::sync::Mutex::new(()),
            _lock: None,
        }
    }

    /// Takes the lock that keeps a second l5d-ecs off this state, then reads the state again:
    /// what counts is what the last holder left.
    pub async fn lock(mut self, stack: &StackName) -> Result<Self> {
        let state = match &self.backend {
            Backend::File(path) => {
                self._lock = Some(Lock::File(LockFile::acquire(&lock_path(path))?));
                read_state(path)?
            }
            Backend::S3(remote) => {
                self._lock = Some(Lock::S3(remote.lock().await?));
                read_remote(remote, &self.location).await?
            }
        };
        check_stack(&self.location, state.as_ref(), stack)?;
        *self.guard() = state;
        Ok(self)
    }

    /// Where the state is kept: a file, or an S3 object.
    pub fn location(&self) -> &StateLocation {
        &self.location
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
                        "the {} is for account {} in {}, but the current credentials are for \
                         account {account_id} in {region}; use the matching --profile / \
                         --region, or another --state",
                        self.location.described(),
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
                    expires_at: None,
                });
                Ok(())
            }
        }
    }

    /// Applies a change and writes it out before returning, so that the state always says
    /// what exists. Writes go out one at a time, in the order of their changes.
    pub async fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T> {
        let _writing = self.writing.lock().await;
        let (out, changed) = {
            let mut guard = self.guard();
            let state = guard
                .as_mut()
                .context("internal error: state updated before it was bound to an account")?;
            let before = serde_json::to_value(&*state).context("serialising state")?;
            let out = change(state);
            let written = match &self.backend {
                Backend::File(path) => path.exists(),
                Backend::S3(remote) => remote.exists(),
            };
            if written && serde_json::to_value(&*state).context("serialising state")? == before {
                return Ok(out);
            }
            state.serial += 1;
            (out, state.clone())
        };
        match &self.backend {
            Backend::File(path) => write_atomically(path, &changed)?,
            Backend::S3(remote) => {
                let body = serde_json::to_vec_pretty(&changed).context("serialising state")?;
                remote.write(body).await?;
            }
        }
        Ok(out)
    }

    /// The idempotency token for `what`, made by `request` (a [`request_digest`]): the pending
    /// one when an earlier try of the same request may have reached AWS, else a fresh one,
    /// written to the state file before it is sent so that a crash cannot lose it.
    pub async fn client_token(
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
        })
        .await?;
        Ok(token)
    }

    /// Forgets the pending token of `what`: its request failed for good, or answered with a
    /// resource that is gone, so the next try must be a new request.
    pub async fn drop_token(&self, what: Creates<'_>) -> Result<()> {
        self.update(|s| s.resources.created(what)).await
    }

    /// Removes the state (and its backup) once nothing is left.
    pub async fn remove(&self) -> Result<()> {
        match &self.backend {
            Backend::File(path) => {
                for path in [path.clone(), backup_path(path)] {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("removing {}", path.display()))
                        }
                    }
                }
            }
            Backend::S3(remote) => remote.remove().await?,
        }
        *self.guard() = None;
        Ok(())
    }

    /// Writes `state` as this store's state (for `state push`/`pull`): to a new location, or
    /// over the same lineage at a serial no newer than it.
    pub async fn replace_with(&self, state: State) -> Result<()> {
        if let Some(here) = self.snapshot() {
            if here.lineage != state.lineage {
                return Err(crate::stack::usage(format!(
                    "{} holds another state (lineage {}, serial {}) than the one to move \
                     (lineage {}, serial {}); nothing was written. Remove it first, or choose \
                     another location",
                    self.location, here.lineage, here.serial, state.lineage, state.serial
                )));
            }
            if here.serial > state.serial {
                return Err(crate::stack::usage(format!(
                    "{} holds a newer copy of this state (serial {} > {}); nothing was written",
                    self.location, here.serial, state.serial
                )));
            }
        }
        self.guard().get_or_insert_with(|| state.clone());
        self.update(|s| *s = state).await
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        // A panic while holding the lock cannot leave a half-written state: writes go to a
        // temp file first. So a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_stack(location: &StateLocation, state: Option<&State>, stack: &StackName) -> Result<()> {
    if let Some(state) = state {
        if &state.stack != stack {
            bail!(
                "the {} belongs to stack {:?}, not {:?}; pass --stack {} or another --state",
                location.described(),
                state.stack.as_str(),
                stack.as_str(),
                state.stack
            );
        }
    }
    Ok(())
}

async fn read_remote(remote: &RemoteState, location: &StateLocation) -> Result<Option<State>> {
    match remote.read().await? {
        Some(bytes) => {
            let text = String::from_utf8(bytes)
                .with_context(|| format!("the state {location} is not UTF-8 text"))?;
            let backup = remote.object().beside(".backup").to_string();
            parse_state(&text, &location.described(), &backup).map(Some)
        }
        None => Ok(None),
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

    #[tokio::test]
    async fn writes_atomically_with_backup_and_mode_0600() {
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
            .await
            .unwrap();
        store.update(|_| ()).await.unwrap();
        store.update(|s| s.resources.cluster = None).await.unwrap();
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
        store.remove().await.unwrap();
        assert!(!path.exists());
        assert!(!backup_path(&path).exists());
    }

    #[tokio::test]
    async fn a_token_is_kept_until_its_resource_is_recorded_then_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        let what = Creates::ConsulServer;
        let first = store
            .client_token(what, "req-a", TokenApi::RunInstances)
            .await
            .unwrap();
        // A retry of the same request, also by the next run (the token is on disk).
        let reread = StateStore::open(&path, &stack()).unwrap();
        assert_eq!(
            reread
                .client_token(what, "req-a", TokenApi::RunInstances)
                .await
                .unwrap(),
            first
        );
        // Another request for the same resource must not send a known token.
        let other = store
            .client_token(what, "req-b", TokenApi::RunInstances)
            .await
            .unwrap();
        assert_ne!(other, first);
        // Recorded: the next creation of that resource (after a down) gets a new token.
        store.update(|s| s.resources.created(what)).await.unwrap();
        let again = store
            .client_token(what, "req-b", TokenApi::RunInstances)
            .await
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
            .await
            .unwrap();
        assert!(service.fits(TokenApi::CreateService));
        assert_ne!(service, again);
        // Pending tokens alone do not keep a state file alive.
        assert!(store.resources().is_empty());
    }

    #[tokio::test]
    async fn a_state_file_without_pending_tokens_still_reads() {
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

    #[tokio::test]
    async fn a_new_lineage_is_a_v4_uuid_and_an_old_16_hex_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store.update(|_| ()).await.unwrap();
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
            .await
            .unwrap();
        let reread = StateStore::open(&path, &stack())
            .unwrap()
            .snapshot()
            .unwrap();
        assert_eq!((reread.lineage.as_str(), reread.serial), (old, 4));
    }

    #[tokio::test]
    async fn refuses_other_account_or_region() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = StateStore::open(&path, &stack()).unwrap();
        store.bind(&stack(), "us-west-1", "123456789012").unwrap();
        store.update(|_| ()).await.unwrap();
        let store = StateStore::open(&path, &stack()).unwrap();
        assert!(store.bind(&stack(), "us-east-1", "123456789012").is_err());
        assert!(store.bind(&stack(), "us-west-1", "999999999999").is_err());
        assert!(store.bind(&stack(), "us-west-1", "123456789012").is_ok());
    }

    #[tokio::test]
    async fn corrupt_or_unknown_version_is_left_untouched() {
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
