use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn nfs(server: Option<&str>, path: &str, version: Option<u8>, options: &[&str]) -> NfsExport {
    NfsExport {
        server: server.map(|s| spec::parse_host(s).unwrap()),
        path: path.to_string(),
        version,
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

fn ok(line: &str) -> BootParams {
    let p = parse(line);
    assert!(p.errors.is_empty(), "{line}: {:?}", p.errors);
    p
}

/// The tokens named by errors, in order.
fn bad_tokens(line: &str) -> Vec<String> {
    parse(line).errors.into_iter().map(|e| e.token).collect()
}

#[test]
fn splits_like_the_kernel() {
    let (args, init) = split_args(
        r#" a=1  b="two words"  "c=three more words" flag d="" e=x"y z"w -- single -s "#,
    );
    let kv: Vec<(&str, Option<&str>)> = args
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_deref()))
        .collect();
    assert_eq!(
        kv,
        [
            ("a", Some("1")),
            ("b", Some("two words")),
            ("c", Some("three more words")),
            ("flag", None),
            ("d", Some("")),
            ("e", Some(r#"x"y z"w"#)),
        ]
    );
    assert_eq!(init, ["single", "-s"]);
    assert_eq!(split_args("").0, []);
    assert_eq!(split_args("   \t\n").0, []);
}

#[test]
fn ip_methods() {
    for (v, m) in [
        ("dhcp", NetMethod::Dhcp),
        ("on", NetMethod::Dhcp),
        ("any", NetMethod::Dhcp),
        ("off", NetMethod::None),
        ("none", NetMethod::None),
    ] {
        let p = ok(&format!("ip={v}"));
        assert_eq!(p.ip, Some(IpConfig::method_only(m)), "{v}");
    }
}

#[test]
fn ip_kernel_static_form() {
    let p = ok("ip=192.168.0.10:192.168.0.1:192.168.0.254:255.255.255.0:node07:eth0:off:192.168.0.2:192.168.0.3");
    assert_eq!(
        p.ip,
        Some(IpConfig {
            method: NetMethod::Static,
            device: Some("eth0".into()),
            address: Some(ip("192.168.0.10")),
            prefix: Some(24),
            gateway: Some(ip("192.168.0.254")),
            server: Some(ip("192.168.0.1")),
            hostname: Some("node07".into()),
            dns: vec![ip("192.168.0.2"), ip("192.168.0.3")],
            mtu: None,
            mac: None,
        })
    );
}

#[test]
fn ip_dracut_forms() {
    // dracut: ip=<client>::<gw>:<mask>:<host>:<dev>:none
    let c = ok("ip=10.1.0.5::10.1.0.1:255.255.0.0:cn005:ens3:none")
        .ip
        .unwrap();
    assert_eq!(
        (c.method, c.address, c.prefix, c.gateway, c.server),
        (
            NetMethod::Static,
            Some(ip("10.1.0.5")),
            Some(16),
            Some(ip("10.1.0.1")),
            None
        )
    );
    assert_eq!(c.hostname.as_deref(), Some("cn005"));
    assert_eq!(c.device.as_deref(), Some("ens3"));

    // dracut: ip=<dev>:dhcp, with and without mtu and MAC.
    let c = ok("ip=bootnet:dhcp").ip.unwrap();
    assert_eq!(
        (c.method, c.device.as_deref()),
        (NetMethod::Dhcp, Some("bootnet"))
    );
    let c = ok("ip=eth0:dhcp:9000:52:54:00:12:34:56").ip.unwrap();
    assert_eq!((c.mtu, c.mac), (Some(9000), Some(mac("52:54:00:12:34:56"))));
    let c = ok("ip=eth0:on::52-54-00-12-34-56").ip.unwrap();
    assert_eq!(
        (c.method, c.mtu, c.mac),
        (NetMethod::Dhcp, None, Some(mac("52:54:00:12:34:56")))
    );

    // Warewulf's static form with a prefix netmask and autoconf `on`.
    let c = ok("ip=10.0.2.15::10.0.2.2:24::eth0:none").ip.unwrap();
    assert_eq!(c.prefix, Some(24));

    // Static with MTU and MAC after autoconf.
    let c = ok("ip=10.0.0.9::10.0.0.1:255.255.255.0:n9:eth1:none:1500:aa:bb:cc:dd:ee:ff")
        .ip
        .unwrap();
    assert_eq!((c.mtu, c.mac), (Some(1500), Some(mac("aa:bb:cc:dd:ee:ff"))));

    // Empty client, autoconf dhcp on a named device.
    let c = ok("ip=:::::eth2:dhcp").ip.unwrap();
    assert_eq!(
        (c.method, c.device.as_deref(), c.address),
        (NetMethod::Dhcp, Some("eth2"), None)
    );

    // CIDR client address, empty autoconf: static (kernel semantics).
    let c = ok("ip=10.3.0.7/20::10.3.0.1").ip.unwrap();
    assert_eq!((c.method, c.prefix), (NetMethod::Static, Some(20)));

    // No netmask: classful, as the kernel does.
    assert_eq!(ok("ip=10.3.0.7:::::eth0:none").ip.unwrap().prefix, Some(8));
    assert_eq!(
        ok("ip=172.16.0.7:::::eth0:off").ip.unwrap().prefix,
        Some(16)
    );
    assert_eq!(
        ok("ip=192.168.9.7:::::eth0:off").ip.unwrap().prefix,
        Some(24)
    );
}

#[test]
fn ip_errors_name_the_token() {
    for bad in [
        "ip=",
        "ip=dhcp6",
        "ip=bogus",
        "ip=10.0.0.300::10.0.0.1:255.255.255.0:h:eth0:none",
        "ip=10.0.0.3::10.0.0.1:255.0.255.0:h:eth0:none",
        "ip=10.0.0.3::10.0.0.1:255.255.255.0:h:eth0:sometimes",
        "ip=:::::eth0:none",
        "ip=[fe80::1]::[fe80::2]:64:h:eth0:none",
        "ip=10.0.0.3::10.0.0.1:24:bad_host!:eth0:none",
        "ip=eth0:dhcp:12",
        "ip=10.0.0.3::10.0.0.1:24:h:eth0:none:a:b:c:d",
    ] {
        assert_eq!(bad_tokens(bad), [bad.to_string()], "{bad}");
    }
}

/// The reasons' words: explain, check-config and the boot's console show
/// them, and the VM tests look for some.
#[test]
fn reasons_keep_their_words() {
    for (token, want) in [
        ("ip", "needs a value (`key=value`)"),
        ("ip=foo", "not a method (dhcp, on, any, off, none) nor <client>:<server>:<gw>:<netmask>:<host>:<dev>:<autoconf>"),
        ("ip=dhcp6", "autoconf `dhcp6` is not supported (use dhcp or a static address)"),
        ("ip=::::::off", "autoconf off without a client address"),
        ("ip=10.0.0.2::::h:eth0:none:1.1.1.1:2.2.2.2:3.3.3.3:4.4.4.4", "too many fields (at most 10)"),
        ("ip=10.0.0.2:::255.0.255.0:::none", "netmask `255.0.255.0` is not contiguous"),
        ("ip=eth0:dhcp:10", "`10` is not an MTU (68-65535)"),
        ("NODE=a/b", "`a/b` is not a valid name (letters, digits, `-`, `_`, `.`)"),
        ("init=sbin/init", "`sbin/init` is not an absolute path"),
        ("rd.shell=maybe", "`maybe` is not a boolean (1/0, yes/no)"),
        ("XCAT=10.0.0.1:0", "`0` is not a port"),
        ("root=", "empty root"),
        ("root=nfs://", "nfs:// URL without a server"),
        ("initagent.mode=fast", "unknown mode `fast` (one of: sync, statelite, overlay, nfsroot, update, local)"),
        ("rd.break=x", "unknown rd.break stage `x` (one of: cmdline, net, pre-mount, mount, pre-pivot)"),
        ("BOOTIF=nonsense", "`nonsense` is not a MAC address"),
    ] {
        let errors = parse(token).errors;
        assert_eq!(errors.len(), 1, "{token}");
        assert_eq!(errors[0].to_string(), format!("`{token}`: {want}"));
    }
}

#[test]
fn bootif_every_form() {
    for v in [
        "01-52-54-00-12-34-56",
        "01-52-54-00-12-34-56".to_uppercase().as_str(),
        "52:54:00:12:34:56",
        "52-54-00-12-34-56",
    ] {
        assert_eq!(
            ok(&format!("BOOTIF={v}")).bootif,
            Some(mac("52:54:00:12:34:56")),
            "{v}"
        );
    }
    assert_eq!(
        bad_tokens("BOOTIF=01-52-54-00-12-34"),
        ["BOOTIF=01-52-54-00-12-34"]
    );
    assert_eq!(bad_tokens("BOOTIF"), ["BOOTIF"]);
}

#[test]
fn ifname_binds_names_to_macs() {
    let p = ok("ifname=bootnet:52:54:00:12:34:56 ifname=data:52:54:00:12:34:57 ifname=bootnet:52:54:00:12:34:58");
    assert_eq!(
        p.ifnames,
        [
            IfName {
                name: "data".into(),
                mac: mac("52:54:00:12:34:57")
            },
            IfName {
                name: "bootnet".into(),
                mac: mac("52:54:00:12:34:58")
            },
        ]
    );
    assert_eq!(bad_tokens("ifname=eth0"), ["ifname=eth0"]);
}

#[test]
fn root_nfs_dracut_grammar() {
    let cases: &[(&str, NfsExport)] = &[
        (
            "root=nfs:10.0.0.1:/srv/root",
            nfs(Some("10.0.0.1"), "/srv/root", None, &[]),
        ),
        (
            "root=nfs:10.0.0.1:/srv/root:ro,nolock",
            nfs(Some("10.0.0.1"), "/srv/root", None, &["ro", "nolock"]),
        ),
        ("root=nfs:/srv/root", nfs(None, "/srv/root", None, &[])),
        (
            "root=nfs:/srv/root:vers=3",
            nfs(None, "/srv/root", Some(3), &["vers=3"]),
        ),
        ("root=nfs4:master:/", nfs(Some("master"), "/", Some(4), &[])),
        (
            "root=nfs4:10.0.0.1:/exports/root:vers=4.1,port=2049",
            nfs(
                Some("10.0.0.1"),
                "/exports/root",
                Some(4),
                &["vers=4.1", "port=2049"],
            ),
        ),
        (
            "root=nfs:srv:/root,vers=3,tcp",
            nfs(Some("srv"), "/root", Some(3), &["vers=3", "tcp"]),
        ),
        (
            "root=nfs:[fd00::1]:/root",
            nfs(Some("[fd00::1]"), "/root", None, &[]),
        ),
        (
            "root=nfs:10.0.0.1:/nodes/%s",
            nfs(Some("10.0.0.1"), "/nodes/%s", None, &[]),
        ),
        (
            "root=nfs://10.0.0.1:2049/srv/root",
            nfs(Some("10.0.0.1"), "/srv/root", None, &["port=2049"]),
        ),
        (
            "root=nfs://master/srv/root",
            nfs(Some("master"), "/srv/root", None, &[]),
        ),
        (
            "root=10.0.0.1:/srv/root",
            nfs(Some("10.0.0.1"), "/srv/root", None, &[]),
        ),
        (
            "root=nfs:10.0.0.1:/r:nfsvers=4.2",
            nfs(Some("10.0.0.1"), "/r", Some(4), &["nfsvers=4.2"]),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(ok(line).root, Some(RootSpec::Nfs(want.clone())), "{line}");
    }
    assert_eq!(ok("root=/dev/nfs").root, Some(RootSpec::KernelNfs));
    assert_eq!(ok("root=dhcp").root, Some(RootSpec::Dhcp));
    assert_eq!(
        ok("root=LABEL=root").root,
        Some(RootSpec::Other {
            value: "LABEL=root".into()
        })
    );
    assert_eq!(
        ok("root=/dev/sda2").root,
        Some(RootSpec::Other {
            value: "/dev/sda2".into()
        })
    );
    for bad in [
        "root=nfs:10.0.0.1:srv",
        "root=nfs:bad_server!:/srv",
        "root=nfs:10.0.0.1:/srv:vers=2",
        "root=nfs4:10.0.0.1:/srv:vers=3",
        "root=nfs://:2049/srv",
        "root=nfs://srv:99999/x",
        "root=",
    ] {
        assert_eq!(bad_tokens(bad), [bad.to_string()], "{bad}");
    }
}

#[test]
fn kernel_and_xcat_nfsroot() {
    let p = ok("root=/dev/nfs nfsroot=10.0.0.1:/export/%s,vers=3,tcp");
    assert_eq!(p.root, Some(RootSpec::KernelNfs));
    assert_eq!(
        p.nfsroot,
        Some(nfs(
            Some("10.0.0.1"),
            "/export/%s",
            Some(3),
            &["vers=3", "tcp"]
        ))
    );
    assert_eq!(
        ok("nfsroot=/export").nfsroot,
        Some(nfs(None, "/export", None, &[]))
    );
    let p = ok("NFSROOT=172.16.2.2:/var/lib/xcat/netboot/alt/x86_64/compute");
    assert_eq!(
        p.xcat_nfsroot,
        Some(nfs(
            Some("172.16.2.2"),
            "/var/lib/xcat/netboot/alt/x86_64/compute",
            None,
            &[]
        ))
    );
    assert_eq!(bad_tokens("NFSROOT=/no/server"), ["NFSROOT=/no/server"]);
    assert_eq!(
        bad_tokens("nfsroot=10.0.0.1:relative"),
        ["nfsroot=10.0.0.1:relative"]
    );
}

#[test]
fn statemnt_and_friends() {
    let p = ok("STATEMNT=cnfs:/gpfs/state MNTOPTS=nolock,rsize=32768,tcp,timeo=14 NODE=cn01 XCAT=172.10.0.1:3001");
    assert_eq!(
        p.statemnt,
        Some(Some(nfs(Some("cnfs"), "/gpfs/state", None, &[])))
    );
    assert_eq!(
        p.mntopts.unwrap(),
        ["nolock", "rsize=32768", "tcp", "timeo=14"]
    );
    assert_eq!(p.node.as_deref(), Some("cn01"));
    assert_eq!(
        p.xcat,
        Some(HostPort {
            host: "172.10.0.1".into(),
            port: 3001
        })
    );
    assert_eq!(ok("STATEMNT=").statemnt, Some(None));
    assert_eq!(ok("STATEMNT").statemnt, Some(None));
    assert_eq!(
        ok("STATEMNT=/local/state").statemnt,
        Some(Some(nfs(None, "/local/state", None, &[])))
    );
    assert_eq!(ok("").statemnt, None);
    for bad in [
        "STATEMNT=srv:state",
        "NODE=../etc",
        "NODE=a/b",
        "XCAT=host",
        "XCAT=host:0",
        "MNTOPTS=\"a, b c\"",
    ] {
        assert_eq!(bad_tokens(bad).len(), 1, "{bad}");
    }
}

#[test]
fn dracut_debug_keys() {
    let p = ok("rd.shell rd.debug rd.break=pre-mount rd.break rd.break=initqueue init=/usr/lib/systemd/systemd console=tty0 console=ttyS0,115200n8");
    assert_eq!(p.shell, Some(true));
    assert!(p.debug);
    assert_eq!(p.breaks, [BreakStage::PreMount, BreakStage::PrePivot]);
    assert_eq!(p.init.as_deref(), Some("/usr/lib/systemd/systemd"));
    assert_eq!(p.consoles, ["tty0", "ttyS0,115200n8"]);
    assert_eq!(ok("rd.shell=0").shell, Some(false));
    assert!(!ok("rd.debug=0").debug);
    assert_eq!(bad_tokens("rd.break=never"), ["rd.break=never"]);
    assert_eq!(bad_tokens("init=sbin/init"), ["init=sbin/init"]);
    assert_eq!(bad_tokens("rd.shell=maybe"), ["rd.shell=maybe"]);
}

#[test]
fn our_namespace() {
    let p = ok("initagent.mode=sync initagent.disk=/dev/disk/by-path/pci-0000:00:05.0 initagent.config=/etc/ia.toml \
                initagent.fallback=reboot initagent.timeout=90 initagent.nodeid=7 initagent.image=rocky9-compute \
                initagent.checksum initagent.cdsl=0");
    let a = p.agent;
    assert_eq!(a.mode, Some(Mode::Sync));
    assert_eq!(
        a.disk.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:05.0")
    );
    assert_eq!(a.config.as_deref(), Some("/etc/ia.toml"));
    assert_eq!(a.fallback, Some(Fallback::Reboot));
    assert_eq!(a.timeout, Some(90));
    assert_eq!(a.nodeid.as_deref(), Some("7"));
    assert_eq!(a.image.as_deref(), Some("rocky9-compute"));
    assert_eq!(a.checksum, Some(true));
    assert_eq!(a.cdsl, Some(false));
    for m in ["sync", "statelite", "overlay", "nfsroot", "update"] {
        assert_eq!(
            ok(&format!("initagent.mode={m}"))
                .agent
                .mode
                .unwrap()
                .to_string(),
            m
        );
    }
    for bad in [
        "initagent.mode=diskless",
        "initagent.disk=sda",
        "initagent.fallback=panic",
        "initagent.timeout=-1",
        "initagent.timeout=1h",
        "initagent.nodeid=",
        "initagent.mode",
    ] {
        assert_eq!(bad_tokens(bad), [bad.to_string()], "{bad}");
    }
}

#[test]
fn last_occurrence_wins_and_clears_earlier_errors() {
    let p = ok("initagent.mode=bogus initagent.mode=statelite ip=dhcp ip=off");
    assert_eq!(p.agent.mode, Some(Mode::Statelite));
    assert_eq!(p.ip.unwrap().method, NetMethod::None);
    let p = parse("initagent.mode=sync initagent.mode=bogus");
    assert_eq!(p.agent.mode, Some(Mode::Sync));
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].token, "initagent.mode=bogus");
    let p = ok("ro rw");
    assert_eq!(p.rw, Some(true));
    assert_eq!(ok("rw ro").rw, Some(false));
}

#[test]
fn unknown_keys_are_ignored() {
    let line = "quiet splash BOOT_IMAGE=/vmlinuz foo.bar=baz ltsp.image=images/x.img rd.neednet=1 imgurl=nfs://1.2.3.4/x";
    let p = ok(line);
    // Kept as words only, for a boot loader to hand on.
    assert_eq!(p.tokens.join(" "), line);
    assert_eq!(
        BootParams {
            tokens: Vec::new(),
            ..p
        },
        BootParams::default()
    );
}

#[test]
fn quoted_values_with_spaces() {
    let p = ok(
        r#"init="/sbin/init" console="ttyS0,115200" "NODE=cn01" initagent.config="/etc/init-agent.toml""#,
    );
    assert_eq!(p.init.as_deref(), Some("/sbin/init"));
    assert_eq!(p.node.as_deref(), Some("cn01"));
    // A quoted value with a space reaches the validator whole, and is named whole.
    assert_eq!(
        bad_tokens(r#"initagent.disk="/dev/sda extra""#),
        [r#"initagent.disk="/dev/sda extra""#]
    );
}

/// APPEND lines as the anchors really emit them.
#[test]
fn real_world_lines() {
    // xCAT statelite on a dracut distro (anaconda.pm mknetboot + xnba BOOTIF).
    let p = ok("root=nfs:10.0.0.1:/install/netboot/rhels9/x86_64/compute/rootimg:ro STATEMNT=10.0.0.1:/statelite \
                XCAT=10.0.0.1:3001 NODE=cn001 FC=0 BOOTIF=01-52-54-00-a1-b2-c3 ip=dhcp console=tty0 console=ttyS0,115200n8r");
    assert_eq!(p.bootif, Some(mac("52:54:00:a1:b2:c3")));
    assert_eq!(
        p.root,
        Some(RootSpec::Nfs(nfs(
            Some("10.0.0.1"),
            "/install/netboot/rhels9/x86_64/compute/rootimg",
            None,
            &["ro"]
        )))
    );
    // xCAT, pre-dracut statelite (ALT Linux seed).
    let p = ok("initrd=xcat/netboot/centos5.3/x86_64/all/initrd.gz NFSROOT=172.16.2.2:/var/lib/xcat/netboot/alt/x86_64/compute \
                STATEMNT=cnfs:/gpfs/state XCAT=172.10.0.1:3001 console=tty0 console=ttyS0,115200n8r");
    assert!(p.xcat_nfsroot.is_some() && p.statemnt.is_some() && p.xcat.is_some());
    // xCAT netboot with the colon BOOTIF form (IPAPPEND 2 in the seed).
    assert_eq!(
        ok("BOOTIF=00:15:17:bd:97:29 ip=dhcp").bootif,
        Some(mac("00:15:17:bd:97:29"))
    );
    // Open-Sharedroot (Fedora wiki seed).
    let p = ok("initrd=/nfsdracut/initrd_sr root=nfs:192.168.122.1:/mnt/virtual/nfsosr/fc11 rw rd.shell rd.debug");
    assert_eq!(p.rw, Some(true));
    assert_eq!(p.shell, Some(true));
    // LTSP chroot method.
    let p = ok("root=/dev/nfs nfsroot=192.168.67.1:/srv/ltsp/x86_64 BOOTIF=01-08-00-27-aa-bb-cc");
    assert_eq!(
        p.nfsroot.unwrap().server.map(|h| h.to_string()).as_deref(),
        Some("192.168.67.1")
    );
    // Warewulf two-stage dracut.
    let p = ok("rd.neednet=1 ifname=eth0:aa:bb:cc:dd:ee:ff ip=eth0:dhcp root=wwinit:tmpfs wwinit.server=http://10.0.0.1:9873 init=/warewulf/run-init");
    assert_eq!(
        p.root,
        Some(RootSpec::Other {
            value: "wwinit:tmpfs".into()
        })
    );
    // sync-on-boot seed (pxelinux-common), with our keys.
    let p = ok("initrd=cluster_node/initrd.img boot=init-agent root=nfs:192.168.0.254:/srv/nfs4/clusternoderoot \
                initagent.mode=sync initagent.disk=/dev/sda ip=dhcp BOOTIF=01-00-1e-67-12-34-56 quiet");
    assert_eq!(p.agent.mode, Some(Mode::Sync));
}

#[test]
fn invalid_utf8_is_not_fatal() {
    let p = parse_bytes(b"NODE=cn\xff01 ip=dhcp\n");
    assert_eq!(p.ip.unwrap().method, NetMethod::Dhcp);
    assert_eq!(p.errors.len(), 1);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "ip",
        "BOOTIF",
        "root",
        "nfsroot",
        "NFSROOT",
        "STATEMNT",
        "MNTOPTS",
        "NODE",
        "XCAT",
        "rd.shell",
        "rd.debug",
        "rd.break",
        "init",
        "console",
        "ifname",
        "nameserver",
        "initagent.mode",
        "initagent.disk",
        "initagent.timeout",
        "initagent.nodeid",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_bytes(&raw);
        }

        /// Known keys with values drawn from the characters that matter to the grammar.
        #[test]
        fn never_panics_on_known_keys(
            pairs in proptest::collection::vec(
                (proptest::sample::select(KEYS), "[0-9a-fA-F:/.,\\[\\]=\"% -]{0,40}"), 0..8)
        ) {
            let line: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let p = parse(&line.join(" "));
            for e in &p.errors {
                prop_assert!(!e.reason.to_string().is_empty());
            }
        }

        /// Every error names a token that is in the input.
        #[test]
        fn errors_name_input_tokens(s in "[ -~]{0,200}") {
            let p = parse(&s);
            for e in &p.errors {
                let unquoted = s.replace('"', "");
                prop_assert!(unquoted.contains(&e.token.replace('"', "")), "{} not in {}", e.token, s);
            }
        }
    }
}
