//! What a stack is asked to be, resolved once from the flags, the state file and the
//! defaults; and what it derives from AWS (the AMI, the CIDRs to open), looked up at most once
//! per run by whichever resource asks first.

use anyhow::{anyhow, Result};
use tokio::sync::OnceCell;

use crate::context::Ctx;
use crate::options::{AccessArgs, InstanceArgs, NetworkArgs, RoleArgs, SizeArgs};
use crate::stack::{Cidr, ExpiresIn, Sizes};
use crate::state::{InstanceSettings, State};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

pub struct Settings {
    pub network: NetworkArgs,
    /// `--allow-cidr`; empty: what the stack already uses, else the caller's public IP.
    pub allow_cidrs: Vec<Cidr>,
    pub instance: InstanceSettings,
    pub sizes: Sizes,
    pub instance_role: String,
    /// `--launch-template`: nodes from a launch template even where launch configurations
    /// are still offered.
    pub launch_template: bool,
    /// When AWS takes the stack's instances down by itself (`--expires-in`, else what the last
    /// `up` set); `None`: no deadline, or the last one passed.
    pub deadline: Option<DateTime>,
    /// Looked up once, failure included: a second resource that asks gets the same error
    /// rather than a second try that fails the same way (and takes as long).
    ami: OnceCell<Result<String, String>>,
    cidrs: OnceCell<Result<Vec<Cidr>, String>>,
}

/// The flags a command was given; a command without some of them leaves them `None`, and
/// what the last `up` recorded (or the default) is used.
#[derive(Default, Clone, Copy)]
pub struct Flags<'a> {
    pub network: Option<&'a NetworkArgs>,
    pub access: Option<&'a AccessArgs>,
    pub instance: Option<&'a InstanceArgs>,
    pub size: Option<&'a SizeArgs>,
    pub role: Option<&'a RoleArgs>,
    /// `--instance-role` of `down` and `status --discover`.
    pub instance_role: Option<&'a str>,
    pub launch_template: bool,
    pub expires_in: Option<ExpiresIn>,
}

impl Settings {
    /// Checked before any AWS call: bad sizes are a usage error.
    pub fn resolve(flags: Flags<'_>, recorded: Option<&State>) -> Result<Self> {
        let recorded_sizes = recorded
            .and_then(|s| s.resources.asg.as_ref())
            .map(|a| a.sizes());
        let size = flags.size.cloned().unwrap_or_default();
        let sizes = Sizes::resolve(size.min, size.max, size.desired, recorded_sizes)?;
        let instance = InstanceSettings::resolve(
            &flags.instance.cloned().unwrap_or_default(),
            recorded.and_then(|s| s.instance.as_ref()),
        );
        let recorded_role = recorded
            .and_then(|s| s.resources.instance_role.as_ref())
            .map(|r| r.role_name.clone());
        let instance_role = flags
            .role
            .map(|r| r.instance_role.clone())
            .or(flags.instance_role.map(str::to_owned))
            .or(recorded_role)
            .unwrap_or_else(|| RoleArgs::DEFAULT_ROLE.to_owned());
        let now = DateTime::from(std::time::SystemTime::now());
        let deadline = match flags.expires_in {
            Some(ExpiresIn::Never) => None,
            Some(ExpiresIn::After(d)) => Some(DateTime::from_secs(
                now.secs() + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
            )),
            None => recorded
                .and_then(|s| s.expires_at.as_deref())
                .and_then(|t| DateTime::from_str(t, Format::DateTime).ok())
                .filter(|t| t.secs() > now.secs()),
        };
        Ok(Self {
            network: flags.network.cloned().unwrap_or_default(),
            allow_cidrs: flags
                .access
                .map(|a| a.allow_cidrs.clone())
                .unwrap_or_default(),
            instance,
            sizes,
            instance_role,
            launch_template: flags.launch_template,
            deadline,
            ami: OnceCell::new(),
            cidrs: OnceCell::new(),
        })
    }

    /// The nodes' AMI: `--ami`, else the ECS-optimized AMI from SSM (looked up once).
    pub async fn ami(&self, cx: &Ctx) -> Result<&str> {
        self.ami
            .get_or_init(|| async {
                super::ami::resolve(cx, self.instance.ami.as_deref())
                    .await
                    .map_err(|e| format!("{e:#}"))
            })
            .await
            .as_deref()
            .map_err(|e| anyhow!("{e}"))
    }

    /// The CIDRs to open the demo's ports to: `--allow-cidr`, else what the stack already
    /// uses, else the caller's public IP (asked once).
    pub async fn allowed_cidrs(&self, cx: &Ctx) -> Result<&[Cidr]> {
        self.cidrs
            .get_or_init(|| async {
                super::security_group_rules::allowed_cidrs(cx, &self.allow_cidrs)
                    .await
                    .map_err(|e| format!("{e:#}"))
            })
            .await
            .as_ref()
            .map(Vec::as_slice)
            .map_err(|e| anyhow!("{e}"))
    }
}
