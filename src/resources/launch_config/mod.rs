//! How the ASG starts nodes: launch configuration `<stack>-lc`, or, where the account refuses
//! launch configurations (accounts created since late 2024) or `--launch-template` asks for
//! it, the equivalent EC2 launch template `<stack>-lt`.
//!
//! The two ways live in `configuration.rs` and `template.rs`; this file holds the resource's
//! life and the choice between them.

mod configuration;
mod seen;
mod template;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_autoscaling::types::LaunchConfiguration;
use aws_sdk_ec2::types::LaunchTemplate;
use futures::future::BoxFuture;
use futures::FutureExt;

pub use configuration::{delete_retired, find_configuration};
pub use template::find_template;

use seen::LaunchSeen;

use super::{missing_step, security_group, Name, Plan, Ready, Resource, Settings};
use crate::context::Ctx;
use crate::ids::SecurityGroupId;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::{
    InstanceSettings, LaunchConfigKind, LaunchConfigRecord, Resources, RoleRecord,
    SecurityGroupRecord,
};
use crate::templates;

pub struct LaunchConfig;

impl Resource for LaunchConfig {
    fn name(&self) -> Name {
        Name::LaunchConfig
    }

    fn what(&self) -> &'static str {
        "launch configuration"
    }

    fn command(&self) -> &'static str {
        "launch-config"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.launch_config.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (found, ami, ready) = futures::join!(find(cx, s.launch_template), s.ami(cx), ready);
            ready?;
            let r = cx.state.resources();
            let sg = r
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let role = r
                .instance_role
                .filter(|role| role.role_name == s.instance_role)
                .ok_or_else(|| {
                    missing_step(&format!("instance role {}", s.instance_role), "role-policy")
                })?;
            let launch = NodeLaunch {
                sg: &sg,
                role: &role,
                ami: ami?,
                instance: &s.instance,
            };
            ensure_found(cx, found?, &launch, s.launch_template).await?;
            Ok(())
        }
        .boxed()
    }

    /// Compares what exists with what `up` would make from the group found in the VPC and the
    /// role `--instance-role` names.
    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let force = s.launch_template;
            let (launch, net, groups, ami) = futures::join!(
                find(cx, force),
                plan.network(cx, s),
                plan.security_groups(cx),
                s.ami(cx)
            );
            let (launch, net, groups) = (launch?, net?, groups?);
            let sg =
                security_group::ours_in(cx, groups, &net.vpc_id)?.map(|g| SecurityGroupRecord {
                    id: SecurityGroupId::from(g.group_id().unwrap_or_default()),
                    name: cx.stack.security_group(),
                    vpc_id: net.vpc_id.clone(),
                    allowed_cidrs: Vec::new(),
                });
            let role = RoleRecord {
                role_name: s.instance_role.clone(),
                instance_profile_name: s.instance_role.clone(),
                policy_name: cx.stack.role_policy(),
                created_role: false,
                created_instance_profile: false,
            };
            let uses_template = uses_template(cx, force);
            // Without the group or the AMI there is nothing to compare with: `up` would fail
            // before, and the rows of those say why.
            let diffs = match (&sg, ami) {
                (Some(sg), Ok(ami)) => {
                    let node = NodeLaunch {
                        sg,
                        role: &role,
                        ami,
                        instance: &s.instance,
                    };
                    if let Some(lc) = launch.configuration.as_ref().filter(|_| !uses_template) {
                        let user_data = encoded_user_data(cx)?;
                        configuration::differences(lc, &node, &user_data)
                    } else if let Some(id) = launch
                        .template
                        .as_ref()
                        .filter(|_| uses_template)
                        .and_then(|t| t.launch_template_id())
                    {
                        template::differences(cx, id, &node).await?
                    } else {
                        Vec::new()
                    }
                }
                _ => Vec::new(),
            };
            let (kind, exists) = if uses_template {
                (ResourceKind::LaunchTemplate, launch.template.is_some())
            } else {
                (
                    ResourceKind::LaunchConfiguration,
                    launch.configuration.is_some(),
                )
            };
            let name = planned_record(cx, force).name;
            let (action, detail) = match (exists, diffs.is_empty()) {
                (false, _) => (Action::Create, None),
                (true, true) => (Action::Keep, None),
                (true, false) if uses_template => (
                    Action::Repair,
                    Some(format!(
                        "differs in {}: a new template version; running nodes are not replaced",
                        diffs.join(", ")
                    )),
                ),
                (true, false) => (
                    Action::Replace,
                    Some(format!(
                        "differs in {}: a new launch configuration, the ASG pointed at it; \
                         running nodes are not replaced",
                        diffs.join(", ")
                    )),
                ),
            };
            plan.row(self.name(), kind, &name, action, detail);
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.launch_config
            .iter()
            .map(|l| {
                let id = l
                    .launch_template_id
                    .as_ref()
                    .map_or(l.name.clone(), |i| i.to_string());
                Item::new(kind_of(l), &l.name, id)
            })
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            let Some(record) = cx.state.resources().launch_config else {
                return Ok(());
            };
            // The ASG is gone by now, so nothing uses the replaced ones either.
            delete_retired(cx).await?;
            match record.kind {
                LaunchConfigKind::LaunchConfiguration => {
                    configuration::delete(cx, &record.name, timeout).await
                }
                LaunchConfigKind::LaunchTemplate => template::delete(cx, &record).await,
            }
        }
        .boxed()
    }

    /// `<stack>-lc` and the configurations that replaced it, else the tagged `<stack>-lt`.
    fn discover<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        found: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let record = match configuration::discover(cx).await? {
                Some(record) => Some(record),
                None => template::discover(cx).await?,
            };
            if let Some(record) = record {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found.launch_config.get_or_insert(record);
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(record) = &r.launch_config else {
                return Vec::new();
            };
            let state = match record.kind {
                LaunchConfigKind::LaunchConfiguration => {
                    match find_configuration(cx, &record.name).await {
                        Ok(Some(_)) if record.retired.is_empty() => "exists".to_owned(),
                        Ok(Some(_)) => format!(
                            "exists; replaced ones not deleted yet: {}",
                            record.retired.join(", ")
                        ),
                        Ok(None) => "missing".to_owned(),
                        Err(e) => format!("unknown: {e:#}"),
                    }
                }
                LaunchConfigKind::LaunchTemplate => {
                    let id = record.launch_template_id.as_ref().map(|i| i.as_str());
                    match find_template(cx, &record.name).await {
                        Ok(Some(t)) if t.launch_template_id() == id => format!(
                            "exists, latest version {}",
                            t.latest_version_number().unwrap_or_default()
                        ),
                        // Another template of the name is not the recorded one.
                        Ok(_) => "missing".to_owned(),
                        Err(e) => format!("unknown: {e:#}"),
                    }
                }
            };
            vec![ResourceStatus::new(
                kind_of(record),
                &record.name,
                // A launch configuration's name is its id.
                record
                    .launch_template_id
                    .as_ref()
                    .map_or(record.name.as_str(), |i| i.as_str()),
                state,
            )]
        }
        .boxed()
    }
}

/// What the nodes start with: the records of what they need, and the settings.
pub struct NodeLaunch<'a> {
    pub sg: &'a SecurityGroupRecord,
    pub role: &'a RoleRecord,
    pub ami: &'a str,
    pub instance: &'a InstanceSettings,
}

/// What exists of the two ways to launch nodes.
#[derive(Default)]
pub struct LaunchFound {
    pub configuration: Option<LaunchConfiguration>,
    pub template: Option<LaunchTemplate>,
}

/// Whether the stack launches its nodes from a template (asked for, or already so).
pub fn uses_template(ctx: &Ctx, force_template: bool) -> bool {
    force_template
        || ctx.state.resources().launch_config.map(|r| r.kind)
            == Some(LaunchConfigKind::LaunchTemplate)
}

/// The stack's current launch configuration: the one the state file names, else `<stack>-lc`.
pub fn current_configuration_name(ctx: &Ctx) -> String {
    ctx.state
        .resources()
        .launch_config
        .filter(|r| r.kind == LaunchConfigKind::LaunchConfiguration)
        .map(|r| r.name)
        .unwrap_or_else(|| ctx.stack.launch_configuration())
}

/// What `plan` takes the ASG to launch from: the current configuration or the template
/// (the name a changed configuration would get is not known before `up` makes it).
pub fn planned_record(ctx: &Ctx, force_template: bool) -> LaunchConfigRecord {
    let (kind, name) = if uses_template(ctx, force_template) {
        (
            LaunchConfigKind::LaunchTemplate,
            ctx.stack.launch_template(),
        )
    } else {
        (
            LaunchConfigKind::LaunchConfiguration,
            current_configuration_name(ctx),
        )
    };
    LaunchConfigRecord {
        kind,
        name,
        launch_template_id: None,
        retired: Vec::new(),
    }
}

fn kind_of(record: &LaunchConfigRecord) -> ResourceKind {
    match record.kind {
        LaunchConfigKind::LaunchConfiguration => ResourceKind::LaunchConfiguration,
        LaunchConfigKind::LaunchTemplate => ResourceKind::LaunchTemplate,
    }
}

/// The nodes' user data as launch configurations and templates carry it.
fn encoded_user_data(ctx: &Ctx) -> Result<String> {
    Ok(aws_smithy_types::base64::encode(templates::node_user_data(
        &ctx.stack,
    )?))
}

/// Looks up only the kind that will be used.
async fn find(ctx: &Ctx, force_template: bool) -> Result<LaunchFound> {
    Ok(if uses_template(ctx, force_template) {
        LaunchFound {
            template: find_template(ctx, &ctx.stack.launch_template()).await?,
            ..LaunchFound::default()
        }
    } else {
        LaunchFound {
            configuration: find_configuration(ctx, &current_configuration_name(ctx)).await?,
            ..LaunchFound::default()
        }
    })
}

/// Makes or repairs the way the nodes launch, from what [`find`] saw; falls back to a template
/// where the account refuses launch configurations.
async fn ensure_found(
    ctx: &Ctx,
    found: LaunchFound,
    launch: &NodeLaunch<'_>,
    force_template: bool,
) -> Result<LaunchConfigRecord> {
    if !uses_template(ctx, force_template) {
        match configuration::ensure(ctx, found.configuration, launch).await? {
            Some(record) => return Ok(record),
            None => ctx.out.warn(format!(
                "this account cannot create launch configurations (UnsupportedOperation); \
                 using the launch template {} instead",
                ctx.stack.launch_template()
            )),
        }
        let template = find_template(ctx, &ctx.stack.launch_template()).await?;
        return template::ensure(ctx, template, launch).await;
    }
    template::ensure(ctx, found.template, launch).await
}
