//! The integration tests of l5d-ecs, in one test binary: the real binary end to end against
//! moto behind the AWS rules layer (`tests/awsrules`), with the harness (`support`) compiled
//! once. Each module was once a test binary of its own; the tests keep their names, prefixed
//! with the module's (`cargo test --test e2e mesh::` runs the mesh tests).
//!
//! Tests run in parallel on cargo's test threads, each AWS test on a server of its own from a
//! small pool (`L5D_TEST_SERVERS`, see [`support::Lease`]).

mod drift_support;
mod mesh_support;
mod support;

mod costs;
mod doctor;
mod expiry;
mod harness;
mod iam_policy;
mod input;
mod launch_template;
mod mesh;
mod newcomer;
mod plan_drift;
mod real_account;
mod realistic_aws;
mod reliability;
mod reliability_kill;
mod s3_state;
mod scale;
mod snapshots;
mod stacks;
mod up_down;
mod userdata;
mod wait;
