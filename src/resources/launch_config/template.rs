//! EC2 launch template `<stack>-lt`, for accounts that refuse launch configurations or when
//! `--launch-template` asks for it. A changed node launch becomes a new version of it.

use anyhow::{anyhow, bail, Result};
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplate, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    RequestLaunchTemplateData, ResourceType,
};

use super::{encoded_user_data, LaunchSeen, NodeLaunch};
use crate::aws::{
    create_once, create_when_propagated, describe_error, ec2_filter, error_code, no_retry,
    when_propagated, AwsResultExt,
};
use crate::context::Ctx;
use crate::ids::{LaunchTemplateId, TokenApi};
use crate::kinds::{Action, ResourceKind};
use crate::resources::not_ours;
use crate::resources::tags::{ec2_has_stack_tag, ec2_tag_spec};
use crate::state::{request_digest, Creates, LaunchConfigKind, LaunchConfigRecord};
use crate::templates;

/// The launch template of that name, if there is one.
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

/// The launch template data `up` wants for the nodes.
fn template_data(ctx: &Ctx, launch: &NodeLaunch<'_>) -> Result<RequestLaunchTemplateData> {
    let user_data = encoded_user_data(ctx)?;
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
pub(super) async fn differences(
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
    let user_data = encoded_user_data(ctx)?;
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

/// Makes the template, or adds a version to it where it differs from what `up` wants.
pub(super) async fn ensure(
    ctx: &Ctx,
    found: Option<LaunchTemplate>,
    launch: &NodeLaunch<'_>,
) -> Result<LaunchConfigRecord> {
    let name = ctx.stack.launch_template();
    if let Some(lt) = found {
        let id = lt.launch_template_id().unwrap_or_default();
        if !ec2_has_stack_tag(lt.tags(), &ctx.stack) {
            return Err(not_ours("launch template", &name, id, &ctx.stack));
        }
        let record = LaunchConfigRecord {
            kind: LaunchConfigKind::LaunchTemplate,
            name: name.clone(),
            launch_template_id: Some(LaunchTemplateId::from(id)),
            retired: Vec::new(),
        };
        ctx.state
            .update(|s| {
                s.resources.launch_config = Some(record.clone());
                s.resources.created(Creates::LaunchTemplate);
            })
            .await?;
        // A changed node launch becomes a new version; the ASG uses $Latest, so new nodes
        // get it. Running nodes are not replaced.
        let diffs = differences(ctx, id, launch).await?;
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
    let token = ctx
        .state
        .client_token(
            creates,
            &template_request_digest(ctx, &name, launch)?,
            TokenApi::CreateLaunchTemplate,
        )
        .await?;
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
                    .tag_specifications(ec2_tag_spec(
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
    ctx.state
        .update(|s| {
            s.resources.launch_config = Some(record.clone());
            s.resources.created(creates);
        })
        .await?;
    ctx.out
        .record(ResourceKind::LaunchTemplate, &name, id, Action::Created);
    Ok(record)
}

/// Deletes the recorded template; one gone already counts as deleted.
pub(super) async fn delete(ctx: &Ctx, record: &LaunchConfigRecord) -> Result<()> {
    let name = &record.name;
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
    ctx.state
        .update(|s| s.resources.launch_config = None)
        .await?;
    ctx.out.record(
        ResourceKind::LaunchTemplate,
        name,
        id.as_str(),
        Action::Deleted,
    );
    Ok(())
}

/// The tagged `<stack>-lt`.
pub(super) async fn discover(ctx: &Ctx) -> Result<Option<LaunchConfigRecord>> {
    let name = ctx.stack.launch_template();
    Ok(find_template(ctx, &name)
        .await?
        .filter(|t| ec2_has_stack_tag(t.tags(), &ctx.stack))
        .map(|t| LaunchConfigRecord {
            kind: LaunchConfigKind::LaunchTemplate,
            name: name.clone(),
            launch_template_id: t.launch_template_id().map(LaunchTemplateId::from),
            retired: Vec::new(),
        }))
}
