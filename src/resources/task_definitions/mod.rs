//! The five task definitions, families `<stack>-<app>`. A definition whose latest revision
//! already matches (by a digest kept as a tag) is not registered again.

mod register;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{TaskDefinitionField, TaskDefinitionStatus};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{describe_error, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::{Resources, TaskDefinitionRecord};
use crate::templates::{self, TaskDefinitionSpec};

pub struct TaskDefinitions;

impl Resource for TaskDefinitions {
    fn name(&self) -> Name {
        Name::RegisterTasks
    }

    fn what(&self) -> &'static str {
        "task definitions"
    }

    fn command(&self) -> &'static str {
        "register-tasks"
    }

    /// Any family recorded: what needs one family in particular (a daemon service, a
    /// deploy) names the family that is missing, and `register-tasks` as what makes it.
    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        !r.task_definitions.is_empty()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (found, ready) = futures::join!(find_all(cx), ready);
            ready?;
            ensure_all_found(cx, found?).await
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
            for f in plan.task_definitions(cx).await? {
                let (action, detail) = match (f.current(), f.any_active()) {
                    (Some(_), _) => (Action::Keep, None),
                    (None, true) => (
                        Action::Repair,
                        Some("definition differs: a new revision".to_owned()),
                    ),
                    (None, false) => (Action::Create, None),
                };
                plan.row(
                    self.name(),
                    ResourceKind::TaskDefinition,
                    f.family(),
                    action,
                    detail,
                );
            }
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.task_definitions
            .values()
            .map(|t| Item::new(ResourceKind::TaskDefinition, &t.family, t.arn.as_str()))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            let families: Vec<String> = cx.state.resources().task_definitions.into_keys().collect();
            // The families are independent: deregistered at once, each failure reported.
            let results =
                futures::future::join_all(families.iter().map(|family| destroy(cx, family))).await;
            all_ok(results)
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
            let lookups = templates::APPS
                .iter()
                .map(|(app, _)| latest_active(cx, cx.stack.family(app)));
            let latest: Vec<TaskDefinitionRecord> = futures::future::join_all(lookups)
                .await
                .into_iter()
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            for record in latest {
                found
                    .task_definitions
                    .entry(record.family.clone())
                    .or_insert(record);
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let lines = r.task_definitions.values().map(|td| async move {
                let state = match revision_status(cx, td).await {
                    Ok(Some(TaskDefinitionStatus::Active)) => "ACTIVE".to_owned(),
                    Ok(Some(TaskDefinitionStatus::Inactive)) => "INACTIVE: deregistered".to_owned(),
                    Ok(Some(other)) => other.as_str().to_owned(),
                    Ok(None) => "missing".to_owned(),
                    Err(e) => format!("unknown: {e:#}"),
                };
                ResourceStatus::new(
                    ResourceKind::TaskDefinition,
                    &td.family,
                    &format!("{}:{}", td.family, td.revision),
                    state,
                )
            });
            futures::future::join_all(lines).await
        }
        .boxed()
    }
}

pub(super) const DIGEST_TAG: &str = "l5d-ecs:digest";

/// One family: what it should be, and its latest revision if that already matches.
pub struct FoundDefinition {
    spec: TaskDefinitionSpec,
    digest: String,
    current: Option<TaskDefinitionRecord>,
    /// Some ACTIVE revision exists, matching or not.
    any_active: bool,
}

impl FoundDefinition {
    pub fn family(&self) -> &str {
        &self.spec.family
    }
    /// The latest revision is what `up` would register.
    pub fn current(&self) -> Option<&TaskDefinitionRecord> {
        self.current.as_ref()
    }
    pub fn any_active(&self) -> bool {
        self.any_active
    }
    /// `up` would register a new revision: a service on this family would be pointed at it.
    pub fn gets_new_revision(&self) -> bool {
        self.current.is_none()
    }
}

/// Looks up every family at once.
pub async fn find_all(ctx: &Ctx) -> Result<Vec<FoundDefinition>> {
    let lookups = templates::APPS.iter().map(|(app, _)| async move {
        let spec = templates::task_definition(&ctx.stack, &ctx.aws.region, app)?;
        let digest = spec.digest();
        let (current, any_active) = latest(ctx, &spec.family, &digest).await?;
        Ok::<_, anyhow::Error>(FoundDefinition {
            spec,
            digest,
            current,
            any_active,
        })
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .collect()
}

/// Registers, at once, every family whose latest revision does not match; each family is
/// recorded as soon as it is done, whatever the others do.
async fn ensure_all_found(ctx: &Ctx, found: Vec<FoundDefinition>) -> Result<()> {
    all_ok(futures::future::join_all(found.into_iter().map(|f| ensure_one(ctx, f))).await)
}

/// One error naming every failure, so that no family's failure hides another's.
fn all_ok(results: Vec<Result<()>>) -> Result<()> {
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

async fn ensure_one(ctx: &Ctx, found: FoundDefinition) -> Result<()> {
    let family = found.spec.family.clone();
    let (record, action) = match found.current {
        Some(record) => (record, Action::Kept),
        None => (
            register::register(ctx, &found.spec, &found.digest).await?,
            Action::Created,
        ),
    };
    ctx.state
        .update(|s| {
            s.resources
                .task_definitions
                .insert(family.clone(), record.clone())
        })
        .await?;
    ctx.out.record(
        ResourceKind::TaskDefinition,
        &family,
        format!("{}:{}", family, record.revision),
        action,
    );
    Ok(())
}

/// The family's latest revision if it carries this digest, and whether an ACTIVE revision
/// exists at all.
pub(super) async fn latest(
    ctx: &Ctx,
    family: &str,
    digest: &str,
) -> Result<(Option<TaskDefinitionRecord>, bool)> {
    let latest = ctx
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(family)
        .include(TaskDefinitionField::Tags)
        .send()
        .await;
    let out = match latest {
        Ok(out) => out,
        // ECS answers ClientException for a family that has no revision.
        Err(e) if error_code(&e) == Some("ClientException") => return Ok((None, false)),
        Err(e) => {
            return Err(anyhow!(
                "looking up task definition {family}: {}",
                describe_error(&e)
            ))
        }
    };
    let matches = out
        .tags()
        .iter()
        .any(|t| t.key() == Some(DIGEST_TAG) && t.value() == Some(digest));
    let td = out.task_definition();
    let active = td.and_then(|t| t.status()) == Some(&TaskDefinitionStatus::Active);
    let current = match td.and_then(|t| Some((t.task_definition_arn()?, t.revision()))) {
        Some((arn, revision)) if matches && active => Some(TaskDefinitionRecord {
            family: family.to_owned(),
            arn: Arn::from(arn),
            revision,
        }),
        _ => None,
    };
    Ok((current, active))
}

/// The status of the recorded revision; `None` when ECS does not know it.
async fn revision_status(
    ctx: &Ctx,
    td: &TaskDefinitionRecord,
) -> Result<Option<TaskDefinitionStatus>> {
    let result = ctx
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(td.arn.as_str())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.task_definition().and_then(|t| t.status()).cloned()),
        // ECS answers ClientException for a revision it does not know.
        Err(e) if error_code(&e) == Some("ClientException") => Ok(None),
        Err(e) => Err(anyhow!(
            "looking up task definition {}:{}: {}",
            td.family,
            td.revision,
            describe_error(&e)
        )),
    }
}

/// The family's newest ACTIVE revision, whatever its digest.
async fn latest_active(ctx: &Ctx, family: String) -> Result<Option<TaskDefinitionRecord>> {
    let out = ctx
        .aws
        .ecs
        .list_task_definitions()
        .family_prefix(&family)
        .status(TaskDefinitionStatus::Active)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking for task definition {family}"))?;
    let latest = out
        .iter()
        .filter(|arn| family_of(arn) == Some(family.as_str()))
        .filter_map(|arn| {
            let revision = arn.rsplit_once(':')?.1.parse::<i32>().unwrap_or(0);
            Some((revision, arn.clone()))
        })
        .max();
    Ok(latest.map(|(revision, arn)| TaskDefinitionRecord {
        family,
        arn: Arn(arn),
        revision,
    }))
}

/// Deregisters every ACTIVE revision of the family (not only the recorded one).
async fn destroy(ctx: &Ctx, family: &str) -> Result<()> {
    let mut pages = ctx
        .aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .into_paginator()
        .send();
    let mut arns = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("listing the revisions of task definition {family}"))?;
        // familyPrefix is a prefix: `<stack>-linkerd` also lists `<stack>-linkerd-viz`.
        arns.extend(
            page.task_definition_arns()
                .iter()
                .filter(|arn| family_of(arn) == Some(family))
                .cloned(),
        );
    }
    for arn in &arns {
        ctx.aws
            .ecs
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .aws(format!("deregistering task definition {arn}"))?;
    }
    ctx.state
        .update(|s| {
            s.resources.task_definitions.remove(family);
        })
        .await?;
    ctx.out.record(
        ResourceKind::TaskDefinition,
        family,
        format!("{} revision(s)", arns.len()),
        Action::Deleted,
    );
    Ok(())
}

/// `arn:aws:ecs:us-west-1:123:task-definition/fam:3` -> `fam`
fn family_of(arn: &str) -> Option<&str> {
    let (_, tail) = arn.rsplit_once("task-definition/")?;
    Some(tail.rsplit_once(':').map_or(tail, |(f, _)| f))
}

#[cfg(test)]
mod tests;
