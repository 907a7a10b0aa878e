use super::*;

#[test]
fn stack_names() {
    for ok in [
        "l5d-demo",
        "a",
        "abc-123",
        "a2345678901234567890123456789012",
    ] {
        assert!(StackName::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Bad_Name",
        "1abc",
        "-abc",
        "abc-",
        "ABC",
        "a b",
        "a23456789012345678901234567890123",
    ] {
        let err = StackName::parse(bad).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn derived_names() {
    let s = StackName::parse("l5d-demo").unwrap();
    assert_eq!(s.security_group(), "l5d-demo-sg");
    assert_eq!(s.launch_configuration(), "l5d-demo-lc");
    assert_eq!(s.launch_template(), "l5d-demo-lt");
    assert_eq!(s.asg(), "l5d-demo-asg");
    assert_eq!(s.consul_server_tag(), "l5d-demo-consul-server");
    assert_eq!(s.node_tag(), "l5d-demo-ecs");
    assert_eq!(s.family("linkerd"), "l5d-demo-linkerd");
    assert_eq!(s.role_policy(), "l5d-demo-policy");
}

#[test]
fn cidrs() {
    for ok in [
        "203.0.113.7/32",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "2001:db8::/32",
        "::/0",
    ] {
        assert_eq!(ok.parse::<Cidr>().unwrap().to_string(), ok);
    }
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0",
        "10.0.0.0/33",
        "300.0.0.0/8",
        "x/8",
        "10.0.0.0/",
        "2001:db8::1/32",
    ] {
        let err = bad.parse::<Cidr>().unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
    assert!("0.0.0.0/0".parse::<Cidr>().unwrap().is_open_to_world());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s").unwrap().0, Duration::from_secs(90));
    assert_eq!(parse_duration("10m").unwrap().0, Duration::from_secs(600));
    assert_eq!(parse_duration("1h").unwrap().0, Duration::from_secs(3600));
    for bad in ["10", "", "m", "1.5m", "10 m", "10min", "-1s", "0s", "1d"] {
        let err = parse_duration(bad).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn instance_types() {
    for ok in ["m4.xlarge", "t3.micro", "m7i-flex.large", "c5n.18xlarge"] {
        assert!(parse_instance_type(ok).is_ok(), "{ok}");
    }
    for bad in ["m4", "M4.xlarge", ".large", "m4.", "m4.x large", "4m.large"] {
        assert!(parse_instance_type(bad).is_err(), "{bad}");
    }
}

#[test]
fn sizes_come_from_flags_then_the_last_up_then_defaults() {
    let last = Sizes {
        min: 0,
        max: 5,
        desired: 4,
    };
    assert_eq!(
        Sizes::resolve(None, None, None, None).unwrap(),
        Sizes::DEFAULT
    );
    assert_eq!(Sizes::resolve(None, None, None, Some(last)).unwrap(), last);
    assert_eq!(
        Sizes::resolve(None, None, Some(1), Some(last)).unwrap(),
        Sizes {
            min: 0,
            max: 5,
            desired: 1
        }
    );
    assert!(Sizes::resolve(Some(3), None, None, None).is_err());
}

#[test]
fn sizes() {
    assert!(check_sizes(1, 2, 3).is_ok());
    assert!(check_sizes(0, 0, 1).is_ok());
    assert!(check_sizes(3, 2, 3).is_err());
    assert!(check_sizes(1, 4, 3).is_err());
    assert!(check_sizes(0, 0, 0).is_err());
}

#[test]
fn expires_in_is_a_duration_within_bounds_or_never() {
    assert_eq!(parse_expires_in("never").unwrap(), ExpiresIn::Never);
    assert_eq!(
        parse_expires_in("8h").unwrap(),
        ExpiresIn::After(Duration::from_secs(8 * 3600))
    );
    assert!(parse_expires_in("15m").is_ok());
    assert!(parse_expires_in("720h").is_ok());
    for bad in ["14m", "721h", "0s", "soon", "", "Never"] {
        let err = parse_expires_in(bad).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
    }
}
