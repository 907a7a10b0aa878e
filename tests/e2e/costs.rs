//! What stacks burn, and where (issue 13): `list --all-regions` finds this tool's stacks in
//! every enabled region by their tag, with their running instances and vCPUs, and whether a
//! state file here knows them; `status` and `plan` say what the stack runs now. Checked
//! against the instances read back from each region.

use crate::support::*;

/// m4.xlarge, the default instance type.
const VCPUS_PER_INSTANCE: u64 = 4;

async fn running_in(t: &TestEnv, region: &str, stack: &str) -> u64 {
    let aws = t.aws_in(region).await;
    aws.running_instances(stack).await.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_regions_finds_the_stacks_of_three_regions_with_what_they_run() {
    let t = TestEnv::new().await;
    let stacks = [
        ("demo-a", "us-west-1"),
        ("demo-b", "eu-west-1"),
        ("demo-c", "ap-southeast-2"),
    ];
    for (stack, region) in stacks {
        // One of them with a deadline, which the list shows.
        let deadline: &[&str] = if stack == "demo-b" {
            &["--expires-in", "2h"]
        } else {
            &[]
        };
        t.cli()
            .args(["--stack", stack, "--region", region])
            .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
            .args(deadline.iter().copied())
            .run()
            .await
            .assert_success();
    }
    // Another tool's tag in a fourth region is no stack of ours.
    let other = t.aws_in("us-east-2").await;
    other
        .ec2
        .create_security_group()
        .group_name("not-ours")
        .description("another tool")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("other-tool:stack")
                        .value("demo-x")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create another tool's group");

    let list = t
        .cli()
        .args(["list", "--all-regions", "--output", "json"])
        .run()
        .await;
    list.assert_success();
    let doc = list.json();
    let found = doc["all_regions"]["stacks"].as_array().expect("stacks");
    let pairs: Vec<(String, String)> = found
        .iter()
        .map(|s| {
            (
                s["stack"].as_str().unwrap().to_owned(),
                s["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = stacks
        .iter()
        .map(|(s, r)| (s.to_string(), r.to_string()))
        .collect();
    assert_eq!(pairs, expected, "{doc:#}");
    assert!(
        doc["all_regions"]["regions"].as_array().unwrap().len() > 3,
        "every enabled region is searched: {doc:#}"
    );
    for s in found {
        let (stack, region) = (s["stack"].as_str().unwrap(), s["region"].as_str().unwrap());
        let running = running_in(&t, region, stack).await;
        assert!(
            running >= 2,
            "{stack} in {region} runs {running} instance(s)"
        );
        assert_eq!(s["instances"].as_u64(), Some(running), "{s}");
        assert_eq!(
            s["vcpus"].as_u64(),
            Some(running * VCPUS_PER_INSTANCE),
            "{s}"
        );
        assert!(
            s["state_file"].as_str().is_some_and(|f| f.contains(stack)),
            "{s}"
        );
    }

    // status and plan say what one of them runs now.
    let running = running_in(&t, "eu-west-1", "demo-b").await;
    for command in ["status", "plan"] {
        let out = t
            .cli()
            .args(["--stack", "demo-b", "--region", "eu-west-1", command])
            .args(["--output", "json"])
            .run()
            .await;
        out.assert_success();
        let doc = out.json();
        let burn = &doc[if command == "status" {
            "status"
        } else {
            "plan"
        }]["running"];
        assert_eq!(
            burn["instances"].as_u64(),
            Some(running),
            "{command}: {doc:#}"
        );
        assert_eq!(burn["vcpus"].as_u64(), Some(running * VCPUS_PER_INSTANCE));
        assert!(burn["instance_hours"].as_f64().is_some_and(|h| h >= 0.0));
    }

    // down --discover in each region removes what the list found.
    for (stack, region) in stacks {
        t.cli()
            .args(["--stack", stack, "--region", region])
            .args(["down", "--discover", "--yes"])
            .run()
            .await
            .assert_success();
        assert_eq!(running_in(&t, region, stack).await, 0);
    }
    // The deadline's role went with its stack (IAM is global, the region does not matter).
    let role = t.aws.iam.get_role().role_name("demo-b-expiry").send().await;
    assert!(role.is_err(), "down --discover left the role demo-b-expiry");
    let after = t
        .cli()
        .args(["list", "--all-regions", "--output", "json"])
        .run()
        .await;
    after.assert_success();
    let left = after.json()["all_regions"]["stacks"].clone();
    assert_eq!(left, serde_json::json!([]), "{after}");
}
