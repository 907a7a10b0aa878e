//! Finding a stack's resources without its state file: by the `l5d-ecs:stack` tag and by the
//! names derived from the stack, for `down --discover`, `status --discover` and `list
//! --discover`.

use std::collections::BTreeSet;

use anyhow::Result;
use aws_sdk_ecs::types::TaskDefinitionStatus;

use crate::aws::{describe_error, ec2_filter, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::ids::{Arn, LaunchTemplateId, SecurityGroupId, VpcId};
use crate::stack::{CREATED_BY_TAG, STACK_TAG};
use crate::state::{
    AppRecord, AsgRecord, ClusterRecord, InstanceRecord, LaunchConfigKind, LaunchConfigRecord,
    LogGroupRecord, Resources, RoleRecord, SecurityGroupRecord, ServiceRecord,
    TaskDefinitionRecord,
};
use crate::steps::{self, asg, cluster, consul_server, launch_config};
use crate::templates::{APPS, DAEMON_APPS};

/// Everything of the stack that AWS shows, in the shape of the state file.
pub async fn discover(ctx: &Ctx, instance_role: &str) -> Result<Resources> {
    let (sg, consul, cluster, lc, group, logs, role, families) = futures::join!(
        security_group(ctx),
        async {
            Ok::<_, anyhow::Error>(
                consul_server::find(ctx)
                    .await?
                    .map(|instance_id| InstanceRecord { instance_id }),
            )
        },
        ecs_cluster(ctx),
        launch(ctx),
        auto_scaling_group(ctx),
        log_group(ctx),
        role_policy(ctx, instance_role),
        task_definitions(ctx),
    );
    let mut r = Resources {
        security_group: sg?,
        consul_server: consul?,
        cluster: cluster?,
        launch_config: lc?,
        asg: group?,
        log_group: logs?,
        instance_role: role?,
        task_definitions: families?,
        ..Resources::default()
    };
    if let Some(c) = &r.cluster {
        let (services, apps) = futures::join!(services(ctx, &c.name), apps(ctx, &c.name));
        r.daemons = services?;
        r.apps = apps?;
    }
    Ok(r)
}

/// Fills in what the state file lacks with what was discovered.
pub fn merge(recorded: &mut Resources, found: Resources) {
    fn fill<T>(slot: &mut Option<T>, found: Option<T>) {
        if slot.is_none() {
            *slot = found;
        }
    }
    fill(&mut recorded.security_group, found.security_group);
    fill(&mut recorded.consul_server, found.consul_server);
    fill(&mut recorded.cluster, found.cluster);
    fill(&mut recorded.instance_role, found.instance_role);
    fill(&mut recorded.launch_config, found.launch_config);
    fill(&mut recorded.asg, found.asg);
    fill(&mut recorded.log_group, found.log_group);
    for (k, v) in found.task_definitions {
        recorded.task_definitions.entry(k).or_insert(v);
    }
    for (k, v) in found.daemons {
        recorded.daemons.entry(k).or_insert(v);
    }
    for (k, v) in found.apps {
        let entry = recorded.apps.entry(k).or_insert_with(|| AppRecord {
            family: v.family.clone(),
            tasks: Vec::new(),
        });
        for t in v.tasks {
            if !entry.tasks.contains(&t) {
                entry.tasks.push(t);
            }
        }
    }
}

async fn security_group(ctx: &Ctx) -> Result<Option<SecurityGroupRecord>> {
    let name = ctx.stack.security_group();
    let out = ctx
        .aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter("group-name", &[&name]))
        .filters(ec2_filter(
            &format!("tag:{STACK_TAG}"),
            &[ctx.stack.as_str()],
        ))
        .send()
        .await
        .aws(format!("looking for security group {name}"))?;
    Ok(out.security_groups().first().map(|g| SecurityGroupRecord {
        id: SecurityGroupId::from(g.group_id().unwrap_or_default()),
        name: name.clone(),
        vpc_id: VpcId::from(g.vpc_id().unwrap_or_default()),
        allowed_cidrs: Vec::new(),
    }))
}

async fn ecs_cluster(ctx: &Ctx) -> Result<Option<ClusterRecord>> {
    let name = ctx.stack.cluster();
    Ok(cluster::find_active(ctx, &name)
        .await?
        .filter(|c| steps::ecs_has_stack_tag(c.tags(), &ctx.stack))
        .map(|c| ClusterRecord {
            name: name.clone(),
            arn: Arn::from(c.cluster_arn().unwrap_or_default()),
        }))
}

async fn launch(ctx: &Ctx) -> Result<Option<LaunchConfigRecord>> {
    // `<stack>-lc`, and `<stack>-lc-<8 hex>` for one that replaced it after a change.
    let base = ctx.stack.launch_configuration();
    let ours = |name: &str| {
        name == base
            || name
                .strip_prefix(&format!("{base}-"))
                .is_some_and(|tail| tail.len() == 8 && tail.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let mut names = Vec::new();
    let mut pages = ctx
        .aws
        .autoscaling
        .describe_launch_configurations()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws("listing launch configurations")?;
        names.extend(
            page.launch_configurations()
                .iter()
                .filter_map(|l| l.launch_configuration_name())
                .filter(|n| ours(n))
                .map(str::to_owned),
        );
    }
    if let Some((first, rest)) = names.split_first() {
        return Ok(Some(LaunchConfigRecord {
            kind: LaunchConfigKind::LaunchConfiguration,
            name: first.clone(),
            launch_template_id: None,
            retired: rest.to_vec(),
        }));
    }
    let lt_name = ctx.stack.launch_template();
    Ok(launch_config::find_template(ctx, &lt_name)
        .await?
        .filter(|t| steps::ec2_has_stack_tag(t.tags(), &ctx.stack))
        .map(|t| LaunchConfigRecord {
            kind: LaunchConfigKind::LaunchTemplate,
            name: lt_name.clone(),
            launch_template_id: t.launch_template_id().map(LaunchTemplateId::from),
            retired: Vec::new(),
        }))
}

async fn auto_scaling_group(ctx: &Ctx) -> Result<Option<AsgRecord>> {
    let name = ctx.stack.asg();
    Ok(asg::describe(ctx, &name)
        .await?
        .filter(|g| {
            g.tags()
                .iter()
                .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack.as_str()))
        })
        .map(|g| AsgRecord {
            name: name.clone(),
            min: g.min_size().unwrap_or(0).max(0) as u32,
            max: g.max_size().unwrap_or(0).max(0) as u32,
            desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
        }))
}

async fn log_group(ctx: &Ctx) -> Result<Option<LogGroupRecord>> {
    Ok(steps::log_group::find(ctx).await?.then(|| LogGroupRecord {
        name: ctx.stack.log_group(),
    }))
}

async fn role_policy(ctx: &Ctx, role: &str) -> Result<Option<RoleRecord>> {
    let policy = ctx.stack.role_policy();
    let result = ctx
        .aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(&policy)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("NoSuchEntity") => return Ok(None),
        Err(e) => anyhow::bail!(
            "looking for policy {policy} on role {role}: {}",
            describe_error(&e)
        ),
    }
    let created_role = match ctx.aws.iam.get_role().role_name(role).send().await {
        Ok(out) => out
            .role()
            .is_some_and(|r| r.tags().iter().any(|t| t.key() == CREATED_BY_TAG)),
        Err(_) => false,
    };
    Ok(Some(RoleRecord {
        role_name: role.to_owned(),
        instance_profile_name: role.to_owned(),
        policy_name: policy,
        created_role,
        created_instance_profile: false,
    }))
}

async fn task_definitions(
    ctx: &Ctx,
) -> Result<std::collections::BTreeMap<String, TaskDefinitionRecord>> {
    let mut found = std::collections::BTreeMap::new();
    for (app, _) in APPS {
        let family = ctx.stack.family(app);
        let out = ctx
            .aws
            .ecs
            .list_task_definitions()
            .family_prefix(&family)
            .status(TaskDefinitionStatus::Active)
            .send()
            .await
            .aws(format!("looking for task definition {family}"))?;
        let latest = out
            .task_definition_arns()
            .iter()
            .filter_map(|arn| {
                let tail = arn.rsplit_once("task-definition/")?.1;
                let (f, rev) = tail.rsplit_once(':')?;
                (f == family).then(|| (rev.parse::<i32>().unwrap_or(0), arn.clone()))
            })
            .max();
        if let Some((revision, arn)) = latest {
            found.insert(
                family.clone(),
                TaskDefinitionRecord {
                    family,
                    arn: Arn(arn),
                    revision,
                },
            );
        }
    }
    Ok(found)
}

async fn services(
    ctx: &Ctx,
    cluster: &str,
) -> Result<std::collections::BTreeMap<String, ServiceRecord>> {
    let names: Vec<String> = DAEMON_APPS.iter().map(|a| ctx.stack.family(a)).collect();
    let out = ctx
        .aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .set_services(Some(names))
        .send()
        .await
        .aws(format!("looking for the daemon services in {cluster}"))?;
    Ok(out
        .services()
        .iter()
        .filter(|s| s.status() == Some("ACTIVE"))
        .filter_map(|s| {
            let name = s.service_name()?.to_owned();
            Some((
                name.clone(),
                ServiceRecord {
                    name,
                    arn: Arn::from(s.service_arn()?),
                },
            ))
        })
        .collect())
}

/// The app tasks this tool started that are meant to run. ListTasks takes `startedBy` only
/// alone: one listing for both apps, split by family after describing.
async fn apps(ctx: &Ctx, cluster: &str) -> Result<std::collections::BTreeMap<String, AppRecord>> {
    let arns = crate::tasks::list(
        ctx.aws
            .ecs
            .list_tasks()
            .cluster(cluster)
            .started_by(ctx.stack.started_by()),
        &format!("the tasks l5d-ecs started in {cluster}"),
    )
    .await?;
    let running: Vec<aws_sdk_ecs::types::Task> = crate::tasks::describe(ctx, cluster, &arns)
        .await?
        .into_iter()
        .filter(|t| t.desired_status() == Some("RUNNING"))
        .collect();
    let mut found = std::collections::BTreeMap::new();
    for app in ["hello-world", "linkerd-viz"] {
        let family = ctx.stack.family(app);
        let tasks: Vec<Arn> = running
            .iter()
            .filter(|t| crate::tasks::family(t) == Some(family.as_str()))
            .filter_map(|t| t.task_arn().map(Arn::from))
            .collect();
        if !tasks.is_empty() {
            found.insert(app.to_owned(), AppRecord { family, tasks });
        }
    }
    Ok(found)
}

/// Stack names that carry the `l5d-ecs:stack` tag on EC2 resources or ASGs in the region.
pub async fn stacks_in_region(ctx: &Ctx) -> Result<BTreeSet<String>> {
    let mut stacks = BTreeSet::new();
    let ec2 = ctx
        .aws
        .ec2
        .describe_tags()
        .filters(ec2_filter("key", &[STACK_TAG]))
        .send()
        .await
        .aws("listing EC2 resources tagged l5d-ecs:stack")?;
    stacks.extend(
        ec2.tags()
            .iter()
            .filter_map(|t| t.value().map(str::to_owned)),
    );
    let asg = ctx
        .aws
        .autoscaling
        .describe_tags()
        .filters(
            aws_sdk_autoscaling::types::Filter::builder()
                .name("key")
                .values(STACK_TAG)
                .build(),
        )
        .send()
        .await
        .aws("listing auto scaling groups tagged l5d-ecs:stack")?;
    stacks.extend(
        asg.tags()
            .iter()
            .filter_map(|t| t.value().map(str::to_owned)),
    );
    Ok(stacks)
}
