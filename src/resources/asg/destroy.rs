//! Deletion of the group and its nodes.

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};

use super::describe;
use crate::aws::{describe_error, error_code, poll_with, AwsResultExt, Backoff, Poll};
use crate::context::Ctx;
use crate::ids::InstanceId;
use crate::kinds::{Action, ResourceKind};
use crate::resources::consul_server::wait_terminated;
use crate::state::AsgRecord;

/// Scales the group to zero and deletes it (terminating its nodes), then waits until the
/// group and its instances are gone.
pub(super) async fn destroy(ctx: &Ctx, record: &AsgRecord, timeout: Duration) -> Result<()> {
    let name = &record.name;
    let Some(group) = describe(ctx, name).await? else {
        ctx.state.update(|s| s.resources.asg = None).await?;
        return Ok(());
    };
    let instances: Vec<InstanceId> = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_id())
        .map(InstanceId::from)
        .collect();
    if !group.status().is_some_and(|s| s.contains("Delete")) {
        ctx.aws
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .send()
            .await
            .aws(format!("scaling auto scaling group {name} to 0"))?;
        poll_with(
            &format!("auto scaling group {name} to be deletable"),
            timeout,
            Backoff::SCALING,
            Some(&ctx.out),
            || async {
                let result = ctx
                    .aws
                    .autoscaling
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .force_delete(true)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(Poll::Ready(())),
                    Err(e)
                        if matches!(
                            error_code(&e),
                            Some("ResourceInUse" | "ScalingActivityInProgress")
                        ) =>
                    {
                        Ok(Poll::Pending(describe_error(&e)))
                    }
                    Err(e) if describe_error(&e).contains("not found") => Ok(Poll::Ready(())),
                    Err(e) => Err(anyhow!("{}", describe_error(&e))),
                }
            },
        )
        .await
        .with_context(|| format!("deleting auto scaling group {name}"))?;
    }
    poll_with(
        &format!("auto scaling group {name} to be gone"),
        timeout,
        Backoff::SCALING,
        Some(&ctx.out),
        || async {
            Ok(match describe(ctx, name).await? {
                None => Poll::Ready(()),
                Some(g) => Poll::Pending(format!(
                    "status {}, {} instance(s)",
                    g.status().unwrap_or("active"),
                    g.instances().len()
                )),
            })
        },
    )
    .await?;
    wait_terminated(ctx, &instances, timeout)
        .await
        .with_context(|| format!("terminating the nodes of auto scaling group {name}"))?;
    ctx.state.update(|s| s.resources.asg = None).await?;
    ctx.out
        .record(ResourceKind::AutoScalingGroup, name, name, Action::Deleted);
    Ok(())
}
