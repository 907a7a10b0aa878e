//! The wait, after `up`, for the group's nodes to join the cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result};
use aws_sdk_ecs::types::ContainerInstanceStatus;

use super::describe;
use crate::aws::{format_duration, poll, Backoff, Poll};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};

/// Waits until `desired` container instances are ACTIVE in the cluster. On timeout, names
/// the nodes that never joined and what to check.
pub async fn wait_for_nodes(ctx: &Ctx, desired: u32, timeout: Duration) -> Result<()> {
    let cluster = ctx.stack.cluster();
    let asg = ctx.stack.asg();
    ctx.out.progress(format!(
        "waiting up to {} for {desired} container instance(s) to be ACTIVE in cluster {cluster}",
        format_duration(timeout)
    ));
    let result = poll(
        &format!("{desired} container instance(s) ACTIVE in ECS cluster {cluster}"),
        timeout,
        Backoff::INSTANCES,
        || async {
            let joined = active_container_instances(ctx, &cluster).await?;
            if joined.len() >= desired as usize {
                return Ok(Poll::Ready(joined.len()));
            }
            let nodes: BTreeSet<String> = describe(ctx, &asg)
                .await?
                .map(|g| {
                    g.instances()
                        .iter()
                        .filter_map(|i| i.instance_id().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let missing: Vec<String> = nodes.difference(&joined).cloned().collect();
            Ok(Poll::Pending(format!(
                "{} of {desired} joined; nodes of {asg} not in the cluster: {}",
                joined.len(),
                if missing.is_empty() {
                    "none started yet".to_owned()
                } else {
                    missing.join(", ")
                }
            )))
        },
    )
    .await;
    let joined = result.with_context(|| {
        format!(
            "the nodes did not join cluster {cluster}; check on a node that /etc/ecs/ecs.config \
             says ECS_CLUSTER={cluster}, that the instance profile carries \
             AmazonEC2ContainerServiceforEC2Role, that the subnet reaches the ECS endpoint \
             (public IP or NAT), and /var/log/ecs/ecs-agent.log"
        )
    })?;
    ctx.out.record(
        ResourceKind::ContainerInstances,
        &cluster,
        format!("{joined} ACTIVE"),
        Action::Ready,
    );
    Ok(())
}

/// EC2 instance ids of the cluster's ACTIVE container instances.
async fn active_container_instances(ctx: &Ctx, cluster: &str) -> Result<BTreeSet<String>> {
    let arns =
        crate::nodes::list_container_instances(ctx, cluster, Some(ContainerInstanceStatus::Active))
            .await?
            .unwrap_or_default();
    Ok(crate::nodes::container_instance_hosts(ctx, cluster, &arns)
        .await?
        .into_values()
        .collect())
}
