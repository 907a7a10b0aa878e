//! Security group `<stack>-sg` in the stack's VPC: the group alone, so that what needs only
//! its id starts at once; its inbound rules are [`super::security_group_rules`].

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ec2::types::{ResourceType, SecurityGroup as Ec2SecurityGroup};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::security_group_rules::missing_rules;
use super::{missing_step, Name, Plan, Ready, Resource, Settings};
use crate::aws::{
    classify, create_once, describe_error, ec2_filter, error_code, no_retry, poll_with,
    AwsResultExt, Backoff, Poll,
};
use crate::context::Ctx;
use crate::ids::{SecurityGroupId, VpcId};
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{Cidr, StackName, STACK_TAG};
use crate::state::{Network, Resources, SecurityGroupRecord};

/// Description as in the guide.
pub const DESCRIPTION: &str = "Linkerd Demo";

pub struct SecurityGroup;

impl Resource for SecurityGroup {
    fn name(&self) -> Name {
        Name::SecurityGroup
    }

    fn what(&self) -> &'static str {
        "security group"
    }

    fn command(&self) -> &'static str {
        "security-group"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.security_group.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (found, cidrs, ready) = futures::join!(first_find(cx), s.allowed_cidrs(cx), ready);
            ready?;
            let network = cx
                .state
                .resources()
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            ensure_group(cx, &found?, &network, cidrs?).await
        }
        .boxed()
    }

    /// One row for the group and its rules: rules it lacks make it a repair.
    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (net, groups) = futures::join!(plan.network(cx, s), plan.security_groups(cx));
            let (net, groups) = (net?, groups?);
            let name = cx.stack.security_group();
            let (action, detail) = match ours_in(cx, groups, &net.vpc_id)? {
                Some(g) => {
                    let id = SecurityGroupId::from(g.group_id().unwrap_or_default());
                    // What `up` opens without asking anybody: the public IP it would look up
                    // is not known here, so a group without a record lacks no port rule.
                    let cidrs = match cx.state.resources().security_group {
                        _ if !s.allow_cidrs.is_empty() => s.allow_cidrs.clone(),
                        Some(r) => r.allowed_cidrs,
                        None => Vec::new(),
                    };
                    let missing = missing_rules(&id, g.ip_permissions(), &cidrs);
                    if missing.is_empty() {
                        (Action::Keep, None)
                    } else {
                        (
                            Action::Repair,
                            Some(format!("add inbound rules: {}", missing.join(", "))),
                        )
                    }
                }
                None => (Action::Create, Some(format!("in {}", net.vpc_id))),
            };
            plan.row(
                self.name(),
                ResourceKind::SecurityGroup,
                &name,
                action,
                detail,
            );
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.security_group
            .iter()
            .map(|sg| Item::new(ResourceKind::SecurityGroup, &sg.name, sg.id.as_str()))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().security_group {
                Some(record) => destroy(cx, &record, timeout).await,
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
            if let Some(record) = discover(cx).await? {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found.security_group.get_or_insert(record);
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(sg) = &r.security_group else {
                return Vec::new();
            };
            let state = match describe(cx, &sg.id).await {
                Ok(Some(g)) => {
                    let cidrs: Vec<String> =
                        sg.allowed_cidrs.iter().map(|c| c.to_string()).collect();
                    let missing = missing_rules(&sg.id, g.ip_permissions(), &sg.allowed_cidrs);
                    if missing.is_empty() {
                        format!("open to {}", cidrs.join(", "))
                    } else {
                        format!(
                            "open to {}, but lacks inbound rules: {} (`l5d-ecs up` adds them)",
                            cidrs.join(", "),
                            missing.join(", ")
                        )
                    }
                }
                Ok(None) => "missing".to_owned(),
                Err(e) => format!("unknown: {e:#}"),
            };
            vec![ResourceStatus::new(
                ResourceKind::SecurityGroup,
                &sg.name,
                sg.id.as_str(),
                state,
            )]
        }
        .boxed()
    }
}

/// Groups named `<stack>-sg`, in any VPC (the network may not be known yet).
pub async fn find(ctx: &Ctx) -> Result<Vec<Ec2SecurityGroup>> {
    let name = ctx.stack.security_group();
    ctx.aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter("group-name", &[&name]))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking up security group {name}"))
}

/// [`find`] once per run, for the group's and its rules' first look (the same moment).
pub async fn first_find(ctx: &Ctx) -> Result<Vec<Ec2SecurityGroup>> {
    ctx.first_security_groups
        .get_or_try_init(|| find(ctx))
        .await
        .cloned()
}

/// The stack's group in the VPC, or an error if a group of that name there is not ours.
pub fn ours_in(
    ctx: &Ctx,
    found: &[Ec2SecurityGroup],
    vpc: &VpcId,
) -> Result<Option<Ec2SecurityGroup>> {
    let Some(group) = found.iter().find(|g| g.vpc_id() == Some(vpc.as_str())) else {
        return Ok(None);
    };
    if !super::tags::ec2_has_stack_tag(group.tags(), &ctx.stack) {
        return Err(super::not_ours(
            "security group",
            &ctx.stack.security_group(),
            group.group_id().unwrap_or_default(),
            &ctx.stack,
        ));
    }
    Ok(Some(group.clone()))
}

/// The recorded group as AWS has it now; `None` once it is gone.
async fn describe(ctx: &Ctx, id: &SecurityGroupId) -> Result<Option<Ec2SecurityGroup>> {
    let result = ctx
        .aws
        .ec2
        .describe_security_groups()
        .group_ids(id.as_str())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.security_groups().first().cloned()),
        Err(e) if error_code(&e) == Some("InvalidGroup.NotFound") => Ok(None),
        Err(e) => Err(anyhow!(
            "looking up security group {id}: {}",
            describe_error(&e)
        )),
    }
}

/// The stack's group by name and tag, in whichever VPC it is.
async fn discover(ctx: &Ctx) -> Result<Option<SecurityGroupRecord>> {
    let name = ctx.stack.security_group();
    let found = ctx
        .aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter("group-name", &[&name]))
        .filters(ec2_filter(
            &format!("tag:{STACK_TAG}"),
            &[ctx.stack.as_str()],
        ))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking for security group {name}"))?;
    Ok(found.first().map(|g| SecurityGroupRecord {
        id: SecurityGroupId::from(g.group_id().unwrap_or_default()),
        name: name.clone(),
        vpc_id: VpcId::from(g.vpc_id().unwrap_or_default()),
        allowed_cidrs: Vec::new(),
    }))
}

/// The group itself, created if missing; its rules are added beside, by
/// [`super::security_group_rules`], so that what needs only its id can start.
async fn ensure_group(
    ctx: &Ctx,
    found: &[Ec2SecurityGroup],
    network: &Network,
    cidrs: &[Cidr],
) -> Result<()> {
    let name = ctx.stack.security_group();
    let (id, action) = match ours_in(ctx, found, &network.vpc_id)? {
        Some(group) => (
            SecurityGroupId::from(group.group_id().unwrap_or_default()),
            Action::Kept,
        ),
        None => {
            let id = create_once(
                &format!("creating security group {name}"),
                || async {
                    ctx.aws
                        .ec2
                        .create_security_group()
                        .group_name(&name)
                        .description(DESCRIPTION)
                        .vpc_id(network.vpc_id.as_str())
                        .tag_specifications(super::tags::ec2_tag_spec(
                            &ctx.stack,
                            &name,
                            ResourceType::SecurityGroup,
                        ))
                        .customize()
                        .config_override(no_retry!(aws_sdk_ec2))
                        .send()
                        .await
                        .map(|out| out.group_id().unwrap_or_default().to_owned())
                        .map_err(classify)
                },
                || async {
                    let found = find(ctx).await?;
                    Ok(ours_in(ctx, &found, &network.vpc_id)?
                        .and_then(|g| g.group_id().map(str::to_owned)))
                },
            )
            .await?;
            if id.is_empty() {
                return Err(anyhow!("CreateSecurityGroup returned no group id"));
            }
            (SecurityGroupId(id), Action::Created)
        }
    };
    let record = SecurityGroupRecord {
        id: id.clone(),
        name: name.clone(),
        vpc_id: network.vpc_id.clone(),
        allowed_cidrs: cidrs.to_vec(),
    };
    ctx.state
        .update(|s| s.resources.security_group = Some(record))
        .await?;
    ctx.out
        .record(ResourceKind::SecurityGroup, &name, id.as_str(), action);
    Ok(())
}

/// Deletes the group, retrying while AWS still sees it in use (the network interfaces of
/// terminated instances linger for minutes).
async fn destroy(ctx: &Ctx, record: &SecurityGroupRecord, timeout: Duration) -> Result<()> {
    let what = format!(
        "security group {} ({}) to be deletable",
        record.name, record.id
    );
    poll_with(&what, timeout, Backoff::NETWORK, Some(&ctx.out), || async {
        let result = ctx
            .aws
            .ec2
            .delete_security_group()
            .group_id(record.id.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Poll::Ready(())),
            Err(e) if error_code(&e) == Some("InvalidGroup.NotFound") => Ok(Poll::Ready(())),
            Err(e) if error_code(&e) == Some("DependencyViolation") => {
                Ok(Poll::Pending(describe_error(&e)))
            }
            Err(e) => Err(anyhow!("{}", describe_error(&e))),
        }
    })
    .await
    .with_context(|| format!("deleting security group {} ({})", record.name, record.id))?;
    ctx.state
        .update(|s| s.resources.security_group = None)
        .await?;
    ctx.out.record(
        ResourceKind::SecurityGroup,
        &record.name,
        record.id.as_str(),
        Action::Deleted,
    );
    Ok(())
}
