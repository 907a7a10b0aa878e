//! RegisterTaskDefinition from a template's spec.

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{
    ContainerDefinition, HostVolumeProperties, KeyValuePair, LogConfiguration, LogDriver,
    MountPoint, NetworkMode, PortMapping, TransportProtocol, Volume,
};

use super::{latest, DIGEST_TAG};
use crate::aws::{classify, create_once, no_retry};
use crate::context::Ctx;
use crate::ids::Arn;
use crate::resources::tags::ecs_stack_tag;
use crate::state::TaskDefinitionRecord;
use crate::templates::{ContainerSpec, TaskDefinitionSpec};

pub(super) async fn register(
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
        .tags(ecs_stack_tag(&ctx.stack))
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
            Ok(latest(ctx, &spec.family, digest)
                .await?
                .0
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
