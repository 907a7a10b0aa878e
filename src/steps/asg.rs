//! The auto scaling group `<stack>-asg` that runs the ECS nodes, tagged Name=`<stack>-ecs`
//! at launch; and the wait for its nodes to join the cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};
use aws_sdk_ecs::types::ContainerInstanceStatus;

use crate::aws::{
    create_once, create_when_propagated, describe_error, error_code, format_duration, no_retry,
    poll, poll_with, when_propagated, AwsResultExt, Backoff, Poll,
};
use crate::context::Ctx;
use crate::ids::InstanceId;
use crate::output::{Action, ResourceKind};
use crate::stack::{Sizes, STACK_TAG};
use crate::state::{AsgRecord, LaunchConfigKind, LaunchConfigRecord, Network};

fn tag(name: &str, key: &str, value: &str) -> Tag {
    Tag::builder()
        .resource_id(name)
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(true)
        .build()
}

pub async fn describe(
    ctx: &Ctx,
    name: &str,
) -> Result<Option<aws_sdk_autoscaling::types::AutoScalingGroup>> {
    let out = ctx
        .aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .aws(format!("looking up auto scaling group {name}"))?;
    Ok(out.auto_scaling_groups().first().cloned())
}

pub async fn ensure(
    ctx: &Ctx,
    launch: &LaunchConfigRecord,
    network: &Network,
    size: Sizes,
) -> Result<AsgRecord> {
    let found = describe(ctx, &ctx.stack.asg()).await?;
    ensure_found(ctx, found, launch, network, size).await
}

/// As `ensure`, with the look-up already done.
pub async fn ensure_found(
    ctx: &Ctx,
    found: Option<AutoScalingGroup>,
    launch: &LaunchConfigRecord,
    network: &Network,
    size: Sizes,
) -> Result<AsgRecord> {
    let name = ctx.stack.asg();
    let record = AsgRecord {
        name: name.clone(),
        min: size.min,
        max: size.max,
        desired: size.desired,
    };
    if let Some(group) = found {
        let ours = group
            .tags()
            .iter()
            .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack.as_str()));
        if !ours {
            return Err(super::not_ours(
                "auto scaling group",
                &name,
                group.auto_scaling_group_arn().unwrap_or_default(),
                &ctx.stack,
            ));
        }
        if group.status().is_some_and(|s| s.contains("Delete")) {
            bail!("auto scaling group {name} is being deleted; wait for it to go, then run again");
        }
        let action = repair(ctx, &group, launch, size).await?;
        ctx.state
            .update(|s| s.resources.asg = Some(record.clone()))?;
        ctx.out.record(
            ResourceKind::AutoScalingGroup,
            &name,
            group.auto_scaling_group_arn().unwrap_or_default(),
            action,
        );
        return Ok(record);
    }
    let subnets: Vec<&str> = network.subnet_ids.iter().map(|s| s.as_str()).collect();
    let mut request = ctx
        .aws
        .autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .min_size(to_i32(size.min)?)
        .max_size(to_i32(size.max)?)
        .desired_capacity(to_i32(size.desired)?)
        .vpc_zone_identifier(subnets.join(","))
        .tags(tag(&name, "Name", &ctx.stack.node_tag()))
        .tags(tag(&name, STACK_TAG, ctx.stack.as_str()));
    request = match launch.kind {
        LaunchConfigKind::LaunchConfiguration => request.launch_configuration_name(&launch.name),
        LaunchConfigKind::LaunchTemplate => request.launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(&launch.name)
                .version("$Latest")
                .build(),
        ),
    };
    // Not retried by the SDK: moto answers a second CreateAutoScalingGroup by replacing the
    // group and leaving the first one's instances running. With a launch template, Auto
    // Scaling checks its instance profile here, and refuses a new one for some seconds.
    let what = format!("creating auto scaling group {name} (autoscaling:CreateAutoScalingGroup)");
    create_once(
        &what,
        || async {
            create_when_propagated(&ctx.out, &what, || {
                request
                    .clone()
                    .customize()
                    .config_override(no_retry!(aws_sdk_autoscaling))
                    .send()
            })
            .await
            .map(|_| ())
        },
        || async { Ok(describe(ctx, &name).await?.map(|_| ())) },
    )
    .await?;
    ctx.state
        .update(|s| s.resources.asg = Some(record.clone()))?;
    ctx.out.record(
        ResourceKind::AutoScalingGroup,
        &name,
        &name,
        Action::Created,
    );
    Ok(record)
}

/// How an existing group differs from what `up` wants: its sizes, or the launch
/// configuration / template it starts nodes from. Empty when it matches.
pub fn differences(
    group: &AutoScalingGroup,
    launch: &LaunchConfigRecord,
    size: Sizes,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let have = (
        group.min_size().unwrap_or(-1),
        group.max_size().unwrap_or(-1),
        group.desired_capacity().unwrap_or(-1),
    );
    let want = (size.min as i32, size.max as i32, size.desired as i32);
    if have != want {
        diffs.push(format!(
            "sizes min/max/desired {}/{}/{}, want {}/{}/{}",
            have.0, have.1, have.2, want.0, want.1, want.2
        ));
    }
    let uses = match launch.kind {
        LaunchConfigKind::LaunchConfiguration => {
            group.launch_configuration_name() == Some(launch.name.as_str())
        }
        LaunchConfigKind::LaunchTemplate => {
            group
                .launch_template()
                .and_then(|t| t.launch_template_name())
                == Some(launch.name.as_str())
        }
    };
    if !uses {
        diffs.push(format!(
            "launches from something other than {}",
            launch.name
        ));
    }
    diffs
}

/// Brings an existing group back to the sizes and launch configuration `up` wants. Running
/// nodes are not replaced.
async fn repair(
    ctx: &Ctx,
    group: &AutoScalingGroup,
    launch: &LaunchConfigRecord,
    size: Sizes,
) -> Result<Action> {
    if differences(group, launch, size).is_empty() {
        return Ok(Action::Kept);
    }
    let name = ctx.stack.asg();
    let mut request = ctx
        .aws
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .min_size(to_i32(size.min)?)
        .max_size(to_i32(size.max)?)
        .desired_capacity(to_i32(size.desired)?);
    request = match launch.kind {
        LaunchConfigKind::LaunchConfiguration => request.launch_configuration_name(&launch.name),
        LaunchConfigKind::LaunchTemplate => request.launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(&launch.name)
                .version("$Latest")
                .build(),
        ),
    };
    let what = format!("updating auto scaling group {name} (autoscaling:UpdateAutoScalingGroup)");
    when_propagated(&ctx.out, &what, || request.clone().send())
        .await?
        .aws(&what)?;
    Ok(Action::Updated)
}

fn to_i32(n: u32) -> Result<i32> {
    i32::try_from(n).map_err(|_| anyhow!("group size {n} is too large"))
}

/// Scales the group to zero and deletes it (terminating its nodes), then waits until the
/// group and its instances are gone.
pub async fn destroy(ctx: &Ctx, record: &AsgRecord, timeout: Duration) -> Result<()> {
    let name = &record.name;
    let Some(group) = describe(ctx, name).await? else {
        ctx.state.update(|s| s.resources.asg = None)?;
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
            Backoff::DEFAULT,
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
        Backoff::DEFAULT,
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
    super::consul_server::wait_terminated(ctx, &instances, timeout)
        .await
        .with_context(|| format!("terminating the nodes of auto scaling group {name}"))?;
    ctx.state.update(|s| s.resources.asg = None)?;
    ctx.out
        .record(ResourceKind::AutoScalingGroup, name, name, Action::Deleted);
    Ok(())
}

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
    let arns = ctx
        .aws
        .ecs
        .list_container_instances()
        .cluster(cluster)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .aws(format!("listing the container instances of {cluster}"))?
        .container_instance_arns()
        .to_vec();
    if arns.is_empty() {
        return Ok(BTreeSet::new());
    }
    let described = ctx
        .aws
        .ecs
        .describe_container_instances()
        .cluster(cluster)
        .set_container_instances(Some(arns))
        .send()
        .await
        .aws(format!("describing the container instances of {cluster}"))?;
    Ok(described
        .container_instances()
        .iter()
        .filter_map(|c| c.ec2_instance_id().map(str::to_owned))
        .collect())
}
