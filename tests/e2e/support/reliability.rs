//! Support for the fault-injection suite (`reliability`, `reliability_kill`):
//! - [`Inventory`]: every resource of the demo's kinds left in the region, listed through the
//!   AWS API (not through the tool), with [`Inventory::orphans`] (anything at all) and
//!   [`Inventory::duplicates`] (more than one stack's worth);
//! - [`duplicate_creates`]: creates that moto carried out more than once for one name, counted
//!   from the proxy's log (moto silently replaces a second ASG / launch configuration /
//!   cluster, so counting resources alone would miss them);
//! - [`Trial`]: the figures of one trial, appended as a JSON line to the file named by
//!   `L5D_ECS_RELIABILITY_OUT` when it is set (`scripts/reliability-figures` reads them);
//! - [`seed`]: the fixed seed of the random faults (`L5D_ECS_RELIABILITY_SEED` overrides it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use super::*;

/// Environment variable naming the JSON-lines file the trials append their figures to.
pub const FIGURES_ENV: &str = "L5D_ECS_RELIABILITY_OUT";
/// Environment variable overriding the seed of the random faults.
pub const SEED_ENV: &str = "L5D_ECS_RELIABILITY_SEED";
/// The fixed seed of the random faults.
pub const DEFAULT_SEED: u64 = 41_409_990;

/// The seed of the random faults: `L5D_ECS_RELIABILITY_SEED` or [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={v:?} is not a u64: {e}")),
        _ => DEFAULT_SEED,
    }
}

// ---------------------------------------------------------------------------------------------
// A test environment that resets moto only when needed
// ---------------------------------------------------------------------------------------------

impl TestEnv {
    /// As [`TestEnv::new`], but resets the server only when needed: when the region holds a
    /// resource of the demo's kinds ([`Inventory::orphans`]), or since its last reset the
    /// server served a test of another kind or was configured ([`Moto::configure`]). A reset
    /// reloads every AWS managed policy and the EC2 defaults, seconds each time. For tests that
    /// look at the region only through [`Inventory`] and the proxy's log, and leave the region
    /// empty when they pass.
    pub async fn reusing() -> TestEnv {
        let machine = Machine::shared().await;
        let (lease, moto) = Lease::take().await;
        let aws = Aws::connect(moto.url(), REGION).await;
        if !moto.reusable.load(Ordering::SeqCst) || !aws.inventory().await.orphans().is_empty() {
            moto.reset();
            moto.reusable.store(true, Ordering::SeqCst);
        }
        moto.pin_task_states();
        TestEnv::on(moto, lease, machine).await
    }

    /// Between the trials of one test: resets moto unless the region is empty.
    pub async fn reset_unless_empty(&self) {
        if !self.aws.inventory().await.orphans().is_empty() {
            self.moto.reset();
        }
        self.moto.pin_task_states();
    }
}

// ---------------------------------------------------------------------------------------------
// Inventory
// ---------------------------------------------------------------------------------------------

/// A not-terminated EC2 instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveInstance {
    pub id: String,
    pub name: String,
    pub state: String,
}

/// An auto scaling group with its size and instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub desired: i32,
    pub instances: Vec<String>,
}

/// Every resource of the demo's kinds in one region of moto, read through the AWS API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// (id, name), the VPCs' `default` groups left out.
    pub security_groups: Vec<(String, String)>,
    /// Instances in any state but terminated.
    pub instances: Vec<LiveInstance>,
    pub auto_scaling_groups: Vec<GroupInfo>,
    pub launch_configurations: Vec<String>,
    pub launch_templates: Vec<String>,
    /// Names of clusters that are not INACTIVE.
    pub clusters: Vec<String>,
    /// ARNs of ACTIVE task definition revisions.
    pub task_definitions: Vec<String>,
    /// (cluster, service) of services that are not INACTIVE.
    pub services: Vec<(String, String)>,
    /// ARNs of tasks not STOPPED.
    pub tasks: Vec<String>,
    pub log_groups: Vec<String>,
    /// Roles, service-linked roles (path `/aws-service-role/`) left out.
    pub roles: Vec<String>,
    pub instance_profiles: Vec<String>,
    /// (role, policy) inline policies.
    pub inline_policies: Vec<(String, String)>,
}

impl Aws {
    /// Lists every resource of the demo's kinds in this client's region.
    pub async fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();

        let groups = self
            .ec2
            .describe_security_groups()
            .send()
            .await
            .expect("describe_security_groups");
        for g in groups.security_groups() {
            let name = g.group_name().unwrap_or_default();
            if name != "default" {
                inv.security_groups.push((
                    g.group_id().unwrap_or_default().to_string(),
                    name.to_string(),
                ));
            }
        }

        let mut token = None;
        loop {
            let out = self
                .ec2
                .describe_instances()
                .set_next_token(token)
                .send()
                .await
                .expect("describe_instances");
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                if state == "terminated" {
                    continue;
                }
                let name = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .unwrap_or_default()
                    .to_string();
                inv.instances.push(LiveInstance {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    name,
                    state,
                });
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }

        let groups = self
            .autoscaling
            .describe_auto_scaling_groups()
            .send()
            .await
            .expect("describe_auto_scaling_groups");
        for g in groups.auto_scaling_groups() {
            inv.auto_scaling_groups.push(GroupInfo {
                name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                desired: g.desired_capacity().unwrap_or_default(),
                instances: g
                    .instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_string))
                    .collect(),
            });
        }

        let lcs = self
            .autoscaling
            .describe_launch_configurations()
            .send()
            .await
            .expect("describe_launch_configurations");
        inv.launch_configurations = lcs
            .launch_configurations()
            .iter()
            .filter_map(|l| l.launch_configuration_name().map(str::to_string))
            .collect();

        let lts = self
            .ec2
            .describe_launch_templates()
            .send()
            .await
            .expect("describe_launch_templates");
        inv.launch_templates = lts
            .launch_templates()
            .iter()
            .filter_map(|l| l.launch_template_name().map(str::to_string))
            .collect();

        let cluster_arns = self
            .ecs
            .list_clusters()
            .send()
            .await
            .expect("list_clusters")
            .cluster_arns()
            .to_vec();
        let mut all_clusters = Vec::new();
        if !cluster_arns.is_empty() {
            let described = self
                .ecs
                .describe_clusters()
                .set_clusters(Some(cluster_arns))
                .send()
                .await
                .expect("describe_clusters");
            for c in described.clusters() {
                let name = c.cluster_name().unwrap_or_default().to_string();
                if c.status() != Some("INACTIVE") {
                    inv.clusters.push(name.clone());
                }
                all_clusters.push(name);
            }
        }

        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_task_definitions()
                .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                .set_next_token(token)
                .send()
                .await
                .expect("list_task_definitions");
            inv.task_definitions
                .extend(out.task_definition_arns().iter().cloned());
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }

        for cluster in &all_clusters {
            let arns = match self.ecs.list_services().cluster(cluster).send().await {
                Ok(out) => out.service_arns().to_vec(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_cluster_not_found_exception()) =>
                {
                    Vec::new()
                }
                Err(e) => panic!("list_services {cluster}: {e:?}"),
            };
            for chunk in arns.chunks(10) {
                let described = self
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(chunk.to_vec()))
                    .send()
                    .await
                    .expect("describe_services");
                for s in described.services() {
                    if s.status() != Some("INACTIVE") {
                        inv.services.push((
                            cluster.clone(),
                            s.service_name().unwrap_or_default().to_string(),
                        ));
                    }
                }
            }
            let tasks = match self.ecs.list_tasks().cluster(cluster).send().await {
                Ok(out) => out.task_arns().to_vec(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_cluster_not_found_exception()) =>
                {
                    Vec::new()
                }
                Err(e) => panic!("list_tasks {cluster}: {e:?}"),
            };
            if !tasks.is_empty() {
                let described = self
                    .ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(tasks))
                    .send()
                    .await
                    .expect("describe_tasks");
                for task in described.tasks() {
                    if task.last_status() != Some("STOPPED") {
                        inv.tasks
                            .push(task.task_arn().unwrap_or_default().to_string());
                    }
                }
            }
        }

        let mut token = None;
        loop {
            let out = self
                .logs
                .describe_log_groups()
                .set_next_token(token)
                .send()
                .await
                .expect("describe_log_groups");
            inv.log_groups.extend(
                out.log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_string)),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }

        let roles = self.iam.list_roles().send().await.expect("list_roles");
        for role in roles.roles() {
            if role.path().starts_with("/aws-service-role/") {
                continue;
            }
            let name = role.role_name().to_string();
            let policies = self
                .iam
                .list_role_policies()
                .role_name(&name)
                .send()
                .await
                .expect("list_role_policies");
            for p in policies.policy_names() {
                inv.inline_policies.push((name.clone(), p.clone()));
            }
            inv.roles.push(name);
        }
        let profiles = self
            .iam
            .list_instance_profiles()
            .send()
            .await
            .expect("list_instance_profiles");
        inv.instance_profiles = profiles
            .instance_profiles()
            .iter()
            .map(|p| p.instance_profile_name().to_string())
            .collect();

        inv
    }
}

impl Inventory {
    /// Everything listed, one line each. Empty when nothing of the demo's kinds is left.
    pub fn orphans(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, name) in &self.security_groups {
            out.push(format!("security group {name} ({id})"));
        }
        for i in &self.instances {
            out.push(format!("instance {} {:?} ({})", i.id, i.name, i.state));
        }
        for g in &self.auto_scaling_groups {
            out.push(format!("auto scaling group {}", g.name));
        }
        for n in &self.launch_configurations {
            out.push(format!("launch configuration {n}"));
        }
        for n in &self.launch_templates {
            out.push(format!("launch template {n}"));
        }
        for n in &self.clusters {
            out.push(format!("ECS cluster {n}"));
        }
        for n in &self.task_definitions {
            out.push(format!("task definition {n}"));
        }
        for (c, s) in &self.services {
            out.push(format!("ECS service {c}/{s}"));
        }
        for t in &self.tasks {
            out.push(format!("ECS task {t}"));
        }
        for n in &self.log_groups {
            out.push(format!("log group {n}"));
        }
        for n in &self.roles {
            out.push(format!("IAM role {n}"));
        }
        for n in &self.instance_profiles {
            out.push(format!("instance profile {n}"));
        }
        for (r, p) in &self.inline_policies {
            out.push(format!("inline policy {p} on role {r}"));
        }
        out
    }

    /// What is there beyond one complete stack `stack` with `desired` nodes (the region must
    /// hold nothing else): a second group, node or revision, an instance no group owns, ...
    /// One line per extra resource; empty when there is no duplicate.
    pub fn duplicates(&self, stack: &str, desired: usize) -> Vec<String> {
        let mut extra = Vec::new();
        let sg = format!("{stack}-sg");
        let consul = format!("{stack}-consul-server");
        let node = format!("{stack}-ecs");
        let asg = format!("{stack}-asg");

        over(
            &mut extra,
            "security groups",
            self.security_groups
                .iter()
                .map(|(id, n)| format!("{n} {id}"))
                .collect(),
            1,
        );
        let others: Vec<String> = self
            .security_groups
            .iter()
            .filter(|(_, n)| *n != sg)
            .map(|(id, n)| format!("{n} {id}"))
            .collect();
        over(&mut extra, "security groups of another name", others, 0);

        let consuls: Vec<String> = self
            .instances
            .iter()
            .filter(|i| i.name == consul)
            .map(|i| i.id.clone())
            .collect();
        over(&mut extra, "consul server instances", consuls, 1);

        let owned: BTreeSet<&String> = self
            .auto_scaling_groups
            .iter()
            .flat_map(|g| g.instances.iter())
            .collect();
        let nodes: Vec<&LiveInstance> = self.instances.iter().filter(|i| i.name == node).collect();
        over(
            &mut extra,
            "node instances",
            nodes.iter().map(|i| i.id.clone()).collect(),
            desired,
        );
        over(
            &mut extra,
            "node instances no auto scaling group owns",
            nodes
                .iter()
                .filter(|i| !owned.contains(&i.id))
                .map(|i| i.id.clone())
                .collect(),
            0,
        );
        over(
            &mut extra,
            "instances of another name",
            self.instances
                .iter()
                .filter(|i| i.name != consul && i.name != node)
                .map(|i| format!("{} {:?}", i.id, i.name))
                .collect(),
            0,
        );

        over(
            &mut extra,
            "auto scaling groups",
            self.auto_scaling_groups
                .iter()
                .map(|g| g.name.clone())
                .collect(),
            1,
        );
        for g in &self.auto_scaling_groups {
            if g.name != asg {
                continue;
            }
            over(
                &mut extra,
                &format!("instances in {asg}"),
                g.instances.clone(),
                desired,
            );
            if g.desired as usize > desired {
                extra.push(format!("{asg} wants {} nodes, not {desired}", g.desired));
            }
        }

        let mut launch: Vec<String> = self.launch_configurations.clone();
        launch.extend(self.launch_templates.iter().cloned());
        over(&mut extra, "launch configurations and templates", launch, 1);
        over(&mut extra, "ECS clusters", self.clusters.clone(), 1);

        let mut by_family: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for arn in &self.task_definitions {
            by_family
                .entry(arn_family(arn).to_string())
                .or_default()
                .push(arn.clone());
        }
        for (family, arns) in by_family {
            over(
                &mut extra,
                &format!("ACTIVE revisions of {family}"),
                arns,
                1,
            );
        }
        over(
            &mut extra,
            "task definition families",
            self.task_definitions
                .iter()
                .map(|a| arn_family(a).to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            FAMILIES.len(),
        );
        over(
            &mut extra,
            "ECS services",
            self.services
                .iter()
                .map(|(c, s)| format!("{c}/{s}"))
                .collect(),
            DAEMONS.len(),
        );
        over(&mut extra, "ECS tasks", self.tasks.clone(), 0);
        over(&mut extra, "log groups", self.log_groups.clone(), 1);
        over(&mut extra, "IAM roles", self.roles.clone(), 1);
        over(
            &mut extra,
            "instance profiles",
            self.instance_profiles.clone(),
            1,
        );
        over(
            &mut extra,
            "inline role policies",
            self.inline_policies
                .iter()
                .map(|(r, p)| format!("{r}/{p}"))
                .collect(),
            1,
        );
        extra
    }

    /// What one complete stack `stack` with `desired` nodes lacks (empty when complete).
    pub fn missing(&self, stack: &str, desired: usize) -> Vec<String> {
        let mut missing = Vec::new();
        let mut need = |ok: bool, what: String| {
            if !ok {
                missing.push(what);
            }
        };
        need(
            self.security_groups
                .iter()
                .any(|(_, n)| *n == format!("{stack}-sg")),
            format!("security group {stack}-sg"),
        );
        need(
            self.instances
                .iter()
                .any(|i| i.name == format!("{stack}-consul-server") && i.state == "running"),
            "a running consul server".to_string(),
        );
        let group = self
            .auto_scaling_groups
            .iter()
            .find(|g| g.name == format!("{stack}-asg"));
        need(group.is_some(), format!("auto scaling group {stack}-asg"));
        if let Some(g) = group {
            need(
                g.instances.len() == desired && g.desired as usize == desired,
                format!(
                    "{desired} nodes in {stack}-asg (desired {}, {} instances)",
                    g.desired,
                    g.instances.len()
                ),
            );
        }
        need(
            self.launch_configurations.contains(&format!("{stack}-lc"))
                || self.launch_templates.contains(&format!("{stack}-lt")),
            format!("launch configuration {stack}-lc or template {stack}-lt"),
        );
        need(
            self.clusters.contains(&stack.to_string()),
            format!("ECS cluster {stack}"),
        );
        for suffix in FAMILIES {
            let family = format!("{stack}-{suffix}");
            need(
                self.task_definitions
                    .iter()
                    .any(|a| arn_family(a) == family),
                format!("an ACTIVE revision of {family}"),
            );
        }
        for suffix in DAEMONS {
            let name = format!("{stack}-{suffix}");
            need(
                self.services.iter().any(|(c, s)| c == stack && *s == name),
                format!("ECS service {name}"),
            );
        }
        need(
            self.log_groups.contains(&format!("/l5d-ecs/{stack}")),
            format!("log group /l5d-ecs/{stack}"),
        );
        need(
            self.inline_policies
                .iter()
                .any(|(_, p)| *p == format!("{stack}-policy")),
            format!("inline policy {stack}-policy"),
        );
        missing
    }
}

/// Notes `items` as extra if there are more than `allowed`.
fn over(extra: &mut Vec<String>, what: &str, items: Vec<String>, allowed: usize) {
    if items.len() > allowed {
        extra.push(format!(
            "{} {what} where {allowed} expected: {items:?}",
            items.len()
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicate creates, from the proxy's log
// ---------------------------------------------------------------------------------------------

/// Creates that a repeat would duplicate (or, in moto, silently replace), and the request
/// field that names what they create.
const CREATES: [(&str, &str); 11] = [
    ("CreateSecurityGroup", "GroupName"),
    ("RunInstances", "TagSpecification"),
    ("CreateAutoScalingGroup", "AutoScalingGroupName"),
    ("CreateLaunchConfiguration", "LaunchConfigurationName"),
    ("CreateLaunchTemplate", "LaunchTemplateName"),
    ("CreateCluster", "clusterName"),
    ("RegisterTaskDefinition", "family"),
    ("CreateService", "serviceName"),
    ("CreateRole", "RoleName"),
    ("CreateInstanceProfile", "InstanceProfileName"),
    ("CreateLogGroup", "logGroupName"),
];

/// What a create call names: the form field or JSON member of [`CREATES`]; for RunInstances
/// the Name tag.
fn created_name(call: &Call, field: &str) -> String {
    if call.body.trim_start().starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(&call.body)
            .ok()
            .and_then(|v| v.get(field).and_then(|f| f.as_str()).map(str::to_string))
            .unwrap_or_default();
    }
    let pairs: Vec<(String, String)> = call
        .body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    if field == "TagSpecification" {
        // TagSpecification.N.Tag.M.Key=Name / ...Value=<name>
        for (k, v) in &pairs {
            if k.starts_with("TagSpecification.") && k.ends_with(".Key") && v == "Name" {
                let value_key = format!("{}.Value", k.trim_end_matches(".Key"));
                if let Some((_, name)) = pairs.iter().find(|(k2, _)| *k2 == value_key) {
                    return name.clone();
                }
            }
        }
        return String::new();
    }
    pairs
        .iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Creates that moto carried out (answered 2xx upstream, whether or not the client got the
/// answer) more than once for the same name: `Operation name xN`.
pub fn duplicate_creates(calls: &[Call]) -> Vec<String> {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for call in calls {
        let Some((op, field)) = CREATES.iter().find(|(op, _)| *op == call.operation) else {
            continue;
        };
        if !call
            .upstream_status
            .is_some_and(|s| (200..300).contains(&s))
        {
            continue;
        }
        *counts
            .entry((op.to_string(), created_name(call, field)))
            .or_insert(0) += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((op, name), n)| format!("{op} {name} x{n}"))
        .collect()
}

/// How many calls of `operation` moto carried out successfully.
pub fn carried_out(calls: &[Call], operation: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.operation == operation && c.upstream_status.is_some_and(|s| (200..300).contains(&s))
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/// The figures of one trial. [`Trial::record`] appends them as one JSON line to the file named
/// by `L5D_ECS_RELIABILITY_OUT` (nothing happens without it).
#[derive(Clone, Debug, Default)]
pub struct Trial {
    pub test: String,
    pub trial: String,
    pub seed: Option<u64>,
    pub calls: usize,
    /// Injected faults by kind ([`Injected::name`]), plus `kill` for processes killed.
    pub faults: BTreeMap<String, usize>,
    pub orphans: usize,
    pub duplicates: usize,
    /// Problems found (empty when the trial passed).
    pub problems: Vec<String>,
}

impl Trial {
    pub fn new(test: &str, trial: impl Into<String>) -> Trial {
        Trial {
            test: test.to_string(),
            trial: trial.into(),
            ..Trial::default()
        }
    }

    /// Adds the calls and injected faults a proxy logged.
    pub fn count_proxy(&mut self, proxy: &Proxy) {
        let calls = proxy.calls();
        self.calls += calls.len();
        for call in calls {
            if let Some(f) = call.fault {
                *self.faults.entry(f.name().to_string()).or_insert(0) += 1;
            }
        }
    }

    /// Counts a process killed with SIGKILL.
    pub fn count_kill(&mut self) {
        *self.faults.entry("kill".to_string()).or_insert(0) += 1;
    }

    /// Notes a problem unless `ok`.
    pub fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    /// Orphans found (also noted as a problem).
    pub fn add_orphans(&mut self, when: &str, orphans: &[String]) {
        self.orphans += orphans.len();
        if !orphans.is_empty() {
            self.problems
                .push(format!("{when}: {} orphan(s): {orphans:?}", orphans.len()));
        }
    }

    /// Duplicates found (also noted as a problem).
    pub fn add_duplicates(&mut self, when: &str, duplicates: &[String]) {
        self.duplicates += duplicates.len();
        if !duplicates.is_empty() {
            self.problems.push(format!(
                "{when}: {} duplicate(s): {duplicates:?}",
                duplicates.len()
            ));
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "test": self.test,
            "trial": self.trial,
            "seed": self.seed,
            "base_seed": seed(),
            "calls": self.calls,
            "faults": self.faults,
            "orphans": self.orphans,
            "duplicates": self.duplicates,
            "passed": self.problems.is_empty(),
            "problems": self.problems,
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }

    /// Appends the figures to `$L5D_ECS_RELIABILITY_OUT` if set.
    pub fn record(&self) {
        let Some(path) = std::env::var_os(FIGURES_ENV).filter(|p| !p.is_empty()) else {
            return;
        };
        let mut line = self.to_json().to_string();
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{FIGURES_ENV}={}: {e}", path.to_string_lossy()));
        // One write of the whole line: appends from parallel tests do not interleave.
        file.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.to_string_lossy()));
    }

    /// Records the figures, then panics listing the problems if there are any.
    #[track_caller]
    pub fn finish(self) {
        self.record();
        assert!(
            self.problems.is_empty(),
            "{} / {}: {} problem(s):\n  {}",
            self.test,
            self.trial,
            self.problems.len(),
            self.problems.join("\n  ")
        );
    }
}
