//! `deploy` and `undeploy`: exactly --count tasks of a demo app, started by this tool (so
//! they can be told apart from anything else in the cluster) and recorded in the state file.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_sdk_ecs::types::{
    ContainerInstanceStatus, Failure, LaunchType, PlacementStrategy, PlacementStrategyType, Task,
};

use crate::aws::{classify, create_once, no_retry, poll, Backoff, Poll};
use crate::cli::{App, DeployArgs};
use crate::context::Ctx;
use crate::ids::{Arn, TokenApi};
use crate::kinds::{Action, ResourceKind, TaskInfo};
use crate::nodes::{task_id, task_nodes};
use crate::resources::{apps, missing_step};
use crate::state::{request_digest, AppRecord, ClusterRecord, Creates, TaskDefinitionRecord};
use crate::tasks;

/// RunTask starts at most ten tasks a call.
const RUN_TASK_MAX: u32 = 10;

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

pub async fn run(args: &DeployArgs, env: &super::Env) -> Result<()> {
    let cx = env.connect().await?;
    deploy(&cx, args).await
}

async fn deploy(ctx: &Ctx, args: &DeployArgs) -> Result<()> {
    let app = args.app;
    let count = args.count.unwrap_or(app.default_count());
    let (cluster, td) = inputs(ctx, app)?;
    let family = td.family.clone();

    // Whether a task can start at all, and what runs already: two look-ups at once.
    let (active, tasks) = futures::join!(
        crate::nodes::list_container_instances(
            ctx,
            &cluster.name,
            Some(ContainerInstanceStatus::Active)
        ),
        apps::our_tasks(ctx, &cluster.name, &family)
    );
    let active = active?.unwrap_or_default();
    if count > 0 && active.is_empty() {
        bail!(
            "cluster {} has no ACTIVE container instance, so no task can start: the nodes have \
             not joined yet. `l5d-ecs up` waits for them; `l5d-ecs status` shows where they are",
            cluster.name
        );
    }

    let mut tasks = tasks?;
    let running = tasks.len() as u32;
    if running < count {
        // RunTask starts ten at most: the batches go out at once, each with its own token.
        let missing = count - running;
        let sizes: Vec<u32> = (0..missing.div_ceil(RUN_TASK_MAX))
            .map(|n| (missing - n * RUN_TASK_MAX).min(RUN_TASK_MAX))
            .collect();
        let batches = sizes
            .iter()
            .enumerate()
            .map(|(n, &size)| run_batch(ctx, app, &cluster.name, &td, n as u32, size));
        let outcomes = futures::future::join_all(batches).await;
        let mut failed = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(started) => {
                    for t in &started {
                        ctx.out.record(
                            ResourceKind::Task,
                            &family,
                            task_id(t.task_arn().unwrap_or_default()),
                            Action::Created,
                        );
                    }
                    tasks.extend(started);
                }
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
    } else if running > count {
        // Stop the newest first: the oldest have been serving longest.
        tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at().map(|d| d.as_nanos())));
        let extra: Vec<Task> = tasks.drain(..(running - count) as usize).collect();
        apps::stop_tasks(
            ctx,
            app.name(),
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
    // A batch token left by a run that crashed is spent too: its tasks, if any, are counted
    // by now, and a later batch that sent it again would get those (maybe stopped) tasks back.
    let current: Vec<&str> = tasks.iter().filter_map(|t| t.task_arn()).collect();
    ctx.state
        .update(|s| {
            s.resources.spend_task_tokens(app.name());
            s.resources.apps.insert(
                app.name().to_owned(),
                AppRecord {
                    family: family.clone(),
                    tasks: current.iter().map(|a| Arn::from(*a)).collect(),
                },
            );
        })
        .await?;

    if !args.no_wait && !tasks.is_empty() {
        let arns: Vec<String> = current.iter().map(|s| (*s).to_owned()).collect();
        tasks = wait_running(ctx, &cluster.name, &family, &arns, args.wait_timeout.0).await?;
    }
    report_placement(ctx, app, &cluster.name, &tasks).await
}

/// Starts one batch of tasks, and returns those started. The batch's idempotency token is
/// kept in the state file until its tasks are recorded: ECS answers a repeated RunTask token
/// with the first call's tasks (for 24 hours), so neither a retry after a lost response nor
/// the next `deploy` after a crash starts the batch twice. The token is also a tag of the
/// batch's tasks, so that the look-up after a lost answer tells this batch's tasks from those
/// of the batches beside it.
async fn run_batch(
    ctx: &Ctx,
    app: App,
    cluster: &str,
    td: &TaskDefinitionRecord,
    n: u32,
    size: u32,
) -> Result<Vec<Task>> {
    let family = &td.family;
    let creates = Creates::TaskBatch(app.name(), n);
    let request = request_digest(&["RunTask/2", cluster, td.arn.as_str(), &size.to_string()]);
    let token = ctx
        .state
        .client_token(creates, &request, TokenApi::RunTask)
        .await?;
    let (started, failures) = create_once(
        &format!("starting {size} {family} task(s) in ECS cluster {cluster}"),
        || async {
            ctx.aws
                .ecs
                .run_task()
                .cluster(cluster)
                .task_definition(td.arn.as_str())
                .count(size as i32)
                .launch_type(LaunchType::Ec2)
                .started_by(ctx.stack.started_by())
                .placement_strategy(
                    PlacementStrategy::builder()
                        .r#type(PlacementStrategyType::Spread)
                        .field("instanceId")
                        .build(),
                )
                .tags(crate::resources::tags::ecs_stack_tag(&ctx.stack))
                .tags(batch_tag(token.as_str()))
                .client_token(token.as_str())
                .customize()
                .config_override(no_retry!(aws_sdk_ecs))
                .send()
                .await
                .map(|out| (out.tasks().to_vec(), out.failures().to_vec()))
                .map_err(classify)
        },
        // The retry with the same token is itself the look-up on ECS; looking first also
        // keeps an emulator that ignores tokens from starting the batch twice. Fewer than the
        // batch in sight may be ListTasks lagging: then the token decides.
        || async {
            let mine: Vec<Task> = apps::our_tasks(ctx, cluster, family)
                .await?
                .into_iter()
                .filter(|t| t.tags().iter().any(|tag| *tag == batch_tag(token.as_str())))
                .collect();
            Ok((mine.len() >= size as usize).then(|| (mine, Vec::new())))
        },
    )
    .await?;
    // Recorded together with the token's end, so the next batch gets a token of its own
    // (also when ECS placed none: a repeated token would repeat that answer).
    apps::record_tasks(
        ctx,
        app.name(),
        family,
        started.iter().filter_map(|t| t.task_arn()),
        &[],
        Some(creates),
    )
    .await?;
    if started.is_empty() {
        bail!(
            "ECS placed no {family} task: {}",
            placement_failures(&failures)
        );
    }
    Ok(started)
}

/// The tag that names the RunTask batch a task came from.
fn batch_tag(token: &str) -> aws_sdk_ecs::types::Tag {
    aws_sdk_ecs::types::Tag::builder()
        .key("l5d-ecs:batch")
        .value(token)
        .build()
}

fn placement_failures(failures: &[Failure]) -> String {
    let reasons: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                f.reason().unwrap_or("unknown reason"),
                f.arn().unwrap_or("?")
            )
        })
        .collect();
    if reasons.is_empty() {
        "no reason given; `l5d-ecs status` shows the nodes and what runs on them".to_owned()
    } else {
        reasons.join("; ")
    }
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
        Backoff::ECS,
        || async {
            let tasks = tasks::describe(ctx, cluster, arns).await?;
            if let Some(stopped) = tasks.iter().find(|t| t.last_status() == Some("STOPPED")) {
                return Err(anyhow!(
                    "{family} {}\n  what to do: {}",
                    tasks::stopped_line(stopped),
                    tasks::logs_hint(stopped)
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
