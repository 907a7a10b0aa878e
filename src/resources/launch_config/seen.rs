//! What an existing launch configuration or template version starts nodes with, against
//! what `up` would make.

use super::NodeLaunch;

/// What a launch configuration or a template version starts nodes with, read from AWS.
pub(super) struct LaunchSeen<'a> {
    pub image_id: Option<&'a str>,
    pub instance_type: Option<&'a str>,
    pub user_data: Option<&'a str>,
    pub instance_profile: Option<&'a str>,
    pub security_groups: &'a [String],
    pub key_name: Option<&'a str>,
}

impl LaunchSeen<'_> {
    /// How it differs from what `up` would make, in words.
    pub fn differences(&self, launch: &NodeLaunch<'_>, user_data: &str) -> Vec<String> {
        let mut diffs = Vec::new();
        if self.image_id != Some(launch.ami) {
            diffs.push(format!(
                "AMI {} -> {}",
                self.image_id.unwrap_or("?"),
                launch.ami
            ));
        }
        if self.instance_type != Some(launch.instance.instance_type.as_str()) {
            diffs.push(format!(
                "instance type {} -> {}",
                self.instance_type.unwrap_or("?"),
                launch.instance.instance_type
            ));
        }
        if self.user_data.unwrap_or_default() != user_data {
            diffs.push("node user data".to_owned());
        }
        if self.instance_profile != Some(launch.role.instance_profile_name.as_str()) {
            diffs.push("instance profile".to_owned());
        }
        if !self
            .security_groups
            .iter()
            .any(|g| g == launch.sg.id.as_str())
        {
            diffs.push("security group".to_owned());
        }
        if self.key_name.filter(|k| !k.is_empty()) != launch.instance.key_pair.as_deref() {
            diffs.push("key pair".to_owned());
        }
        diffs
    }
}
