//! Launch configuration `<stack>-lc`. A launch configuration cannot change: a changed one is
//! made anew under `<stack>-lc-<digest>`, and the old one retired, to be deleted once the ASG
//! no longer uses it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_autoscaling::types::{
    InstanceMetadataEndpointState as AsgMetadataEndpoint, InstanceMetadataHttpTokensState,
    InstanceMetadataOptions, LaunchConfiguration,
};

use super::{current_configuration_name, encoded_user_data, LaunchSeen, NodeLaunch};
use crate::aws::{
    classify, create_once, describe_error, error_code, no_retry, poll_with, when_propagated,
    AwsResultExt, Backoff, CreateError, Poll,
};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::state::{LaunchConfigKind, LaunchConfigRecord};

/// The launch configuration of that name, if there is one.
pub async fn find_configuration(ctx: &Ctx, name: &str) -> Result<Option<LaunchConfiguration>> {
    let found = ctx
        .aws
        .autoscaling
        .describe_launch_configurations()
        .launch_configuration_names(name)
        .send()
        .await
        .aws(format!("looking up launch configuration {name}"))?;
    Ok(found.launch_configurations().first().cloned())
}

/// `None` when the account refuses launch configurations.
pub(super) async fn ensure(
    ctx: &Ctx,
    found: Option<LaunchConfiguration>,
    launch: &NodeLaunch<'_>,
) -> Result<Option<LaunchConfigRecord>> {
    let user_data = encoded_user_data(ctx)?;
    let current = current_configuration_name(ctx);
    let mut retired = ctx
        .state
        .resources()
        .launch_config
        .map(|r| r.retired)
        .unwrap_or_default();
    let (name, action) = match &found {
        Some(lc) => {
            let diffs = differences(lc, launch, &user_data);
            if diffs.is_empty() {
                let record = LaunchConfigRecord {
                    kind: LaunchConfigKind::LaunchConfiguration,
                    name: current.clone(),
                    launch_template_id: None,
                    retired,
                };
                ctx.state
                    .update(|s| s.resources.launch_config = Some(record.clone()))
                    .await?;
                ctx.out.record(
                    ResourceKind::LaunchConfiguration,
                    &current,
                    lc.launch_configuration_arn().unwrap_or_default(),
                    Action::Kept,
                );
                return Ok(Some(record));
            }
            // Launch configurations cannot change: make one under a new name, point the ASG
            // at it, then retire the old one. Running nodes are not replaced.
            ctx.out.progress(format!(
                "launch configuration {current} differs ({}): replacing it",
                diffs.join("; ")
            ));
            retired.push(current.clone());
            (
                format!(
                    "{}-{}",
                    ctx.stack.launch_configuration(),
                    short_digest(&[
                        launch.ami,
                        &launch.instance.instance_type,
                        &user_data,
                        &launch.role.instance_profile_name,
                        launch.sg.id.as_str(),
                        launch.instance.key_pair.as_deref().unwrap_or(""),
                    ])
                ),
                Action::Updated,
            )
        }
        None => (current, Action::Created),
    };
    let record = LaunchConfigRecord {
        kind: LaunchConfigKind::LaunchConfiguration,
        name: name.clone(),
        launch_template_id: None,
        retired,
    };
    let profile = &launch.role.instance_profile_name;
    let mut request = ctx
        .aws
        .autoscaling
        .create_launch_configuration()
        .launch_configuration_name(&name)
        .image_id(launch.ami)
        .instance_type(&launch.instance.instance_type)
        .user_data(&user_data)
        .iam_instance_profile(profile)
        .security_groups(launch.sg.id.as_str())
        .metadata_options(
            InstanceMetadataOptions::builder()
                .http_tokens(InstanceMetadataHttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .http_endpoint(AsgMetadataEndpoint::Enabled)
                .build(),
        );
    if let Some(key) = &launch.instance.key_pair {
        request = request.key_name(key);
    }
    let what =
        format!("creating launch configuration {name} (autoscaling:CreateLaunchConfiguration)");
    // Not retried by the SDK: moto answers a second CreateLaunchConfiguration by replacing
    // the first. After an error that may hide a success, look first.
    let created = create_once(
        &what,
        || async {
            let sent = when_propagated(&ctx.out, &what, || {
                request
                    .clone()
                    .customize()
                    .config_override(no_retry!(aws_sdk_autoscaling))
                    .send()
            })
            .await;
            match sent {
                Err(timed_out) => Err(CreateError::fatal(timed_out)),
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) if error_code(&e) == Some("UnsupportedOperation") => Ok(false),
                Ok(Err(e)) => Err(classify(e)),
            }
        },
        || async { Ok(find_configuration(ctx, &name).await?.map(|_| true)) },
    )
    .await?;
    if !created {
        return Ok(None);
    }
    ctx.state
        .update(|s| s.resources.launch_config = Some(record.clone()))
        .await?;
    ctx.out
        .record(ResourceKind::LaunchConfiguration, &name, &name, action);
    Ok(Some(record))
}

/// How an existing launch configuration differs from what `up` would make, in words.
pub(super) fn differences(
    lc: &LaunchConfiguration,
    launch: &NodeLaunch<'_>,
    user_data: &str,
) -> Vec<String> {
    LaunchSeen {
        image_id: lc.image_id(),
        instance_type: lc.instance_type(),
        user_data: lc.user_data(),
        instance_profile: lc.iam_instance_profile(),
        security_groups: lc.security_groups(),
        key_name: lc.key_name(),
    }
    .differences(launch, user_data)
}

fn short_digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(parts.join("\n"))[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deletes launch configurations replaced by a newer one, once the ASG no longer uses them.
pub async fn delete_retired(ctx: &Ctx) -> Result<()> {
    let Some(record) = ctx.state.resources().launch_config else {
        return Ok(());
    };
    for name in &record.retired {
        let result = ctx
            .aws
            .autoscaling
            .delete_launch_configuration()
            .launch_configuration_name(name)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if describe_error(&e).contains("not found") => {}
            // Still in use: a later run retires it.
            Err(e) if error_code(&e) == Some("ResourceInUse") => continue,
            Err(e) => bail!(
                "deleting replaced launch configuration {name}: {}",
                describe_error(&e)
            ),
        }
        ctx.state
            .update(|s| {
                if let Some(lc) = s.resources.launch_config.as_mut() {
                    lc.retired.retain(|r| r != name);
                }
            })
            .await?;
        ctx.out.record(
            ResourceKind::LaunchConfiguration,
            name,
            name,
            Action::Deleted,
        );
    }
    Ok(())
}

/// Deletes the stack's current launch configuration, waiting while the ASG that used it is
/// still going.
pub(super) async fn delete(ctx: &Ctx, name: &str, timeout: Duration) -> Result<()> {
    poll_with(
        &format!("launch configuration {name} to be no longer in use"),
        timeout,
        Backoff::SCALING,
        Some(&ctx.out),
        || async {
            let result = ctx
                .aws
                .autoscaling
                .delete_launch_configuration()
                .launch_configuration_name(name)
                .send()
                .await;
            match result {
                Ok(_) => Ok(Poll::Ready(())),
                Err(e) if error_code(&e) == Some("ResourceInUse") => {
                    Ok(Poll::Pending(describe_error(&e)))
                }
                Err(e)
                    if error_code(&e) == Some("ValidationError")
                        && describe_error(&e).contains("not found") =>
                {
                    Ok(Poll::Ready(()))
                }
                Err(e) => Err(anyhow!("{}", describe_error(&e))),
            }
        },
    )
    .await
    .with_context(|| format!("deleting launch configuration {name}"))?;
    ctx.state
        .update(|s| s.resources.launch_config = None)
        .await?;
    ctx.out.record(
        ResourceKind::LaunchConfiguration,
        name,
        name,
        Action::Deleted,
    );
    Ok(())
}

/// The stack's launch configurations: the current one first, the ones it replaced after it.
pub(super) async fn discover(ctx: &Ctx) -> Result<Option<LaunchConfigRecord>> {
    let base = ctx.stack.launch_configuration();
    let mut names = Vec::new();
    let mut pages = ctx
        .aws
        .autoscaling
        .describe_launch_configurations()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws("listing launch configurations")?;
        names.extend(
            page.launch_configurations()
                .iter()
                .filter_map(|l| l.launch_configuration_name())
                .filter(|n| is_stack_configuration(&base, n))
                .map(str::to_owned),
        );
    }
    Ok(names.split_first().map(|(first, rest)| LaunchConfigRecord {
        kind: LaunchConfigKind::LaunchConfiguration,
        name: first.clone(),
        launch_template_id: None,
        retired: rest.to_vec(),
    }))
}

/// `<stack>-lc`, or `<stack>-lc-<8 hex>` for one that replaced it after a change.
pub(super) fn is_stack_configuration(base: &str, name: &str) -> bool {
    name == base
        || name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|tail| tail.len() == 8 && tail.chars().all(|c| c.is_ascii_hexdigit()))
}
