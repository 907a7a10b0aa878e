use super::configuration::is_stack_configuration;
use super::*;
use crate::ids::VpcId;

fn sg() -> SecurityGroupRecord {
    SecurityGroupRecord {
        id: SecurityGroupId::from("sg-1"),
        name: "l5d-demo-sg".to_owned(),
        vpc_id: VpcId::from("vpc-1"),
        allowed_cidrs: Vec::new(),
    }
}

fn role() -> RoleRecord {
    RoleRecord {
        role_name: "ecsInstanceRole".to_owned(),
        instance_profile_name: "ecsInstanceRole".to_owned(),
        policy_name: "l5d-demo-policy".to_owned(),
        created_role: false,
        created_instance_profile: false,
    }
}

fn instance(key_pair: Option<&str>) -> InstanceSettings {
    InstanceSettings {
        instance_type: "m4.xlarge".to_owned(),
        key_pair: key_pair.map(str::to_owned),
        ami: None,
    }
}

#[test]
fn a_launch_as_up_would_make_it_has_no_differences() {
    let (sg, role, instance) = (sg(), role(), instance(None));
    let launch = NodeLaunch {
        sg: &sg,
        role: &role,
        ami: "ami-1",
        instance: &instance,
    };
    let groups = ["sg-1".to_owned()];
    let seen = LaunchSeen {
        image_id: Some("ami-1"),
        instance_type: Some("m4.xlarge"),
        user_data: Some("data"),
        instance_profile: Some("ecsInstanceRole"),
        security_groups: &groups,
        // Launch configurations report "no key pair" as an empty name.
        key_name: Some(""),
    };
    assert!(seen.differences(&launch, "data").is_empty());
}

#[test]
fn every_difference_is_named() {
    let (sg, role, instance) = (sg(), role(), instance(Some("me")));
    let launch = NodeLaunch {
        sg: &sg,
        role: &role,
        ami: "ami-2",
        instance: &instance,
    };
    let groups = ["sg-other".to_owned()];
    let seen = LaunchSeen {
        image_id: Some("ami-1"),
        instance_type: Some("t3.small"),
        user_data: Some("old"),
        instance_profile: Some("other"),
        security_groups: &groups,
        key_name: None,
    };
    assert_eq!(
        seen.differences(&launch, "data"),
        [
            "AMI ami-1 -> ami-2",
            "instance type t3.small -> m4.xlarge",
            "node user data",
            "instance profile",
            "security group",
            "key pair",
        ]
    );
}

#[test]
fn replacing_configurations_are_the_stacks_but_others_are_not() {
    let base = "l5d-demo-lc";
    assert!(is_stack_configuration(base, "l5d-demo-lc"));
    assert!(is_stack_configuration(base, "l5d-demo-lc-0a1b2c3d"));
    assert!(!is_stack_configuration(base, "l5d-demo-lc-0a1b2c3"));
    assert!(!is_stack_configuration(base, "l5d-demo-lc-0a1b2c3g"));
    assert!(!is_stack_configuration(base, "l5d-demo-lcx0a1b2c3d"));
    assert!(!is_stack_configuration(base, "l5d-demo-lc-other-lc"));
}
