use super::*;

#[test]
fn parses_helloworld_replies() {
    let r = parse_hello("Hello (172.31.20.160) World-V2 (172.31.19.35)!!\n").unwrap();
    assert_eq!(r.world, "World-V2");
    assert_eq!(r.hello_ip.to_string(), "172.31.20.160");
    assert!(parse_hello("Hello (172.31.20.160) World (172.31.19.35)!!").is_some());
    for bad in [
        "",
        "Hello World",
        "Hello (x) World (172.31.19.35)!!",
        "Hello (172.31.20.160) World (172.31.19.35)",
        "Hello (172.31.20.160) World (172.31.19.35)!!!",
    ] {
        assert!(parse_hello(bad).is_none(), "{bad}");
    }
    assert!(expect_hello("Hello (1.2.3.4) World (1.2.3.5)!!", "World-V2").is_err());
}
