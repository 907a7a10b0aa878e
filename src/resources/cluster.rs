//! The ECS cluster `<stack>`, and ECS's service-linked role that the daemon services need,
//! made beside the cluster.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ecs::types::{Cluster as EcsCluster, ClusterField};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::tags::{ecs_has_stack_tag, ecs_stack_tag};
use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{
    adaptive_retry, bulk, classify, create_once, describe_error, error_code, no_retry, poll_with,
    AwsResultExt, Backoff, Poll,
};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::{ClusterRecord, Resources};

pub struct Cluster;

impl Resource for Cluster {
    fn name(&self) -> Name {
        Name::Cluster
    }

    fn what(&self) -> &'static str {
        "cluster"
    }

    fn command(&self) -> &'static str {
        "cluster"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.cluster.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let name = cx.stack.cluster();
            let (found, ready) = futures::join!(find_active(cx, &name), ready);
            ready?;
            ensure_found(cx, found?).await
        }
        .boxed()
    }

    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let name = cx.stack.cluster();
            let action = match find_active(cx, &name).await? {
                Some(_) => Action::Keep,
                None => Action::Create,
            };
            plan.row(self.name(), ResourceKind::Cluster, &name, action, None);
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.cluster
            .iter()
            .map(|c| Item::new(ResourceKind::Cluster, &c.name, c.arn.as_str()))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().cluster {
                Some(record) => destroy(cx, &record, timeout).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn discover<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        found: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            if let Some(record) = find_ours(cx).await? {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found.cluster.get_or_insert(record);
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(c) = &r.cluster else {
                return Vec::new();
            };
            let state = match describe(cx, &c.name).await {
                Ok(Some(found)) if found.status() != Some("INACTIVE") => format!(
                    "{}, {} container instance(s), {} running task(s)",
                    found.status().unwrap_or("?"),
                    found.registered_container_instances_count(),
                    found.running_tasks_count()
                ),
                Ok(_) => "missing".to_owned(),
                Err(e) => format!("unknown: {e:#}"),
            };
            vec![ResourceStatus::new(
                ResourceKind::Cluster,
                &c.name,
                c.arn.as_str(),
                state,
            )]
        }
        .boxed()
    }
}

/// The cluster as ECS describes it, whatever its status: a deleted one stays INACTIVE for a
/// while.
async fn describe(ctx: &Ctx, name: &str) -> Result<Option<EcsCluster>> {
    let found = ctx
        .aws
        .ecs
        .describe_clusters()
        .clusters(name)
        .send()
        .await
        .aws(format!("describing ECS cluster {name}"))?;
    Ok(found.clusters().first().cloned())
}

/// The stack's cluster if it exists and carries the stack's tag: the daemons and the apps
/// look for their services and tasks only in a cluster that is ours.
pub(super) async fn find_ours(ctx: &Ctx) -> Result<Option<ClusterRecord>> {
    let name = ctx.stack.cluster();
    Ok(find_active(ctx, &name)
        .await?
        .filter(|c| ecs_has_stack_tag(c.tags(), &ctx.stack))
        .map(|c| ClusterRecord {
            name: name.clone(),
            arn: Arn::from(c.cluster_arn().unwrap_or_default()),
        }))
}

async fn find_active(ctx: &Ctx, name: &str) -> Result<Option<EcsCluster>> {
    let found = ctx
        .aws
        .ecs
        .describe_clusters()
        .clusters(name)
        .include(ClusterField::Tags)
        .send()
        .await
        .aws(format!("looking up ECS cluster {name}"))?;
    Ok(found
        .clusters()
        .iter()
        .find(|c| c.status() == Some("ACTIVE"))
        .cloned())
}

/// Keeps the cluster found (if it is ours) or creates it, and records it.
async fn ensure_found(ctx: &Ctx, found: Option<EcsCluster>) -> Result<()> {
    let name = ctx.stack.cluster();
    let (arn, action) = match found {
        Some(cluster) => {
            let arn = cluster.cluster_arn().unwrap_or_default();
            if !ecs_has_stack_tag(cluster.tags(), &ctx.stack) {
                return Err(super::not_ours("ECS cluster", &name, arn, &ctx.stack));
            }
            (Arn::from(arn), Action::Kept)
        }
        None => {
            // Not retried by the SDK: moto answers a second CreateCluster by replacing the
            // cluster without its tags. The daemon services need ECS's service-linked role:
            // made beside the cluster, it costs no round of its own.
            let what = format!("creating ECS cluster {name} (ecs:CreateCluster)");
            let (arn, ()) = futures::join!(
                create_once(
                    &what,
                    || async {
                        ctx.aws
                            .ecs
                            .create_cluster()
                            .cluster_name(&name)
                            .tags(ecs_stack_tag(&ctx.stack))
                            .customize()
                            .config_override(no_retry!(aws_sdk_ecs))
                            .send()
                            .await
                            .map(|out| {
                                out.cluster()
                                    .and_then(|c| c.cluster_arn())
                                    .map(str::to_owned)
                            })
                            .map_err(classify)
                    },
                    || async {
                        Ok(find_active(ctx, &name)
                            .await?
                            .map(|c| c.cluster_arn().map(str::to_owned)))
                    },
                ),
                ensure_service_linked_role(ctx)
            );
            let arn = arn?.ok_or_else(|| anyhow!("CreateCluster returned no cluster"))?;
            (Arn(arn), Action::Created)
        }
    };
    let record = ClusterRecord {
        name: name.clone(),
        arn,
    };
    ctx.state
        .update(|s| s.resources.cluster = Some(record.clone()))
        .await?;
    ctx.out
        .record(ResourceKind::Cluster, &name, record.arn.as_str(), action);
    Ok(())
}

/// The service principal of ECS's service-linked role (`AWSServiceRoleForECS`).
const ECS_SERVICE: &str = "ecs.amazonaws.com";

/// Makes sure ECS's service-linked role exists: without it a fresh account's first
/// CreateService fails ("Unable to assume the service linked role"). It is account-wide and
/// owned by AWS, used by every ECS cluster of the account: `down` never deletes it. A failure
/// here is only a warning, since the role often exists already and the caller may lack
/// iam:CreateServiceLinkedRole; CreateService then says what is missing.
pub async fn ensure_service_linked_role(ctx: &Ctx) {
    let result = ctx
        .aws
        .iam
        .create_service_linked_role()
        .aws_service_name(ECS_SERVICE)
        .send()
        .await;
    match result {
        Ok(_) => tracing::info!("created the ECS service-linked role"),
        Err(e) if service_linked_role_exists(error_code(&e), &describe_error(&e)) => {}
        Err(e) => ctx.out.warn(format!(
            "could not make sure the ECS service-linked role exists \
             (iam:CreateServiceLinkedRole {ECS_SERVICE}): {}\n  what to do: if creating the \
             daemon services then fails, run `aws iam create-service-linked-role \
             --aws-service-name {ECS_SERVICE}` and `l5d-ecs up` again",
            describe_error(&e)
        )),
    }
}

/// IAM answers InvalidInput "...has been taken in this account" for a service-linked role
/// that exists; moto answers EntityAlreadyExists.
fn service_linked_role_exists(code: Option<&str>, message: &str) -> bool {
    match code {
        Some("EntityAlreadyExists") => true,
        Some("InvalidInput") => message.contains("has been taken in this account"),
        _ => false,
    }
}

/// Deregisters what is left in the cluster, then deletes it, retrying while ECS still
/// reports services, tasks or container instances in it.
async fn destroy(ctx: &Ctx, record: &ClusterRecord, timeout: Duration) -> Result<()> {
    let name = &record.name;
    let what = format!("ECS cluster {name} to be empty and deleted");
    poll_with(&what, timeout, Backoff::ECS, Some(&ctx.out), || async {
        deregister_container_instances(ctx, name).await?;
        let result = ctx.aws.ecs.delete_cluster().cluster(name).send().await;
        match result {
            Ok(_) => Ok(Poll::Ready(())),
            Err(e) => match error_code(&e) {
                Some("ClusterNotFoundException") => Ok(Poll::Ready(())),
                Some(
                    "ClusterContainsServicesException"
                    | "ClusterContainsTasksException"
                    | "ClusterContainsContainerInstancesException"
                    | "UpdateInProgressException"
                    | "ResourceInUseException",
                ) => Ok(Poll::Pending(describe_error(&e))),
                _ => Err(anyhow!("{}", describe_error(&e))),
            },
        }
    })
    .await
    .with_context(|| format!("deleting ECS cluster {name}"))?;
    // Tasks left to go with their nodes (see the demo apps' `destroy`) went with the cluster.
    ctx.state
        .update(|s| {
            s.resources.cluster = None;
            s.resources.apps.clear();
        })
        .await?;
    ctx.out.record(
        ResourceKind::Cluster,
        name,
        record.arn.as_str(),
        Action::Deleted,
    );
    Ok(())
}

/// Deregisters every container instance still listed, [`bulk::IN_FLIGHT`] at a time. On AWS
/// the nodes' termination has deregistered them by now and the listing is empty; an emulator
/// (and a node that is not the ASG's) leaves some.
async fn deregister_container_instances(ctx: &Ctx, cluster: &str) -> Result<()> {
    let Some(arns) = crate::nodes::list_container_instances(ctx, cluster, None).await? else {
        return Ok(());
    };
    let failed: Vec<String> = bulk::each(arns, |arn: String| async move {
        ctx.aws
            .ecs
            .deregister_container_instance()
            .cluster(cluster)
            .container_instance(&arn)
            .force(true)
            .customize()
            .config_override(adaptive_retry!(aws_sdk_ecs))
            .send()
            .await
            .aws(format!("deregistering container instance {arn}"))
    })
    .await
    .into_iter()
    .filter_map(|r| r.err().map(|e| format!("{e:#}")))
    .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_service_linked_role_is_fine() {
        assert!(service_linked_role_exists(
            Some("InvalidInput"),
            "InvalidInput: Service role name AWSServiceRoleForECS has been taken in this \
             account, please try a different suffix."
        ));
        assert!(service_linked_role_exists(
            Some("EntityAlreadyExists"),
            "Role with name AWSServiceRoleForECS already exists."
        ));
        assert!(!service_linked_role_exists(
            Some("InvalidInput"),
            "Invalid service name"
        ));
        assert!(!service_linked_role_exists(
            Some("AccessDenied"),
            "has been taken in this account"
        ));
    }
}
