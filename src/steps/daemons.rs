//! linkerd, consul-agent and consul-registrator on every node, as ECS services with the
//! DAEMON strategy (the guide's upstart job that ran `aws ecs start-task` is gone with Amazon
//! Linux 2023; a DAEMON service also covers nodes the ASG adds later).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ecs::types::{
    ContainerInstanceStatus, DesiredStatus, LaunchType, SchedulingStrategy, Service, Task,
};

use crate::aws::{
    create_once, create_when_propagated, describe_error, error_code, format_duration, no_retry,
    poll, poll_with, AwsResultExt, Backoff, NotPropagated, Poll,
};
use crate::context::Ctx;
use crate::ids::{Arn, TokenApi};
use crate::output::{Action, ResourceKind};
use crate::state::{request_digest, ClusterRecord, Creates, ServiceRecord, TaskDefinitionRecord};
use crate::tasks;
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
        None => {
            let draining = found
                .iter()
                .any(|s| s.service_name() == Some(name.as_str()) && s.status() == Some("DRAINING"));
            if draining {
                wait_drained(ctx, &cluster.name, name).await?;
            }
            (
                create(ctx, cluster, name, task_definition).await?,
                Action::Created,
            )
        }
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

/// How long a deleted service may stay DRAINING while ECS stops its tasks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits for a deleted service of that name to finish draining: until then ECS refuses to
/// create it again ("Creation of service was not idempotent"), as after a recent `down`.
async fn wait_drained(ctx: &Ctx, cluster: &str, name: &str) -> Result<()> {
    poll_with(
        &format!("the deleted daemon service {name} to finish draining"),
        DRAIN_TIMEOUT,
        Backoff::DEFAULT,
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

/// A daemon whose tasks stopped this often, for a failure, since the wait began will not come
/// up by waiting longer: ECS keeps restarting it, and the reason is in the stopped tasks.
const FAILURES_BEFORE_GIVING_UP: usize = 3;

/// How far ECS's clock may be ahead of this machine's, when telling the stops of this wait
/// from older ones (ECS describes STOPPED tasks for about an hour).
const CLOCK_SLACK: Duration = Duration::from_secs(30);

/// The cluster's ACTIVE container instances: ARN -> EC2 instance id.
async fn active_container_instances(ctx: &Ctx, cluster: &str) -> Result<BTreeMap<String, String>> {
    let mut arns = Vec::new();
    let mut pages = ctx
        .aws
        .ecs
        .list_container_instances()
        .cluster(cluster)
        .status(ContainerInstanceStatus::Active)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!(
            "listing the container instances of {cluster} (ecs:ListContainerInstances)"
        ))?;
        arns.extend(page.container_instance_arns().iter().cloned());
    }
    crate::nodes::container_instance_hosts(ctx, cluster, &arns).await
}

/// Waits until every daemon service runs one task on every ACTIVE container instance, as
/// the tasks show it: a RUNNING task of group `service:<name>` on each. Gives up early on a
/// daemon whose tasks keep stopping, saying why ECS stopped them.
pub async fn wait_running_everywhere(ctx: &Ctx, timeout: Duration) -> Result<()> {
    let cluster = ctx.stack.cluster();
    let names: Vec<String> = DAEMON_APPS.iter().map(|a| ctx.stack.family(a)).collect();
    ctx.out.progress(format!(
        "waiting up to {} for {} to run a task on every ACTIVE container instance of {cluster}",
        format_duration(timeout),
        names.join(", ")
    ));
    let began = SystemTime::now()
        .checked_sub(CLOCK_SLACK)
        .unwrap_or(UNIX_EPOCH);
    let (running_what, stopped_what) = (
        format!("the running tasks of {cluster}"),
        format!("the stopped tasks of {cluster}"),
    );
    let listing = |status: DesiredStatus| {
        ctx.aws
            .ecs
            .list_tasks()
            .cluster(&cluster)
            .desired_status(status)
    };
    let nodes = poll(
        &format!("the daemon services to run on every node of {cluster}"),
        timeout,
        || async {
            let (instances, running, stopped) = futures::join!(
                active_container_instances(ctx, &cluster),
                tasks::list(listing(DesiredStatus::Running), &running_what),
                tasks::list(listing(DesiredStatus::Stopped), &stopped_what),
            );
            let (instances, running, stopped) = (instances?, running?, stopped?);
            let (running, stopped) = futures::join!(
                tasks::describe(ctx, &cluster, &running),
                tasks::describe(ctx, &cluster, &stopped),
            );
            let (running, stopped) = (running?, stopped?);
            let failing: Vec<String> = names
                .iter()
                .filter_map(|name| failing(name, &stopped, began, &instances))
                .collect();
            if !failing.is_empty() {
                return Err(anyhow!(
                    "{}\n  what to do: fix what ECS says (the image, the memory, a port in use \
                     on the node); `l5d-ecs logs <container>` shows what it printed and \
                     `l5d-ecs status` the stopped tasks; then run `l5d-ecs up` again",
                    failing.join("\n")
                ));
            }
            let missing: Vec<String> = names
                .iter()
                .filter_map(|name| not_everywhere(name, &running, &instances))
                .collect();
            Ok(if missing.is_empty() {
                Poll::Ready(instances.len())
            } else {
                Poll::Pending(missing.join("; "))
            })
        },
    )
    .await
    .context(
        "the daemon services do not run on every node yet; `l5d-ecs status` shows their tasks \
         and why any stopped",
    )?;
    for name in &names {
        ctx.out.record(
            ResourceKind::DaemonService,
            name,
            format!("running on {nodes} node(s)"),
            Action::Ready,
        );
    }
    Ok(())
}

fn group(name: &str) -> String {
    format!("service:{name}")
}

/// Which ACTIVE container instances lack a RUNNING task of the daemon, in words; `None` when
/// it runs on all of them.
fn not_everywhere(
    name: &str,
    running: &[Task],
    instances: &BTreeMap<String, String>,
) -> Option<String> {
    let group = group(name);
    let ours: Vec<&Task> = running
        .iter()
        .filter(|t| t.group() == Some(group.as_str()))
        .collect();
    let lacking: Vec<String> = instances
        .iter()
        .filter(|(arn, _)| {
            !ours.iter().any(|t| {
                t.container_instance_arn() == Some(arn.as_str())
                    && t.last_status() == Some("RUNNING")
            })
        })
        .map(|(arn, ec2)| {
            let here = ours
                .iter()
                .find(|t| t.container_instance_arn() == Some(arn.as_str()))
                .and_then(|t| t.last_status());
            match here {
                Some(status) => format!("{ec2} ({status})"),
                None => format!("{ec2} (no task)"),
            }
        })
        .collect();
    (!lacking.is_empty()).then(|| {
        format!(
            "{name} runs on {} of {} node(s), not yet on {}",
            instances.len() - lacking.len(),
            instances.len(),
            lacking.join(", ")
        )
    })
}

/// The daemon's failures since the wait began, in words, once there are enough of them to
/// stop waiting; newest first.
fn failing(
    name: &str,
    stopped: &[Task],
    began: SystemTime,
    instances: &BTreeMap<String, String>,
) -> Option<String> {
    let group = group(name);
    let since = began
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let when = |t: &Task| {
        t.stopped_at()
            .or(t.stopping_at())
            .or(t.created_at())
            .copied()
    };
    let mut failed: Vec<&Task> = stopped
        .iter()
        .filter(|t| t.group() == Some(group.as_str()) && tasks::stopped_by_failure(t))
        // An emulator gives no times: its stops all count.
        .filter(|t| when(t).is_none_or(|d| d.secs() >= since))
        .collect();
    if failed.len() < FAILURES_BEFORE_GIVING_UP {
        return None;
    }
    failed.sort_by_key(|t| std::cmp::Reverse(when(t).map(|d| (d.secs(), d.subsec_nanos()))));
    let lines: Vec<String> = failed
        .iter()
        .take(FAILURES_BEFORE_GIVING_UP)
        .map(|t| {
            let node = t
                .container_instance_arn()
                .and_then(|a| instances.get(a))
                .map_or(String::new(), |ec2| format!(" on {ec2}"));
            format!("    {}{node}", tasks::stopped_line(t))
        })
        .collect();
    Some(format!(
        "daemon service {name} keeps failing: {} of its tasks stopped since the wait began:\n{}",
        failed.len(),
        lines.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Container;

    fn task(group: &str, instance: &str, last: &str, desired: &str) -> Task {
        Task::builder()
            .task_arn(format!("arn:aws:ecs:r:1:task/c/{group}-{instance}"))
            .group(group)
            .container_instance_arn(instance)
            .last_status(last)
            .desired_status(desired)
            .stopped_reason("CannotPullContainerError: pull access denied")
            .containers(Container::builder().name("linkerd").exit_code(1).build())
            .build()
    }

    fn instances() -> BTreeMap<String, String> {
        [("ci-1", "i-1"), ("ci-2", "i-2")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    }

    #[test]
    fn a_daemon_is_ready_only_when_running_on_every_active_node() {
        let one = vec![task("service:s-linkerd", "ci-1", "RUNNING", "RUNNING")];
        let pending = not_everywhere("s-linkerd", &one, &instances()).unwrap();
        assert!(
            pending.contains("1 of 2") && pending.contains("i-2 (no task)"),
            "{pending}"
        );
        let mut both = one.clone();
        both.push(task("service:s-linkerd", "ci-2", "PENDING", "RUNNING"));
        let pending = not_everywhere("s-linkerd", &both, &instances()).unwrap();
        assert!(pending.contains("i-2 (PENDING)"), "{pending}");
        both[1] = task("service:s-linkerd", "ci-2", "RUNNING", "RUNNING");
        assert_eq!(not_everywhere("s-linkerd", &both, &instances()), None);
        // Another service's task on the node does not count.
        let other = vec![
            task("service:s-consul-agent", "ci-1", "RUNNING", "RUNNING"),
            task("family:s-linkerd", "ci-2", "RUNNING", "RUNNING"),
        ];
        assert!(not_everywhere("s-linkerd", &other, &instances()).is_some());
    }

    #[test]
    fn three_failures_of_a_daemon_stop_the_wait_with_ecs_reasons() {
        let stopped: Vec<Task> = (0..3)
            .map(|_| task("service:s-linkerd", "ci-1", "STOPPED", "STOPPED"))
            .collect();
        let began = SystemTime::now();
        assert_eq!(
            failing("s-linkerd", &stopped[..2], began, &instances()),
            None
        );
        let text = failing("s-linkerd", &stopped, began, &instances()).unwrap();
        assert!(
            text.contains("s-linkerd")
                && text.contains("CannotPullContainerError")
                && text.contains("exit code 1")
                && text.contains("on i-1"),
            "{text}"
        );
        assert_eq!(
            failing("s-consul-agent", &stopped, began, &instances()),
            None
        );
    }

    #[test]
    fn stops_before_the_wait_began_do_not_count() {
        let old = aws_smithy_types::DateTime::from_secs(1_000);
        let stopped: Vec<Task> = (0..3)
            .map(|_| {
                let mut t = task("service:s-linkerd", "ci-1", "STOPPED", "STOPPED");
                t.stopped_at = Some(old);
                t
            })
            .collect();
        assert_eq!(
            failing("s-linkerd", &stopped, SystemTime::now(), &instances()),
            None
        );
    }
}
