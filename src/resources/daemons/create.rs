//! CreateService of one daemon: idempotent by a token kept in the state file, after a
//! deleted namesake has drained, and once ECS's service-linked role is there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ecs::types::{LaunchType, SchedulingStrategy};

use crate::aws::{
    create_once, create_when_propagated, no_retry, poll_with, AwsResultExt, Backoff, NotPropagated,
    Poll,
};
use crate::context::Ctx;
use crate::ids::TokenApi;
use crate::resources::cluster::ensure_service_linked_role;
use crate::resources::tags::ecs_stack_tag;
use crate::state::{request_digest, ClusterRecord, Creates, TaskDefinitionRecord};

/// How long a deleted service may stay DRAINING while ECS stops its tasks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits for a deleted service of that name to finish draining: until then ECS refuses to
/// create it again ("Creation of service was not idempotent"), as after a recent `down`.
pub(super) async fn wait_drained(ctx: &Ctx, cluster: &str, name: &str) -> Result<()> {
    poll_with(
        &format!("the deleted daemon service {name} to finish draining"),
        DRAIN_TIMEOUT,
        Backoff::ECS,
        Some(&ctx.out),
        || async {
            let out = ctx
                .aws
                .ecs
                .describe_services()
                .cluster(cluster)
                .services(name)
                .send()
                .await
                .aws(format!(
                    "looking up daemon service {name} (ecs:DescribeServices)"
                ))?;
            Ok(
                if out
                    .services()
                    .iter()
                    .any(|s| s.status() == Some("DRAINING"))
                {
                    Poll::Pending("DRAINING".to_owned())
                } else {
                    Poll::Ready(())
                },
            )
        },
    )
    .await
    .with_context(|| format!("creating daemon service {name} in {cluster} again"))
}

pub(super) async fn create(
    ctx: &Ctx,
    cluster: &ClusterRecord,
    name: &str,
    task_definition: &TaskDefinitionRecord,
) -> Result<String> {
    let creates = Creates::DaemonService(name);
    let token = ctx
        .state
        .client_token(
            creates,
            &request_digest(&[
                "CreateService/DAEMON/1",
                &cluster.name,
                name,
                task_definition.arn.as_str(),
            ]),
            TokenApi::CreateService,
        )
        .await?;
    let request = ctx
        .aws
        .ecs
        .create_service()
        .cluster(&cluster.name)
        .service_name(name)
        .task_definition(task_definition.arn.as_str())
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .launch_type(LaunchType::Ec2)
        .tags(ecs_stack_tag(&ctx.stack))
        .client_token(token.as_str());
    let what = format!(
        "creating daemon service {name} in {} (ecs:CreateService)",
        cluster.name
    );
    // The cluster step makes sure the service-linked role exists when it creates the
    // cluster; a cluster made otherwise may have come without it.
    let role_ensured = AtomicBool::new(false);
    let arn = create_once(
        &what,
        || async {
            create_when_propagated(&ctx.out, &what, || async {
                let result = request
                    .clone()
                    .customize()
                    .config_override(no_retry!(aws_sdk_ecs))
                    .send()
                    .await;
                if let Err(e) = &result {
                    if NotPropagated::from_sdk(e) == Some(NotPropagated::EcsServiceLinkedRole)
                        && !role_ensured.swap(true, Ordering::SeqCst)
                    {
                        ensure_service_linked_role(ctx).await;
                    }
                }
                result
            })
            .await
            .map(|out| {
                out.service()
                    .filter(|s| s.status() == Some("ACTIVE"))
                    .and_then(|s| s.service_arn())
                    .map(str::to_owned)
            })
        },
        || async {
            let found = ctx
                .aws
                .ecs
                .describe_services()
                .cluster(&cluster.name)
                .services(name)
                .send()
                .await
                .aws(format!("looking up daemon service {name}"))?;
            Ok(found
                .services()
                .iter()
                .find(|s| s.status() == Some("ACTIVE"))
                .map(|s| s.service_arn().map(str::to_owned)))
        },
    )
    .await?;
    match arn {
        Some(arn) => Ok(arn),
        None => {
            // ECS answers a known token with the first call's service, also once that one is
            // deleted: the token is spent, and the next `up` must send a new one.
            ctx.state.drop_token(creates).await?;
            Err(anyhow!(
                "{what}: ECS answered with no ACTIVE service (an earlier request with the same \
                 idempotency token, whose service is gone); run `l5d-ecs up` again"
            ))
        }
    }
}
