//! The state file: what this stack created, typed and versioned, written atomically after
//! every change, guarded by a lock file that names its holder.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::ids::{
    Arn, ClientToken, InstanceId, LaunchTemplateId, SecurityGroupId, SubnetId, TokenApi, VpcId,
};
use crate::stack::{Cidr, StackName};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format_version: u32,
    /// Random id given when the file is first written; never changes afterwards.
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    pub stack: StackName,
    pub region: String,
    pub account_id: String,
    #[serde(default)]
    pub resources: Resources,
    /// What the last `up` asked for, so that a later run without those flags keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceSettings>,
}

/// The instances' settings: from the flags, else the last `up`, else the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSettings {
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair: Option<String>,
    /// Absent: the ECS-optimized AMI from SSM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
}

impl InstanceSettings {
    pub const DEFAULT_INSTANCE_TYPE: &'static str = "m4.xlarge";

    pub fn resolve(
        args: &crate::options::InstanceArgs,
        recorded: Option<&InstanceSettings>,
    ) -> Self {
        Self {
            instance_type: args
                .instance_type
                .clone()
                .or_else(|| recorded.map(|r| r.instance_type.clone()))
                .unwrap_or_else(|| Self::DEFAULT_INSTANCE_TYPE.to_owned()),
            key_pair: args
                .key_pair
                .clone()
                .or_else(|| recorded.and_then(|r| r.key_pair.clone())),
            ami: args
                .ami
                .clone()
                .or_else(|| recorded.and_then(|r| r.ami.clone())),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<SecurityGroupRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul_server: Option<InstanceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_role: Option<RoleRecord>,
    /// Keyed by family.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_definitions: BTreeMap<String, TaskDefinitionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_config: Option<LaunchConfigRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<AsgRecord>,
    /// Keyed by service name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub daemons: BTreeMap<String, ServiceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<LogGroupRecord>,
    /// Tasks started by `deploy`, keyed by app (`hello-world`, `linkerd-viz`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, AppRecord>,
    /// Idempotency tokens of creates that may have reached AWS but whose resource is not
    /// recorded yet, keyed by [`Creates::key`]. A retry, also by the next run after a crash,
    /// sends the same token; once the resource is recorded the token goes, so the next one
    /// of its kind (after a `down`) gets a new token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_creates: BTreeMap<String, PendingCreate>,
}

/// What a create call with an idempotency token makes.
#[derive(Debug, Clone, Copy)]
pub enum Creates<'a> {
    ConsulServer,
    LaunchTemplate,
    /// A daemon service, by name.
    DaemonService(&'a str),
    /// One RunTask batch of an app's tasks, by app.
    Tasks(&'a str),
}

impl Creates<'_> {
    pub fn key(self) -> String {
        match self {
            Self::ConsulServer => "consul-server".to_owned(),
            Self::LaunchTemplate => "launch-template".to_owned(),
            Self::DaemonService(name) => format!("daemon-service/{name}"),
            Self::Tasks(app) => format!("tasks/{app}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCreate {
    pub token: ClientToken,
    /// Digest of the request's parameters ([`request_digest`]): a changed request gets a new
    /// token, since AWS refuses a known token with other parameters.
    pub request: String,
}

/// A short digest of the parameters of a create request.
pub fn request_digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Resources {
    /// The resource of a pending create is recorded: its token is spent.
    pub fn created(&mut self, what: Creates<'_>) {
        self.pending_creates.remove(&what.key());
    }
}

impl Resources {
    /// Nothing recorded to delete. Pending tokens do not count: no resource of theirs is
    /// recorded.
    pub fn is_empty(&self) -> bool {
        self.security_group.is_none()
            && self.consul_server.is_none()
            && self.cluster.is_none()
            && self.instance_role.is_none()
            && self.task_definitions.is_empty()
            && self.launch_config.is_none()
            && self.asg.is_none()
            && self.daemons.is_empty()
            && self.log_group.is_none()
            && self.apps.values().all(|a| a.tasks.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub vpc_id: VpcId,
    pub subnet_ids: Vec<SubnetId>,
    pub availability_zones: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroupRecord {
    pub id: SecurityGroupId,
    pub name: String,
    pub vpc_id: VpcId,
    /// The CIDRs its ports are open to, so a later `up` without `--allow-cidr` keeps them.
    pub allowed_cidrs: Vec<Cidr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub instance_id: InstanceId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub arn: Arn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRecord {
    pub role_name: String,
    pub instance_profile_name: String,
    pub policy_name: String,
    /// l5d-ecs created the role (it carries the created-by tag), so `down` may remove it once
    /// no stack's policy is left on it.
    pub created_role: bool,
    pub created_instance_profile: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDefinitionRecord {
    pub family: String,
    pub arn: Arn,
    pub revision: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchConfigKind {
    LaunchConfiguration,
    LaunchTemplate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchConfigRecord {
    pub kind: LaunchConfigKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template_id: Option<LaunchTemplateId>,
    /// Launch configurations replaced by this one, deleted once the ASG has moved off them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsgRecord {
    pub name: String,
    /// What the last `up` asked for.
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

impl AsgRecord {
    pub fn sizes(&self) -> crate::stack::Sizes {
        crate::stack::Sizes {
            min: self.min,
            max: self.max,
            desired: self.desired,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogGroupRecord {
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppRecord {
    pub family: String,
    /// ARNs of the tasks this tool started and has not stopped.
    pub tasks: Vec<Arn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub name: String,
    pub arn: Arn,
}

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
                    lineage: new_lineage(),
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

fn read_state(path: &Path) -> Result<Option<State>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading state file {}", path.display())),
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "state file {} is not valid JSON; it was left untouched (restore {} or move it away)",
            path.display(),
            backup_path(path).display()
        )
    })?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        bail!(
            "state file {} has format version {}, this l5d-ecs reads version {FORMAT_VERSION}; \
             it was left untouched",
            path.display(),
            version.map_or("(none)".to_owned(), |v| v.to_string())
        );
    }
    let state = serde_json::from_value(value).with_context(|| {
        format!(
            "state file {} does not have the expected shape; it was left untouched",
            path.display()
        )
    })?;
    Ok(Some(state))
}

/// Temp file in the same directory, fsync, keep the previous copy as `.backup`, rename, fsync
/// the directory: a crash at any point leaves either the old or the new file, never a torn one.
fn write_atomically(path: &Path, state: &State) -> Result<()> {
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

fn backup_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".backup");
    PathBuf::from(p)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn new_lineage() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(now.as_nanos().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    // Address of a fresh allocation: a little more entropy without another dependency.
    let marker = Box::new(0u8);
    hasher.update((std::ptr::addr_of!(*marker) as usize).to_le_bytes());
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `<state>.lock`, created exclusively, holding the pid and host of its holder. A lock whose
/// process is gone (same host) is stale and taken over.
struct LockFile {
    path: PathBuf,
}

impl LockFile {
    fn acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .with_context(|| format!("creating directory {}", dir.display()))?;
        }
        let holder = format!("pid={} host={}\n", std::process::id(), hostname());
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
        assert!(
            err.to_string()
                .contains(&format!("pid={}", std::process::id())),
            "{err}"
        );
        drop(first);
        fs::write(
            lock_path(&path),
            format!("pid=999999999 host={}\n", hostname()),
        )
        .unwrap();
        assert!(StateStore::open(&path, &stack()).unwrap().lock().is_ok());
    }
}
