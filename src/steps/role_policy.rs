//! The nodes' instance role: the inline policy `<stack>-policy` on it, and the role and its
//! instance profile themselves where the account does not have them yet.
//!
//! IAM is account-wide and shared by every stack: a stack removes only its own policy, and the
//! role and profile only when l5d-ecs created them (they carry the created-by tag) and no
//! other stack's policy is left on the role.

use anyhow::{anyhow, bail, Result};
use aws_sdk_iam::types::Tag;

use crate::aws::{
    classify, create_once, describe_error, done_if_gone, error_code, no_retry, AwsResultExt,
};
use crate::context::Ctx;
use crate::output::{Action, ResourceKind};
use crate::stack::{CREATED_BY_TAG, STACK_TAG};
use crate::state::RoleRecord;
use crate::templates;

const MANAGED_POLICY: &str = "service-role/AmazonEC2ContainerServiceforEC2Role";

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

/// What exists of the role, its managed policies, its instance profile and the stack's policy,
/// read with four calls at once.
pub struct RoleFound {
    role: Option<aws_sdk_iam::types::Role>,
    managed_policy_arns: Vec<String>,
    profile: Option<aws_sdk_iam::types::InstanceProfile>,
    policy_document: Option<String>,
}

impl RoleFound {
    /// What `up` would do to the role, its instance profile and the stack's policy.
    pub fn plan(&self, role_name: &str) -> [(ResourceKind, Action, Option<String>); 3] {
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

pub async fn find(ctx: &Ctx, role_name: &str) -> Result<RoleFound> {
    let policy_name = ctx.stack.role_policy();
    let attached = async {
        match ctx
            .aws
            .iam
            .list_attached_role_policies()
            .role_name(role_name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .attached_policies()
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
    let policy = async {
        match ctx
            .aws
            .iam
            .get_role_policy()
            .role_name(role_name)
            .policy_name(&policy_name)
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
    };
    let (role, managed_policy_arns, profile, policy_document) = futures::join!(
        get_role(ctx, role_name),
        attached,
        get_instance_profile(ctx, role_name),
        policy
    );
    Ok(RoleFound {
        role: role?,
        managed_policy_arns: managed_policy_arns?,
        profile: profile?,
        policy_document: policy_document?,
    })
}

pub async fn ensure(ctx: &Ctx, role_name: &str) -> Result<RoleRecord> {
    let found = find(ctx, role_name).await?;
    ensure_found(ctx, found, role_name).await
}

/// As `ensure`, with the look-ups already done.
pub async fn ensure_found(ctx: &Ctx, found: RoleFound, role_name: &str) -> Result<RoleRecord> {
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
            .update(|s| s.resources.instance_role = Some(record.clone()))?;
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
    let (attached, added, policy) = futures::join!(attach, add, policy);
    attached?;
    added?;
    let action = policy?;
    ctx.state
        .update(|s| s.resources.instance_role = Some(record.clone()))?;
    ctx.out
        .record(ResourceKind::RolePolicy, &policy_name, role_name, action);
    Ok(record)
}

/// Removes the stack's policy; then the role and profile if l5d-ecs made them and no policy
/// of another stack is left on the role.
pub async fn destroy(ctx: &Ctx, record: &RoleRecord) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_compare_after_url_decoding() {
        let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%5D%7D";
        assert!(same_policy(
            encoded,
            r#"{"Version":"2012-10-17","Statement":[]}"#
        ));
        assert!(!same_policy(
            encoded,
            r#"{"Version":"2012-10-17","Statement":[1]}"#
        ));
    }
}
