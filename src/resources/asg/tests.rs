use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification};

use super::ensure::differences;
use crate::stack::Sizes;
use crate::state::{LaunchConfigKind, LaunchConfigRecord};

fn sizes() -> Sizes {
    Sizes {
        min: 1,
        max: 3,
        desired: 2,
    }
}

fn launch(kind: LaunchConfigKind, name: &str) -> LaunchConfigRecord {
    LaunchConfigRecord {
        kind,
        name: name.to_owned(),
        launch_template_id: None,
        retired: Vec::new(),
    }
}

fn group() -> aws_sdk_autoscaling::types::builders::AutoScalingGroupBuilder {
    AutoScalingGroup::builder()
        .min_size(1)
        .max_size(3)
        .desired_capacity(2)
}

#[test]
fn a_group_as_up_wants_it_has_no_differences() {
    let g = group().launch_configuration_name("l5d-demo-lc").build();
    let lc = launch(LaunchConfigKind::LaunchConfiguration, "l5d-demo-lc");
    assert!(differences(&g, &lc, sizes()).is_empty());

    let g = group()
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("l5d-demo-lt")
                .build(),
        )
        .build();
    let lt = launch(LaunchConfigKind::LaunchTemplate, "l5d-demo-lt");
    assert!(differences(&g, &lt, sizes()).is_empty());
}

#[test]
fn other_sizes_and_another_launch_are_named() {
    let g = AutoScalingGroup::builder()
        .min_size(0)
        .max_size(3)
        .desired_capacity(0)
        .launch_configuration_name("l5d-demo-lc")
        .build();
    let lc = launch(
        LaunchConfigKind::LaunchConfiguration,
        "l5d-demo-lc-0a1b2c3d",
    );
    assert_eq!(
        differences(&g, &lc, sizes()),
        [
            "sizes min/max/desired 0/3/0, want 1/3/2",
            "launches from something other than l5d-demo-lc-0a1b2c3d",
        ]
    );
}
