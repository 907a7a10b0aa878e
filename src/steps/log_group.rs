//! CloudWatch Logs group `/l5d-ecs/<stack>`: every container of the stack logs there through
//! the awslogs driver, so `l5d-ecs logs` can read it without ssh.

use anyhow::{bail, Result};

use crate::aws::{describe_error, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::output::{Action, ResourceKind};
use crate::stack::STACK_TAG;
use crate::state::LogGroupRecord;

/// Demo logs are worth a week, not forever.
const RETENTION_DAYS: i32 = 7;

pub async fn ensure(ctx: &Ctx) -> Result<LogGroupRecord> {
    let exists = find(ctx).await?;
    ensure_found(ctx, exists).await
}

/// Whether the group exists.
pub async fn find(ctx: &Ctx) -> Result<bool> {
    let name = ctx.stack.log_group();
    let found = ctx
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&name)
        .send()
        .await
        .aws(format!("looking up log group {name}"))?;
    Ok(found
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(name.as_str())))
}

/// As `ensure`, with the look-up already done.
pub async fn ensure_found(ctx: &Ctx, exists: bool) -> Result<LogGroupRecord> {
    let name = ctx.stack.log_group();
    let action = if exists {
        Action::Kept
    } else {
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
    let record = LogGroupRecord { name: name.clone() };
    ctx.state
        .update(|s| s.resources.log_group = Some(record.clone()))?;
    ctx.out.record(ResourceKind::LogGroup, &name, &name, action);
    Ok(record)
}

pub async fn destroy(ctx: &Ctx, record: &LogGroupRecord) -> Result<()> {
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
    ctx.state.update(|s| s.resources.log_group = None)?;
    ctx.out.record(
        ResourceKind::LogGroup,
        &record.name,
        &record.name,
        Action::Deleted,
    );
    Ok(())
}
