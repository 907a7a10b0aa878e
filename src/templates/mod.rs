//! The files in task-definitions/, user-data/ and policies/, embedded in the binary so it runs
//! from anywhere, and rendered for one stack.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::stack::StackName;

/// Images that are not in a task definition (the consul server runs from user data).
pub const CONSUL_IMAGE: &str = "hashicorp/consul:1.20.2";

const CONSUL_SERVER_USER_DATA: &str = include_str!("../../user-data/consul-server.sh");
const NODE_USER_DATA: &str = include_str!("../../user-data/ecs-node.sh");
pub const NODE_POLICY: &str = include_str!("../../policies/node-policy.json");
pub const EC2_TRUST_POLICY: &str = include_str!("../../policies/ec2-trust.json");

/// The five apps of the demo: (name, task definition template). The family of each is
/// `<stack>-<name>`.
///
/// Why the templates say what they say, since JSON has no comments (and the spec refuses
/// unknown fields, so there is no `_comment` either):
///
/// - consul-agent publishes only what consul 1.x serves and the mesh uses: 8301 tcp and udp
///   (LAN gossip with the server) and 8500 (the HTTP API of linkerd's namer, registrator and
///   linkerd-viz). Not DNS: consul's is on 8600 and nothing resolves names through it, so the
///   agent's config turns it off. Not 8400, consul's RPC port until 0.8, nor 53, where nothing
///   listens and which collides with systemd-resolved on Amazon Linux 2023, keeping docker from
///   starting the container. Its `GOMEMLIMIT` has Go's collector work harder before the
///   container's 128 MiB hard limit, where the kernel would kill it.
/// - linkerd's launcher sizes the heap from `JVM_HEAP_MAX`, 1024M by default: the container's
///   whole hard limit, before metaspace, threads and netty's direct buffers, so under load the
///   kernel kills it. The heap is 512M, pinned (`JVM_HEAP_MIN` too: the launcher pre-touches the
///   heap, so a node without room fails at start, not under load), and direct buffers are capped
///   (by default they may grow as large as the heap); see
///   `tests::linkerd_heap_and_direct_buffers_leave_room_under_the_hard_limit`.
/// - linkerd-viz keeps 1024 MiB: Prometheus and Grafana, Go processes sized by what they hold,
///   which for a demo of a few nodes is far below it.
pub const APPS: [(&str, &str); 5] = [
    (
        "linkerd",
        include_str!("../../task-definitions/linkerd.json"),
    ),
    (
        "linkerd-viz",
        include_str!("../../task-definitions/linkerd-viz.json"),
    ),
    (
        "consul-agent",
        include_str!("../../task-definitions/consul-agent.json"),
    ),
    (
        "consul-registrator",
        include_str!("../../task-definitions/consul-registrator.json"),
    ),
    (
        "hello-world",
        include_str!("../../task-definitions/hello-world.json"),
    ),
];

/// The apps that must run on every node, as DAEMON services.
pub const DAEMON_APPS: [&str; 3] = ["linkerd", "consul-agent", "consul-registrator"];

/// Replaces every `{{KEY}}` and refuses to leave one unreplaced.
fn render(template: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    if let Some(at) = out.find("{{") {
        let rest = &out[at..];
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        bail!("template placeholder {} has no value", &rest[..end]);
    }
    Ok(out)
}

/// Where a boot script runs: the root its absolute paths live under and the instance metadata
/// service it asks. Instances get [`BootHost::EC2`]; `tests/e2e/userdata.rs` runs the very same
/// scripts under a temporary root against a stand-in metadata service, which is why these are
/// parameters of the renderer and not fixed in the scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootHost<'a> {
    /// An absolute directory; `/` on an instance.
    pub root: &'a str,
    /// The metadata service's base URL, without `/latest`.
    pub imds: &'a str,
}

impl BootHost<'static> {
    pub const EC2: Self = Self {
        root: "/",
        imds: "http://169.254.169.254",
    };
}

impl BootHost<'_> {
    /// The values pasted into the scripts. Both land unquoted in shell and heredocs, so only
    /// characters that the shell takes literally are accepted.
    fn vars(&self) -> Result<[(&'static str, &str); 2]> {
        let literal = |s: &str, extra: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c) || extra.contains(c))
        };
        if !self.root.starts_with('/') || !literal(self.root, "") {
            bail!(
                "boot root {:?} must be an absolute path of [A-Za-z0-9/._-]",
                self.root
            );
        }
        if !self.imds.starts_with("http://") || !literal(self.imds, ":") {
            bail!("metadata URL {:?} must be http://host[:port]", self.imds);
        }
        // `/` becomes the empty prefix, so an instance's scripts read `/etc/...`, not `//etc/...`.
        Ok([
            ("ROOT", self.root.trim_end_matches('/')),
            ("IMDS", self.imds.trim_end_matches('/')),
        ])
    }
}

pub fn consul_server_user_data(stack: &StackName) -> Result<String> {
    consul_server_user_data_on(stack, &BootHost::EC2)
}

pub fn consul_server_user_data_on(stack: &StackName, host: &BootHost<'_>) -> Result<String> {
    let [root, imds] = host.vars()?;
    render(
        CONSUL_SERVER_USER_DATA,
        &[
            ("STACK", stack.as_str()),
            ("CONSUL_SERVER_TAG", &stack.consul_server_tag()),
            ("CONSUL_IMAGE", CONSUL_IMAGE),
            root,
            imds,
        ],
    )
}

pub fn node_user_data(stack: &StackName) -> Result<String> {
    node_user_data_on(stack, &BootHost::EC2)
}

pub fn node_user_data_on(stack: &StackName, host: &BootHost<'_>) -> Result<String> {
    let [root, imds] = host.vars()?;
    render(
        NODE_USER_DATA,
        &[
            ("STACK", stack.as_str()),
            ("CLUSTER", &stack.cluster()),
            ("CONSUL_SERVER_TAG", &stack.consul_server_tag()),
            root,
            imds,
        ],
    )
}

/// The subset of RegisterTaskDefinition's input that the demo uses, in the same JSON shape as
/// `aws ecs register-task-definition --cli-input-json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionSpec {
    pub family: String,
    pub network_mode: String,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    pub container_definitions: Vec<ContainerSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: String,
    pub host: HostVolumeSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostVolumeSpec {
    pub source_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub memory: i32,
    #[serde(default)]
    pub entry_point: Vec<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: Vec<KeyValueSpec>,
    #[serde(default)]
    pub port_mappings: Vec<PortMappingSpec>,
    #[serde(default)]
    pub mount_points: Vec<MountPointSpec>,
    /// Not in the templates: every container gets the stack's awslogs settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfigurationSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfigurationSpec {
    pub log_driver: String,
    pub options: std::collections::BTreeMap<String, String>,
}

/// Container output goes to the stack's log group, in streams `<app>/<container>/<task id>`.
fn awslogs(stack: &StackName, region: &str, app: &str) -> LogConfigurationSpec {
    LogConfigurationSpec {
        log_driver: "awslogs".to_owned(),
        options: [
            ("awslogs-group", stack.log_group()),
            ("awslogs-region", region.to_owned()),
            ("awslogs-stream-prefix", app.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    }
}

/// The app (task definition template) a container belongs to, e.g. `hello` -> `hello-world`.
pub fn app_of_container(container: &str) -> Option<&'static str> {
    APPS.iter().map(|(app, _)| *app).find(|app| {
        task_definition_template(app).is_some_and(|spec| {
            spec.container_definitions
                .iter()
                .any(|c| c.name == container)
        })
    })
}

/// Every container name of every app, for messages.
pub fn container_names() -> Vec<String> {
    APPS.iter()
        .filter_map(|(app, _)| task_definition_template(app))
        .flat_map(|spec| spec.container_definitions.into_iter().map(|c| c.name))
        .collect()
}

fn task_definition_template(app: &str) -> Option<TaskDefinitionSpec> {
    let (_, template) = APPS.iter().find(|(name, _)| *name == app)?;
    serde_json::from_str(template).ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValueSpec {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMappingSpec {
    /// Absent: a dynamic host port (bridge mode).
    #[serde(default)]
    pub host_port: Option<i32>,
    pub container_port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPointSpec {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

impl TaskDefinitionSpec {
    /// A short digest of the definition, kept as a tag on each revision so that an unchanged
    /// definition is not registered again.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising plain data with string keys cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&json)[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The task definition of one app, for one stack.
pub fn task_definition(stack: &StackName, region: &str, app: &str) -> Result<TaskDefinitionSpec> {
    let (_, template) = APPS
        .iter()
        .find(|(name, _)| *name == app)
        .with_context(|| format!("internal error: no task definition for app {app:?}"))?;
    let rendered = render(template, &[("STACK", stack.as_str())])?;
    let mut spec: TaskDefinitionSpec = serde_json::from_str(&rendered)
        .with_context(|| format!("internal error: task-definitions/{app}.json does not parse"))?;
    spec.family = stack.family(app);
    for c in &mut spec.container_definitions {
        c.log_configuration = Some(awslogs(stack, region, app));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests;
