//! The stack's name, every AWS name and tag derived from it, and the checks on user input
//! that run before any AWS call.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

mod location;
pub use location::{parse_s3_object, parse_state_location, S3Object, StateLocation};

/// Tag key carried by every taggable resource of a stack; its value is the stack name.
pub const STACK_TAG: &str = "l5d-ecs:stack";
/// Tag on IAM roles and instance profiles that l5d-ecs created (value: the stack that created
/// them). IAM is account-wide, so whichever stack removes the last policy may remove them.
pub const CREATED_BY_TAG: &str = "l5d-ecs:created-by";

/// Input refused before any AWS call (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// A validated stack name: lowercase letters, digits and dashes, starting with a letter,
/// at most 32 characters (so every derived name stays within AWS's limits).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StackName(String);

impl StackName {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_chars = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let starts_with_letter = raw.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if raw.is_empty()
            || raw.len() > Self::MAX_LEN
            || !ok_chars
            || !starts_with_letter
            || raw.ends_with('-')
        {
            return Err(format!(
                "invalid stack name {raw:?}: use 1 to {} lowercase letters, digits and dashes, \
                 starting with a letter and not ending with a dash",
                Self::MAX_LEN
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn security_group(&self) -> String {
        format!("{}-sg", self.0)
    }
    pub fn cluster(&self) -> String {
        self.0.clone()
    }
    pub fn launch_configuration(&self) -> String {
        format!("{}-lc", self.0)
    }
    pub fn launch_template(&self) -> String {
        format!("{}-lt", self.0)
    }
    pub fn asg(&self) -> String {
        format!("{}-asg", self.0)
    }
    pub fn consul_server_tag(&self) -> String {
        format!("{}-consul-server", self.0)
    }
    pub fn node_tag(&self) -> String {
        format!("{}-ecs", self.0)
    }
    /// The ASG's scheduled action, and the IAM role of the consul server's schedule.
    pub fn expiry(&self) -> String {
        format!("{}-expiry", self.0)
    }
    /// The EventBridge Scheduler schedule that terminates the consul server at the deadline.
    pub fn consul_expiry(&self) -> String {
        format!("{}-consul-expiry", self.0)
    }
    pub fn role_policy(&self) -> String {
        format!("{}-policy", self.0)
    }
    /// Task definition family, and daemon service name, of one of the demo's apps.
    pub fn family(&self, app: &str) -> String {
        format!("{}-{app}", self.0)
    }
    /// CloudWatch Logs group that every container of the stack logs to (awslogs driver).
    pub fn log_group(&self) -> String {
        format!("/l5d-ecs/{}", self.0)
    }
    /// `startedBy` of the app tasks this tool runs (at most 36 characters).
    pub fn started_by(&self) -> String {
        let mut s = format!("l5d-ecs/{}", self.0);
        s.truncate(36);
        s
    }
    pub fn default_state_path(&self) -> std::path::PathBuf {
        std::path::Path::new(".l5d-ecs").join(format!("{}.json", self.0))
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StackName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<StackName> for String {
    fn from(value: StackName) -> String {
        value.0
    }
}

/// An IPv4 or IPv6 network in CIDR notation with no host bits set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
    /// 0.0.0.0/0 or ::/0: the whole internet.
    pub fn is_open_to_world(&self) -> bool {
        self.prefix == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid CIDR {raw:?}: {why}; write an address and a prefix length, e.g. 203.0.113.7/32")
        };
        let (addr, prefix) = raw.split_once('/').ok_or_else(|| bad("no prefix length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?;
        let host_bits_set = match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                prefix < 32 && bits & (u32::MAX >> prefix) != 0
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                prefix < 128 && bits & (u128::MAX >> prefix) != 0
            }
        };
        if host_bits_set {
            return Err(format!(
                "invalid CIDR {raw:?}: host bits are set after the /{prefix} prefix; \
                 give the network address (or /{max} for a single host)"
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl From<Cidr> for String {
    fn from(value: Cidr) -> String {
        value.to_string()
    }
}

pub fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    raw.parse()
}

/// A duration written with a unit (`90s`, `10m`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

pub fn parse_duration(raw: &str) -> Result<Timeout, String> {
    let bad = || {
        format!(
            "invalid duration {raw:?}: write a whole number with a unit, s, m or h (e.g. 90s, 10m, 1h)"
        )
    };
    let unit_at = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = raw.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(bad)?;
    if seconds == 0 {
        return Err(format!(
            "invalid duration {raw:?}: it must be longer than zero"
        ));
    }
    Ok(Timeout(Duration::from_secs(seconds)))
}

/// `up --expires-in`: a duration from now, or `never` to remove the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresIn {
    Never,
    After(Duration),
}

/// The shortest and longest `--expires-in`: long enough for `up` to finish first, short
/// enough that a forgotten deadline is still a deadline.
pub const EXPIRES_IN_RANGE: (Duration, Duration) = (
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 24 * 3600),
);

pub fn parse_expires_in(raw: &str) -> Result<ExpiresIn, String> {
    if raw == "never" {
        return Ok(ExpiresIn::Never);
    }
    let Timeout(d) = parse_duration(raw).map_err(|e| format!("{e}, or never"))?;
    let (min, max) = EXPIRES_IN_RANGE;
    if d < min || d > max {
        return Err(format!(
            "invalid --expires-in {raw:?}: from 15m to 720h (30 days), or never"
        ));
    }
    Ok(ExpiresIn::After(d))
}

/// EC2 instance types look like `m4.xlarge`, `t3a.micro`, `m7i-flex.large`.
pub fn parse_instance_type(raw: &str) -> Result<String, String> {
    let valid = raw.split_once('.').is_some_and(|(family, size)| {
        family.starts_with(|c: char| c.is_ascii_lowercase())
            && family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !size.is_empty()
            && size
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "invalid instance type {raw:?}: expected FAMILY.SIZE such as m4.xlarge or t3.medium"
        ))
    }
}

/// The auto scaling group's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

impl Sizes {
    pub const DEFAULT: Sizes = Sizes {
        min: 1,
        max: 3,
        desired: 2,
    };

    /// Each size from its flag, else from what the last `up` asked for, else the default;
    /// then checked: min <= desired <= max, at least one node at most.
    pub fn resolve(
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
        recorded: Option<Sizes>,
    ) -> anyhow::Result<Sizes> {
        let base = recorded.unwrap_or(Self::DEFAULT);
        let sizes = Sizes {
            min: min.unwrap_or(base.min),
            max: max.unwrap_or(base.max),
            desired: desired.unwrap_or(base.desired),
        };
        check_sizes(sizes.min, sizes.desired, sizes.max)?;
        Ok(sizes)
    }
}

/// `--min`, `--desired` and `--max` must be in order, with at least one node at most.
pub fn check_sizes(min: u32, desired: u32, max: u32) -> anyhow::Result<()> {
    if max == 0 {
        return Err(usage(format!(
            "invalid --max {max}: the group needs at least one node"
        )));
    }
    if !(min <= desired && desired <= max) {
        return Err(usage(format!(
            "invalid sizes --min {min} --desired {desired} --max {max}: \
             they must satisfy min <= desired <= max"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
