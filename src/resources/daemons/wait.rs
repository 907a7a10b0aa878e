//! Waiting for the daemons to run on every node, and giving up early on one that keeps
//! failing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ecs::types::{ContainerInstanceStatus, DesiredStatus, Task};

use super::service_names;
use crate::aws::{format_duration, poll, Backoff, Poll};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::tasks;

/// A daemon whose tasks stopped this often, for a failure, since the wait began will not come
/// up by waiting longer: ECS keeps restarting it, and the reason is in the stopped tasks.
const FAILURES_BEFORE_GIVING_UP: usize = 3;

/// How far ECS's clock may be ahead of this machine's, when telling the stops of this wait
/// from older ones (ECS describes STOPPED tasks for about an hour).
const CLOCK_SLACK: Duration = Duration::from_secs(30);

/// The cluster's ACTIVE container instances: ARN -> EC2 instance id.
async fn active_container_instances(ctx: &Ctx, cluster: &str) -> Result<BTreeMap<String, String>> {
    let arns =
        crate::nodes::list_container_instances(ctx, cluster, Some(ContainerInstanceStatus::Active))
            .await?
            .unwrap_or_default();
    crate::nodes::container_instance_hosts(ctx, cluster, &arns).await
}

/// Waits until every daemon service runs one task on every ACTIVE container instance, as
/// the tasks show it: a RUNNING task of group `service:<name>` on each. Gives up early on a
/// daemon whose tasks keep stopping, saying why ECS stopped them.
pub async fn wait_running_everywhere(ctx: &Ctx, timeout: Duration) -> Result<()> {
    let cluster = ctx.stack.cluster();
    let names = service_names(ctx);
    ctx.out.progress(format!(
        "waiting up to {} for {} to run a task on every ACTIVE container instance of {cluster}",
        format_duration(timeout),
        names.join(", ")
    ));
    let began = SystemTime::now()
        .checked_sub(CLOCK_SLACK)
        .unwrap_or(UNIX_EPOCH);
    let (running_what, stopped_what) = (
        format!("the running tasks of {cluster}"),
        format!("the stopped tasks of {cluster}"),
    );
    let listing = |status: DesiredStatus| {
        ctx.aws
            .ecs
            .list_tasks()
            .cluster(&cluster)
            .desired_status(status)
    };
    let nodes = poll(
        &format!("the daemon services to run on every node of {cluster}"),
        timeout,
        Backoff::ECS,
        || async {
            let (instances, running, stopped) = futures::join!(
                active_container_instances(ctx, &cluster),
                tasks::list(listing(DesiredStatus::Running), &running_what),
                tasks::list(listing(DesiredStatus::Stopped), &stopped_what),
            );
            let (instances, running, stopped) = (instances?, running?, stopped?);
            let (running, stopped) = futures::join!(
                tasks::describe(ctx, &cluster, &running),
                tasks::describe(ctx, &cluster, &stopped),
            );
            let (running, stopped) = (running?, stopped?);
            let failing: Vec<String> = names
                .iter()
                .filter_map(|name| failing(name, &stopped, began, &instances))
                .collect();
            if !failing.is_empty() {
                return Err(anyhow!(
                    "{}\n  what to do: fix what ECS says (the image, the memory, a port in use \
                     on the node); `l5d-ecs logs <container>` shows what it printed and \
                     `l5d-ecs status` the stopped tasks; then run `l5d-ecs up` again",
                    failing.join("\n")
                ));
            }
            let missing: Vec<String> = names
                .iter()
                .filter_map(|name| not_everywhere(name, &running, &instances))
                .collect();
            Ok(if missing.is_empty() {
                Poll::Ready(instances.len())
            } else {
                Poll::Pending(missing.join("; "))
            })
        },
    )
    .await
    .context(
        "the daemon services do not run on every node yet; `l5d-ecs status` shows their tasks \
         and why any stopped",
    )?;
    for name in &names {
        ctx.out.record(
            ResourceKind::DaemonService,
            name,
            format!("running on {nodes} node(s)"),
            Action::Ready,
        );
    }
    Ok(())
}

fn group(name: &str) -> String {
    format!("service:{name}")
}

/// Where a daemon runs: how many of the ACTIVE container instances have a RUNNING task of
/// it, and the others in words (`i-0abc (PENDING)`, `i-0def (no task)`).
pub(super) fn placement(
    name: &str,
    running: &[Task],
    instances: &BTreeMap<String, String>,
) -> (usize, Vec<String>) {
    let group = group(name);
    let ours: Vec<&Task> = running
        .iter()
        .filter(|t| t.group() == Some(group.as_str()))
        .collect();
    let lacking: Vec<String> = instances
        .iter()
        .filter(|(arn, _)| {
            !ours.iter().any(|t| {
                t.container_instance_arn() == Some(arn.as_str())
                    && t.last_status() == Some("RUNNING")
            })
        })
        .map(|(arn, ec2)| {
            let here = ours
                .iter()
                .find(|t| t.container_instance_arn() == Some(arn.as_str()))
                .and_then(|t| t.last_status());
            match here {
                Some(status) => format!("{ec2} ({status})"),
                None => format!("{ec2} (no task)"),
            }
        })
        .collect();
    (instances.len() - lacking.len(), lacking)
}

/// Which ACTIVE container instances lack a RUNNING task of the daemon, in words; `None` when
/// it runs on all of them.
pub(super) fn not_everywhere(
    name: &str,
    running: &[Task],
    instances: &BTreeMap<String, String>,
) -> Option<String> {
    let (on, lacking) = placement(name, running, instances);
    (!lacking.is_empty()).then(|| {
        format!(
            "{name} runs on {on} of {} node(s), not yet on {}",
            instances.len(),
            lacking.join(", ")
        )
    })
}

/// The cluster's ACTIVE container instances (ARN -> EC2 instance id) and its RUNNING tasks,
/// for where each daemon runs (`status`: the run's one look at the cluster).
pub(super) async fn nodes_and_tasks(
    ctx: &Ctx,
    cluster: &str,
) -> Result<(BTreeMap<String, String>, Vec<Task>)> {
    let look = crate::nodes::cluster_look(ctx, cluster).await?;
    Ok((look.active_hosts(), look.running.clone()))
}

/// The daemon's failures since the wait began, in words, once there are enough of them to
/// stop waiting; newest first.
pub(super) fn failing(
    name: &str,
    stopped: &[Task],
    began: SystemTime,
    instances: &BTreeMap<String, String>,
) -> Option<String> {
    let group = group(name);
    let since = began
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let when = |t: &Task| {
        t.stopped_at()
            .or(t.stopping_at())
            .or(t.created_at())
            .copied()
    };
    let mut failed: Vec<&Task> = stopped
        .iter()
        .filter(|t| t.group() == Some(group.as_str()) && tasks::stopped_by_failure(t))
        // An emulator gives no times: its stops all count.
        .filter(|t| when(t).is_none_or(|d| d.secs() >= since))
        .collect();
    if failed.len() < FAILURES_BEFORE_GIVING_UP {
        return None;
    }
    failed.sort_by_key(|t| std::cmp::Reverse(when(t).map(|d| (d.secs(), d.subsec_nanos()))));
    let lines: Vec<String> = failed
        .iter()
        .take(FAILURES_BEFORE_GIVING_UP)
        .map(|t| {
            let node = t
                .container_instance_arn()
                .and_then(|a| instances.get(a))
                .map_or(String::new(), |ec2| format!(" on {ec2}"));
            format!("    {}{node}", tasks::stopped_line(t))
        })
        .collect();
    Some(format!(
        "daemon service {name} keeps failing: {} of its tasks stopped since the wait began:\n{}",
        failed.len(),
        lines.join("\n")
    ))
}
