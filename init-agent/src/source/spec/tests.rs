use super::*;

fn loc(s: &str) -> (Option<String>, String, Option<u8>, Vec<String>) {
    let e = parse_location(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    (
        e.server.map(|h| h.to_string()),
        e.path,
        e.version,
        e.options,
    )
}

fn o(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_documented_form_parses_one_way() {
    let s = |x: &str| Some(x.to_string());
    for (text, want) in [
        ("/srv/root", (None, "/srv/root".into(), None, o(&[]))),
        (
            "10.0.0.1:/srv/root",
            (s("10.0.0.1"), "/srv/root".into(), None, o(&[])),
        ),
        (
            "nfs:10.0.0.1:/srv/root",
            (s("10.0.0.1"), "/srv/root".into(), None, o(&[])),
        ),
        (
            "nfs:10.0.0.1:/srv/root:vers=3,nolock",
            (
                s("10.0.0.1"),
                "/srv/root".into(),
                Some(3),
                o(&["vers=3", "nolock"]),
            ),
        ),
        ("nfs4:master:/", (s("master"), "/".into(), Some(4), o(&[]))),
        (
            "/srv/root,vers=3,nolock",
            (None, "/srv/root".into(), Some(3), o(&["vers=3", "nolock"])),
        ),
        (
            "[fd00::1]:/srv/root:ro",
            (s("[fd00::1]"), "/srv/root".into(), None, o(&["ro"])),
        ),
        (
            "nfs://10.0.0.1:2050/srv/root?mountport=635",
            (
                s("10.0.0.1"),
                "/srv/root".into(),
                None,
                o(&["port=2050", "mountport=635"]),
            ),
        ),
        (
            "nfs://[fd00::1]/r/",
            (s("[fd00::1]"), "/r".into(), None, o(&[])),
        ),
    ] {
        assert_eq!(loc(text), want, "{text}");
    }
}

#[test]
fn a_colon_after_the_path_starts_options_everywhere() {
    // The one documented rule: no `:` inside a path.
    assert_eq!(loc("10.0.0.1:/a:b").1, "/a");
    assert!(parse_location("10.0.0.1:/a:b").unwrap().options == ["b"]);
}

#[test]
fn bad_locations_say_what_is_wrong() {
    for (text, why) in [
        ("srv:state", "does not start with `/`"),
        ("nfs4:10.0.0.1:/r:vers=3", "conflicts"),
        ("10.0.0.1:/a/../etc", "`..`"),
        ("bad_host:/r", "not a server name"),
        ("[fd00::1:/r", "not a server name"),
        ("nfs://10.0.0.1:0/x", "port"),
        ("nfs://10.0.0.1/x?nfsvers=4", "unknown URL option"),
        ("nfs:///x", "without a server"),
        ("10.0.0.1:/r:port=99999", "port"),
        ("10.0.0.1:/r:vers=5", "unsupported NFS version"),
    ] {
        let e = parse_location(text).unwrap_err();
        assert!(e.0.contains(why), "{text}: {e}");
    }
}

#[test]
fn names_are_not_addresses_until_something_resolves_them() {
    let e = parse_location("master.cluster:/srv").unwrap();
    assert_eq!(e.server, Some(Host::Name("master.cluster".into())));
    assert_eq!(parse_store("").unwrap(), None);
    assert!(parse_server_location("/only/path").is_err());
}
