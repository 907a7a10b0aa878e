//! Create-or-repair of the group: made with the stack's subnets and tags, or brought back to
//! the sizes and launch configuration `up` wants.

use anyhow::{anyhow, bail, Result};
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};

use super::{describe, is_ours};
use crate::aws::{create_once, create_when_propagated, no_retry, when_propagated, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::resources::not_ours;
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

/// Makes the group, or repairs the one [`describe`] found, and records it.
pub(super) async fn ensure_found(
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
        if !is_ours(ctx, &group) {
            return Err(not_ours(
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
            .update(|s| s.resources.asg = Some(record.clone()))
            .await?;
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
        .update(|s| s.resources.asg = Some(record.clone()))
        .await?;
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
pub(super) fn differences(
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
