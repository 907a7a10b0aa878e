//! The consul server: one EC2 instance outside the cluster, tagged Name=`<stack>-consul-server`
//! so that the nodes' consul agents find it (cloud auto-join).

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    InstanceStateName, InstanceType, ResourceType,
};

use crate::aws::{
    classify, create_once, describe_error, ec2_filter, error_code, no_retry, poll_with,
    AwsResultExt, Backoff, Poll,
};
use crate::context::Ctx;
use crate::ids::{InstanceId, TokenApi};
use crate::output::{Action, ResourceKind};
use crate::state::{
    request_digest, Creates, InstanceRecord, InstanceSettings, Network, SecurityGroupRecord,
};
use crate::templates;

/// IMDSv2 only, with one extra hop so that containers in bridge mode reach the metadata service.
pub fn metadata_options() -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(2)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .build()
}

/// The stack's consul server if one is pending, running or stopped.
pub async fn find(ctx: &Ctx) -> Result<Option<InstanceId>> {
    let name = ctx.stack.consul_server_tag();
    let out = ctx
        .aws
        .ec2
        .describe_instances()
        .filters(ec2_filter("tag:Name", &[&name]))
        .filters(ec2_filter(
            &format!("tag:{}", crate::stack::STACK_TAG),
            &[ctx.stack.as_str()],
        ))
        .filters(ec2_filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ))
        .send()
        .await
        .aws(format!("looking up the consul server {name}"))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.instance_id())
        .map(InstanceId::from))
}

pub async fn ensure(
    ctx: &Ctx,
    network: &Network,
    sg: &SecurityGroupRecord,
    ami: &str,
    args: &InstanceSettings,
) -> Result<InstanceRecord> {
    let found = find(ctx).await?;
    ensure_found(ctx, found, network, sg, ami, args).await
}

/// As `ensure`, with the look-up already done.
pub async fn ensure_found(
    ctx: &Ctx,
    found: Option<InstanceId>,
    network: &Network,
    sg: &SecurityGroupRecord,
    ami: &str,
    args: &InstanceSettings,
) -> Result<InstanceRecord> {
    let name = ctx.stack.consul_server_tag();
    if let Some(id) = found {
        let record = InstanceRecord { instance_id: id };
        ctx.state.update(|s| {
            s.resources.consul_server = Some(record.clone());
            s.resources.created(Creates::ConsulServer);
        })?;
        ctx.out.record(
            ResourceKind::ConsulServer,
            &name,
            record.instance_id.as_str(),
            Action::Kept,
        );
        return Ok(record);
    }
    let subnet = network
        .subnet_ids
        .first()
        .ok_or_else(|| anyhow!("the state file's network has no subnet"))?;
    let user_data =
        aws_smithy_types::base64::encode(templates::consul_server_user_data(&ctx.stack)?);
    let creates = Creates::ConsulServer;
    let request = request_digest(&[
        "RunInstances/1",
        ami,
        &args.instance_type,
        subnet.as_str(),
        sg.id.as_str(),
        &user_data,
        args.key_pair.as_deref().unwrap_or(""),
    ]);
    // EC2 answers a known token with the instance it first started, even once that one is
    // terminated: such an answer means the token is spent, and a second request with a
    // fresh token starts the server.
    for _ in 0..2 {
        // A token left by a run that crashed before recording its instance.
        let replaying = ctx
            .state
            .resources()
            .pending_creates
            .contains_key(&creates.key());
        let token = ctx
            .state
            .client_token(creates, &request, TokenApi::RunInstances)?;
        let (id, state) = create_once(
            &format!("starting the consul server instance {name} (ec2:RunInstances)"),
            || async {
                ctx.aws
                    .ec2
                    .run_instances()
                    .image_id(ami)
                    .instance_type(InstanceType::from(args.instance_type.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .subnet_id(subnet.as_str())
                    .security_group_ids(sg.id.as_str())
                    .user_data(&user_data)
                    .metadata_options(metadata_options())
                    .tag_specifications(super::ec2_tag_spec(
                        &ctx.stack,
                        &name,
                        ResourceType::Instance,
                    ))
                    .tag_specifications(super::ec2_tag_spec(
                        &ctx.stack,
                        &name,
                        ResourceType::Volume,
                    ))
                    .set_key_name(args.key_pair.clone())
                    .client_token(token.as_str())
                    .customize()
                    .config_override(no_retry!(aws_sdk_ec2))
                    .send()
                    .await
                    .map(|out| {
                        let first = out.instances().first();
                        (
                            first.and_then(|i| i.instance_id()).map(InstanceId::from),
                            first
                                .and_then(|i| i.state())
                                .and_then(|s| s.name())
                                .cloned(),
                        )
                    })
                    .map_err(classify)
            },
            || async { Ok(find(ctx).await?.map(|id| (Some(id), None))) },
        )
        .await?;
        let id = id.ok_or_else(|| anyhow!("RunInstances returned no instance"))?;
        // A replayed answer may show the instance as it was then: look at it now.
        let state = if replaying {
            current_state(ctx, &id).await?
        } else {
            state
        };
        if matches!(
            state,
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ) {
            tracing::debug!(%id, "RunInstances answered with a terminated instance: token spent");
            ctx.state.drop_token(creates)?;
            continue;
        }
        let record = InstanceRecord { instance_id: id };
        ctx.state.update(|s| {
            s.resources.consul_server = Some(record.clone());
            s.resources.created(creates);
        })?;
        ctx.out.record(
            ResourceKind::ConsulServer,
            &name,
            record.instance_id.as_str(),
            Action::Created,
        );
        return Ok(record);
    }
    Err(anyhow!(
        "starting the consul server instance {name}: EC2 answered twice with a terminated \
         instance; run `l5d-ecs up` again"
    ))
}

/// The instance's state now; an instance EC2 no longer knows is long terminated.
async fn current_state(ctx: &Ctx, id: &InstanceId) -> Result<Option<InstanceStateName>> {
    let result = ctx
        .aws
        .ec2
        .describe_instances()
        .instance_ids(id.as_str())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned())),
        Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {
            Ok(Some(InstanceStateName::Terminated))
        }
        Err(e) => Err(anyhow!(
            "looking at the consul server {id} that a repeated RunInstances answered with \
             (ec2:DescribeInstances): {}",
            describe_error(&e)
        )),
    }
}

/// Terminates the instance and waits until it is gone, so the security group can go next.
pub async fn destroy(ctx: &Ctx, record: &InstanceRecord, timeout: Duration) -> Result<()> {
    let id = record.instance_id.as_str();
    let name = ctx.stack.consul_server_tag();
    let result = ctx
        .aws
        .ec2
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {}
        Err(e) => {
            return Err(anyhow!(
                "terminating the consul server {name} ({id}): {}",
                describe_error(&e)
            ))
        }
    }
    wait_terminated(ctx, std::slice::from_ref(&record.instance_id), timeout)
        .await
        .with_context(|| format!("terminating the consul server {name} ({id})"))?;
    ctx.state.update(|s| s.resources.consul_server = None)?;
    ctx.out
        .record(ResourceKind::ConsulServer, &name, id, Action::Deleted);
    Ok(())
}

/// Waits until every one of `ids` is terminated (or unknown to EC2).
pub async fn wait_terminated(ctx: &Ctx, ids: &[InstanceId], timeout: Duration) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let what = format!("instances {} to terminate", list.join(", "));
    poll_with(&what, timeout, Backoff::DEFAULT, Some(&ctx.out), || async {
        let result = ctx
            .aws
            .ec2
            .describe_instances()
            .set_instance_ids(Some(list.clone()))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {
                return Ok(Poll::Ready(()))
            }
            Err(e) => return Err(anyhow!("{}", describe_error(&e))),
        };
        let alive: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated))
            .map(|i| {
                format!(
                    "{} {}",
                    i.instance_id().unwrap_or("?"),
                    i.state().and_then(|s| s.name()).map_or("?", |n| n.as_str())
                )
            })
            .collect();
        Ok(if alive.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending(alive.join(", "))
        })
    })
    .await
}
