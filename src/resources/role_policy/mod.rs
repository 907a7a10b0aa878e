//! The nodes' instance role: the inline policy `<stack>-policy` on it, and the role and its
//! instance profile themselves where the account does not have them yet.
//!
//! IAM is account-wide and shared by every stack: a stack removes only its own policy, and the
//! role and profile only when l5d-ecs created them (they carry the created-by tag) and no
//! other stack's policy is left on the role.

mod destroy;
mod ensure;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_sdk_iam::types::Tag;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{describe_error, error_code};
use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{StackName, CREATED_BY_TAG, STACK_TAG};
use crate::state::{Resources, RoleRecord};
use crate::templates;

const MANAGED_POLICY: &str = "service-role/AmazonEC2ContainerServiceforEC2Role";

pub struct RolePolicy;

impl Resource for RolePolicy {
    fn name(&self) -> Name {
        Name::RolePolicy
    }

    fn what(&self) -> &'static str {
        "instance role"
    }

    fn command(&self) -> &'static str {
        "role-policy"
    }

    /// Nodes started with another `--instance-role` need that role's policy, not this one.
    fn is_recorded(&self, r: &Resources, s: &Settings) -> bool {
        r.instance_role
            .as_ref()
            .is_some_and(|role| role.role_name == s.instance_role)
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let usable = ready.usable();
            let (found, ready) = futures::join!(find(cx, &s.instance_role), ready);
            ready?;
            ensure::ensure_found(cx, found?, &s.instance_role, &usable).await
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
            let role_name = s.instance_role.as_str();
            let found = find(cx, role_name).await?;
            for (kind, action, detail) in found.plan(role_name) {
                let name = if kind == ResourceKind::RolePolicy {
                    cx.stack.role_policy()
                } else {
                    role_name.to_owned()
                };
                plan.row(self.name(), kind, &name, action, detail);
            }
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.instance_role
            .iter()
            .map(|role| Item::new(ResourceKind::RolePolicy, &role.policy_name, &role.role_name))
            .collect()
    }

    /// The policy, and the role and profile that go with it when no other stack uses them.
    fn doomed<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Result<Vec<Item>>> {
        async move {
            let mut items = self.inventory(&cx.stack, r);
            if let Some(record) = &r.instance_role {
                items.extend(destroy::Companions::find(cx, record).await?.items());
            }
            Ok(items)
        }
        .boxed()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().instance_role {
                Some(record) => destroy::destroy(cx, &record).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    /// The stack's policy on the role `--instance-role` names: the role alone is no sign of
    /// the stack (it is shared, and ECS's console makes one of the same name).
    fn discover<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        found: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let role = s.instance_role.as_str();
            let policy = cx.stack.role_policy();
            if get_role_policy(cx, role, &policy).await?.is_none() {
                return Ok(());
            }
            // Only decides whether `down` may delete the role too; unreadable means no.
            let created_role = get_role(cx, role)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| created_by_l5d_ecs(r.tags()));
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            found.instance_role.get_or_insert_with(|| RoleRecord {
                role_name: role.to_owned(),
                instance_profile_name: role.to_owned(),
                policy_name: policy,
                created_role,
                created_instance_profile: false,
            });
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(record) = &r.instance_role else {
                return Vec::new();
            };
            let role = record.role_name.as_str();
            let (found, policy) = futures::join!(
                get_role(cx, role),
                get_role_policy(cx, role, &record.policy_name)
            );
            let state = match (found, policy) {
                (Err(e), _) | (_, Err(e)) => format!("unknown: {e:#}"),
                (Ok(None), _) | (_, Ok(None)) => "missing".to_owned(),
                (Ok(Some(found)), Ok(Some(doc))) => {
                    let owner = if created_by_l5d_ecs(found.tags()) {
                        "created by l5d-ecs"
                    } else {
                        "used, not owned"
                    };
                    if same_policy(&doc, templates::NODE_POLICY) {
                        format!("on role {role} ({owner})")
                    } else {
                        format!("on role {role} ({owner}), differs from what up puts")
                    }
                }
            };
            vec![ResourceStatus::new(
                ResourceKind::RolePolicy,
                &record.policy_name,
                role,
                state,
            )]
        }
        .boxed()
    }
}

fn iam_tags(ctx: &Ctx) -> Result<Vec<Tag>> {
    Ok(vec![
        Tag::builder()
            .key(CREATED_BY_TAG)
            .value(ctx.stack.as_str())
            .build()?,
        Tag::builder()
            .key(STACK_TAG)
            .value(ctx.stack.as_str())
            .build()?,
    ])
}

fn created_by_l5d_ecs(tags: &[Tag]) -> bool {
    tags.iter().any(|t| t.key() == CREATED_BY_TAG)
}

fn managed_policy_arn(ctx: &Ctx) -> String {
    format!(
        "arn:{}:iam::aws:policy/{MANAGED_POLICY}",
        ctx.aws.partition()
    )
}

/// IAM returns policy documents URL-encoded; compare them as JSON.
fn same_policy(returned: &str, wanted: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(returned).decode_utf8_lossy();
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    matches!((parse(&decoded), parse(wanted)), (Some(a), Some(b)) if a == b)
}

async fn get_role(ctx: &Ctx, role_name: &str) -> Result<Option<aws_sdk_iam::types::Role>> {
    match ctx.aws.iam.get_role().role_name(role_name).send().await {
        Ok(out) => Ok(out.role().cloned()),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => bail!("looking up IAM role {role_name}: {}", describe_error(&e)),
    }
}

async fn get_instance_profile(
    ctx: &Ctx,
    name: &str,
) -> Result<Option<aws_sdk_iam::types::InstanceProfile>> {
    match ctx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.instance_profile().cloned()),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => bail!("looking up instance profile {name}: {}", describe_error(&e)),
    }
}

/// The inline policy's document (URL-encoded, as IAM returns it); `None` when the role or the
/// policy is missing.
async fn get_role_policy(ctx: &Ctx, role_name: &str, policy_name: &str) -> Result<Option<String>> {
    match ctx
        .aws
        .iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name(policy_name)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out.policy_document().to_owned())),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(anyhow!(
            "reading policy {policy_name} of IAM role {role_name}: {}",
            describe_error(&e)
        )),
    }
}

/// What exists of the role, its managed policies, its instance profile and the stack's policy,
/// read with four calls at once.
struct RoleFound {
    role: Option<aws_sdk_iam::types::Role>,
    managed_policy_arns: Vec<String>,
    profile: Option<aws_sdk_iam::types::InstanceProfile>,
    policy_document: Option<String>,
}

impl RoleFound {
    /// What `up` would do to the role, its instance profile and the stack's policy.
    fn plan(&self, role_name: &str) -> [(ResourceKind, Action, Option<String>); 3] {
        let role = match &self.role {
            Some(r) if created_by_l5d_ecs(r.tags()) => (Action::Keep, None),
            Some(_) => (Action::Keep, Some("exists; used, not owned".to_owned())),
            None => (Action::Create, None),
        };
        let profile = match &self.profile {
            Some(p) if p.roles().iter().any(|r| r.role_name() == role_name) => (Action::Keep, None),
            Some(_) => (Action::Repair, Some(format!("add role {role_name}"))),
            None => (Action::Create, None),
        };
        let policy = match &self.policy_document {
            Some(doc) if same_policy(doc, templates::NODE_POLICY) => (Action::Keep, None),
            Some(_) => (Action::Repair, Some("policy document differs".to_owned())),
            None => (Action::Create, None),
        };
        [
            (ResourceKind::InstanceRole, role.0, role.1),
            (ResourceKind::InstanceProfile, profile.0, profile.1),
            (ResourceKind::RolePolicy, policy.0, policy.1),
        ]
    }
}

async fn find(ctx: &Ctx, role_name: &str) -> Result<RoleFound> {
    let policy_name = ctx.stack.role_policy();
    let attached = async {
        match ctx
            .aws
            .iam
            .list_attached_role_policies()
            .role_name(role_name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
        {
            Ok(out) => Ok(out
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_owned))
                .collect()),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(Vec::new()),
            Err(e) => Err(anyhow!(
                "listing the managed policies of IAM role {role_name}: {}",
                describe_error(&e)
            )),
        }
    };
    let (role, managed_policy_arns, profile, policy_document) = futures::join!(
        get_role(ctx, role_name),
        attached,
        get_instance_profile(ctx, role_name),
        get_role_policy(ctx, role_name, &policy_name)
    );
    Ok(RoleFound {
        role: role?,
        managed_policy_arns: managed_policy_arns?,
        profile: profile?,
        policy_document: policy_document?,
    })
}
