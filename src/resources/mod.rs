//! The resources of a stack. Each file holds one resource's whole life: its record in the
//! state file, how it is found (by the state file, by tag, by the name derived from the
//! stack), its `plan` rows, its create-or-repair, its deletion and its `status` lines.
//!
//! [`ORDER`] says, once, which resource needs which. `up` starts every resource at once and
//! each waits only for what it needs; a single-step command refuses when what it needs is not
//! recorded and names the command that makes it; `down` removes each resource once nothing
//! that needs it is left, carrying on past failures; `plan`, `status`, discovery and the
//! inventory of what `down` deletes all walk the same table.

pub mod ami;
pub mod apps;
pub mod asg;
pub mod cluster;
pub mod consul_server;
pub mod daemons;
pub mod expiry;
pub mod launch_config;
pub mod log_group;
pub mod network;
pub mod preflight;
pub mod role_policy;
pub mod security_group;
pub mod security_group_rules;
pub mod settings;
pub mod tags;
pub mod task_definitions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::Resources;

pub use settings::Settings;
pub use tags::not_ours;

/// The resources of a stack, each with the resources it needs, in the order `up` lists them.
/// Adding a resource is its file and one line here.
pub const ORDER: &[Entry] = &[
    Entry::new(&network::Network, &[]),
    Entry::new(&security_group::SecurityGroup, &[Name::Network]),
    Entry::new(
        &security_group_rules::SecurityGroupRules,
        &[Name::SecurityGroup],
    ),
    Entry::new(&preflight::Preflight, &[Name::Network]),
    Entry::new(
        &consul_server::ConsulServer,
        &[Name::SecurityGroup, Name::Preflight],
    ),
    Entry::new(&cluster::Cluster, &[]),
    Entry::new(&role_policy::RolePolicy, &[]),
    Entry::new(&task_definitions::TaskDefinitions, &[]),
    Entry::new(&log_group::LogGroup, &[]),
    Entry::new(
        &launch_config::LaunchConfig,
        &[Name::SecurityGroup, Name::RolePolicy, Name::Preflight],
    ),
    Entry::new(
        &asg::Asg,
        &[Name::LaunchConfig, Name::Network, Name::Cluster],
    ),
    Entry::new(
        &daemons::Daemons,
        &[Name::Cluster, Name::RegisterTasks, Name::LogGroup],
    ),
    Entry::new(&expiry::Expiry, &[Name::Asg, Name::ConsulServer]),
    Entry::new(&apps::Apps, &[Name::Cluster]),
];

/// The name of an entry of [`ORDER`]: its progress line in `up` and the word in errors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Name {
    Network,
    SecurityGroup,
    SecurityGroupRules,
    Preflight,
    ConsulServer,
    Cluster,
    RolePolicy,
    RegisterTasks,
    LogGroup,
    LaunchConfig,
    Asg,
    Daemons,
    Expiry,
    Apps,
}

/// One line of [`ORDER`].
pub struct Entry {
    pub resource: &'static dyn Resource,
    pub needs: &'static [Name],
}

impl Entry {
    pub const fn new(resource: &'static dyn Resource, needs: &'static [Name]) -> Self {
        Self { resource, needs }
    }

    pub fn name(&self) -> Name {
        self.resource.name()
    }
}

/// The entry of a name.
pub fn entry(name: Name) -> &'static Entry {
    ORDER
        .iter()
        .find(|e| e.name() == name)
        .unwrap_or_else(|| panic!("{name} is not in resources::ORDER"))
}

/// The entries that need `name`.
pub fn needed_by(name: Name) -> impl Iterator<Item = &'static Entry> {
    ORDER.iter().filter(move |e| e.needs.contains(&name))
}

/// Resolves once the resources a resource needs are in place (and the account is checked);
/// an error means one of them failed, and the resource is skipped without another error.
/// It also carries the resource's [`Usable`].
pub struct Ready<'a> {
    needs: futures::future::Shared<BoxFuture<'a, Result<(), NeedFailed>>>,
    usable: Usable,
}

impl<'a> Ready<'a> {
    pub fn new(
        needs: futures::future::Shared<BoxFuture<'a, Result<(), NeedFailed>>>,
        usable: Usable,
    ) -> Self {
        Self { needs, usable }
    }

    /// The handle that lets what needs this resource start early.
    pub fn usable(&self) -> Usable {
        self.usable.clone()
    }
}

impl std::future::Future for Ready<'_> {
    type Output = Result<(), NeedFailed>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.needs).poll(cx)
    }
}

/// Lets what needs a resource start before the resource's `up` has finished, for a last
/// write that nothing made after it depends on: the node role's inline policy matters only
/// to running nodes, a log group's retention only to old logs. Both were a round on the
/// critical path of a cold `up`. Without a call to [`Usable::now`], what needs the resource
/// waits for its `up` to end, as before.
#[derive(Clone)]
pub struct Usable(Arc<Mutex<Option<futures::channel::oneshot::Sender<()>>>>);

impl Usable {
    /// A handle, and what resolves with `Ok` once [`Usable::now`] is called (`Err` if it
    /// never is).
    pub fn new() -> (Self, futures::channel::oneshot::Receiver<()>) {
        let (tx, rx) = futures::channel::oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// What needs the resource may go now.
    pub fn now(&self) {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = sender {
            // Nobody waits any more (the run ended): nothing to tell.
            let _ = tx.send(());
        }
    }
}

/// A resource that a resource needs failed; its own error is reported by itself.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("a step this one needs failed")]
pub struct NeedFailed;

/// A resource of the stack. Every method finds its own record in the state file (or AWS).
pub trait Resource: Sync {
    fn name(&self) -> Name;

    /// Words for errors: "the state file has no {what}".
    fn what(&self) -> &'static str;

    /// The command that makes it on its own (`up` makes all).
    fn command(&self) -> &'static str;

    /// Made by `up` (the demo apps are made by `deploy`).
    fn made_by_up(&self) -> bool {
        true
    }

    /// Whether the state file records it, as a resource that needs it requires.
    fn is_recorded(&self, r: &Resources, s: &Settings) -> bool;

    /// Looks up what exists (at once, beside every other look-up), waits for `ready`, then
    /// creates or repairs it and records it in the state file and the output.
    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>>;

    /// What `up` would do, from the same look-ups and no other call.
    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>>;

    /// What the state file records of it.
    fn inventory(&self, stack: &StackName, r: &Resources) -> Vec<Item>;

    /// What `down` would delete of it now: what the state file records, and what deleting
    /// that takes with it (the shared role and profile, when no other stack uses them).
    fn doomed<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Result<Vec<Item>>> {
        let items = self.inventory(&cx.stack, r);
        async move { Ok(items) }.boxed()
    }

    /// Deletes what the state file records of it (nothing recorded: nothing to do), then
    /// forgets it. Gone already counts as deleted.
    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>>;

    /// Finds it in AWS by tag and derived name, without the state file, and fills it into
    /// `found` where `found` has nothing of it yet.
    fn discover<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        found: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Its live state, read from AWS, for each thing the state file records of it.
    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>>;
}

/// What `plan` gathers: the rows, and the look-ups more than one resource's plan uses, made
/// once.
#[derive(Default)]
pub struct Plan {
    rows: Mutex<Vec<(usize, crate::kinds::ResourceChange)>>,
    pub security_groups: tokio::sync::OnceCell<Vec<aws_sdk_ec2::types::SecurityGroup>>,
    pub task_definitions: tokio::sync::OnceCell<Vec<task_definitions::FoundDefinition>>,
    pub network: tokio::sync::OnceCell<crate::state::Network>,
}

impl Plan {
    /// A row of resource `name`; rows come out in the order of [`ORDER`], whatever order the
    /// plans finish in.
    pub fn row(
        &self,
        name: Name,
        kind: ResourceKind,
        resource: &str,
        action: Action,
        detail: Option<String>,
    ) {
        let at = ORDER
            .iter()
            .position(|e| e.name() == name)
            .unwrap_or(usize::MAX);
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).push((
            at,
            crate::kinds::ResourceChange {
                kind,
                name: resource.to_owned(),
                id: String::new(),
                action,
                detail,
            },
        ));
    }

    /// The rows in table order (a resource's own rows in the order it gave them).
    pub fn into_rows(self) -> Vec<crate::kinds::ResourceChange> {
        let mut rows = self.rows.into_inner().unwrap_or_else(|p| p.into_inner());
        rows.sort_by_key(|(at, _)| *at);
        rows.into_iter().map(|(_, r)| r).collect()
    }

    /// The stack's security groups, looked up once for every plan that needs them.
    pub async fn security_groups(&self, cx: &Ctx) -> Result<&[aws_sdk_ec2::types::SecurityGroup]> {
        self.security_groups
            .get_or_try_init(|| security_group::find(cx))
            .await
            .map(Vec::as_slice)
    }

    /// The network `up` would use, looked up once for every plan that needs it.
    pub async fn network(&self, cx: &Ctx, s: &Settings) -> Result<&crate::state::Network> {
        self.network
            .get_or_try_init(|| network::lookup(cx, &s.network))
            .await
    }

    /// The stack's task definition families, looked up once for every plan that needs them.
    pub async fn task_definitions(&self, cx: &Ctx) -> Result<&[task_definitions::FoundDefinition]> {
        self.task_definitions
            .get_or_try_init(|| task_definitions::find_all(cx))
            .await
            .map(Vec::as_slice)
    }
}

/// Everything the state file records, in the order `down` deletes it.
pub fn inventory(stack: &StackName, r: &Resources) -> Vec<Item> {
    ORDER
        .iter()
        .rev()
        .flat_map(|e| e.resource.inventory(stack, r))
        .collect()
}

/// What `down` would delete now, in the order it deletes it: the confirmation lists this.
pub async fn doomed(cx: &Ctx, r: &Resources) -> Result<Vec<Item>> {
    let all = ORDER.iter().rev().map(|e| e.resource.doomed(cx, r));
    let lists = futures::future::try_join_all(all).await?;
    Ok(lists.into_iter().flatten().collect())
}

/// Nothing recorded to delete.
pub fn is_empty(stack: &StackName, r: &Resources) -> bool {
    inventory(stack, r).is_empty()
}

/// The error for a step run before the step it needs.
pub fn missing_step(what: &str, command: &str) -> anyhow::Error {
    if command == "up" {
        anyhow::anyhow!("the state file has no {what}: run `l5d-ecs up` first")
    } else {
        anyhow::anyhow!(
            "the state file has no {what}: run `l5d-ecs {command}` first (or `l5d-ecs up` for \
             everything)"
        )
    }
}

/// Every resource of the stack that AWS shows, by tag and derived name, filled into `found`
/// where it has nothing yet.
pub async fn discover(cx: &Ctx, s: &Settings, found: &Mutex<Resources>) -> Result<()> {
    let all = ORDER.iter().map(|e| e.resource.discover(cx, s, found));
    futures::future::join_all(all)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()
        .map(|_| ())
}

/// The live state of everything the state file records, in table order.
pub async fn status(cx: &Ctx, r: &Resources) -> Vec<ResourceStatus> {
    let all = ORDER.iter().map(|e| e.resource.status(cx, r));
    futures::future::join_all(all)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_comes_after_what_it_needs() {
        for (at, e) in ORDER.iter().enumerate() {
            for need in e.needs {
                let need_at = ORDER.iter().position(|n| n.name() == *need);
                assert!(
                    need_at.is_some_and(|n| n < at),
                    "{} needs {need}, which is not before it in ORDER",
                    e.name()
                );
            }
        }
    }

    #[test]
    fn every_name_is_in_the_table_once() {
        for (i, a) in ORDER.iter().enumerate() {
            assert!(
                ORDER[i + 1..].iter().all(|b| b.name() != a.name()),
                "{} twice",
                a.name()
            );
        }
    }
}
