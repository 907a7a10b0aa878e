//! `status`: every resource in the state file with its live state (each resource says its
//! own), the nodes with what runs on them, and the addresses of the UIs; with `--discover`,
//! what AWS has of the stack without the state file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use anyhow::Result;
use aws_sdk_ecs::types::DesiredStatus;
use serde::Serialize;

use super::unrecorded::Unrecorded;
use super::Env;
use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::costs::{self, Burn};
use crate::kinds::{Action, Address, ResourceStatus};
use crate::nodes::{self, task_id};
use crate::output::table;
use crate::resources::{self, settings::Flags};
use crate::tasks;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_file: String,
    /// What the stack's instances burn: how many run, their vCPUs, the instance-hours so far.
    pub running: Burn,
    pub resources: Vec<ResourceStatus>,
    pub nodes: Vec<NodeStatus>,
    /// Tasks of the stack that stopped in the last hour or so, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stopped_tasks: Vec<StoppedTaskStatus>,
    pub addresses: Vec<Address>,
    /// The node that runs linkerd-viz, for `verify`.
    #[serde(skip)]
    pub viz_host: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoppedTaskStatus {
    pub family: String,
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// ECS's stoppedReason, then each container's exit code and reason.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub instance_state: String,
    /// ACTIVE, DRAINING, ... or `not registered`.
    pub container_instance: String,
    /// Running tasks on the node: family -> task ids.
    pub tasks: BTreeMap<String, Vec<String>>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(out, "state file: {}", self.state_file)?;
        writeln!(out, "running: {}", self.running)?;
        // Ids as people read them, and cut to fit: `--output json` has them whole.
        let rows: Vec<Vec<String>> = self
            .resources
            .iter()
            .map(|r| {
                vec![
                    r.kind.to_string(),
                    r.name.clone(),
                    table::short_id(&r.id).to_owned(),
                    r.state.clone(),
                ]
            })
            .collect();
        for line in table::lines(&rows, &[usize::MAX, 32, 32]) {
            writeln!(out, "{line}")?;
        }
        for n in &self.nodes {
            writeln!(
                out,
                "node {} {} ({}, container instance {})",
                n.instance_id,
                n.host.as_deref().unwrap_or("-"),
                n.instance_state,
                n.container_instance
            )?;
            for (family, ids) in &n.tasks {
                writeln!(out, "    {family}: {}", ids.join(", "))?;
            }
        }
        for t in &self.stopped_tasks {
            writeln!(
                out,
                "stopped {} {} on {} at {}: {}",
                t.family,
                t.task_id,
                t.instance_id.as_deref().unwrap_or("?"),
                t.stopped_at.as_deref().unwrap_or("?"),
                t.reason
            )?;
        }
        for a in &self.addresses {
            writeln!(out, "{:<14} {}", a.name, a.url)?;
        }
        Ok(())
    }
}

pub async fn run(args: &StatusArgs, env: &Env) -> anyhow::Result<()> {
    if !args.discover && env.recorded().await?.is_none() {
        let found = Unrecorded::look(env, &args.instance_role).await?;
        env.out.section("unrecorded", &found);
        return Ok(());
    }
    let (state, s) = env
        .lock_with_settings(Flags {
            instance_role: Some(&args.instance_role),
            ..Flags::default()
        })
        .await?;
    if args.discover {
        let cx = Ctx::new(&env.global, state, env.out.clone()).await?;
        let found = Mutex::default();
        resources::discover(&cx, &s, &found).await?;
        let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
        for i in resources::inventory(&cx.stack, &found) {
            env.out.record(i.kind, i.name, i.id, Action::Found);
        }
        return Ok(());
    }
    // Status only reads: the account check goes beside the look-ups instead of a round
    // before them, and a state of another account still fails the command.
    let cx = Ctx::new_unbound(&env.global, state, env.out.clone(), None).await?;
    let (bound, report) = futures::join!(cx.bind_account(), report(&cx));
    bound?;
    env.out.section("status", &report?);
    Ok(())
}

/// The live state of the stack. Every look-up goes out at once: the resources' own, what
/// burns, and the cluster's container instances, tasks and nodes.
pub async fn report(ctx: &Ctx) -> Result<StatusReport> {
    let r = ctx.state.resources();
    // One DescribeInstances serves what burns and the node table (at 60 nodes, the largest
    // answer of the run): whichever needs it first makes it, the other waits for that answer.
    let instances = tokio::sync::OnceCell::new();
    let stack_instances = || {
        instances
            .get_or_try_init(|| costs::running_instances(&ctx.aws.ec2, Some(ctx.stack.as_str())))
    };
    let burning = async { costs::burn_of(&ctx.aws.ec2, stack_instances().await?).await };
    let cluster = async {
        match &r.cluster {
            Some(cluster) => where_tasks_run(ctx, &cluster.name, stack_instances()).await,
            None => Ok(Placement::default()),
        }
    };
    let (lines, burning, placement) = futures::join!(resources::status(ctx, &r), burning, cluster);
    let running = burning?.remove(ctx.stack.as_str()).unwrap_or_default();
    let Placement {
        nodes: node_list,
        stopped: stopped_list,
        viz_host,
    } = placement?;

    let mut addresses = Vec::new();
    if let Some(host) = node_list.iter().find_map(|n| n.host.clone()) {
        addresses.push(Address {
            name: "linkerd admin".into(),
            url: format!("http://{host}:9990"),
        });
        addresses.push(Address {
            name: "consul UI".into(),
            url: format!("http://{host}:8500/ui"),
        });
    }
    if let Some(host) = &viz_host {
        addresses.push(Address {
            name: "linkerd-viz".into(),
            url: format!("http://{host}:3000"),
        });
    }
    Ok(StatusReport {
        state_file: ctx.state.location().to_string(),
        running,
        resources: lines,
        nodes: node_list,
        stopped_tasks: stopped_list,
        addresses,
        viz_host,
    })
}

/// The nodes with what runs on each, the recently stopped tasks, and where linkerd-viz runs.
#[derive(Default)]
struct Placement {
    nodes: Vec<NodeStatus>,
    stopped: Vec<StoppedTaskStatus>,
    viz_host: Option<String>,
}

/// The cluster's look (shared with the daemons' lines), its stopped tasks and the running
/// nodes are independent look-ups: made at once, so a status of 60 nodes takes the rounds of
/// one of 2.
async fn where_tasks_run(
    ctx: &Ctx,
    name: &str,
    instances: impl std::future::Future<Output = Result<&Vec<aws_sdk_ec2::types::Instance>>>,
) -> Result<Placement> {
    let stopped_what = format!("the stopped tasks of {name}");
    let stopped = async {
        let listing = ctx
            .aws
            .ecs
            .list_tasks()
            .cluster(name)
            .desired_status(DesiredStatus::Stopped);
        tasks::describe(ctx, name, &tasks::list(listing, &stopped_what).await?).await
    };
    let (look, stopped, running) =
        futures::join!(nodes::cluster_look(ctx, name), stopped, instances);
    let running = running.map(|all| nodes::running_nodes_among(ctx, all));
    let look = look?;
    let mut registered: BTreeMap<String, String> = BTreeMap::new();
    let mut ci_status: BTreeMap<String, String> = BTreeMap::new();
    for ci in &look.container_instances {
        if let (Some(ec2), Some(arn)) = (ci.ec2_instance_id(), ci.container_instance_arn()) {
            registered.insert(arn.to_owned(), ec2.to_owned());
            ci_status.insert(ec2.to_owned(), ci.status().unwrap_or("?").to_owned());
        }
    }
    let stopped = recently_stopped(ctx, stopped?, &registered);
    let mut by_instance: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for t in &look.running {
        let Some(ec2) = t.container_instance_arn().and_then(|a| registered.get(a)) else {
            continue;
        };
        by_instance
            .entry(ec2.clone())
            .or_default()
            .entry(tasks::family(t).unwrap_or("?").to_owned())
            .or_default()
            .push(task_id(t.task_arn().unwrap_or_default()).to_owned());
    }
    let viz_family = ctx.stack.family("linkerd-viz");
    let mut placement = Placement {
        stopped,
        ..Placement::default()
    };
    for n in &running? {
        let id = n.instance_id.to_string();
        let tasks = by_instance.remove(&id).unwrap_or_default();
        if tasks.contains_key(&viz_family) && placement.viz_host.is_none() {
            placement.viz_host = n.host().map(str::to_owned);
        }
        placement.nodes.push(NodeStatus {
            container_instance: ci_status
                .get(&id)
                .cloned()
                .unwrap_or_else(|| "not registered".to_owned()),
            instance_id: id,
            host: n.host().map(str::to_owned),
            instance_state: n.state.clone(),
            tasks,
        });
    }
    Ok(placement)
}

/// How many stopped tasks of one family `status` shows: the newest say what goes wrong now.
const STOPPED_PER_FAMILY: usize = 3;

/// The stack's tasks that stopped other than on request (a failure to start, an exit, a
/// replacement), newest first, a few per family. ECS describes STOPPED tasks for about an
/// hour after they stop.
fn recently_stopped(
    ctx: &Ctx,
    mut stopped: Vec<aws_sdk_ecs::types::Task>,
    container_instances: &BTreeMap<String, String>,
) -> Vec<StoppedTaskStatus> {
    let families: Vec<String> = crate::templates::APPS
        .iter()
        .map(|(app, _)| ctx.stack.family(app))
        .collect();
    stopped.retain(|t| {
        t.stop_code() != Some(&aws_sdk_ecs::types::TaskStopCode::UserInitiated)
            && tasks::family(t).is_some_and(|f| families.iter().any(|ours| ours == f))
    });
    let when = |t: &aws_sdk_ecs::types::Task| {
        t.stopped_at()
            .or(t.stopping_at())
            .or(t.created_at())
            .map(|d| (d.secs(), d.subsec_nanos()))
    };
    stopped.sort_by_key(|t| std::cmp::Reverse(when(t)));
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for t in &stopped {
        let family = tasks::family(t).unwrap_or("?").to_owned();
        let n = shown.entry(family.clone()).or_default();
        if *n >= STOPPED_PER_FAMILY {
            continue;
        }
        *n += 1;
        out.push(StoppedTaskStatus {
            family,
            task_id: task_id(t.task_arn().unwrap_or_default()).to_owned(),
            instance_id: t
                .container_instance_arn()
                .and_then(|a| container_instances.get(a))
                .cloned(),
            stopped_at: t
                .stopped_at()
                .or(t.stopping_at())
                .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            reason: tasks::why_stopped(t),
        });
    }
    out
}
