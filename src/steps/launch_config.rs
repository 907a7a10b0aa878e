//! How the ASG starts nodes: launch configuration `<stack>-lc`, or, where the account refuses
//! launch configurations (accounts created since late 2024) or `--launch-template` asks for
//! it, the equivalent EC2 launch template `<stack>-lt`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_autoscaling::types::{
    InstanceMetadataEndpointState as AsgMetadataEndpoint, InstanceMetadataHttpTokensState,
    InstanceMetadataOptions,
};
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    RequestLaunchTemplateData, ResourceType,
};

use aws_sdk_autoscaling::types::LaunchConfiguration;
use aws_sdk_ec2::types::LaunchTemplate;

use crate::aws::{
    classify, create_once, create_when_propagated, describe_error, ec2_filter, error_code,
    no_retry, poll_with, when_propagated, AwsResultExt, Backoff, CreateError, Poll,
};
use crate::context::Ctx;
use crate::ids::{LaunchTemplateId, TokenApi};
use crate::output::{Action, ResourceKind};
use crate::state::{
    request_digest, Creates, InstanceSettings, LaunchConfigKind, LaunchConfigRecord, RoleRecord,
    SecurityGroupRecord,
};
use crate::templates;

pub struct NodeLaunch<'a> {
    pub sg: &'a SecurityGroupRecord,
    pub role: &'a RoleRecord,
    pub ami: &'a str,
    pub instance: &'a InstanceSettings,
}

/// What exists of the two ways to launch nodes.
#[derive(Default)]
pub struct LaunchFound {
    pub configuration: Option<LaunchConfiguration>,
    pub template: Option<LaunchTemplate>,
}

/// Whether the stack launches its nodes from a template (asked for, or already so).
pub fn uses_template(ctx: &Ctx, force_template: bool) -> bool {
    force_template
        || ctx.state.resources().launch_config.map(|r| r.kind)
            == Some(LaunchConfigKind::LaunchTemplate)
}

/// Looks up only the kind that will be used.
pub async fn find(ctx: &Ctx, force_template: bool) -> Result<LaunchFound> {
    Ok(if uses_template(ctx, force_template) {
        LaunchFound {
            template: find_template(ctx, &ctx.stack.launch_template()).await?,
            ..LaunchFound::default()
        }
    } else {
        LaunchFound {
            configuration: find_configuration(ctx, &current_configuration_name(ctx)).await?,
            ..LaunchFound::default()
        }
    })
}

pub async fn ensure(
    ctx: &Ctx,
    launch: &NodeLaunch<'_>,
    force_template: bool,
) -> Result<LaunchConfigRecord> {
    let found = find(ctx, force_template).await?;
    ensure_found(ctx, found, launch, force_template).await
}

/// As `ensure`, with the look-up already done.
pub async fn ensure_found(
    ctx: &Ctx,
    found: LaunchFound,
    launch: &NodeLaunch<'_>,
    force_template: bool,
) -> Result<LaunchConfigRecord> {
    if !uses_template(ctx, force_template) {
        match ensure_configuration(ctx, found.configuration, launch).await? {
            Some(record) => return Ok(record),
            None => ctx.out.warn(format!(
                "this account cannot create launch configurations (UnsupportedOperation); \
                 using the launch template {} instead",
                ctx.stack.launch_template()
            )),
        }
        let template = find_template(ctx, &ctx.stack.launch_template()).await?;
        return ensure_template(ctx, template, launch).await;
    }
    ensure_template(ctx, found.template, launch).await
}

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

pub async fn find_template(ctx: &Ctx, name: &str) -> Result<Option<LaunchTemplate>> {
    let found = ctx
        .aws
        .ec2
        .describe_launch_templates()
        .filters(ec2_filter("launch-template-name", &[name]))
        .send()
        .await
        .aws(format!("looking up launch template {name}"))?;
    Ok(found.launch_templates().first().cloned())
}

/// `None` when the account refuses launch configurations.
async fn ensure_configuration(
    ctx: &Ctx,
    found: Option<LaunchConfiguration>,
    launch: &NodeLaunch<'_>,
) -> Result<Option<LaunchConfigRecord>> {
    let user_data = aws_smithy_types::base64::encode(templates::node_user_data(&ctx.stack)?);
    let current = current_configuration_name(ctx);
    let mut retired = ctx
        .state
        .resources()
        .launch_config
        .map(|r| r.retired)
        .unwrap_or_default();
    let (name, action) = match &found {
        Some(lc) => {
            let diffs = configuration_differences(lc, launch, &user_data);
            if diffs.is_empty() {
                let record = LaunchConfigRecord {
                    kind: LaunchConfigKind::LaunchConfiguration,
                    name: current.clone(),
                    launch_template_id: None,
                    retired,
                };
                ctx.state
                    .update(|s| s.resources.launch_config = Some(record.clone()))?;
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
        .update(|s| s.resources.launch_config = Some(record.clone()))?;
    ctx.out
        .record(ResourceKind::LaunchConfiguration, &name, &name, action);
    Ok(Some(record))
}

/// The launch template data `up` wants for the nodes.
fn template_data(ctx: &Ctx, launch: &NodeLaunch<'_>) -> Result<RequestLaunchTemplateData> {
    let user_data = aws_smithy_types::base64::encode(templates::node_user_data(&ctx.stack)?);
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(launch.ami)
        .instance_type(InstanceType::from(launch.instance.instance_type.as_str()))
        .user_data(user_data)
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(&launch.role.instance_profile_name)
                .build(),
        )
        .security_group_ids(launch.sg.id.as_str())
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        );
    if let Some(key) = &launch.instance.key_pair {
        data = data.key_name(key);
    }
    Ok(data.build())
}

/// What the launch template would be made from, for its idempotency token: a template
/// asked for with other data must not send the token of an earlier request.
fn template_request_digest(ctx: &Ctx, name: &str, launch: &NodeLaunch<'_>) -> Result<String> {
    let user_data = templates::node_user_data(&ctx.stack)?;
    Ok(request_digest(&[
        "CreateLaunchTemplate/1",
        name,
        launch.ami,
        &launch.instance.instance_type,
        &user_data,
        &launch.role.instance_profile_name,
        launch.sg.id.as_str(),
        launch.instance.key_pair.as_deref().unwrap_or(""),
    ]))
}

/// How the template's latest version differs from what `up` would make, in words.
pub async fn template_differences(
    ctx: &Ctx,
    template_id: &str,
    launch: &NodeLaunch<'_>,
) -> Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(template_id)
        .versions("$Latest")
        .send()
        .await
        .aws(format!(
            "reading the latest version of launch template {template_id}"
        ))?;
    let Some(data) = out
        .launch_template_versions()
        .first()
        .and_then(|v| v.launch_template_data())
    else {
        return Ok(vec!["no version".to_owned()]);
    };
    let user_data = aws_smithy_types::base64::encode(templates::node_user_data(&ctx.stack)?);
    Ok(LaunchSeen {
        image_id: data.image_id(),
        instance_type: data.instance_type().map(|t| t.as_str()),
        user_data: data.user_data(),
        instance_profile: data.iam_instance_profile().and_then(|p| p.name()),
        security_groups: data.security_group_ids(),
        key_name: data.key_name(),
    }
    .differences(launch, &user_data))
}

/// The stack's current launch configuration: the one the state file names, else `<stack>-lc`.
pub fn current_configuration_name(ctx: &Ctx) -> String {
    ctx.state
        .resources()
        .launch_config
        .filter(|r| r.kind == LaunchConfigKind::LaunchConfiguration)
        .map(|r| r.name)
        .unwrap_or_else(|| ctx.stack.launch_configuration())
}

fn short_digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(parts.join("\n"))[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How an existing launch configuration differs from what `up` would make, in words.
/// What a launch configuration or a template version starts nodes with, read from AWS.
struct LaunchSeen<'a> {
    image_id: Option<&'a str>,
    instance_type: Option<&'a str>,
    user_data: Option<&'a str>,
    instance_profile: Option<&'a str>,
    security_groups: &'a [String],
    key_name: Option<&'a str>,
}

impl LaunchSeen<'_> {
    /// How it differs from what `up` would make, in words.
    fn differences(&self, launch: &NodeLaunch<'_>, user_data: &str) -> Vec<String> {
        let mut diffs = Vec::new();
        if self.image_id != Some(launch.ami) {
            diffs.push(format!(
                "AMI {} -> {}",
                self.image_id.unwrap_or("?"),
                launch.ami
            ));
        }
        if self.instance_type != Some(launch.instance.instance_type.as_str()) {
            diffs.push(format!(
                "instance type {} -> {}",
                self.instance_type.unwrap_or("?"),
                launch.instance.instance_type
            ));
        }
        if self.user_data.unwrap_or_default() != user_data {
            diffs.push("node user data".to_owned());
        }
        if self.instance_profile != Some(launch.role.instance_profile_name.as_str()) {
            diffs.push("instance profile".to_owned());
        }
        if !self
            .security_groups
            .iter()
            .any(|g| g == launch.sg.id.as_str())
        {
            diffs.push("security group".to_owned());
        }
        if self.key_name.filter(|k| !k.is_empty()) != launch.instance.key_pair.as_deref() {
            diffs.push("key pair".to_owned());
        }
        diffs
    }
}

/// How an existing launch configuration differs from what `up` would make, in words.
pub fn configuration_differences(
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
        ctx.state.update(|s| {
            if let Some(lc) = s.resources.launch_config.as_mut() {
                lc.retired.retain(|r| r != name);
            }
        })?;
        ctx.out.record(
            ResourceKind::LaunchConfiguration,
            name,
            name,
            Action::Deleted,
        );
    }
    Ok(())
}

async fn ensure_template(
    ctx: &Ctx,
    found: Option<LaunchTemplate>,
    launch: &NodeLaunch<'_>,
) -> Result<LaunchConfigRecord> {
    let name = ctx.stack.launch_template();
    if let Some(lt) = found {
        let id = lt.launch_template_id().unwrap_or_default();
        if !super::ec2_has_stack_tag(lt.tags(), &ctx.stack) {
            return Err(super::not_ours("launch template", &name, id, &ctx.stack));
        }
        let record = LaunchConfigRecord {
            kind: LaunchConfigKind::LaunchTemplate,
            name: name.clone(),
            launch_template_id: Some(LaunchTemplateId::from(id)),
            retired: Vec::new(),
        };
        ctx.state.update(|s| {
            s.resources.launch_config = Some(record.clone());
            s.resources.created(Creates::LaunchTemplate);
        })?;
        // A changed node launch becomes a new version; the ASG uses $Latest, so new nodes
        // get it. Running nodes are not replaced.
        let diffs = template_differences(ctx, id, launch).await?;
        let action = if diffs.is_empty() {
            Action::Kept
        } else {
            ctx.out.progress(format!(
                "launch template {name} differs ({}): adding a version",
                diffs.join("; ")
            ));
            let data = template_data(ctx, launch)?;
            let what = format!(
                "adding a version to launch template {name} (ec2:CreateLaunchTemplateVersion)"
            );
            when_propagated(&ctx.out, &what, || {
                ctx.aws
                    .ec2
                    .create_launch_template_version()
                    .launch_template_id(id)
                    .version_description("l5d-ecs ECS node")
                    .launch_template_data(data.clone())
                    .send()
            })
            .await?
            .aws(&what)?;
            Action::Updated
        };
        ctx.out
            .record(ResourceKind::LaunchTemplate, &name, id, action);
        return Ok(record);
    }
    let data = template_data(ctx, launch)?;

    let creates = Creates::LaunchTemplate;
    let token = ctx.state.client_token(
        creates,
        &template_request_digest(ctx, &name, launch)?,
        TokenApi::CreateLaunchTemplate,
    )?;
    let what = format!("creating launch template {name} (ec2:CreateLaunchTemplate)");
    let id = create_once(
        &what,
        || async {
            create_when_propagated(&ctx.out, &what, || {
                ctx.aws
                    .ec2
                    .create_launch_template()
                    .launch_template_name(&name)
                    .version_description("l5d-ecs ECS node")
                    .launch_template_data(data.clone())
                    .tag_specifications(super::ec2_tag_spec(
                        &ctx.stack,
                        &name,
                        ResourceType::LaunchTemplate,
                    ))
                    .client_token(token.as_str())
                    .customize()
                    .config_override(no_retry!(aws_sdk_ec2))
                    .send()
            })
            .await
            .map(|out| {
                out.launch_template()
                    .and_then(|t| t.launch_template_id())
                    .map(str::to_owned)
            })
        },
        || async {
            Ok(find_template(ctx, &name)
                .await?
                .map(|t| t.launch_template_id().map(str::to_owned)))
        },
    )
    .await?
    .ok_or_else(|| anyhow!("CreateLaunchTemplate returned no id"))?;
    let id = id.as_str();
    let record = LaunchConfigRecord {
        kind: LaunchConfigKind::LaunchTemplate,
        name: name.clone(),
        launch_template_id: Some(LaunchTemplateId::from(id)),
        retired: Vec::new(),
    };
    ctx.state.update(|s| {
        s.resources.launch_config = Some(record.clone());
        s.resources.created(creates);
    })?;
    ctx.out
        .record(ResourceKind::LaunchTemplate, &name, id, Action::Created);
    Ok(record)
}

pub async fn destroy(ctx: &Ctx, record: &LaunchConfigRecord, timeout: Duration) -> Result<()> {
    // The ASG is gone by now, so nothing uses the replaced ones either.
    delete_retired(ctx).await?;
    let name = &record.name;
    match record.kind {
        LaunchConfigKind::LaunchConfiguration => {
            poll_with(
                &format!("launch configuration {name} to be no longer in use"),
                timeout,
                Backoff::DEFAULT,
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
            ctx.state.update(|s| s.resources.launch_config = None)?;
            ctx.out.record(
                ResourceKind::LaunchConfiguration,
                name,
                name,
                Action::Deleted,
            );
        }
        LaunchConfigKind::LaunchTemplate => {
            let Some(id) = &record.launch_template_id else {
                bail!("the state file has no id for launch template {name}");
            };
            let result = ctx
                .aws
                .ec2
                .delete_launch_template()
                .launch_template_id(id.as_str())
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if error_code(&e).is_some_and(|c| c.contains("NotFound")) => {}
                Err(e) => bail!(
                    "deleting launch template {name} ({id}): {}",
                    describe_error(&e)
                ),
            }
            ctx.state.update(|s| s.resources.launch_config = None)?;
            ctx.out.record(
                ResourceKind::LaunchTemplate,
                name,
                id.as_str(),
                Action::Deleted,
            );
        }
    }
    Ok(())
}
