//! Create-or-repair of the role, its instance profile and the stack's policy, from what
//! [`super::find`] saw.

use anyhow::{bail, Result};

use super::{
    created_by_l5d_ecs, get_instance_profile, get_role, iam_tags, managed_policy_arn, same_policy,
    RoleFound, MANAGED_POLICY,
};
use crate::aws::{classify, create_once, no_retry, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::resources::Usable;
use crate::state::RoleRecord;
use crate::templates;

/// Makes what is missing, records it, and puts the stack's policy on the role. Once the role
/// is in its profile (and recorded), the launch configuration may go: the inline policy
/// matters only to running nodes, so it is put beside it.
pub(super) async fn ensure_found(
    ctx: &Ctx,
    found: RoleFound,
    role_name: &str,
    usable: &Usable,
) -> Result<()> {
    let iam = &ctx.aws.iam;
    let policy_name = ctx.stack.role_policy();
    let profile_name = role_name;
    let tags = iam_tags(ctx)?;

    // First the role and its instance profile (of the same name, as the ECS console makes
    // them), at once: neither needs the other to exist.
    let role = async {
        match &found.role {
            Some(role) => {
                let ours = created_by_l5d_ecs(role.tags());
                let action = if ours { Action::Kept } else { Action::Used };
                Ok::<_, anyhow::Error>((ours, role.arn().to_owned(), action))
            }
            None => {
                let arn = create_once(
                    &format!("creating IAM role {role_name}"),
                    || async {
                        iam.create_role()
                            .role_name(role_name)
                            .assume_role_policy_document(templates::EC2_TRUST_POLICY)
                            .description("ECS container instances of l5d-ecs stacks")
                            .set_tags(Some(tags.clone()))
                            .customize()
                            .config_override(no_retry!(aws_sdk_iam))
                            .send()
                            .await
                            .map(|out| out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
                            .map_err(classify)
                    },
                    || async { Ok(get_role(ctx, role_name).await?.map(|r| r.arn().to_owned())) },
                )
                .await?;
                Ok((true, arn, Action::Created))
            }
        }
    };
    let profile = async {
        match &found.profile {
            Some(p) => {
                let roles: Vec<String> =
                    p.roles().iter().map(|r| r.role_name().to_owned()).collect();
                Ok::<_, anyhow::Error>((
                    created_by_l5d_ecs(p.tags()),
                    roles,
                    p.arn().to_owned(),
                    None,
                ))
            }
            None => {
                let arn = create_once(
                    &format!("creating instance profile {profile_name}"),
                    || async {
                        iam.create_instance_profile()
                            .instance_profile_name(profile_name)
                            .set_tags(Some(tags.clone()))
                            .customize()
                            .config_override(no_retry!(aws_sdk_iam))
                            .send()
                            .await
                            .map(|out| {
                                out.instance_profile()
                                    .map(|p| p.arn().to_owned())
                                    .unwrap_or_default()
                            })
                            .map_err(classify)
                    },
                    || async {
                        Ok(get_instance_profile(ctx, profile_name)
                            .await?
                            .map(|p| p.arn().to_owned()))
                    },
                )
                .await?;
                Ok((true, Vec::new(), arn, Some(Action::Created)))
            }
        }
    };
    let (role, profile) = futures::join!(role, profile);
    // Whatever was made is recorded before anything else can fail.
    let record = RoleRecord {
        role_name: role_name.to_owned(),
        instance_profile_name: profile_name.to_owned(),
        policy_name: policy_name.clone(),
        created_role: role.as_ref().is_ok_and(|r| r.0),
        created_instance_profile: profile.as_ref().is_ok_and(|p| p.0),
    };
    if record.created_role || record.created_instance_profile {
        ctx.state
            .update(|s| s.resources.instance_role = Some(record.clone()))
            .await?;
    }
    let (_, role_arn, role_action) = role?;
    let (_, profile_roles, profile_arn, profile_action) = profile?;
    ctx.out
        .record(ResourceKind::InstanceRole, role_name, role_arn, role_action);
    if let Some(action) = profile_action {
        ctx.out.record(
            ResourceKind::InstanceProfile,
            profile_name,
            &profile_arn,
            action,
        );
    }
    if !profile_roles.is_empty() && !profile_roles.iter().any(|r| r == role_name) {
        bail!(
            "instance profile {profile_name} ({profile_arn}) holds role {} instead of {role_name}; \
             pass another --instance-role",
            profile_roles.join(", ")
        );
    }

    // Then, at once: the managed policy on a role l5d-ecs made (also when the role was
    // found: a run that crashed between the two calls left it bare), the role into the
    // profile, and the stack's own inline policy.
    let managed = managed_policy_arn(ctx);
    let attach = async {
        if !record.created_role || found.managed_policy_arns.contains(&managed) {
            return Ok(());
        }
        iam.attach_role_policy()
            .role_name(role_name)
            .policy_arn(&managed)
            .send()
            .await
            .aws(format!(
                "attaching {MANAGED_POLICY} to IAM role {role_name}"
            ))
            .map(|_| ())
    };
    let add = async {
        if !profile_roles.is_empty() {
            return Ok(());
        }
        // LimitExceeded after a lost response means the role is in: look before trying again.
        create_once(
            &format!("adding IAM role {role_name} to instance profile {profile_name}"),
            || async {
                iam.add_role_to_instance_profile()
                    .instance_profile_name(profile_name)
                    .role_name(role_name)
                    .customize()
                    .config_override(no_retry!(aws_sdk_iam))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
            || async {
                let profile = get_instance_profile(ctx, profile_name).await?;
                Ok(profile
                    .filter(|p| p.roles().iter().any(|r| r.role_name() == role_name))
                    .map(|_| ()))
            },
        )
        .await
    };
    let policy = async {
        match &found.policy_document {
            Some(doc) if same_policy(doc, templates::NODE_POLICY) => {
                Ok::<_, anyhow::Error>(Action::Kept)
            }
            current => {
                iam.put_role_policy()
                    .role_name(role_name)
                    .policy_name(&policy_name)
                    .policy_document(templates::NODE_POLICY)
                    .send()
                    .await
                    .aws(format!(
                        "putting policy {policy_name} on IAM role {role_name}"
                    ))?;
                Ok(if current.is_some() {
                    Action::Updated
                } else {
                    Action::Created
                })
            }
        }
    };
    let profile_ready = async {
        let (attached, added) = futures::join!(attach, add);
        attached?;
        added?;
        ctx.state
            .update(|s| s.resources.instance_role = Some(record.clone()))
            .await?;
        usable.now();
        Ok::<_, anyhow::Error>(())
    };
    let (profile_ready, policy) = futures::join!(profile_ready, policy);
    profile_ready?;
    let action = policy?;
    ctx.out
        .record(ResourceKind::RolePolicy, &policy_name, role_name, action);
    Ok(())
}
