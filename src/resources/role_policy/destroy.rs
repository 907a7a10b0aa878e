//! Removal of the stack's policy, and of the role and profile when l5d-ecs made them and no
//! other stack still uses the role.

use anyhow::{bail, Result};

use super::created_by_l5d_ecs;
use crate::aws::{describe_error, done_if_gone, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::state::RoleRecord;

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

    let found = match iam.get_role().role_name(role).send().await {
        Ok(out) => out.role().cloned(),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
        Err(e) => bail!("looking up IAM role {role}: {}", describe_error(&e)),
    };
    let Some(found) = found else {
        ctx.state.update(|s| s.resources.instance_role = None)?;
        return Ok(());
    };
    let others = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .aws(format!("listing the policies of IAM role {role}"))?;
    if !created_by_l5d_ecs(found.tags()) || !others.policy_names().is_empty() {
        // Not ours, or still used by another stack: leave it.
        ctx.state.update(|s| s.resources.instance_role = None)?;
        return Ok(());
    }

    let profile = &record.instance_profile_name;
    let profile_found = match iam
        .get_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
    {
        Ok(out) => out.instance_profile().cloned(),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
        Err(e) => bail!(
            "looking up instance profile {profile}: {}",
            describe_error(&e)
        ),
    };
    if let Some(p) = profile_found {
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
        if created_by_l5d_ecs(p.tags()) || record.created_instance_profile {
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
        .send()
        .await
        .aws(format!("listing the managed policies of IAM role {role}"))?;
    for policy in attached.attached_policies() {
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
    ctx.state.update(|s| s.resources.instance_role = None)?;
    ctx.out.record(
        ResourceKind::InstanceRole,
        role,
        found.arn(),
        Action::Deleted,
    );
    Ok(())
}
