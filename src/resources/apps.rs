//! The demo apps' tasks (hello-world, linkerd-viz) that `deploy` starts in the cluster,
//! started by this tool (so they can be told apart from anything else in the cluster) and
//! recorded in the state file. `up` does not make them; `down` stops them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_sdk_ecs::types::Task;
use clap::ValueEnum;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{adaptive_retry, bulk, AwsResultExt};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::nodes::task_id;
use crate::options::App;
use crate::stack::StackName;
use crate::state::{AppRecord, Creates, Resources};
use crate::tasks;

pub struct Apps;

impl Resource for Apps {
    fn name(&self) -> Name {
        Name::Apps
    }

    fn what(&self) -> &'static str {
        "demo apps"
    }

    fn command(&self) -> &'static str {
        "deploy"
    }

    fn made_by_up(&self) -> bool {
        false
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.apps.values().any(|a| !a.tasks.is_empty())
    }

    fn up<'a>(&'a self, _: &'a Ctx, _: &'a Settings, _: Ready<'a>) -> BoxFuture<'a, Result<()>> {
        async {
            Err(anyhow!(
                "the demo apps are made by `l5d-ecs deploy <app>`, not by `up`"
            ))
        }
        .boxed()
    }

    fn plan<'a>(&'a self, _: &'a Ctx, _: &'a Settings, _: &'a Plan) -> BoxFuture<'a, Result<()>> {
        // `up` does not deploy the apps: nothing to plan.
        async { Ok(()) }.boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.apps
            .values()
            .flat_map(|app| {
                app.tasks
                    .iter()
                    .map(|t| Item::new(ResourceKind::Task, &app.family, t.as_str()))
            })
            .collect()
    }

    /// Stops the apps' tasks, but not those on the ASG's nodes: `down` terminates those nodes,
    /// and ECS stops the tasks of a terminated node, so a StopTask each would only add calls
    /// (60 of them at 60 nodes). Those tasks stay recorded until the cluster goes, which it
    /// does only once they are gone (ECS refuses to delete a cluster with tasks); if the ASG
    /// cannot be deleted, they are still listed as left.
    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            let r = cx.state.resources();
            if r.apps.is_empty() {
                return Ok(());
            }
            let Some(cluster) = r.cluster else {
                bail!("the state file lists tasks of the demo apps but no cluster");
            };
            let (running, leaving) = futures::join!(
                running_tasks(cx, &cluster.name),
                super::asg::recorded_members(cx)
            );
            let (running, leaving) = (running?, leaving?);
            let hosts = if leaving.is_empty() {
                BTreeMap::new()
            } else {
                let mut on: Vec<String> = running
                    .iter()
                    .filter_map(|t| t.container_instance_arn().map(str::to_owned))
                    .collect();
                on.sort();
                on.dedup();
                crate::nodes::container_instance_hosts(cx, &cluster.name, &on).await?
            };
            let goes_with_its_node = |t: &Task| {
                t.container_instance_arn()
                    .and_then(|ci| hosts.get(ci))
                    .is_some_and(|ec2| leaving.contains(ec2))
            };
            let mut stops = Vec::new();
            for (app, record) in &r.apps {
                let (mine, left): (Vec<Task>, Vec<Task>) = running
                    .iter()
                    .filter(|t| tasks::family(t) == Some(record.family.as_str()))
                    .cloned()
                    .partition(|t| !goes_with_its_node(t));
                let (cluster, family) = (cluster.name.clone(), record.family.clone());
                stops.push(async move {
                    stop_tasks(cx, app, &cluster, &family, &mine, "l5d-ecs down").await?;
                    if left.is_empty() {
                        cx.state
                            .update(|s| {
                                s.resources.apps.remove(app.as_str());
                                s.resources.spend_task_tokens(app);
                            })
                            .await?;
                    }
                    Ok::<_, anyhow::Error>(())
                });
            }
            let errors: Vec<String> = futures::future::join_all(stops)
                .await
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
            // Only in a cluster that is ours: `down --discover` stops what is found.
            let Some(cluster) = super::cluster::find_ours(cx).await? else {
                return Ok(());
            };
            let running = running_tasks(cx, &cluster.name).await?;
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            for app in App::value_variants() {
                let family = cx.stack.family(app.name());
                let tasks: Vec<Arn> = running
                    .iter()
                    .filter(|t| tasks::family(t) == Some(family.as_str()))
                    .filter_map(|t| t.task_arn().map(Arn::from))
                    .collect();
                if tasks.is_empty() {
                    continue;
                }
                // Tasks are added to a recorded app, not in place of its record.
                let record = found
                    .apps
                    .entry(app.name().to_owned())
                    .or_insert_with(|| AppRecord {
                        family: family.clone(),
                        tasks: Vec::new(),
                    });
                for t in tasks {
                    if !record.tasks.contains(&t) {
                        record.tasks.push(t);
                    }
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            if r.apps.is_empty() {
                return Vec::new();
            }
            let cluster = r
                .cluster
                .as_ref()
                .map_or_else(|| cx.stack.cluster(), |c| c.name.clone());
            let arns: Vec<String> = r
                .apps
                .values()
                .flat_map(|a| a.tasks.iter().map(|t| t.to_string()))
                .collect();
            let described = tasks::describe(cx, &cluster, &arns).await;
            r.apps
                .iter()
                .map(|(name, app)| {
                    let state = match &described {
                        Ok(described) => app_state(app, described),
                        Err(e) => format!("unknown: {e:#}"),
                    };
                    ResourceStatus::new(ResourceKind::Task, &app.family, name, state)
                })
                .collect()
        }
        .boxed()
    }
}

/// How many of the app's recorded tasks run, in words; the others by their ECS status.
fn app_state(app: &AppRecord, described: &[Task]) -> String {
    if app.tasks.is_empty() {
        return "no task recorded".to_owned();
    }
    let ours: Vec<&Task> = described
        .iter()
        .filter(|t| {
            t.task_arn()
                .is_some_and(|a| app.tasks.iter().any(|r| r.as_str() == a))
        })
        .collect();
    if ours.is_empty() {
        return "missing".to_owned();
    }
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    let mut running = 0;
    for t in &ours {
        match t.last_status().unwrap_or("?") {
            "RUNNING" => running += 1,
            status => *others.entry(status).or_default() += 1,
        }
    }
    let gone = app.tasks.len() - ours.len();
    if gone > 0 {
        others.insert("gone", gone);
    }
    let mut state = format!("{running} of {} recorded task(s) running", app.tasks.len());
    if !others.is_empty() {
        let rest: Vec<String> = others.iter().map(|(s, n)| format!("{n} {s}")).collect();
        state.push_str(&format!(" ({})", rest.join(", ")));
    }
    state
}

/// The tasks this tool started in the cluster that are meant to run. ListTasks takes
/// `startedBy` only alone, so the family and the desired status are read from the described
/// tasks: one listing covers both apps. With their tags: `deploy`'s look-up after a lost
/// answer finds its batch by tag.
async fn running_tasks(ctx: &Ctx, cluster: &str) -> Result<Vec<Task>> {
    let arns = tasks::list(
        ctx.aws
            .ecs
            .list_tasks()
            .cluster(cluster)
            .started_by(ctx.stack.started_by()),
        &format!("the tasks l5d-ecs started in {cluster}"),
    )
    .await?;
    Ok(tasks::describe_with_tags(ctx, cluster, &arns)
        .await?
        .into_iter()
        .filter(|t| t.desired_status() == Some("RUNNING"))
        .collect())
}

/// The tasks of one family that this tool started and that are meant to run.
pub async fn our_tasks(ctx: &Ctx, cluster: &str, family: &str) -> Result<Vec<Task>> {
    Ok(running_tasks(ctx, cluster)
        .await?
        .into_iter()
        .filter(|t| tasks::family(t) == Some(family))
        .collect())
}

/// Stops every task of the app (`hello-world`, `linkerd-viz`) that this tool started, and
/// forgets the app. Nothing recorded of the cluster: nothing to stop.
pub async fn stop(ctx: &Ctx, app: &str) -> Result<()> {
    let Some(cluster) = ctx.state.resources().cluster else {
        return Ok(());
    };
    let family = ctx.stack.family(app);
    let tasks = our_tasks(ctx, &cluster.name, &family).await?;
    stop_tasks(ctx, app, &cluster.name, &family, &tasks, "l5d-ecs undeploy").await?;
    ctx.state
        .update(|s| {
            s.resources.apps.remove(app);
            s.resources.spend_task_tokens(app);
        })
        .await?;
    Ok(())
}

/// Stops the tasks, [`bulk::IN_FLIGHT`] at a time, then forgets those stopped in one write.
/// A crash before that write leaves stopped tasks recorded, which is safe: StopTask of a
/// stopped task changes nothing. Every task is tried; the failures are listed together.
pub async fn stop_tasks(
    ctx: &Ctx,
    app: &str,
    cluster: &str,
    family: &str,
    tasks: &[Task],
    reason: &str,
) -> Result<()> {
    let arns: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_owned))
        .collect();
    let outcomes = bulk::each(arns, |arn: String| async move {
        ctx.aws
            .ecs
            .stop_task()
            .cluster(cluster)
            .task(&arn)
            .reason(reason)
            .customize()
            .config_override(adaptive_retry!(aws_sdk_ecs))
            .send()
            .await
            .aws(format!("stopping {family} task {}", task_id(&arn)))
            .map(|_| arn)
    })
    .await;
    let (stopped, failed): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    let stopped: Vec<String> = stopped.into_iter().filter_map(Result::ok).collect();
    if !stopped.is_empty() {
        record_tasks(ctx, app, family, std::iter::empty(), &stopped, None).await?;
    }
    for arn in &stopped {
        ctx.out
            .record(ResourceKind::Task, family, task_id(arn), Action::Deleted);
    }
    let failed: Vec<String> = failed
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("{e:#}"))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{} of {} {family} task(s) not stopped: {}",
            failed.len(),
            failed.len() + stopped.len(),
            failed.join("; ")
        ))
    }
}

/// Adds and removes tasks of the app's record (made if missing); with `created`, ends that
/// create's idempotency token in the same write.
pub async fn record_tasks<'a>(
    ctx: &Ctx,
    app: &str,
    family: &str,
    add: impl Iterator<Item = &'a str>,
    remove: &[String],
    created: Option<Creates<'_>>,
) -> Result<()> {
    let add: Vec<Arn> = add.map(Arn::from).collect();
    ctx.state
        .update(|s| {
            if let Some(what) = created {
                s.resources.created(what);
            }
            let record = s
                .resources
                .apps
                .entry(app.to_owned())
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
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arn: &str, status: &str) -> Task {
        Task::builder().task_arn(arn).last_status(status).build()
    }

    fn app(tasks: &[&str]) -> AppRecord {
        AppRecord {
            family: "s-hello-world".to_owned(),
            tasks: tasks.iter().map(|t| Arn::from(*t)).collect(),
        }
    }

    #[test]
    fn an_apps_status_counts_its_recorded_tasks_that_run() {
        let described = vec![
            task("t1", "RUNNING"),
            task("t2", "PENDING"),
            task("other", "RUNNING"),
        ];
        assert_eq!(
            app_state(&app(&["t1", "t2", "t3"]), &described),
            "1 of 3 recorded task(s) running (1 PENDING, 1 gone)"
        );
        assert_eq!(
            app_state(&app(&["t1"]), &described),
            "1 of 1 recorded task(s) running"
        );
        assert_eq!(app_state(&app(&["t9"]), &described), "missing");
        assert_eq!(app_state(&app(&[]), &described), "no task recorded");
    }
}
