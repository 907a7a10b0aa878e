//! linkerd, consul-agent and consul-registrator on every node, as ECS services with the
//! DAEMON strategy (the guide's upstart job that ran `aws ecs start-task` is gone with Amazon
//! Linux 2023; a DAEMON service also covers nodes the ASG adds later).

mod create;
mod wait;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_sdk_ecs::types::{Service, Task};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{missing_step, Name, Plan, Ready, Resource, Settings};
use crate::aws::{describe_error, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::{ClusterRecord, Creates, Resources, ServiceRecord, TaskDefinitionRecord};
use crate::templates::DAEMON_APPS;

pub use wait::wait_running_everywhere;

pub struct Daemons;

impl Resource for Daemons {
    fn name(&self) -> Name {
        Name::Daemons
    }

    fn what(&self) -> &'static str {
        "daemon services"
    }

    fn command(&self) -> &'static str {
        "daemons"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        !r.daemons.is_empty()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            // The containers log to the group, so the runner has it made before they start.
            let name = cx.stack.cluster();
            let (found, ready) = futures::join!(find(cx, &name), ready);
            ready?;
            let r = cx.state.resources();
            let cluster = r
                .cluster
                .ok_or_else(|| missing_step("cluster", "cluster"))?;
            ensure_found(cx, &found?, &cluster, &r.task_definitions).await
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
            let cluster = cx.stack.cluster();
            let (services, families) =
                futures::join!(find(cx, &cluster), plan.task_definitions(cx));
            let (services, families) = (services?, families?);
            for name in service_names(cx) {
                let active = services.iter().find(|s| {
                    s.service_name() == Some(name.as_str()) && s.status() == Some("ACTIVE")
                });
                let family = families.iter().find(|f| f.family() == name);
                let (action, detail) = match active {
                    None => (Action::Create, None),
                    Some(_) if family.is_some_and(|f| f.gets_new_revision()) => (
                        Action::Repair,
                        Some("point at the new task definition revision".to_owned()),
                    ),
                    Some(s) => {
                        let current = family.and_then(|f| f.current()).map(|r| r.arn.to_string());
                        if current.is_some() && s.task_definition() != current.as_deref() {
                            (
                                Action::Repair,
                                Some("point at the latest task definition revision".to_owned()),
                            )
                        } else {
                            (Action::Keep, None)
                        }
                    }
                };
                plan.row(
                    self.name(),
                    ResourceKind::DaemonService,
                    &name,
                    action,
                    detail,
                );
            }
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.daemons
            .values()
            .map(|s| Item::new(ResourceKind::DaemonService, &s.name, s.arn.as_str()))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            let r = cx.state.resources();
            if r.daemons.is_empty() {
                return Ok(());
            }
            let Some(cluster) = r.cluster else {
                bail!("the state file lists daemon services but no cluster");
            };
            let results = futures::future::join_all(
                r.daemons
                    .values()
                    .map(|s| destroy_one(cx, &cluster.name, s)),
            )
            .await;
            let errors: Vec<String> = results
                .into_iter()
                .filter_map(|r| r.err().map(|e| format!("{e:#}")))
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(anyhow!(errors.join("; ")))
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
            // Only in a cluster that is ours: `down --discover` deletes what is found.
            let Some(cluster) = super::cluster::find_ours(cx).await? else {
                return Ok(());
            };
            let services = find(cx, &cluster.name).await?;
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            for s in services.iter().filter(|s| s.status() == Some("ACTIVE")) {
                let (Some(name), Some(arn)) = (s.service_name(), s.service_arn()) else {
                    continue;
                };
                found
                    .daemons
                    .entry(name.to_owned())
                    .or_insert_with(|| ServiceRecord {
                        name: name.to_owned(),
                        arn: Arn::from(arn),
                    });
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            if r.daemons.is_empty() {
                return Vec::new();
            }
            let cluster = r
                .cluster
                .as_ref()
                .map_or_else(|| cx.stack.cluster(), |c| c.name.clone());
            let (found, nodes) =
                futures::join!(find(cx, &cluster), wait::nodes_and_tasks(cx, &cluster));
            r.daemons
                .values()
                .map(|s| {
                    let state = match &found {
                        Ok(services) => service_state(services, &s.name, nodes.as_ref().ok()),
                        Err(e) => format!("unknown: {e:#}"),
                    };
                    ResourceStatus::new(ResourceKind::DaemonService, &s.name, s.arn.as_str(), state)
                })
                .collect()
        }
        .boxed()
    }
}

/// The daemon services' names, which are their task definitions' families.
fn service_names(ctx: &Ctx) -> Vec<String> {
    DAEMON_APPS.iter().map(|a| ctx.stack.family(a)).collect()
}

/// A service's live state in words, with the nodes it runs on (from the tasks, as ECS's
/// counts of a DAEMON service lag); a deleted one stays INACTIVE for a while.
fn service_state(
    services: &[Service],
    name: &str,
    nodes: Option<&(BTreeMap<String, String>, Vec<Task>)>,
) -> String {
    let live = services
        .iter()
        .find(|s| s.service_name() == Some(name) && s.status() != Some("INACTIVE"));
    let Some(s) = live else {
        return "missing".to_owned();
    };
    let status = s.status().unwrap_or("?");
    match nodes {
        Some((instances, _)) if instances.is_empty() => {
            format!("{status}, no ACTIVE container instance to run on")
        }
        Some((instances, running)) => {
            let (on, lacking) = wait::placement(name, running, instances);
            if lacking.is_empty() {
                format!("{status}, running on {on} of {} node(s)", instances.len())
            } else {
                format!(
                    "{status}, running on {on} of {} node(s), not on {}",
                    instances.len(),
                    lacking.join(", ")
                )
            }
        }
        None => format!(
            "{status}, {} running of {} desired",
            s.running_count(),
            s.desired_count()
        ),
    }
}

/// The stack's daemon services in the cluster (none if the cluster does not exist yet).
async fn find(ctx: &Ctx, cluster: &str) -> Result<Vec<Service>> {
    let names = service_names(ctx);
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

/// Makes or repairs every daemon service; each is recorded as soon as it is done.
async fn ensure_found(
    ctx: &Ctx,
    found: &[Service],
    cluster: &ClusterRecord,
    task_definitions: &BTreeMap<String, TaskDefinitionRecord>,
) -> Result<()> {
    let names = service_names(ctx);
    // The three services are independent: made (or repaired) at once.
    let results = futures::future::join_all(
        names
            .iter()
            .map(|name| ensure_one(ctx, found, cluster, task_definitions, name)),
    )
    .await;
    results.into_iter().collect()
}

async fn ensure_one(
    ctx: &Ctx,
    found: &[Service],
    cluster: &ClusterRecord,
    task_definitions: &BTreeMap<String, TaskDefinitionRecord>,
    name: &String,
) -> Result<()> {
    let task_definition = task_definitions
        .get(name)
        .ok_or_else(|| missing_step(&format!("task definition {name}"), "register-tasks"))?;
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
        None => {
            let draining = found
                .iter()
                .any(|s| s.service_name() == Some(name.as_str()) && s.status() == Some("DRAINING"));
            if draining {
                create::wait_drained(ctx, &cluster.name, name).await?;
            }
            (
                create::create(ctx, cluster, name, task_definition).await?,
                Action::Created,
            )
        }
    };
    let record = ServiceRecord {
        name: name.clone(),
        arn: Arn::from(arn.as_str()),
    };
    ctx.state
        .update(|s| {
            s.resources.daemons.insert(name.clone(), record.clone());
            s.resources.created(Creates::DaemonService(name));
        })
        .await?;
    ctx.out
        .record(ResourceKind::DaemonService, name, &arn, action);
    Ok(())
}

async fn destroy_one(ctx: &Ctx, cluster: &str, service: &ServiceRecord) -> Result<()> {
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
    ctx.state
        .update(|s| {
            s.resources.daemons.remove(&service.name);
        })
        .await?;
    ctx.out.record(
        ResourceKind::DaemonService,
        &service.name,
        service.arn.as_str(),
        Action::Deleted,
    );
    Ok(())
}

#[cfg(test)]
mod tests;
