//! The words every layer shares: the kinds of resource a stack has, what was done to each, and
//! the rows that report it. Their names (text and JSON alike) come from the enums themselves.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ResourceKind {
    Network,
    SecurityGroup,
    SecurityGroupRules,
    ConsulServer,
    Cluster,
    InstanceRole,
    InstanceProfile,
    RolePolicy,
    TaskDefinition,
    LaunchConfiguration,
    LaunchTemplate,
    AutoScalingGroup,
    DaemonService,
    ContainerInstances,
    LogGroup,
    ScheduledAction,
    Schedule,
    SchedulerRole,
    Task,
    Stack,
}

impl ResourceKind {
    pub fn label(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Action {
    /// Made by this run.
    Created,
    /// Already there as it should be; not touched.
    Kept,
    /// Already there; changed to what it should be.
    Updated,
    /// Already there; used, not owned (a role l5d-ecs did not create).
    Used,
    Deleted,
    /// Waited for and ready.
    Ready,
    /// Seen in AWS (`--discover`); nothing done to it.
    Found,
    /// `plan`: `up` would create it.
    Create,
    /// `plan`: exists and matches; `up` would not touch it.
    Keep,
    /// `plan`: exists but differs; `up` would change it in place.
    Repair,
    /// `plan`: `up` would make a new one in its place.
    Replace,
}

impl Action {
    pub fn label(self) -> &'static str {
        self.into()
    }
}

/// One resource and what was done (or, for `plan`, would be done) to it.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
    pub action: Action,
    /// What differs (`plan`), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A resource that is still there after a failed `down`.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
    pub error: String,
}

/// A resource a state file records: what `down` deletes and `status --discover` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
}

impl Item {
    pub fn new(kind: ResourceKind, name: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            id: id.into(),
        }
    }
}

/// A task of a demo app and the node it landed on.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    pub app: String,
    pub task_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// An address a person opens: a dashboard or UI.
#[derive(Debug, Clone, Serialize)]
pub struct Address {
    pub name: String,
    pub url: String,
}

/// One resource's line in `status`: its live state.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceStatus {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
    pub state: String,
}

impl ResourceStatus {
    pub fn new(kind: ResourceKind, name: &str, id: &str, state: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            id: id.to_owned(),
            state: state.into(),
        }
    }
}
