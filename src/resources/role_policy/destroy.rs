//! Removal of the stack's policy, and of the role and profile when l5d-ecs made them and no
//! other stack still uses the role.

use anyhow::{bail, Result};
use aws_sdk_iam::types::{InstanceProfile, Role};

use super::{created_by_l5d_ecs, get_instance_profile, get_role};
use crate::aws::{describe_error, done_if_gone, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind};
use crate::state::RoleRecord;

/// What goes with the stack's policy, as AWS shows it now: the role, when l5d-ecs made it
/// and no other stack's policy is on it, and its profile when l5d-ecs made that too. `down`
/// lists this before it asks, and deletes exactly this.
pub(super) struct Companions {
    role: Option<Role>,
    /// The profile, and whether it goes too (one l5d-ecs did not make only loses the role).
    profile: Option<(InstanceProfile, bool)>,
}

impl Companions {
    pub(super) async fn find(ctx: &Ctx, record: &RoleRecord) -> Result<Self> {
        let none = Self {
            role: None,
            profile: None,
        };
        let role_name = &record.role_name;
        let Some(role) = get_role(ctx, role_name).await? else {
            return Ok(none);
        };
        let policies = ctx
            .aws
            .iam
            .list_role_policies()
            .role_name(role_name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws(format!("listing the policies of IAM role {role_name}"))?;
        let others = policies.iter().any(|p| *p != record.policy_name);
        if !created_by_l5d_ecs(role.tags()) || others {
            // Not ours, or still used by another stack: it stays.
            return Ok(none);
        }
        let profile = get_instance_profile(ctx, &record.instance_profile_name)
            .await?
            .map(|p| {
                let goes = created_by_l5d_ecs(p.tags()) || record.created_instance_profile;
                (p, goes)
            });
        Ok(Self {
            role: Some(role),
            profile,
        })
    }

    pub(super) fn items(&self) -> Vec<Item> {
        let profile = self.profile.iter().filter(|(_, goes)| *goes).map(|(p, _)| {
            Item::new(
                ResourceKind::InstanceProfile,
                p.instance_profile_name(),
                p.arn(),
            )
        });
        let role = self
            .role
            .iter()
            .map(|r| Item::new(ResourceKind::InstanceRole, r.role_name(), r.arn()));
        profile.chain(role).collect()
    }
}

/// Removes the stack's policy; then the role and profile if l5d-ecs made them and no policy
/// of another stack is left on the role.
pub(super) async fn destroy(ctx: &Ctx, record: &RoleRecord) -> Result<()> {
    let iam = &ctx.aws.iam;
    let role = &record.role_name;
    match iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(&record.policy_name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
        Err(e) => bail!(
            "deleting policy {} from IAM role {role}: {}",
            record.policy_name,
            describe_error(&e)
        ),
    }
    ctx.out.record(
        ResourceKind::RolePolicy,
        &record.policy_name,
        role,
        Action::Deleted,
    );

    let companions = Companions::find(ctx, record).await?;
    let Some(found) = &companions.role else {
        ctx.state
            .update(|s| s.resources.instance_role = None)
            .await?;
        return Ok(());
    };
    if let Some((p, goes)) = &companions.profile {
        let profile = p.instance_profile_name();
        if p.roles().iter().any(|r| r.role_name() == role) {
            done_if_gone(
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(profile)
                    .role_name(role)
                    .send()
                    .await,
                &["NoSuchEntity"],
                format!("removing IAM role {role} from instance profile {profile}"),
            )?;
        }
        if *goes {
            done_if_gone(
                iam.delete_instance_profile()
                    .instance_profile_name(profile)
                    .send()
                    .await,
                &["NoSuchEntity"],
                format!("deleting instance profile {profile}"),
            )?;
            ctx.out.record(
                ResourceKind::InstanceProfile,
                profile,
                p.arn(),
                Action::Deleted,
            );
        }
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("listing the managed policies of IAM role {role}"))?;
    for policy in &attached {
        if let Some(arn) = policy.policy_arn() {
            done_if_gone(
                iam.detach_role_policy()
                    .role_name(role)
                    .policy_arn(arn)
                    .send()
                    .await,
                &["NoSuchEntity"],
                format!("detaching {arn} from IAM role {role}"),
            )?;
        }
    }
    done_if_gone(
        iam.delete_role().role_name(role).send().await,
        &["NoSuchEntity"],
        format!("deleting IAM role {role}"),
    )?;
    ctx.state
        .update(|s| s.resources.instance_role = None)
        .await?;
    ctx.out.record(
        ResourceKind::InstanceRole,
        role,
        found.arn(),
        Action::Deleted,
    );
    Ok(())
}
