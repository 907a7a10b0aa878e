//! CloudWatch Logs group `/l5d-ecs/<stack>`: every container of the stack logs there through
//! the awslogs driver, so `l5d-ecs logs` can read it without ssh.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings, Usable};
use crate::aws::{describe_error, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{StackName, STACK_TAG};
use crate::state::{LogGroupRecord, Resources};

/// Demo logs are worth a week, not forever.
const RETENTION_DAYS: i32 = 7;

pub struct LogGroup;

impl Resource for LogGroup {
    fn name(&self) -> Name {
        Name::LogGroup
    }

    fn what(&self) -> &'static str {
        "log group"
    }

    fn command(&self) -> &'static str {
        "log-group"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.log_group.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let usable = ready.usable();
            let (exists, ready) = futures::join!(find(cx), ready);
            ready?;
            ensure_found(cx, exists?, &usable).await
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
            let action = if find(cx).await? {
                Action::Keep
            } else {
                Action::Create
            };
            plan.row(
                self.name(),
                ResourceKind::LogGroup,
                &cx.stack.log_group(),
                action,
                None,
            );
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.log_group
            .iter()
            .map(|lg| Item::new(ResourceKind::LogGroup, &lg.name, &lg.name))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().log_group {
                Some(record) => destroy(cx, &record).await,
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
            if find(cx).await? {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found.log_group.get_or_insert_with(|| LogGroupRecord {
                    name: cx.stack.log_group(),
                });
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(lg) = &r.log_group else {
                return Vec::new();
            };
            let state = match find(cx).await {
                Ok(true) => format!("exists, kept {RETENTION_DAYS} days"),
                Ok(false) => "missing".to_owned(),
                Err(e) => format!("unknown: {e:#}"),
            };
            vec![ResourceStatus::new(
                ResourceKind::LogGroup,
                &lg.name,
                &lg.name,
                state,
            )]
        }
        .boxed()
    }
}

/// Whether the group exists.
pub async fn find(ctx: &Ctx) -> Result<bool> {
    let name = ctx.stack.log_group();
    let found = ctx
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking up log group {name}"))?;
    Ok(found
        .iter()
        .any(|g| g.log_group_name() == Some(name.as_str())))
}

/// Makes the group if missing and records it; the daemons may then go (their tasks log to the
/// group, and its retention is only how long old logs stay), beside the retention's call.
async fn ensure_found(ctx: &Ctx, exists: bool, usable: &Usable) -> Result<()> {
    let name = ctx.stack.log_group();
    if !exists {
        let result = ctx
            .aws
            .logs
            .create_log_group()
            .log_group_name(&name)
            .tags(STACK_TAG, ctx.stack.as_str())
            .send()
            .await;
        match result {
            Ok(_) => {}
            // Created by a concurrent run or a lost response: it is there, as wanted.
            Err(e) if error_code(&e) == Some("ResourceAlreadyExistsException") => {}
            Err(e) => bail!("creating log group {name}: {}", describe_error(&e)),
        }
    }
    let record = LogGroupRecord { name: name.clone() };
    ctx.state
        .update(|s| s.resources.log_group = Some(record))
        .await?;
    usable.now();
    let action = if exists {
        Action::Kept
    } else {
        ctx.aws
            .logs
            .put_retention_policy()
            .log_group_name(&name)
            .retention_in_days(RETENTION_DAYS)
            .send()
            .await
            .aws(format!("setting the retention of log group {name}"))?;
        Action::Created
    };
    ctx.out.record(ResourceKind::LogGroup, &name, &name, action);
    Ok(())
}

async fn destroy(ctx: &Ctx, record: &LogGroupRecord) -> Result<()> {
    let result = ctx
        .aws
        .logs
        .delete_log_group()
        .log_group_name(&record.name)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {}
        Err(e) => bail!("deleting log group {}: {}", record.name, describe_error(&e)),
    }
    ctx.state.update(|s| s.resources.log_group = None).await?;
    ctx.out.record(
        ResourceKind::LogGroup,
        &record.name,
        &record.name,
        Action::Deleted,
    );
    Ok(())
}
