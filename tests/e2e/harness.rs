//! Self-tests of the test harness (`support`): moto, the pool of servers, the counting proxy, fault injection,
//! the stand-in ECS agent and the read-back helpers. They do not run l5d-ecs.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_reset_forgets_everything() {
    let t = TestEnv::new().await;
    t.aws
        .ec2
        .create_security_group()
        .group_name("harness-sg")
        .description("harness")
        .send()
        .await
        .expect("create_security_group");
    assert!(t.aws.security_group("harness-sg").await.is_some());
    t.moto.reset();
    assert!(t.aws.security_group("harness-sg").await.is_none());
}

/// Two leases held at once are two servers: what one test creates, the other does not see.
/// (Leases without [`TestEnv`]: a test holding two shares of the machine could deadlock behind
/// one waiting for all of it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_held_at_once_are_servers_of_their_own() {
    if servers_wanted() < 2 {
        return; // one server: a second lease would wait for this test's first
    }
    let (_a, moto_a) = Lease::take().await;
    let (_b, moto_b) = Lease::take().await;
    assert_ne!(moto_a.url(), moto_b.url());
    moto_a.reset();
    moto_b.reset();
    let a = Aws::connect(moto_a.url(), REGION).await;
    let b = Aws::connect(moto_b.url(), REGION).await;
    a.ecs
        .create_cluster()
        .cluster_name("leased-a")
        .send()
        .await
        .expect("create_cluster");
    assert!(a.cluster_active("leased-a").await);
    assert!(!b.cluster_active("leased-a").await);
    // Leave both as a reset leaves them, for whoever leases them next.
    moto_a.reset();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_has_what_the_tool_needs() {
    let t = TestEnv::new().await;
    // The AMI parameter resolves to an image moto knows.
    let ami = recommended_ami(&t.aws).await;
    let images = t
        .aws
        .ec2
        .describe_images()
        .image_ids(&ami)
        .send()
        .await
        .expect("describe_images");
    assert_eq!(images.images().len(), 1, "AMI {ami} unknown to moto");
    // The default VPC has a default subnet per AZ.
    let (subnet, az) = default_subnet_first_az(&t.aws).await;
    assert!(subnet.starts_with("subnet-"));
    assert_eq!(az, "us-west-1a");
    // AWS managed policies are loaded (MOTO_IAM_LOAD_MANAGED_POLICIES=true).
    t.aws
        .iam
        .get_policy()
        .policy_arn(ECS_MANAGED_POLICY_ARN)
        .send()
        .await
        .expect("AmazonEC2ContainerServiceforEC2Role exists in moto");
    // The account is moto's fixed one.
    let who = t
        .aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect("get_caller_identity");
    assert_eq!(who.account(), Some(ACCOUNT_ID));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_records_service_and_operation() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let via = Aws::connect(&proxy.url(), REGION).await;

    via.ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    via.ecs
        .create_cluster()
        .cluster_name("harness")
        .send()
        .await
        .expect("CreateCluster");
    via.ecs.list_clusters().send().await.expect("ListClusters");
    via.iam.list_roles().send().await.expect("ListRoles");
    via.autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    via.ssm
        .get_parameter()
        .name(AMI_PARAMETER)
        .send()
        .await
        .expect("GetParameter");
    via.sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");

    let seen: Vec<(String, String)> = proxy
        .calls()
        .into_iter()
        .map(|c| (c.service, c.operation))
        .collect();
    let expected: Vec<(String, String)> = [
        ("ec2", "DescribeVpcs"),
        ("ecs", "CreateCluster"),
        ("ecs", "ListClusters"),
        ("iam", "ListRoles"),
        ("autoscaling", "DescribeAutoScalingGroups"),
        ("ssm", "GetParameter"),
        ("sts", "GetCallerIdentity"),
    ]
    .iter()
    .map(|(s, o)| (s.to_string(), o.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert!(proxy.calls().iter().all(|c| c.status == 200));
    let mutating: Vec<String> = proxy
        .mutating_calls()
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(mutating, vec!["CreateCluster".to_string()]);
    assert_eq!(proxy.count("ListClusters"), 1);
    // The call really reached moto.
    assert!(t.aws.cluster_active("harness").await);

    proxy.clear();
    assert!(proxy.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_injects_faults() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let via = Aws::connect(&proxy.url(), REGION).await;

    proxy.fail(
        "CreateLaunchConfiguration",
        FaultResponse::query(
            400,
            "UnsupportedOperation",
            "The Launch Configuration creation operation is not available in your account.",
        ),
    );
    let err = via
        .autoscaling
        .create_launch_configuration()
        .launch_configuration_name("harness-lc")
        .image_id(recommended_ami(&t.aws).await)
        .instance_type("m4.xlarge")
        .send()
        .await
        .expect_err("injected fault");
    assert_eq!(
        aws_sdk_autoscaling::error::ProvideErrorMetadata::code(&err),
        Some("UnsupportedOperation")
    );
    assert!(t.aws.launch_configuration("harness-lc").await.is_none());

    proxy.fail_times(
        "DescribeSecurityGroups",
        1,
        FaultResponse::ec2(403, "UnauthorizedOperation", "no"),
    );
    let err = via
        .ec2
        .describe_security_groups()
        .send()
        .await
        .expect_err("first call fails");
    assert_eq!(
        aws_sdk_ec2::error::ProvideErrorMetadata::code(&err),
        Some("UnauthorizedOperation")
    );
    via.ec2
        .describe_security_groups()
        .send()
        .await
        .expect("second call is forwarded");

    proxy.fail(
        "DeleteCluster",
        FaultResponse::json(400, "ClusterContainsServicesException", "services left"),
    );
    let err = via
        .ecs
        .delete_cluster()
        .cluster("nope")
        .send()
        .await
        .expect_err("injected");
    assert!(err
        .as_service_error()
        .is_some_and(|e| e.is_cluster_contains_services_exception()));
    proxy.clear_faults();
    let statuses: Vec<(String, u16)> = proxy
        .calls()
        .into_iter()
        .map(|c| (c.operation, c.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("CreateLaunchConfiguration".to_string(), 400),
            ("DescribeSecurityGroups".to_string(), 403),
            ("DescribeSecurityGroups".to_string(), 200),
            ("DeleteCluster".to_string(), 400),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_agent_registers_asg_instances_once() {
    let t = TestEnv::new().await;
    let ami = recommended_ami(&t.aws).await;
    let (subnet, _) = default_subnet_first_az(&t.aws).await;
    t.aws
        .autoscaling
        .create_launch_configuration()
        .launch_configuration_name("h-lc")
        .image_id(&ami)
        .instance_type("m4.xlarge")
        .send()
        .await
        .expect("create_launch_configuration");
    t.aws
        .autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name("h-asg")
        .launch_configuration_name("h-lc")
        .min_size(1)
        .max_size(3)
        .desired_capacity(2)
        .vpc_zone_identifier(&subnet)
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .key("Name")
                .value("h-ecs")
                .propagate_at_launch(true)
                .build(),
        )
        .send()
        .await
        .expect("create_auto_scaling_group");
    t.aws
        .ecs
        .create_cluster()
        .cluster_name("h")
        .send()
        .await
        .expect("create_cluster");
    let nodes = t.aws.live_instances("h-ecs").await;
    assert_eq!(nodes.len(), 2);
    let mut registered = t.aws.register_container_instances("h").await;
    registered.sort();
    let mut expected: Vec<String> = nodes
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(registered, expected);
    assert!(t.aws.register_container_instances("h").await.is_empty());
    let cis = t.aws.container_instances("h").await;
    assert_eq!(cis.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(cis.values().all(|s| s == "ACTIVE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_an_empty_account_is_empty() {
    let t = TestEnv::new().await;
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    assert!(snap.leftovers().is_empty(), "{:?}", snap.leftovers());
    assert!(t.aws.role(INSTANCE_ROLE).await.is_none());
    assert!(t.aws.instance_profile(INSTANCE_ROLE).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_server_answers() {
    let server = TextServer::start("198.51.100.23\n").await;
    let port: u16 = server
        .url()
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (status, body) = tokio::task::spawn_blocking(move || http_call(port, "GET", "/", ""))
        .await
        .unwrap()
        .expect("GET checkip stand-in");
    assert_eq!(status, 200);
    assert_eq!(body, "198.51.100.23\n");
    assert_eq!(server.hits(), 1);
}

#[test]
fn helpers() {
    assert_eq!(percent_decode("a%20b+c%3D%7B"), "a b c={");
    assert_eq!(percent_decode("100%"), "100%");
    assert!(is_mutating("RunInstances"));
    assert!(is_mutating("PutRolePolicy"));
    assert!(is_mutating("AuthorizeSecurityGroupIngress"));
    assert!(!is_mutating("DescribeInstances"));
    assert!(!is_mutating("GetCallerIdentity"));
    assert!(!is_mutating("ListTaskDefinitions"));
    assert_eq!(
        arn_family("arn:aws:ecs:us-west-1:123456789012:task-definition/l5d-demo-linkerd-viz:3"),
        "l5d-demo-linkerd-viz"
    );
    let doc = policy_json(
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22ec2%3ADescribeInstances%22%5D%2C%22Resource%22%3A%22*%22%7D%5D%7D",
    );
    let (actions, non_allow) = allowed_actions(&doc);
    assert_eq!(
        actions.into_iter().collect::<Vec<_>>(),
        vec!["ec2:DescribeInstances"]
    );
    assert!(!non_allow);
    assert_valid_bash("a trivial script", "#!/bin/bash\nset -eu\necho ok\n");
    let version = moto_pin()
        .strip_prefix("moto[server]==")
        .unwrap_or_default();
    assert!(
        !version.is_empty() && version.split('.').all(|n| n.parse::<u32>().is_ok()),
        "tests/awsrules/requirements.txt pins moto as {:?}",
        moto_pin()
    );
}
