//! Starting the consul server: one RunInstances with an idempotency token kept in the state
//! file, so that a retry, or the next run after a crash, gets the instance the first request
//! started rather than a second one.

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ec2::types::{InstanceStateName, InstanceType, ResourceType};

use super::{current_state, find, metadata_options};
use crate::aws::{classify, create_once, no_retry};
use crate::context::Ctx;
use crate::ids::{InstanceId, TokenApi};
use crate::kinds::{Action, ResourceKind};
use crate::resources::tags::ec2_tag_spec;
use crate::state::{
    request_digest, Creates, InstanceRecord, InstanceSettings, Network, SecurityGroupRecord,
};
use crate::templates;

pub(super) async fn start(
    ctx: &Ctx,
    network: &Network,
    sg: &SecurityGroupRecord,
    ami: &str,
    args: &InstanceSettings,
) -> Result<()> {
    let name = ctx.stack.consul_server_tag();
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
            .client_token(creates, &request, TokenApi::RunInstances)
            .await?;
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
                    .tag_specifications(ec2_tag_spec(&ctx.stack, &name, ResourceType::Instance))
                    .tag_specifications(ec2_tag_spec(&ctx.stack, &name, ResourceType::Volume))
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
            current_state(ctx, &id)
                .await
                .context("checking the instance a repeated RunInstances answered with")?
        } else {
            state
        };
        if matches!(
            state,
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ) {
            tracing::debug!(%id, "RunInstances answered with a terminated instance: token spent");
            ctx.state.drop_token(creates).await?;
            continue;
        }
        let record = InstanceRecord { instance_id: id };
        ctx.state
            .update(|s| {
                s.resources.consul_server = Some(record.clone());
                s.resources.created(creates);
            })
            .await?;
        ctx.out.record(
            ResourceKind::ConsulServer,
            &name,
            record.instance_id.as_str(),
            Action::Created,
        );
        return Ok(());
    }
    Err(anyhow!(
        "starting the consul server instance {name}: EC2 answered twice with a terminated \
         instance; run `l5d-ecs up` again"
    ))
}
