//! Newtypes for AWS ids that would be a bug to mix up.

use std::fmt;

use anyhow::Context as _;

macro_rules! aws_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

aws_id!(
    /// `vpc-…`
    VpcId
);
aws_id!(
    /// `subnet-…`
    SubnetId
);
aws_id!(
    /// `sg-…`
    SecurityGroupId
);
aws_id!(
    /// `i-…`
    InstanceId
);
aws_id!(
    /// `lt-…`
    LaunchTemplateId
);
aws_id!(
    /// An ARN (cluster, task definition, service, role, instance profile).
    Arn
);

/// A random (version 4) UUID, from the system's random number generator. Made here from
/// random bytes rather than with uuid's `v4` feature, which would change the features of the
/// uuid crate the AWS SDK builds, and so rebuild every SDK crate.
pub fn random_uuid() -> anyhow::Result<uuid::Uuid> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the system's random number generator failed ({e})"))?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The create calls that take an idempotency token, each with its own limit on its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenApi {
    /// EC2 RunInstances: at most 64 ASCII characters.
    RunInstances,
    /// EC2 CreateLaunchTemplate: its reference allows 128; EC2's idempotency guide gives 64 for
    /// client tokens in general, and 64 fits both.
    CreateLaunchTemplate,
    /// ECS CreateService: at most 36 ASCII characters (33-126).
    CreateService,
    /// ECS RunTask: at most 64 ASCII characters (33-126).
    RunTask,
}

impl TokenApi {
    pub const fn max_len(self) -> usize {
        match self {
            Self::RunInstances | Self::CreateLaunchTemplate | Self::RunTask => 64,
            Self::CreateService => 36,
        }
    }
}

/// An idempotency token. AWS answers a repeated token with the first call's result, for
/// hours and even after that resource is gone, so a token belongs to one intended resource:
/// it is random, kept in the state file only until that resource is recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClientToken(String);

impl ClientToken {
    const PREFIX: &'static str = "l5d-ecs-";

    /// A fresh random (v4 UUID) token within `api`'s limit, prefixed with `l5d-ecs-` where the
    /// limit leaves room, so that CloudTrail shows who sent it.
    pub fn generate(api: TokenApi) -> anyhow::Result<Self> {
        let uuid = random_uuid()
            .context("cannot make an idempotency token")?
            .hyphenated()
            .to_string();
        let token = if Self::PREFIX.len() + uuid.len() <= api.max_len() {
            format!("{}{uuid}", Self::PREFIX)
        } else {
            uuid
        };
        Ok(Self(token))
    }

    /// Whether `api` takes it: not too long, printable ASCII only.
    pub fn fits(&self, api: TokenApi) -> bool {
        !self.0.is_empty()
            && self.0.len() <= api.max_len()
            && self.0.bytes().all(|b| (33..=126).contains(&b))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(api: TokenApi, max: usize) {
        let a = ClientToken::generate(api).unwrap();
        let b = ClientToken::generate(api).unwrap();
        assert!(a.as_str().len() <= max, "{api:?}: {a} is longer than {max}");
        assert!(a.fits(api), "{api:?}: {a}");
        assert_ne!(a, b, "{api:?}: two tokens must never be the same");
        // The whole v4 UUID is kept: no randomness is cut to fit.
        let uuid = a.as_str().trim_start_matches(ClientToken::PREFIX);
        assert_eq!(uuid.len(), 36, "{a}");
        assert_eq!(uuid.as_bytes()[14], b'4', "version 4: {a}");
    }

    #[test]
    fn create_service_tokens_fit_36_characters() {
        check(TokenApi::CreateService, 36);
        assert!(!ClientToken("x".repeat(37)).fits(TokenApi::CreateService));
    }

    #[test]
    fn run_task_tokens_fit_64_characters() {
        check(TokenApi::RunTask, 64);
        assert!(ClientToken::generate(TokenApi::RunTask)
            .unwrap()
            .as_str()
            .starts_with("l5d-ecs-"));
    }

    #[test]
    fn run_instances_tokens_fit_64_characters() {
        check(TokenApi::RunInstances, 64);
        assert!(!ClientToken("x".repeat(65)).fits(TokenApi::RunInstances));
    }

    #[test]
    fn create_launch_template_tokens_fit_64_characters() {
        check(TokenApi::CreateLaunchTemplate, 64);
    }

    #[test]
    fn tokens_are_printable_ascii() {
        assert!(!ClientToken("a b".into()).fits(TokenApi::RunTask));
        assert!(!ClientToken(String::new()).fits(TokenApi::RunTask));
    }
}
