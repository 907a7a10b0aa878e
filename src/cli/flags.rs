//! Each command's flags as the settings resolver takes them: a command that lacks a flag
//! leaves it to what the last `up` recorded, or the default.

use super::{AsgArgs, ConsulServerArgs, LaunchConfigArgs, RoleArgs, SecurityGroupArgs, UpArgs};
use crate::resources::settings::Flags;

impl UpArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            network: Some(&self.network),
            access: Some(&self.access),
            instance: Some(&self.instance),
            size: Some(&self.size),
            role: Some(&self.role),
            instance_role: None,
            launch_template: self.launch_template,
            expires_in: self.expires_in,
        }
    }
}

impl SecurityGroupArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            network: Some(&self.network),
            access: Some(&self.access),
            ..Flags::default()
        }
    }
}

impl ConsulServerArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            instance: Some(&self.instance),
            ..Flags::default()
        }
    }
}

impl RoleArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            role: Some(self),
            ..Flags::default()
        }
    }
}

impl LaunchConfigArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            instance: Some(&self.instance),
            role: Some(&self.role),
            launch_template: self.launch_template,
            ..Flags::default()
        }
    }
}

impl AsgArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            size: Some(&self.size),
            ..Flags::default()
        }
    }
}
