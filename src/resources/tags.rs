//! The `l5d-ecs:stack` tag every resource of a stack carries, and the refusal to touch a
//! resource that has the stack's name but not its tag.

use crate::stack::{StackName, STACK_TAG};

pub fn ec2_tags(stack: &StackName, name: &str) -> Vec<aws_sdk_ec2::types::Tag> {
    [("Name", name), (STACK_TAG, stack.as_str())]
        .into_iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

pub fn ec2_tag_spec(
    stack: &StackName,
    name: &str,
    resource: aws_sdk_ec2::types::ResourceType,
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2_tags(stack, name)))
        .build()
}

pub fn ec2_has_stack_tag(tags: &[aws_sdk_ec2::types::Tag], stack: &StackName) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(stack.as_str()))
}

pub fn ecs_stack_tag(stack: &StackName) -> aws_sdk_ecs::types::Tag {
    aws_sdk_ecs::types::Tag::builder()
        .key(STACK_TAG)
        .value(stack.as_str())
        .build()
}

pub fn ecs_has_stack_tag(tags: &[aws_sdk_ecs::types::Tag], stack: &StackName) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(stack.as_str()))
}

/// The error for a resource that has the stack's name but not its tag: somebody else's.
pub fn not_ours(kind: &str, name: &str, id: &str, stack: &StackName) -> anyhow::Error {
    anyhow::anyhow!(
        "a {kind} named {name} ({id}) already exists but was not created by l5d-ecs for stack \
         {stack} (it has no {STACK_TAG}={stack} tag); l5d-ecs will not adopt or delete it. Choose \
         another --stack, or remove it yourself"
    )
}
