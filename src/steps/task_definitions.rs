//! The five task definitions, families `<stack>-<app>`. A definition whose latest revision
//! already matches (by a digest kept as a tag) is not registered again.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{
    ContainerDefinition, HostVolumeProperties, KeyValuePair, LogConfiguration, LogDriver,
    MountPoint, NetworkMode, PortMapping, TaskDefinitionField, TaskDefinitionStatus,
    TransportProtocol, Volume,
};

use crate::aws::{classify, create_once, describe_error, error_code, no_retry, AwsResultExt};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::output::{Action, ResourceKind};
use crate::state::TaskDefinitionRecord;
use crate::templates::{self, ContainerSpec, TaskDefinitionSpec};

const DIGEST_TAG: &str = "l5d-ecs:digest";

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

pub async fn ensure_all(ctx: &Ctx) -> Result<BTreeMap<String, TaskDefinitionRecord>> {
    let found = find_all(ctx).await?;
    ensure_all_found(ctx, found).await
}

/// Registers, at once, every family whose latest revision does not match.
pub async fn ensure_all_found(
    ctx: &Ctx,
    found: Vec<FoundDefinition>,
) -> Result<BTreeMap<String, TaskDefinitionRecord>> {
    let results = futures::future::join_all(found.into_iter().map(|f| ensure_one(ctx, f))).await;
    let mut records = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(r) => {
                records.insert(r.family.clone(), r);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(anyhow!(errors.join("; ")))
    }
}

async fn ensure_one(ctx: &Ctx, found: FoundDefinition) -> Result<TaskDefinitionRecord> {
    let family = found.spec.family.clone();
    let (record, action) = match found.current {
        Some(record) => (record, Action::Kept),
        None => (
            register(ctx, &found.spec, &found.digest).await?,
            Action::Created,
        ),
    };
    ctx.state.update(|s| {
        s.resources
            .task_definitions
            .insert(family.clone(), record.clone())
    })?;
    ctx.out.record(
        ResourceKind::TaskDefinition,
        &family,
        format!("{}:{}", family, record.revision),
        action,
    );
    Ok(record)
}

/// The family's latest ACTIVE revision, if it carries this digest.
async fn latest_with_digest(
    ctx: &Ctx,
    family: &str,
    digest: &str,
) -> Result<Option<TaskDefinitionRecord>> {
    Ok(latest(ctx, family, digest).await?.0)
}

/// The family's latest revision if it carries this digest, and whether an ACTIVE revision
/// exists at all.
async fn latest(
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

async fn register(
    ctx: &Ctx,
    spec: &TaskDefinitionSpec,
    digest: &str,
) -> Result<TaskDefinitionRecord> {
    let volumes = spec
        .volumes
        .iter()
        .map(|v| {
            Volume::builder()
                .name(&v.name)
                .host(
                    HostVolumeProperties::builder()
                        .source_path(&v.host.source_path)
                        .build(),
                )
                .build()
        })
        .collect();
    let request = ctx
        .aws
        .ecs
        .register_task_definition()
        .family(&spec.family)
        .network_mode(NetworkMode::from(spec.network_mode.as_str()))
        .set_volumes(Some(volumes))
        .set_container_definitions(Some(
            spec.container_definitions.iter().map(container).collect(),
        ))
        .tags(super::ecs_stack_tag(&ctx.stack))
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(DIGEST_TAG)
                .value(digest)
                .build(),
        );
    // Each RegisterTaskDefinition makes a new revision: after a lost response, look for the
    // one with this digest before registering again.
    let registered = create_once(
        &format!("registering task definition {}", spec.family),
        || async {
            request
                .clone()
                .customize()
                .config_override(no_retry!(aws_sdk_ecs))
                .send()
                .await
                .map(|out| {
                    out.task_definition().map(|td| {
                        (
                            td.task_definition_arn().unwrap_or_default().to_owned(),
                            td.revision(),
                        )
                    })
                })
                .map_err(classify)
        },
        || async {
            Ok(latest_with_digest(ctx, &spec.family, digest)
                .await?
                .map(|r| Some((r.arn.to_string(), r.revision))))
        },
    )
    .await?;
    let (arn, revision) =
        registered.ok_or_else(|| anyhow!("RegisterTaskDefinition returned no task definition"))?;
    Ok(TaskDefinitionRecord {
        family: spec.family.clone(),
        arn: Arn(arn),
        revision,
    })
}

fn container(c: &ContainerSpec) -> ContainerDefinition {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .memory(c.memory)
        .set_entry_point(non_empty(&c.entry_point))
        .set_command(non_empty(&c.command))
        .set_environment(Some(
            c.environment
                .iter()
                .map(|e| {
                    KeyValuePair::builder()
                        .name(&e.name)
                        .value(&e.value)
                        .build()
                })
                .collect(),
        ))
        .set_port_mappings(Some(
            c.port_mappings
                .iter()
                .map(|p| {
                    PortMapping::builder()
                        .container_port(p.container_port)
                        .set_host_port(p.host_port)
                        .protocol(TransportProtocol::from(p.protocol.as_str()))
                        .build()
                })
                .collect(),
        ))
        .set_log_configuration(c.log_configuration.as_ref().and_then(|l| {
            LogConfiguration::builder()
                .log_driver(LogDriver::from(l.log_driver.as_str()))
                .set_options(Some(l.options.clone().into_iter().collect()))
                .build()
                .ok()
        }))
        .set_mount_points(Some(
            c.mount_points
                .iter()
                .map(|m| {
                    MountPoint::builder()
                        .source_volume(&m.source_volume)
                        .container_path(&m.container_path)
                        .read_only(m.read_only)
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// Deregisters every ACTIVE revision of the family (not only the recorded one).
pub async fn destroy(ctx: &Ctx, family: &str) -> Result<()> {
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
    ctx.state.update(|s| {
        s.resources.task_definitions.remove(family);
    })?;
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
mod tests {
    use super::*;

    #[test]
    fn family_from_arn() {
        assert_eq!(
            family_of("arn:aws:ecs:us-west-1:1:task-definition/s-linkerd-viz:3"),
            Some("s-linkerd-viz")
        );
        assert_eq!(family_of("nonsense"), None);
    }
}
