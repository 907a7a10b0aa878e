//! Newtypes for AWS ids that would be a bug to mix up.

use std::fmt;

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
