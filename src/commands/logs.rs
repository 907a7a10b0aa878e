//! `logs`: container output from the stack's log group (streams `<app>/<container>/<task id>`),
//! oldest first, each line with the node and task it came from.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::Env;
use crate::aws::{describe_error, error_code, AwsResultExt};
use crate::cli::{LogsArgs, OutputFormat};
use crate::context::Ctx;
use crate::nodes;
use crate::stack::usage;
use crate::templates;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub time: String,
    pub node: String,
    pub task: String,
    pub message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} | {}",
            self.time, self.node, self.task, self.message
        )
    }
}

const FOLLOW_FIRST: Duration = Duration::from_secs(1);
const FOLLOW_MAX: Duration = Duration::from_secs(5);

/// Checked before any AWS call: the container must be one of the demo's.
fn stream_prefix(container: &str) -> Result<String> {
    match templates::app_of_container(container) {
        Some(app) => Ok(format!("{app}/{container}/")),
        None => Err(usage(format!(
            "unknown container {container:?}: choose one of {}",
            templates::container_names().join(", ")
        ))),
    }
}

pub async fn run(args: &LogsArgs, env: &Env) -> Result<()> {
    stream_prefix(&args.container)?;
    if args.follow && env.global.output == OutputFormat::Json {
        return Err(usage(
            "--follow prints lines as they come and cannot make one JSON document; use \
             --output text",
        ));
    }
    let cx = env.connect().await?;
    logs(&cx, args).await
}

async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    let prefix = stream_prefix(&args.container)?;
    let group = ctx.stack.log_group();
    let now_ms =
        |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    let mut start = now_ms(SystemTime::now() - args.since.0);
    let mut seen: HashSet<String> = HashSet::new();
    let mut task_hosts: BTreeMap<String, String> = BTreeMap::new();
    let mut delay = FOLLOW_FIRST;
    loop {
        let mut pages = ctx
            .aws
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .log_stream_name_prefix(&prefix)
            .start_time(start)
            .into_paginator()
            .send();
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {
                    anyhow::bail!(
                        "log group {group} does not exist: run `l5d-ecs up` first ({})",
                        describe_error(&e)
                    )
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "reading log group {group}: {}",
                        describe_error(&e)
                    ))
                }
            };
            events.extend(page.events().iter().cloned());
        }
        // Not every implementation honours the prefix in the request: filter here too.
        events.retain(|e| e.log_stream_name().is_some_and(|s| s.starts_with(&prefix)));
        events.sort_by_key(|e| e.timestamp().unwrap_or(0));
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| e.event_id().is_none_or(|id| seen.insert(id.to_owned())))
            .collect();
        let new_tasks: Vec<String> = fresh
            .iter()
            .filter_map(|e| e.log_stream_name())
            .filter_map(|s| s.rsplit('/').next())
            .filter(|t| !task_hosts.contains_key(*t))
            .map(str::to_owned)
            .collect();
        resolve_nodes(ctx, &new_tasks, &mut task_hosts).await;
        for e in &fresh {
            let task = e
                .log_stream_name()
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or("?");
            let node = task_hosts.get(task).map_or("?", String::as_str);
            if args.node.as_deref().is_some_and(|n| n != node) {
                continue;
            }
            ctx.out.item(
                "logs",
                &LogLine {
                    time: crate::clock::time_of_day_millis(e.timestamp().unwrap_or(0)),
                    node: node.to_owned(),
                    task: task.to_owned(),
                    message: e.message().unwrap_or("").trim_end().to_owned(),
                },
            );
            start = start.max(e.timestamp().unwrap_or(0));
        }
        if !args.follow {
            return Ok(());
        }
        delay = if fresh.is_empty() {
            (delay * 2).min(FOLLOW_MAX)
        } else {
            FOLLOW_FIRST
        };
        tokio::time::sleep(delay).await;
    }
}

/// task id -> EC2 instance id, best effort (a stopped task may no longer be known).
async fn resolve_nodes(ctx: &Ctx, task_ids: &[String], into: &mut BTreeMap<String, String>) {
    let Some(cluster) = ctx.state.resources().cluster else {
        return;
    };
    if task_ids.is_empty() {
        return;
    }
    let mut tasks = Vec::new();
    // DescribeTasks takes at most 100 tasks a call.
    for chunk in task_ids.chunks(100) {
        let described = ctx
            .aws
            .ecs
            .describe_tasks()
            .cluster(&cluster.name)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .aws("describing the tasks of the log streams");
        let Ok(described) = described else { return };
        tasks.extend(described.tasks().iter().cloned());
    }
    if let Ok(found) = nodes::task_nodes(ctx, &cluster.name, &tasks).await {
        for (arn, node) in found {
            into.insert(
                nodes::task_id(&arn).to_owned(),
                node.instance_id.to_string(),
            );
        }
    }
    for t in task_ids {
        into.entry(t.clone()).or_insert_with(|| "?".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_prefix_of_each_container() {
        assert_eq!(stream_prefix("hello").unwrap(), "hello-world/hello/");
        assert_eq!(stream_prefix("linkerd").unwrap(), "linkerd/linkerd/");
        let err = stream_prefix("nginx").unwrap_err().to_string();
        assert!(err.contains("nginx") && err.contains("world-v2"), "{err}");
    }
}
