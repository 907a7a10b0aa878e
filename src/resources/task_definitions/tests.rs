use super::*;

#[test]
fn family_from_arn() {
    assert_eq!(
        family_of("arn:aws:ecs:us-west-1:1:task-definition/s-linkerd-viz:3"),
        Some("s-linkerd-viz")
    );
    assert_eq!(family_of("nonsense"), None);
}
