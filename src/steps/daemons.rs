//! linkerd, consul-agent and consul-registrator on every node, as ECS services with the
//! DAEMON strategy (the guide's upstart job that ran `aws ecs start-task` is gone with Amazon
//! Linux 2023; a DAEMON service also covers nodes the ASG adds later).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{LaunchType, SchedulingStrategy, Service};

use crate::aws::{
    create_once, create_when_propagated, describe_error, error_code, no_retry, AwsResultExt,
    NotPropagated,
};
use crate::context::Ctx;
use crate::ids::{Arn, TokenApi};
use crate::output::{Action, ResourceKind};
use crate::state::{request_digest, ClusterRecord, Creates, ServiceRecord, TaskDefinitionRecord};
use crate::templates::DAEMON_APPS;

/// The stack's daemon services in the cluster (none if the cluster does not exist yet).
pub async fn find(ctx: &Ctx, cluster: &str) -> Result<Vec<Service>> {
    let names: Vec<String> = DAEMON_APPS.iter().map(|a| ctx.stack.family(a)).collect();
    let result = ctx
        .aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .set_services(Some(names))
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.services().to_vec()),
        Err(e) if error_code(&e) == Some("ClusterNotFoundException") => Ok(Vec::new()),
        Err(e) => Err(anyhow!(
            "looking up the daemon services in {cluster}: {}",
            describe_error(&e)
        )),
    }
}

pub async fn ensure(
    ctx: &Ctx,
    cluster: &ClusterRecord,
    task_definitions: &BTreeMap<String, TaskDefinitionRecord>,
) -> Result<BTreeMap<String, ServiceRecord>> {
    let found = find(ctx, &cluster.name).await?;
    ensure_found(ctx, &found, cluster, task_definitions).await
}

/// As `ensure`, with the look-up already done.
pub async fn ensure_found(
    ctx: &Ctx,
    found: &[Service],
    cluster: &ClusterRecord,
    task_definitions: &BTreeMap<String, TaskDefinitionRecord>,
) -> Result<BTreeMap<String, ServiceRecord>> {
    let names: Vec<String> = DAEMON_APPS.iter().map(|a| ctx.stack.family(a)).collect();
    // The three services are independent: made (or repaired) at once.
    let results = futures::future::join_all(
        names
            .iter()
            .map(|name| ensure_one(ctx, found, cluster, task_definitions, name)),
    )
    .await;
    let mut records = BTreeMap::new();
    for (name, result) in names.iter().zip(results) {
        records.insert(name.clone(), result?);
    }
    Ok(records)
}

async fn ensure_one(
    ctx: &Ctx,
    found: &[Service],
    cluster: &ClusterRecord,
    task_definitions: &BTreeMap<String, TaskDefinitionRecord>,
    name: &String,
) -> Result<ServiceRecord> {
    let task_definition = task_definitions
        .get(name)
        .ok_or_else(|| super::missing_step(&format!("task definition {name}"), "register-tasks"))?;
    let existing = found
        .iter()
        .find(|s| s.service_name() == Some(name.as_str()) && s.status() == Some("ACTIVE"));
    let (arn, action) = match existing {
        Some(service) => {
            let arn = service.service_arn().unwrap_or_default().to_owned();
            if service.task_definition() == Some(task_definition.arn.as_str()) {
                (arn, Action::Kept)
            } else {
                ctx.aws
                    .ecs
                    .update_service()
                    .cluster(&cluster.name)
                    .service(name)
                    .task_definition(task_definition.arn.as_str())
                    .send()
                    .await
                    .aws(format!(
                        "pointing service {name} at {}",
                        task_definition.arn
                    ))?;
                (arn, Action::Updated)
            }
        }
        None => (
            create(ctx, cluster, name, task_definition).await?,
            Action::Created,
        ),
    };
    let record = ServiceRecord {
        name: name.clone(),
        arn: Arn::from(arn.as_str()),
    };
    ctx.state.update(|s| {
        s.resources.daemons.insert(name.clone(), record.clone());
        s.resources.created(Creates::DaemonService(name));
    })?;
    ctx.out
        .record(ResourceKind::DaemonService, name, &arn, action);
    Ok(record)
}

async fn create(
    ctx: &Ctx,
    cluster: &ClusterRecord,
    name: &str,
    task_definition: &TaskDefinitionRecord,
) -> Result<String> {
    let creates = Creates::DaemonService(name);
    let token = ctx.state.client_token(
        creates,
        &request_digest(&[
            "CreateService/DAEMON/1",
            &cluster.name,
            name,
            task_definition.arn.as_str(),
        ]),
        TokenApi::CreateService,
    )?;
    let request = ctx
        .aws
        .ecs
        .create_service()
        .cluster(&cluster.name)
        .service_name(name)
        .task_definition(task_definition.arn.as_str())
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .launch_type(LaunchType::Ec2)
        .tags(super::ecs_stack_tag(&ctx.stack))
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
                        super::cluster::ensure_service_linked_role(ctx).await;
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
            ctx.state.drop_token(creates)?;
            Err(anyhow!(
                "{what}: ECS answered with no ACTIVE service (an earlier request with the same \
                 idempotency token, whose service is gone); run `l5d-ecs up` again"
            ))
        }
    }
}

pub async fn destroy(ctx: &Ctx, cluster: &str, service: &ServiceRecord) -> Result<()> {
    let result = ctx
        .aws
        .ecs
        .delete_service()
        .cluster(cluster)
        .service(&service.name)
        .force(true)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e)
            if matches!(
                error_code(&e),
                Some(
                    "ServiceNotFoundException"
                        | "ServiceNotActiveException"
                        | "ClusterNotFoundException"
                )
            ) => {}
        Err(e) => {
            return Err(anyhow!(
                "deleting daemon service {} in {cluster}: {}",
                service.name,
                describe_error(&e)
            ))
        }
    }
    ctx.state.update(|s| {
        s.resources.daemons.remove(&service.name);
    })?;
    ctx.out.record(
        ResourceKind::DaemonService,
        &service.name,
        service.arn.as_str(),
        Action::Deleted,
    );
    Ok(())
}
