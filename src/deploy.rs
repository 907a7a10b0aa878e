//! `deploy` and `undeploy`: exactly --count tasks of a demo app, started by this tool (so
//! they can be told apart from anything else in the cluster) and recorded in the state file.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_sdk_ecs::types::{
    ContainerInstanceStatus, DesiredStatus, LaunchType, PlacementStrategy, PlacementStrategyType,
    Task,
};

use crate::aws::{classify, no_retry, poll, AwsResultExt, Poll};
use crate::cli::{App, DeployArgs};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::nodes::{task_id, task_nodes};
use crate::output::{Action, ResourceKind, TaskInfo};
use crate::state::{AppRecord, ClusterRecord, TaskDefinitionRecord};
use crate::steps::missing_step;

/// RunTask starts at most ten tasks a call.
const RUN_TASK_MAX: u32 = 10;
const MAX_RUN_TASK_ATTEMPTS: u32 = 8;

fn inputs(ctx: &Ctx, app: App) -> Result<(ClusterRecord, TaskDefinitionRecord)> {
    let r = ctx.state.resources();
    let cluster = r.cluster.ok_or_else(|| missing_step("cluster", "up"))?;
    let family = ctx.stack.family(app.name());
    let td = r
        .task_definitions
        .get(&family)
        .cloned()
        .ok_or_else(|| missing_step(&format!("task definition {family}"), "register-tasks"))?;
    Ok((cluster, td))
}

/// Tasks of the app that this tool started and that are meant to run.
async fn our_tasks(ctx: &Ctx, cluster: &str, family: &str) -> Result<Vec<Task>> {
    let arns = ctx
        .aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .family(family)
        .started_by(ctx.stack.started_by())
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .aws(format!("listing the {family} tasks in {cluster}"))?
        .task_arns()
        .to_vec();
    describe_tasks(ctx, cluster, &arns).await
}

async fn describe_tasks(ctx: &Ctx, cluster: &str, arns: &[String]) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    // DescribeTasks takes at most 100 tasks a call.
    for chunk in arns.chunks(100) {
        let out = ctx
            .aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .aws(format!("describing tasks in {cluster}"))?;
        tasks.extend(out.tasks().iter().cloned());
    }
    Ok(tasks)
}

pub async fn deploy(ctx: &Ctx, args: &DeployArgs) -> Result<()> {
    let app = args.app;
    let count = args.count.unwrap_or(app.default_count());
    let (cluster, td) = inputs(ctx, app)?;
    let family = td.family.clone();

    let active = ctx
        .aws
        .ecs
        .list_container_instances()
        .cluster(&cluster.name)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .aws(format!(
            "listing the container instances of {}",
            cluster.name
        ))?;
    if count > 0 && active.container_instance_arns().is_empty() {
        bail!(
            "cluster {} has no ACTIVE container instance, so no task can start: the nodes have \
             not joined yet. `l5d-ecs up` waits for them; `l5d-ecs status` shows where they are",
            cluster.name
        );
    }

    let mut tasks = our_tasks(ctx, &cluster.name, &family).await?;
    let running = tasks.len() as u32;
    if running < count {
        let mut missing = count - running;
        let mut failed_attempts = 0;
        while missing > 0 {
            let batch = missing.min(RUN_TASK_MAX);
            // Not retried by the SDK (a retry after a lost response would start the tasks
            // twice): after an error that may hide a success, count again.
            let result = ctx
                .aws
                .ecs
                .run_task()
                .cluster(&cluster.name)
                .task_definition(td.arn.as_str())
                .count(batch as i32)
                .launch_type(LaunchType::Ec2)
                .started_by(ctx.stack.started_by())
                .placement_strategy(
                    PlacementStrategy::builder()
                        .r#type(PlacementStrategyType::Spread)
                        .field("instanceId")
                        .build(),
                )
                .tags(crate::steps::ecs_stack_tag(&ctx.stack))
                .customize()
                .config_override(no_retry!(aws_sdk_ecs))
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    let e = classify(e);
                    failed_attempts += 1;
                    if !e.transient || failed_attempts >= MAX_RUN_TASK_ATTEMPTS {
                        bail!(
                            "starting {batch} {family} task(s) in {}: {}",
                            cluster.name,
                            e.message
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200 << failed_attempts.min(5))).await;
                    tasks = our_tasks(ctx, &cluster.name, &family).await?;
                    record_tasks(
                        ctx,
                        app,
                        &family,
                        tasks.iter().filter_map(|t| t.task_arn()),
                        &[],
                    )?;
                    missing = count.saturating_sub(tasks.len() as u32);
                    continue;
                }
            };
            let started = out.tasks().to_vec();
            record_tasks(
                ctx,
                app,
                &family,
                started.iter().filter_map(|t| t.task_arn()),
                &[],
            )?;
            for t in &started {
                ctx.out.record(
                    ResourceKind::Task,
                    &family,
                    task_id(t.task_arn().unwrap_or_default()),
                    Action::Created,
                );
            }
            if started.is_empty() {
                let reasons: Vec<String> = out
                    .failures()
                    .iter()
                    .map(|f| {
                        format!(
                            "{} ({})",
                            f.reason().unwrap_or("unknown reason"),
                            f.arn().unwrap_or("?")
                        )
                    })
                    .collect();
                bail!(
                    "ECS placed no {family} task: {}",
                    if reasons.is_empty() {
                        "no reason given".to_owned()
                    } else {
                        reasons.join("; ")
                    }
                );
            }
            missing = missing.saturating_sub(started.len() as u32);
            tasks.extend(started);
        }
    } else if running > count {
        // Stop the newest first: the oldest have been serving longest.
        tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at().map(|d| d.as_nanos())));
        let extra: Vec<Task> = tasks.drain(..(running - count) as usize).collect();
        stop_tasks(
            ctx,
            app,
            &cluster.name,
            &family,
            &extra,
            "l5d-ecs deploy --count",
        )
        .await?;
    } else {
        for t in &tasks {
            ctx.out.record(
                ResourceKind::Task,
                &family,
                task_id(t.task_arn().unwrap_or_default()),
                Action::Kept,
            );
        }
    }
    // The state lists exactly the tasks that run now (some may have stopped on their own).
    let current: Vec<&str> = tasks.iter().filter_map(|t| t.task_arn()).collect();
    ctx.state.update(|s| {
        s.resources.apps.insert(
            app.name().to_owned(),
            AppRecord {
                family: family.clone(),
                tasks: current.iter().map(|a| Arn::from(*a)).collect(),
            },
        );
    })?;

    if !args.no_wait && !tasks.is_empty() {
        let arns: Vec<String> = current.iter().map(|s| (*s).to_owned()).collect();
        tasks = wait_running(ctx, &cluster.name, &family, &arns, args.wait_timeout.0).await?;
    }
    report_placement(ctx, app, &cluster.name, &tasks).await
}

fn record_tasks<'a>(
    ctx: &Ctx,
    app: App,
    family: &str,
    add: impl Iterator<Item = &'a str>,
    remove: &[String],
) -> Result<()> {
    let add: Vec<Arn> = add.map(Arn::from).collect();
    ctx.state.update(|s| {
        let record = s
            .resources
            .apps
            .entry(app.name().to_owned())
            .or_insert_with(|| AppRecord {
                family: family.to_owned(),
                tasks: Vec::new(),
            });
        record
            .tasks
            .retain(|t| !remove.iter().any(|r| r == t.as_str()));
        for arn in add {
            if !record.tasks.contains(&arn) {
                record.tasks.push(arn);
            }
        }
    })
}

async fn stop_tasks(
    ctx: &Ctx,
    app: App,
    cluster: &str,
    family: &str,
    tasks: &[Task],
    reason: &str,
) -> Result<()> {
    for t in tasks {
        let Some(arn) = t.task_arn() else { continue };
        ctx.aws
            .ecs
            .stop_task()
            .cluster(cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .aws(format!("stopping {family} task {}", task_id(arn)))?;
        record_tasks(ctx, app, family, std::iter::empty(), &[arn.to_owned()])?;
        ctx.out
            .record(ResourceKind::Task, family, task_id(arn), Action::Deleted);
    }
    Ok(())
}

async fn wait_running(
    ctx: &Ctx,
    cluster: &str,
    family: &str,
    arns: &[String],
    timeout: Duration,
) -> Result<Vec<Task>> {
    ctx.out.progress(format!(
        "waiting for {} {family} task(s) to be RUNNING",
        arns.len()
    ));
    poll(
        &format!("the {family} tasks to be RUNNING"),
        timeout,
        || async {
            let tasks = describe_tasks(ctx, cluster, arns).await?;
            if let Some(stopped) = tasks.iter().find(|t| t.last_status() == Some("STOPPED")) {
                return Err(anyhow!(
                    "{family} task {} stopped: {}",
                    task_id(stopped.task_arn().unwrap_or_default()),
                    stopped.stopped_reason().unwrap_or("no reason given")
                ));
            }
            let not_yet: BTreeSet<String> = tasks
                .iter()
                .filter(|t| t.last_status() != Some("RUNNING"))
                .map(|t| {
                    format!(
                        "{} {}",
                        task_id(t.task_arn().unwrap_or_default()),
                        t.last_status().unwrap_or("?")
                    )
                })
                .collect();
            Ok(if not_yet.is_empty() && tasks.len() == arns.len() {
                Poll::Ready(tasks)
            } else {
                Poll::Pending(not_yet.into_iter().collect::<Vec<_>>().join(", "))
            })
        },
    )
    .await
}

async fn report_placement(ctx: &Ctx, app: App, cluster: &str, tasks: &[Task]) -> Result<()> {
    let nodes = task_nodes(ctx, cluster, tasks).await?;
    for t in tasks {
        let arn = t.task_arn().unwrap_or_default();
        let node = nodes.get(arn);
        ctx.out.task(TaskInfo {
            app: app.name().to_owned(),
            task_id: task_id(arn).to_owned(),
            status: t.last_status().unwrap_or("?").to_owned(),
            instance_id: node.map(|n| n.instance_id.to_string()),
            host: node.and_then(|n| n.host().map(str::to_owned)),
        });
    }
    if app == App::LinkerdViz {
        let host = tasks
            .iter()
            .filter_map(|t| nodes.get(t.task_arn()?))
            .find_map(|n| n.host().map(str::to_owned));
        match host {
            Some(host) => ctx
                .out
                .address("linkerd-viz", format!("http://{host}:3000")),
            None => ctx.out.warn(
                "the linkerd-viz task runs on no node with an address yet; see `l5d-ecs status`",
            ),
        }
    }
    Ok(())
}

/// Stops every task of the app that this tool started.
pub async fn undeploy(ctx: &Ctx, app: App) -> Result<()> {
    let r = ctx.state.resources();
    let Some(cluster) = r.cluster else {
        return Ok(());
    };
    let family = ctx.stack.family(app.name());
    let tasks = our_tasks(ctx, &cluster.name, &family).await?;
    stop_tasks(ctx, app, &cluster.name, &family, &tasks, "l5d-ecs undeploy").await?;
    ctx.state.update(|s| {
        s.resources.apps.remove(app.name());
    })?;
    Ok(())
}
