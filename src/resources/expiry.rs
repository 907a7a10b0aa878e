//! The stack's deadline (`up --expires-in`): at it, AWS itself takes every instance down, with
//! no l5d-ecs running anywhere. The ASG gets a scheduled action `<stack>-expiry` that sets it
//! to 0/0/0 (the nodes go, the group stays for the next `up`); the consul server, a single
//! instance, gets an EventBridge Scheduler schedule `<stack>-consul-expiry` that terminates it
//! through the EC2 API, with a role `<stack>-expiry` that may terminate only this stack's
//! instances. What costs nothing by the hour stays until `down`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{create_when_propagated, describe_error, done_if_gone, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{StackName, STACK_TAG};
use crate::state::{ExpiryRecord, Resources};

/// EventBridge Scheduler's universal target for EC2's TerminateInstances.
const TERMINATE_TARGET: &str = "arn:aws:scheduler:::aws-sdk:ec2:terminateInstances";

pub struct Expiry;

impl Resource for Expiry {
    fn name(&self) -> Name {
        Name::Expiry
    }

    fn what(&self) -> &'static str {
        "deadline"
    }

    fn command(&self) -> &'static str {
        "up"
    }

    fn is_recorded(&self, _: &Resources, _: &Settings) -> bool {
        true
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            ready.await?;
            match s.deadline {
                Some(deadline) => set(cx, deadline).await,
                None => {
                    let passed = cx.state.snapshot().and_then(|st| st.expires_at);
                    if cx.state.resources().expiry.is_some() {
                        remove(cx).await?;
                    }
                    if passed.is_none() {
                        return Ok(());
                    }
                    cx.state.update(|st| st.expires_at = None).await?;
                    if let Some(passed) = passed {
                        cx.out.progress(format!(
                            "no deadline now (the last one, {passed}, passed or was removed); \
                             --expires-in sets a new one"
                        ));
                    }
                    Ok(())
                }
            }
        }
        .boxed()
    }

    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let recorded = cx.state.resources().expiry;
            let (action, detail) = match (s.deadline, &recorded) {
                (Some(d), Some(r)) if r.deadline == rfc3339(d) => {
                    (Action::Keep, Some(r.deadline.clone()))
                }
                (Some(d), Some(r)) => (
                    Action::Repair,
                    Some(format!(
                        "move the deadline from {} to {}",
                        r.deadline,
                        rfc3339(d)
                    )),
                ),
                (Some(d), None) => (Action::Create, Some(format!("deadline {}", rfc3339(d)))),
                (None, Some(r)) => (
                    Action::Repair,
                    Some(format!("remove the deadline {}", r.deadline)),
                ),
                (None, None) => return Ok(()),
            };
            plan.row(
                self.name(),
                ResourceKind::ScheduledAction,
                &cx.stack.expiry(),
                action,
                detail,
            );
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, stack: &StackName, r: &Resources) -> Vec<Item> {
        let Some(e) = &r.expiry else {
            return Vec::new();
        };
        let mut items = Vec::new();
        if let Some(a) = &e.scheduled_action {
            items.push(Item::new(ResourceKind::ScheduledAction, a, &e.deadline));
        }
        if let Some(sc) = &e.schedule {
            items.push(Item::new(ResourceKind::Schedule, sc, &e.deadline));
        }
        if let Some(role) = &e.role {
            items.push(Item::new(ResourceKind::SchedulerRole, role, stack.expiry()));
        }
        items
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            if cx.state.resources().expiry.is_some() {
                remove(cx).await?;
            }
            Ok(())
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
            // The schedule is made after its role and deleted before it: without the role
            // there is no schedule to look for.
            let (action, role) = futures::join!(find_action(cx), find_role(cx));
            let (action, role) = (action?, role?);
            if action.is_none() && !role {
                return Ok(());
            }
            let schedule = if role { find_schedule(cx).await? } else { None };
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            found.expiry.get_or_insert_with(|| ExpiryRecord {
                deadline: action.clone().unwrap_or_default(),
                scheduled_action: action.map(|_| cx.stack.expiry()),
                schedule: schedule.map(|_| cx.stack.consul_expiry()),
                role: role.then(|| cx.stack.expiry()),
            });
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(e) = &r.expiry else {
                return Vec::new();
            };
            let left = time_left(&e.deadline);
            let mut lines = Vec::new();
            if let Some(a) = &e.scheduled_action {
                let state = match find_action(cx).await {
                    Ok(Some(_)) => format!("sets the ASG to 0/0/0 {left}"),
                    Ok(None) if left == "expired" => "expired: the ASG was set to 0/0/0".into(),
                    Ok(None) => "missing: `l5d-ecs up` sets it again".into(),
                    Err(e) => format!("unknown: {e:#}"),
                };
                lines.push(ResourceStatus::new(
                    ResourceKind::ScheduledAction,
                    a,
                    &e.deadline,
                    state,
                ));
            }
            if let Some(sc) = &e.schedule {
                let state = match find_schedule(cx).await {
                    Ok(Some(_)) => format!("terminates the consul server {left}"),
                    Ok(None) if left == "expired" => {
                        "expired: the consul server was terminated".into()
                    }
                    Ok(None) => "missing: `l5d-ecs up` sets it again".into(),
                    Err(e) => format!("unknown: {e:#}"),
                };
                lines.push(ResourceStatus::new(
                    ResourceKind::Schedule,
                    sc,
                    &e.deadline,
                    state,
                ));
            }
            lines
        }
        .boxed()
    }
}

fn rfc3339(t: DateTime) -> String {
    crate::clock::rfc3339(t)
}

/// "in 1h59m", or "expired".
pub fn time_left(deadline: &str) -> String {
    let Ok(at) = DateTime::from_str(deadline, Format::DateTime) else {
        return "at an unreadable time".to_owned();
    };
    let now = DateTime::from(SystemTime::now()).secs();
    let secs = at.secs() - now;
    if secs <= 0 {
        return "expired".to_owned();
    }
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    if h > 0 {
        format!("in {h}h{m:02}m")
    } else {
        format!("in {m}m{:02}s", secs % 60)
    }
}

/// The scheduled action, the consul server's schedule and its role, for `deadline`.
async fn set(cx: &Ctx, deadline: DateTime) -> Result<()> {
    let r = cx.state.resources();
    let at = rfc3339(deadline);
    let before = r.expiry.clone();
    let mut record = ExpiryRecord {
        deadline: at.clone(),
        scheduled_action: None,
        schedule: None,
        role: before.as_ref().and_then(|b| b.role.clone()),
    };
    let (action_now, schedule_now) = futures::join!(find_action(cx), find_schedule(cx));
    let (action_now, schedule_now) = (action_now?, schedule_now?);
    if let Some(asg) = r
        .asg
        .as_ref()
        .filter(|_| action_now.as_deref() != Some(at.as_str()))
    {
        let name = cx.stack.expiry();
        cx.aws
            .autoscaling
            .put_scheduled_update_group_action()
            .auto_scaling_group_name(&asg.name)
            .scheduled_action_name(&name)
            .start_time(deadline)
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .send()
            .await
            .aws(format!(
                "scheduling {} to set {} to 0/0/0 at {at}",
                name, asg.name
            ))?;
    }
    if r.asg.is_some() {
        record.scheduled_action = Some(cx.stack.expiry());
    }
    if let Some(consul) = &r.consul_server {
        let role_arn = ensure_role(cx).await?;
        record.role = Some(cx.stack.expiry());
        cx.state
            .update(|st| st.resources.expiry = Some(record.clone()))
            .await?;
        let wanted = schedule_of(consul.instance_id.as_str(), deadline);
        if schedule_now.as_ref() != Some(&wanted) {
            put_schedule(cx, &role_arn, &wanted, schedule_now.is_some()).await?;
        }
        record.schedule = Some(cx.stack.consul_expiry());
    }
    let action = match &before {
        Some(b) if b.deadline == at => Action::Kept,
        Some(_) => Action::Updated,
        None => Action::Created,
    };
    cx.state
        .update(|st| {
            st.resources.expiry = Some(record.clone());
            st.expires_at = Some(at.clone());
        })
        .await?;
    cx.out.record(
        ResourceKind::ScheduledAction,
        cx.stack.expiry(),
        &at,
        action,
    );
    Ok(())
}

/// What the consul server's schedule says: its `at()` expression and its target's input.
#[derive(Debug, PartialEq, Eq)]
struct ScheduleSays {
    expression: String,
    input: String,
}

fn schedule_of(instance: &str, deadline: DateTime) -> ScheduleSays {
    // at() takes the time without its zone; the zone is given apart (UTC).
    let at = rfc3339(deadline);
    ScheduleSays {
        expression: format!("at({})", at.trim_end_matches('Z')),
        input: serde_json::json!({ "InstanceIds": [instance] }).to_string(),
    }
}

async fn put_schedule(cx: &Ctx, role_arn: &str, wanted: &ScheduleSays, exists: bool) -> Result<()> {
    let name = cx.stack.consul_expiry();
    let target = Target::builder()
        .arn(TERMINATE_TARGET)
        .role_arn(role_arn)
        .input(&wanted.input)
        .build()
        .context("building the schedule's target")?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .context("building the schedule's time window")?;
    let what = format!(
        "the schedule {name} ({}, terminating {})",
        wanted.expression, wanted.input
    );
    if exists {
        cx.aws
            .scheduler
            .update_schedule()
            .name(&name)
            .schedule_expression(&wanted.expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await
            .aws(format!("moving {what}"))?;
        return Ok(());
    }
    create_when_propagated(&cx.out, &format!("{name}'s role"), || {
        cx.aws
            .scheduler
            .create_schedule()
            .name(&name)
            .description(format!(
                "l5d-ecs stack {}: the deadline of up --expires-in",
                cx.stack
            ))
            .schedule_expression(&wanted.expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window.clone())
            .target(target.clone())
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
    })
    .await
    .map_err(|e| anyhow!("creating {what}: {}", e.message))?;
    Ok(())
}

/// The role EventBridge Scheduler assumes to terminate the consul server: only this stack's
/// instances (by their tag), and only from this account.
async fn ensure_role(cx: &Ctx) -> Result<String> {
    let name = cx.stack.expiry();
    if let Some(arn) = role_arn(cx).await? {
        return Ok(arn);
    }
    let account = cx.aws.account_id().await?;
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "scheduler.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "aws:SourceAccount": account } }
        }]
    });
    let created = cx
        .aws
        .iam
        .create_role()
        .role_name(&name)
        .description(format!(
            "l5d-ecs stack {}: terminates its consul server at the deadline",
            cx.stack
        ))
        .assume_role_policy_document(trust.to_string())
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(STACK_TAG)
                .value(cx.stack.as_str())
                .build()
                .context("building the role's tag")?,
        )
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.role().map(|r| r.arn().to_owned()),
        Err(e) if error_code(&e) == Some("EntityAlreadyExists") => role_arn(cx).await?,
        Err(e) => return Err(anyhow!("creating the role {name}: {}", describe_error(&e))),
    }
    .with_context(|| format!("IAM returned no ARN for the role {name}"))?;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "ec2:TerminateInstances",
            "Resource": "*",
            "Condition": { "StringEquals": { format!("aws:ResourceTag/{STACK_TAG}"): cx.stack.as_str() } }
        }]
    });
    cx.aws
        .iam
        .put_role_policy()
        .role_name(&name)
        .policy_name(&name)
        .policy_document(policy.to_string())
        .send()
        .await
        .aws(format!(
            "allowing the role {name} to terminate the stack's instances"
        ))?;
    cx.out
        .record(ResourceKind::SchedulerRole, &name, &arn, Action::Created);
    Ok(arn)
}

/// Deletes the schedule, the scheduled action and the role (gone counts as deleted), then
/// forgets them.
async fn remove(cx: &Ctx) -> Result<()> {
    let r = cx.state.resources();
    let name = cx.stack.expiry();
    let schedule = cx.stack.consul_expiry();
    done_if_gone(
        cx.aws
            .scheduler
            .delete_schedule()
            .name(&schedule)
            .send()
            .await,
        &["ResourceNotFoundException"],
        format!("deleting the schedule {schedule}"),
    )?;
    if let Some(asg) = &r.asg {
        done_if_gone(
            cx.aws
                .autoscaling
                .delete_scheduled_action()
                .auto_scaling_group_name(&asg.name)
                .scheduled_action_name(&name)
                .send()
                .await,
            &["ValidationError"],
            format!("deleting the scheduled action {name}"),
        )?;
    }
    if find_role(cx).await? {
        done_if_gone(
            cx.aws
                .iam
                .delete_role_policy()
                .role_name(&name)
                .policy_name(&name)
                .send()
                .await,
            &["NoSuchEntity"],
            format!("deleting the policy of the role {name}"),
        )?;
        done_if_gone(
            cx.aws.iam.delete_role().role_name(&name).send().await,
            &["NoSuchEntity"],
            format!("deleting the role {name}"),
        )?;
    }
    if let Some(e) = &r.expiry {
        for item in Expiry.inventory(&cx.stack, &r) {
            cx.out
                .record(item.kind, item.name, &e.deadline, Action::Deleted);
        }
    }
    cx.state.update(|st| st.resources.expiry = None).await?;
    Ok(())
}

/// The scheduled action's start time, if the ASG has it.
async fn find_action(cx: &Ctx) -> Result<Option<String>> {
    let name = cx.stack.expiry();
    let out = cx
        .aws
        .autoscaling
        .describe_scheduled_actions()
        .auto_scaling_group_name(cx.stack.asg())
        .scheduled_action_names(&name)
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        // The ASG is gone: so is its scheduled action.
        Err(e) if error_code(&e) == Some("ValidationError") => return Ok(None),
        Err(e) => {
            return Err(anyhow!(
                "looking up the scheduled action {name}: {}",
                describe_error(&e)
            ))
        }
    };
    Ok(out
        .scheduled_update_group_actions()
        .iter()
        .find(|a| a.scheduled_action_name() == Some(name.as_str()))
        .map(|a| a.start_time().map(|t| rfc3339(*t)).unwrap_or_default()))
}

/// What the schedule says, if it exists.
async fn find_schedule(cx: &Ctx) -> Result<Option<ScheduleSays>> {
    let name = cx.stack.consul_expiry();
    match cx.aws.scheduler.get_schedule().name(&name).send().await {
        Ok(out) => Ok(Some(ScheduleSays {
            expression: out.schedule_expression().unwrap_or_default().to_owned(),
            input: out
                .target()
                .and_then(|t| t.input())
                .unwrap_or_default()
                .to_owned(),
        })),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(anyhow!(
            "looking up the schedule {name}: {}",
            describe_error(&e)
        )),
    }
}

/// The role's ARN, if it exists.
async fn role_arn(cx: &Ctx) -> Result<Option<String>> {
    let name = cx.stack.expiry();
    match cx.aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_owned())),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(anyhow!(
            "looking up the role {name}: {}",
            describe_error(&e)
        )),
    }
}

async fn find_role(cx: &Ctx) -> Result<bool> {
    Ok(role_arn(cx).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_down_then_says_expired() {
        let now = DateTime::from(SystemTime::now()).secs();
        let at = |secs: i64| rfc3339(DateTime::from_secs(now + secs));
        assert_eq!(time_left(&at(2 * 3600 + 5 * 60 + 30)), "in 2h05m");
        assert!(
            time_left(&at(90)).starts_with("in 1m"),
            "{}",
            time_left(&at(90))
        );
        assert_eq!(time_left(&at(-1)), "expired");
        assert_eq!(time_left("not a time"), "at an unreadable time");
    }

    #[test]
    fn the_schedule_is_a_one_time_at_expression_without_its_zone() {
        let says = schedule_of("i-0123", DateTime::from_secs(1_796_200_000));
        assert_eq!(says.expression, "at(2026-12-02T08:26:40)");
        assert_eq!(says.input, r#"{"InstanceIds":["i-0123"]}"#);
    }
}
