//! ECS task look-ups shared by `deploy`, `status`, `discover` and `up`'s wait for the mesh:
//! ListTasks to the last page, DescribeTasks in batches, and what a stopped task says about
//! why it stopped.

use anyhow::Result;
use aws_sdk_ecs::operation::list_tasks::builders::ListTasksFluentBuilder;
use aws_sdk_ecs::types::{Task, TaskField};

use crate::aws::AwsResultExt;
use crate::context::Ctx;
use crate::nodes::task_id;

/// DescribeTasks takes at most 100 tasks a call.
const DESCRIBE_MAX: usize = 100;

/// Every task ARN that `request` lists, across all pages. ListTasks refuses `startedBy`
/// together with any other filter but the cluster ("When you specify startedBy as the filter,
/// it must be the only filter that you use"): filter such a listing after describing it.
pub async fn list(request: ListTasksFluentBuilder, what: &str) -> Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("listing {what} (ecs:ListTasks)"))?;
        arns.extend(page.task_arns().iter().cloned());
    }
    Ok(arns)
}

/// The tasks, described in batches of at most 100, the batches at once. STOPPED tasks stay
/// describable for about an hour.
pub async fn describe(ctx: &Ctx, cluster: &str, arns: &[String]) -> Result<Vec<Task>> {
    describe_including(ctx, cluster, arns, None).await
}

/// [`describe`], with each task's tags (`deploy` tells its batches apart by tag). Only where
/// they are read: they make every answer longer, and a `status` of 60 nodes describes some
/// 200 tasks.
pub async fn describe_with_tags(ctx: &Ctx, cluster: &str, arns: &[String]) -> Result<Vec<Task>> {
    describe_including(ctx, cluster, arns, Some(TaskField::Tags)).await
}

async fn describe_including(
    ctx: &Ctx,
    cluster: &str,
    arns: &[String],
    include: Option<TaskField>,
) -> Result<Vec<Task>> {
    let batches = arns.chunks(DESCRIBE_MAX).map(|chunk| async {
        ctx.aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .set_include(include.clone().map(|field| vec![field]))
            .send()
            .await
            .aws(format!(
                "describing tasks in ECS cluster {cluster} (ecs:DescribeTasks)"
            ))
            .map(|out| out.tasks().to_vec())
    });
    let described = futures::future::try_join_all(batches).await?;
    Ok(described.into_iter().flatten().collect())
}

/// The task definition family a task runs (`.../task-definition/<family>:<revision>`).
pub fn family(task: &Task) -> Option<&str> {
    let tail = task.task_definition_arn()?.rsplit('/').next()?;
    Some(tail.rsplit_once(':').map_or(tail, |(f, _)| f))
}

/// Whether ECS stopped the task because it failed (could not start, or an essential
/// container exited), rather than because it was asked to (StopTask, a deployment, a
/// scale-in, a node going away). An unknown stop code counts as a failure: emulators give
/// none.
pub fn stopped_by_failure(task: &Task) -> bool {
    use aws_sdk_ecs::types::TaskStopCode;
    task.desired_status() == Some("STOPPED")
        && match task.stop_code() {
            None => true,
            Some(TaskStopCode::TaskFailedToStart | TaskStopCode::EssentialContainerExited) => true,
            Some(_) => false,
        }
}

/// Why a stopped task stopped, as ECS says it: its `stoppedReason`, then each container's
/// exit code and reason (an image that cannot be pulled, OutOfMemoryError, a port in use).
pub fn why_stopped(task: &Task) -> String {
    let mut parts = vec![task
        .stopped_reason()
        .filter(|r| !r.is_empty())
        .unwrap_or("no stopped reason given")
        .to_owned()];
    for c in task.containers() {
        let name = c.name().unwrap_or("?");
        let mut said = Vec::new();
        if let Some(code) = c.exit_code() {
            said.push(format!("exit code {code}"));
        }
        if let Some(reason) = c.reason().filter(|r| !r.is_empty()) {
            said.push(reason.to_owned());
        }
        if !said.is_empty() {
            parts.push(format!("container {name}: {}", said.join(", ")));
        }
    }
    parts.join("; ")
}

/// One line for a stopped task: its id and why it stopped.
pub fn stopped_line(task: &Task) -> String {
    format!(
        "task {} {}: {}",
        task_id(task.task_arn().unwrap_or_default()),
        task.last_status().unwrap_or("?"),
        why_stopped(task)
    )
}

/// Where to read what a stopped task's containers printed.
pub fn logs_hint(task: &Task) -> String {
    match task.containers().iter().find_map(|c| c.name()) {
        Some(name) => format!("`l5d-ecs logs {name}` shows what it printed"),
        None => "`l5d-ecs status` shows the stack's tasks and why they stopped".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Container, TaskStopCode};

    fn stopped(code: Option<TaskStopCode>) -> Task {
        Task::builder()
            .task_arn("arn:aws:ecs:us-west-1:1:task/c/abc123")
            .task_definition_arn("arn:aws:ecs:us-west-1:1:task-definition/s-linkerd:3")
            .desired_status("STOPPED")
            .last_status("STOPPED")
            .set_stop_code(code)
            .stopped_reason("Essential container in task exited")
            .containers(
                Container::builder()
                    .name("linkerd")
                    .exit_code(137)
                    .reason("OutOfMemoryError: Container killed due to memory usage")
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_stopped_task_says_why_with_each_containers_exit_code() {
        let line = stopped_line(&stopped(Some(TaskStopCode::EssentialContainerExited)));
        assert_eq!(
            line,
            "task abc123 STOPPED: Essential container in task exited; container linkerd: \
             exit code 137, OutOfMemoryError: Container killed due to memory usage"
        );
        assert_eq!(
            family(&stopped(None)),
            Some("s-linkerd"),
            "family from the task definition ARN"
        );
    }

    #[test]
    fn only_failures_count_as_failures() {
        assert!(stopped_by_failure(&stopped(Some(
            TaskStopCode::TaskFailedToStart
        ))));
        assert!(stopped_by_failure(&stopped(None)));
        assert!(!stopped_by_failure(&stopped(Some(
            TaskStopCode::UserInitiated
        ))));
        assert!(!stopped_by_failure(&stopped(Some(
            TaskStopCode::ServiceSchedulerInitiated
        ))));
    }
}
