//! The policy `l5d-ecs iam-policy` prints is enough, proven under an enforcing IAM (issue 12):
//! moto started with `INITIAL_NO_AUTH_ACTION_COUNT` checks every call after the first few
//! against the caller's policies (by action; every non-S3 resource is `*` to it, so the proof
//! uses `--any-resource`; the scoped ARNs are checked by unit tests). An IAM user holding
//! exactly that policy runs the lifecycle, with its state in S3; with one action taken away,
//! `up` fails naming it, and an admin's `down` removes what was made.

use crate::support::*;

/// Calls moto lets through before it starts checking: the set-up below makes exactly these.
const SET_UP_CALLS: usize = 7;

/// The user's state, in a bucket the set-up makes.
const STATE_BUCKET: &str = "l5d-team-state";

struct Keys {
    id: String,
    secret: String,
}

/// A user with `policy` as its only (inline) policy, and its access key.
async fn user_with(aws: &Aws, name: &str, policy: &str) -> Keys {
    aws.iam.create_user().user_name(name).send().await.unwrap();
    aws.iam
        .put_user_policy()
        .user_name(name)
        .policy_name("only")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = aws
        .iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    Keys {
        id: key.access_key_id().to_owned(),
        secret: key.secret_access_key().to_owned(),
    }
}

fn as_user(dir: &std::path::Path, moto: &Moto, keys: &Keys) -> Cli {
    Cli::new(dir, moto.url())
        .env("AWS_ACCESS_KEY_ID", keys.id.as_str())
        .env("AWS_SECRET_ACCESS_KEY", keys.secret.as_str())
}

async fn policy_json(dir: &std::path::Path, moto: &Moto, without: Option<&str>) -> String {
    let out = Cli::new(dir, moto.url())
        .args(["iam-policy", "--any-resource"])
        .run()
        .await;
    out.assert_success();
    let mut doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("policy JSON");
    if let Some(action) = without {
        for s in doc["Statement"].as_array_mut().unwrap() {
            s["Action"]
                .as_array_mut()
                .unwrap()
                .retain(|a| a.as_str() != Some(action));
        }
    }
    doc.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_policy_is_enough_for_the_lifecycle_and_one_action_less_is_named() {
    let no_auth = SET_UP_CALLS.to_string();
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", no_auth.as_str())]);
    moto.pin_task_states();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let anyone = Aws::connect(moto.url(), REGION).await;

    let admin_policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let full = policy_json(dir.path(), &moto, None).await;
    let less = policy_json(dir.path(), &moto, Some("ecs:CreateCluster")).await;
    let no_put = policy_json(dir.path(), &moto, Some("s3:PutObject")).await;
    let no_delete = policy_json(dir.path(), &moto, Some("s3:DeleteObject")).await;
    // Seven calls, the last ones moto lets through unchecked.
    anyone
        .s3
        .create_bucket()
        .bucket(STATE_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let admin = user_with(&anyone, "admin", admin_policy).await;
    let user = user_with(&anyone, "l5d-user", &full).await;
    let admin_aws = Aws::connect_as(moto.url(), REGION, &admin.id, &admin.secret).await;

    // Checked from here on: the admin may, a stranger may not.
    let stranger = Keys {
        id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "nope".into(),
    };
    let refused = as_user(dir.path(), &moto, &stranger)
        .args(["status"])
        .run()
        .await;
    assert_ne!(
        refused.code,
        Some(0),
        "moto does not enforce IAM\n{refused}"
    );

    // The whole lifecycle with exactly the generated policy, the state in S3. (Not with
    // --expires-in: moto under enforcement refuses every EventBridge Scheduler call, boto3's
    // too, as SignatureDoesNotMatch.)
    let state = format!("s3://{STATE_BUCKET}/{DEFAULT_STACK}.json");
    let up = as_user(dir.path(), &moto, &user)
        .env("L5D_ECS_STATE", state.as_str())
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await;
    up.assert_success();
    admin_aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);
    admin_aws.register_container_instances(DEFAULT_STACK).await;
    for args in [
        vec!["deploy", "hello-world"],
        vec!["status"],
        vec!["logs", "linkerd"],
        vec!["undeploy", "hello-world"],
        vec!["down", "--yes"],
    ] {
        as_user(dir.path(), &moto, &user)
            .env("L5D_ECS_STATE", state.as_str())
            .args(args.iter().copied())
            .run()
            .await
            .assert_success();
    }
    let left = admin_aws.snapshot(DEFAULT_STACK).await.leftovers();
    assert!(left.is_empty(), "the user's down left {left:?}");
    let objects = admin_aws
        .s3
        .list_objects_v2()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        objects.contents().is_empty(),
        "the state, its lock or backup is still in S3: {:?}",
        objects.contents()
    );
    assert!(
        !dir.path().join(".l5d-ecs").exists(),
        "a local state was written"
    );

    // One action less: up fails naming it, and the admin's down removes what it made.
    let lesser = user_with(&admin_aws, "l5d-lesser", &less).await;
    let up = as_user(dir.path(), &moto, &lesser)
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await;
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.contains("ecs:CreateCluster"),
        "the error names the missing action\n{up}"
    );
    // moto checks S3 calls too: without s3:PutObject the lock cannot be taken, and nothing
    // else is done.
    let no_put = user_with(&admin_aws, "l5d-no-put", &no_put).await;
    let refused = as_user(dir.path(), &moto, &no_put)
        .env("L5D_ECS_STATE", state.as_str())
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await;
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("s3:PutObject") && refused.stderr.contains("AccessDenied"),
        "the error names the S3 action refused\n{refused}"
    );
    // Without s3:DeleteObject the run cannot let go of its lock: it fails saying so, and the
    // admin releases the lock by its id.
    let no_delete = user_with(&admin_aws, "l5d-no-delete", &no_delete).await;
    let stuck = as_user(dir.path(), &moto, &no_delete)
        .env("L5D_ECS_STATE", state.as_str())
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await;
    assert_eq!(stuck.code, Some(1), "{stuck}");
    assert!(
        stuck.stderr.contains("s3:DeleteObject") && stuck.stderr.contains("could not release"),
        "the error names the S3 action refused\n{stuck}"
    );
    let lock = admin_aws
        .s3
        .get_object()
        .bucket(STATE_BUCKET)
        .key(format!("{DEFAULT_STACK}.json.lock"))
        .send()
        .await
        .expect("the lock is still there");
    let lock: serde_json::Value =
        serde_json::from_slice(&lock.body.collect().await.unwrap().into_bytes()).unwrap();
    for args in [
        vec!["unlock", lock["id"].as_str().unwrap()],
        vec!["down", "--yes"],
    ] {
        as_user(dir.path(), &moto, &admin)
            .env("L5D_ECS_STATE", state.as_str())
            .args(args)
            .run()
            .await
            .assert_success();
    }
    as_user(dir.path(), &moto, &admin)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    let left = admin_aws.snapshot(DEFAULT_STACK).await.leftovers();
    assert!(left.is_empty(), "the admin's down left {left:?}");
}
