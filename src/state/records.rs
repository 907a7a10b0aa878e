//! What the state file holds: the records of what this stack created, typed and versioned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{
    Arn, ClientToken, InstanceId, LaunchTemplateId, SecurityGroupId, SubnetId, VpcId,
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
    /// The deadline the last `up` set (`--expires-in`), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
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
    /// What takes the instances down at the deadline (`up --expires-in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpiryRecord>,
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

/// The deadline and what AWS runs at it: a scheduled action setting the ASG to 0/0/0, and an
/// EventBridge Scheduler schedule (with its role) that terminates the consul server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryRecord {
    /// RFC 3339 UTC.
    pub deadline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What a create call with an idempotency token makes.
#[derive(Debug, Clone, Copy)]
pub enum Creates<'a> {
    ConsulServer,
    LaunchTemplate,
    /// A daemon service, by name.
    DaemonService(&'a str),
    /// One RunTask batch of an app's tasks, by app and the batch's place in its `deploy`
    /// (the batches of one `deploy` go out at once, each with a token of its own).
    TaskBatch(&'a str, u32),
}

impl Creates<'_> {
    pub fn key(self) -> String {
        match self {
            Self::ConsulServer => "consul-server".to_owned(),
            Self::LaunchTemplate => "launch-template".to_owned(),
            Self::DaemonService(name) => format!("daemon-service/{name}"),
            Self::TaskBatch(app, n) => format!("{}/{n}", task_tokens_of(app)),
        }
    }
}

fn task_tokens_of(app: &str) -> String {
    format!("tasks/{app}")
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

    /// Forgets every RunTask token of the app: its tasks are recorded, or gone. (A state
    /// written before batches had numbers holds `tasks/<app>` alone.)
    pub fn spend_task_tokens(&mut self, app: &str) {
        let prefix = task_tokens_of(app);
        self.pending_creates
            .retain(|key, _| key != &prefix && !key.starts_with(&format!("{prefix}/")));
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
