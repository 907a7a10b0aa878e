//! `plan` (and `up --dry-run`): what `up` would do to each resource, from the same look-ups
//! `up` makes, and no other call.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::aws::AwsResultExt;
use crate::cli::UpArgs;
use crate::context::Ctx;
use crate::output::{Action, ResourceKind};
use crate::stack::Sizes;
use crate::state::{
    InstanceSettings, LaunchConfigKind, LaunchConfigRecord, RoleRecord, SecurityGroupRecord,
};
use crate::steps::{
    ami, asg, cluster, consul_server, daemons, launch_config, log_group, network, role_policy,
    security_group, task_definitions,
};
use crate::templates::DAEMON_APPS;

#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub instance_type: String,
    /// vCPUs of one instance of that type, when the account says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus_per_instance: Option<i32>,
    /// The consul server plus `--max` nodes.
    pub instances_at_most: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus_at_most: Option<i32>,
    pub changes: usize,
}

impl PlanSummary {
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let vcpus = self
            .vcpus_at_most
            .map_or("unknown".to_owned(), |v| v.to_string());
        writeln!(
            out,
            "{} change(s). At most {} {} instance(s) (consul server + --max nodes): {vcpus} vCPUs.",
            self.changes, self.instances_at_most, self.instance_type
        )
    }
}

async fn vcpus(ctx: &Ctx, instance_type: &str) -> Result<Option<i32>> {
    let out = ctx
        .aws
        .ec2
        .describe_instance_types()
        .instance_types(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .send()
        .await
        .aws(format!("looking up instance type {instance_type}"))?;
    Ok(out
        .instance_types()
        .first()
        .and_then(|t| t.v_cpu_info())
        .and_then(|v| v.default_v_cpus()))
}

pub async fn plan(
    ctx: &Ctx,
    args: &UpArgs,
    sizes: Sizes,
    instance: &InstanceSettings,
) -> Result<()> {
    let role_name = args.role.instance_role.as_str();
    let cluster_name = ctx.stack.cluster();
    let asg_name = ctx.stack.asg();
    let (net, groups, consul, cluster, role, families, logs, launch, group, services, vcpus) = futures::join!(
        network::lookup(ctx, &args.network),
        security_group::find(ctx),
        consul_server::find(ctx),
        cluster::find_active(ctx, &cluster_name),
        role_policy::find(ctx, role_name),
        task_definitions::find_all(ctx),
        log_group::find(ctx),
        launch_config::find(ctx, args.launch_template),
        asg::describe(ctx, &asg_name),
        daemons::find(ctx, &cluster_name),
        vcpus(ctx, &instance.instance_type),
    );
    let ami = ami::resolve(ctx, instance.ami.as_deref()).await;
    let (net, groups, consul, cluster, role, families) =
        (net?, groups?, consul?, cluster?, role?, families?);
    let (logs, launch, group, services) = (logs?, launch?, group?, services?);
    let recorded = ctx.state.resources();
    let out = &ctx.out;
    let mut changes = 0;
    let mut row = |kind, name: &str, action: Action, detail: Option<String>| {
        if action != Action::Keep {
            changes += 1;
        }
        out.planned(kind, name, action, detail);
    };

    let sg_name = ctx.stack.security_group();
    match security_group::ours_in(ctx, &groups, &net.vpc_id)? {
        Some(g) => {
            let id = crate::ids::SecurityGroupId::from(g.group_id().unwrap_or_default());
            let cidrs = match &recorded.security_group {
                _ if !args.access.allow_cidrs.is_empty() => args.access.allow_cidrs.clone(),
                Some(r) => r.allowed_cidrs.clone(),
                None => Vec::new(),
            };
            let missing = security_group::missing_rules(&id, g.ip_permissions(), &cidrs);
            if missing.is_empty() {
                row(ResourceKind::SecurityGroup, &sg_name, Action::Keep, None);
            } else {
                row(
                    ResourceKind::SecurityGroup,
                    &sg_name,
                    Action::Repair,
                    Some(format!("add inbound rules: {}", missing.join(", "))),
                );
            }
        }
        None => row(
            ResourceKind::SecurityGroup,
            &sg_name,
            Action::Create,
            Some(format!("in {}", net.vpc_id)),
        ),
    }

    let consul_name = ctx.stack.consul_server_tag();
    match (consul, &recorded.consul_server) {
        (Some(_), _) => row(ResourceKind::ConsulServer, &consul_name, Action::Keep, None),
        (None, Some(old)) => row(
            ResourceKind::ConsulServer,
            &consul_name,
            Action::Replace,
            Some(format!("{} is gone", old.instance_id)),
        ),
        (None, None) => row(
            ResourceKind::ConsulServer,
            &consul_name,
            Action::Create,
            None,
        ),
    }

    row(
        ResourceKind::Cluster,
        &cluster_name,
        if cluster.is_some() {
            Action::Keep
        } else {
            Action::Create
        },
        None,
    );

    for (kind, action, detail) in role.plan(role_name) {
        let name = if kind == ResourceKind::RolePolicy {
            ctx.stack.role_policy()
        } else {
            role_name.to_owned()
        };
        row(kind, &name, action, detail);
    }

    let mut new_revisions = Vec::new();
    for f in &families {
        let (action, detail) = match (f.current(), f.any_active()) {
            (Some(_), _) => (Action::Keep, None),
            (None, true) => (
                Action::Repair,
                Some("definition differs: a new revision".to_owned()),
            ),
            (None, false) => (Action::Create, None),
        };
        if action != Action::Keep {
            new_revisions.push(f.family().to_owned());
        }
        row(ResourceKind::TaskDefinition, f.family(), action, detail);
    }

    row(
        ResourceKind::LogGroup,
        &ctx.stack.log_group(),
        if logs { Action::Keep } else { Action::Create },
        None,
    );

    let uses_template = launch_config::uses_template(ctx, args.launch_template);
    let (launch_kind, launch_name, launch_exists) = if uses_template {
        (
            ResourceKind::LaunchTemplate,
            ctx.stack.launch_template(),
            launch.template.is_some(),
        )
    } else {
        (
            ResourceKind::LaunchConfiguration,
            ctx.stack.launch_configuration(),
            launch.configuration.is_some(),
        )
    };
    let sg_record =
        security_group::ours_in(ctx, &groups, &net.vpc_id)?.map(|g| SecurityGroupRecord {
            id: crate::ids::SecurityGroupId::from(g.group_id().unwrap_or_default()),
            name: sg_name.clone(),
            vpc_id: net.vpc_id.clone(),
            allowed_cidrs: Vec::new(),
        });
    let role_record = RoleRecord {
        role_name: role_name.to_owned(),
        instance_profile_name: role_name.to_owned(),
        policy_name: ctx.stack.role_policy(),
        created_role: false,
        created_instance_profile: false,
    };
    let launch_diffs = match (&sg_record, &ami) {
        (Some(sg), Ok(ami)) => {
            let node = launch_config::NodeLaunch {
                sg,
                role: &role_record,
                ami,
                instance,
            };
            if let Some(lc) = launch.configuration.as_ref().filter(|_| !uses_template) {
                let user_data =
                    aws_smithy_types::base64::encode(crate::templates::node_user_data(&ctx.stack)?);
                launch_config::configuration_differences(lc, &node, &user_data)
            } else if let Some(id) = launch
                .template
                .as_ref()
                .filter(|_| uses_template)
                .and_then(|t| t.launch_template_id())
            {
                launch_config::template_differences(ctx, id, &node).await?
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let launch_name = if uses_template {
        launch_name
    } else {
        launch_config::current_configuration_name(ctx)
    };
    match (launch_exists, launch_diffs.is_empty()) {
        (false, _) => row(launch_kind, &launch_name, Action::Create, None),
        (true, true) => row(launch_kind, &launch_name, Action::Keep, None),
        (true, false) if uses_template => row(
            launch_kind,
            &launch_name,
            Action::Repair,
            Some(format!(
                "differs in {}: a new template version; running nodes are not replaced",
                launch_diffs.join(", ")
            )),
        ),
        (true, false) => row(
            launch_kind,
            &launch_name,
            Action::Replace,
            Some(format!(
                "differs in {}: a new launch configuration, the ASG pointed at it; running \
                 nodes are not replaced",
                launch_diffs.join(", ")
            )),
        ),
    }

    let launch_record = LaunchConfigRecord {
        kind: if uses_template {
            LaunchConfigKind::LaunchTemplate
        } else {
            LaunchConfigKind::LaunchConfiguration
        },
        name: launch_name,
        launch_template_id: None,
        retired: Vec::new(),
    };
    match &group {
        Some(g) => {
            let diffs = asg::differences(g, &launch_record, sizes);
            if diffs.is_empty() {
                row(
                    ResourceKind::AutoScalingGroup,
                    &asg_name,
                    Action::Keep,
                    None,
                );
            } else {
                row(
                    ResourceKind::AutoScalingGroup,
                    &asg_name,
                    Action::Repair,
                    Some(format!(
                        "{}; running nodes are not replaced",
                        diffs.join("; ")
                    )),
                );
            }
        }
        None => row(
            ResourceKind::AutoScalingGroup,
            &asg_name,
            Action::Create,
            Some(format!(
                "min {} max {} desired {}",
                sizes.min, sizes.max, sizes.desired
            )),
        ),
    }

    for app in DAEMON_APPS {
        let name = ctx.stack.family(app);
        let active = services
            .iter()
            .find(|s| s.service_name() == Some(name.as_str()) && s.status() == Some("ACTIVE"));
        let (action, detail) = match active {
            None => (Action::Create, None),
            Some(_) if new_revisions.contains(&name) => (
                Action::Repair,
                Some("point at the new task definition revision".to_owned()),
            ),
            Some(s) => {
                let current = families
                    .iter()
                    .find(|f| f.family() == name)
                    .and_then(|f| f.current())
                    .map(|r| r.arn.to_string());
                if current.is_some() && s.task_definition() != current.as_deref() {
                    (
                        Action::Repair,
                        Some("point at the latest task definition revision".to_owned()),
                    )
                } else {
                    (Action::Keep, None)
                }
            }
        };
        row(ResourceKind::DaemonService, &name, action, detail);
    }

    let vcpus_per_instance = vcpus.unwrap_or_else(|e| {
        ctx.out.warn(format!("vCPUs unknown: {e:#}"));
        None
    });
    let instances = 1 + sizes.max;
    ctx.out.plan_summary(PlanSummary {
        instance_type: instance.instance_type.clone(),
        vcpus_per_instance,
        instances_at_most: instances,
        vcpus_at_most: vcpus_per_instance.map(|v| v * instances as i32),
        changes,
    });
    Ok(())
}
