use super::*;
use crate::cmdline::parse;
use crate::config;
use serde_json::{json, Value};

/// The plan as JSON, the way `explain --json` prints it.
fn plan_json(cmdline: &str, config_text: &str) -> Value {
    let c = config::parse(config_text).expect("test config is valid");
    serde_json::to_value(boot(&parse(cmdline), &c, Target::default())).unwrap()
}

fn plan(cmdline: &str) -> Value {
    plan_json(cmdline, "")
}

/// Asserts the listed top-level (or `a.b`) fields.
fn expect(v: &Value, fields: &[(&str, Value)]) {
    for (path, want) in fields {
        let got = path.split('.').fold(v, |v, k| &v[k]);
        assert_eq!(got, want, "field {path} of {v:#}");
    }
}

#[test]
fn required_json_fields_exist() {
    let v = plan("root=nfs:10.0.0.1:/srv/root ip=dhcp");
    for key in [
        "mode", "net", "source", "statemnt", "init", "shell", "debug", "errors",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
        "mac", "method", "device", "address", "prefix", "gateway", "hostname",
    ] {
        assert!(v["net"].get(key).is_some(), "missing net.{key}");
    }
    for key in ["server", "path", "version", "options"] {
        assert!(v["source"].get(key).is_some(), "missing source.{key}");
    }
}

#[test]
fn xcat_statelite_dracut_line() {
    let v = plan(
        "root=nfs:10.0.0.1:/install/netboot/rhels9/x86_64/compute/rootimg:ro STATEMNT=10.0.0.1:/statelite \
         XCAT=10.0.0.1:3001 NODE=cn001 BOOTIF=01-52-54-00-A1-B2-C3 ip=dhcp",
    );
    expect(
        &v,
        &[
            ("mode", json!("statelite")),
            ("net.mac", json!("52:54:00:a1:b2:c3")),
            ("net.method", json!("dhcp")),
            ("net.hostname", json!("cn001")),
            ("source.server", json!("10.0.0.1")),
            (
                "source.path",
                json!("/install/netboot/rhels9/x86_64/compute/rootimg"),
            ),
            ("source.version", Value::Null),
            ("source.options", json!(["ro"])),
            ("source.mountpoint", json!(NEW_ROOT)),
            ("statemnt.server", json!("10.0.0.1")),
            ("statemnt.path", json!("/statelite")),
            ("node", json!("cn001")),
            ("fallback", json!("retry")),
            ("errors", json!([])),
        ],
    );
}

#[test]
fn xcat_pre_dracut_nfsroot_and_empty_statemnt() {
    let v = plan("NFSROOT=172.16.2.2:/var/lib/xcat/netboot/alt/x86_64/compute STATEMNT= BOOTIF=00:15:17:bd:97:29");
    expect(
        &v,
        &[
            ("mode", json!("statelite")),
            ("statemnt", Value::Null),
            ("source.server", json!("172.16.2.2")),
            (
                "source.path",
                json!("/var/lib/xcat/netboot/alt/x86_64/compute"),
            ),
            ("net.mac", json!("00:15:17:bd:97:29")),
            ("net.method", json!("dhcp")),
        ],
    );
}

#[test]
fn kernel_nfsroot_with_static_ip_server_and_hostname_substitution() {
    let v = plan("root=/dev/nfs nfsroot=/export/%s,vers=3,tcp ip=10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0:cn005:eth0:off");
    expect(
        &v,
        &[
            ("mode", json!("nfsroot")),
            ("net.method", json!("static")),
            ("net.address", json!("10.0.0.5")),
            ("net.prefix", json!(24)),
            ("net.gateway", json!("10.0.0.254")),
            ("net.device", json!("eth0")),
            ("net.hostname", json!("cn005")),
            ("source.server", json!("10.0.0.1")),
            ("source.path", json!("/export/cn005")),
            ("source.version", json!(3)),
            ("source.options", json!(["ro", "vers=3", "tcp", "nolock"])),
        ],
    );
}

#[test]
fn nfs4_and_update_mode_is_read_write() {
    let v = plan("root=nfs4:10.0.2.2:/export:vers=4.1 initagent.mode=update");
    expect(
        &v,
        &[
            ("mode", json!("update")),
            ("source.version", json!(4)),
            ("source.options", json!(["rw", "vers=4.1"])),
        ],
    );
    // Open-Sharedroot: a plain NFS root, read-write by the kernel `rw` flag.
    let v = plan(
        "root=nfs:192.168.122.1:/mnt/virtual/nfsosr/fc11 rw rd.shell rd.debug initagent.nodeid=2",
    );
    expect(
        &v,
        &[
            ("mode", json!("nfsroot")),
            ("source.options", json!(["rw"])),
            ("shell", json!(true)),
            ("debug", json!(true)),
            ("fallback", json!("shell")),
            ("nodeid", json!("2")),
        ],
    );
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["step"] == "cdsl"));
}

#[test]
fn read_only_modes_refuse_rw_options() {
    for mode in ["sync", "statelite", "overlay"] {
        let v = plan(&format!(
            "root=nfs:10.0.0.9:/r:rw initagent.mode={mode} initagent.disk=/dev/vda"
        ));
        assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{mode}: {v:#}");
        assert_eq!(v["source"]["options"], json!(["ro"]));
    }
}

#[test]
fn dracut_ifname_and_device_form() {
    let v = plan("ifname=bootnet:52:54:00:12:34:56 ip=bootnet:dhcp root=nfs:10.0.0.1:/r");
    expect(
        &v,
        &[
            ("net.mac", json!("52:54:00:12:34:56")),
            ("net.device", json!("bootnet")),
        ],
    );
    let v =
        plan("BOOTIF=01-52-54-00-12-34-56 ifname=bootnet:52:54:00:12:34:56 root=nfs:10.0.0.1:/r");
    expect(&v, &[("net.device", json!("bootnet"))]);
}

#[test]
fn dhcp_root_path_when_nothing_names_the_root() {
    let v = plan("ip=dhcp");
    expect(
        &v,
        &[
            ("source.server", Value::Null),
            ("source.path", Value::Null),
            ("errors", json!([])),
        ],
    );
    let v = plan("root=dhcp BOOTIF=52:54:00:12:34:56");
    expect(&v, &[("source.path", Value::Null), ("errors", json!([]))]);
    // Static network and no root anywhere: nothing can name it.
    let v = plan("ip=10.0.0.5:::255.0.0.0::eth0:none");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v:#}");
}

#[test]
fn errors_name_bad_tokens_and_fail_the_plan() {
    let v = plan("root=nfs:10.0.0.1:/r BOOTIF=zz ip=10.0.0.300::: initagent.fallback=panic");
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for token in ["BOOTIF=zz", "ip=10.0.0.300:::", "initagent.fallback=panic"] {
        assert!(
            errors.iter().any(|e| e.contains(token)),
            "{token} not named in {errors:?}"
        );
    }
    for (line, needle) in [
        ("root=/dev/sda1", "not an NFS root"),
        ("root=/dev/nfs ip=off", "no standard root"),
        (
            "root=nfs:master.cluster:/r ip=10.0.0.5::10.0.0.1:24:cn05:eth0:off",
            "is a host name with no way to resolve it",
        ),
        (
            "root=nfs:10.0.0.9:/r STATEMNT=cnfs:/gpfs/state NODE=cn01 ip=10.0.0.5:::24::eth0:off",
            "is a host name with no way to resolve it",
        ),
        ("ip=off root=nfs:10.0.0.9:/r", "needs a network"),
        ("initagent.mode=sync root=nfs:10.0.0.9:/r", "needs a disk"),
        ("initagent.cdsl=1 root=nfs:10.0.0.9:/r", "needs a node id"),
    ] {
        let v = plan(line);
        let all = v["errors"].to_string();
        assert!(all.contains(needle), "{line}: {all}");
    }
}

const SITE: &str = r#"
[boot]
mode = "sync"
timeout = 120
init = "/lib/systemd/systemd"

[source]
servers = ["10.0.0.1", "10.0.0.2"]
path = "/srv/root"
options = ["vers=4.2", "actimeo=600"]

[[disk]]
device = "/dev/sda"
wipe = true
[[disk.partition]]
name = "root"
size = "rest"
fs = "ext4"
mount = "/"

[[disk]]
device = "/dev/sdb"
[[disk.partition]]
name = "scratch"
size = "rest"
fs = "xfs"
mount = "/scratch"

[statelite]
statemnt = "10.0.0.1:/state"
[[statelite.node]]
node = "compute"
statemnt = "10.0.0.9:/state-compute"
mntopts = "vers=3,nolock"

[[node]]
mac = "52:54:00:00:00:01"
name = "cn001"
nodeid = 1
groups = ["compute"]

[[node]]
mac = "52:54:00:00:00:fe"
name = "update"
mode = "update"
"#;

#[test]
fn a_row_found_by_node_gives_what_a_mac_row_gives() {
    let by_mac = plan_json("BOOTIF=01-52-54-00-00-00-01", SITE);
    let by_name = plan_json("NODE=cn001", SITE);
    // Only the interface differs: BOOTIF= picks it, NODE= does not.
    for key in [
        "mode", "node", "nodeid", "statemnt", "disks", "source", "local",
    ] {
        assert_eq!(by_mac[key], by_name[key], "{key}");
    }
    expect(
        &by_name,
        &[
            ("node_row.by", json!("node")),
            ("statemnt.server", json!("10.0.0.9")),
        ],
    );
}

#[test]
fn site_config_fills_what_the_cmdline_lacks() {
    let v = plan_json("BOOTIF=01-52-54-00-00-00-01", SITE);
    expect(
        &v,
        &[
            ("mode", json!("sync")),
            ("node", json!("cn001")),
            ("nodeid", json!("1")),
            ("timeout", json!(120)),
            ("init", json!("/lib/systemd/systemd")),
            ("fallback", json!("local")),
            ("source.servers", json!(["10.0.0.1", "10.0.0.2"])),
            ("source.path", json!("/srv/root")),
            ("source.version", json!(4)),
            ("source.options", json!(["ro", "vers=4.2", "actimeo=600"])),
            ("source.mountpoint", json!(SOURCE_MOUNT)),
            ("statemnt.server", json!("10.0.0.9")),
            ("statemnt.path", json!("/state-compute")),
            ("statemnt.options", json!(["vers=3", "nolock"])),
        ],
    );
    let disks: Vec<&str> = v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(disks, ["/dev/sda", "/dev/sdb"]);
    assert_eq!(v["disks"][0]["wipe"], json!(true));
}

#[test]
fn cmdline_beats_node_entry_beats_site() {
    // The node entry makes the update node; the cmdline overrides it.
    assert_eq!(
        plan_json("BOOTIF=52:54:00:00:00:fe", SITE)["mode"],
        json!("update")
    );
    assert_eq!(
        plan_json("BOOTIF=52:54:00:00:00:fe initagent.mode=sync", SITE)["mode"],
        json!("sync")
    );
    // root= beats [source]; init= beats [boot] init; timeout and options too.
    let v = plan_json(
        "BOOTIF=52:54:00:00:00:01 root=nfs:10.9.9.9:/other:vers=3 init=/sbin/init initagent.timeout=5 NODE=x STATEMNT=s:/st MNTOPTS=tcp",
        SITE,
    );
    expect(
        &v,
        &[
            (
                "source.servers",
                json!(["10.9.9.9", "10.0.0.1", "10.0.0.2"]),
            ),
            ("source.path", json!("/other")),
            ("source.version", json!(3)),
            (
                "source.options",
                json!(["ro", "vers=3", "actimeo=600", "nolock"]),
            ),
            ("init", json!("/sbin/init")),
            ("timeout", json!(5)),
            ("node", json!("x")),
            ("statemnt.server", json!("s")),
            ("statemnt.path", json!("/st")),
            ("statemnt.options", json!(["tcp"])),
        ],
    );
}

#[test]
fn wipe_only_for_the_exact_disk_the_config_names() {
    // initagent.disk naming another device gets the default layout, never wipe.
    let v = plan_json("initagent.disk=/dev/vda", SITE);
    assert_eq!(v["disks"][0]["device"], json!("/dev/vda"));
    assert_eq!(v["disks"][0]["wipe"], json!(false));
    assert_eq!(v["disks"][0]["partition"][0]["mount"], json!("/"));
    let v = plan_json("initagent.disk=/dev/sda", SITE);
    assert_eq!(v["disks"][0]["wipe"], json!(true));
}

#[test]
fn break_stages_are_placed_in_order() {
    let v = plan("root=nfs:10.0.0.9:/r rd.break=pre-pivot rd.break=cmdline rd.break=mount rd.break=net rd.break=pre-mount");
    let steps: Vec<String> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}{}",
                s["step"].as_str().unwrap(),
                s.get("stage")
                    .map(|x| format!(":{}", x.as_str().unwrap()))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "early",
            "break:cmdline",
            "load_modules",
            "break:net",
            "network",
            "break:pre-mount",
            "mount_source",
            "read_cluster",
            "break:mount",
            "hooks",
            "break:pre-pivot",
            "switch_root",
        ]
    );
}

#[test]
fn steps_by_mode() {
    let kinds = |v: &Value| -> Vec<String> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect()
    };
    let sync = kinds(&plan(
        "root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda",
    ));
    assert_eq!(
        sync,
        [
            "early",
            "load_modules",
            "network",
            "connect_source",
            "read_cluster",
            "prepare_disks",
            "mount_local",
            "sync",
            "release_source",
            "hooks",
            "hooks",
            "switch_root"
        ]
    );
    assert!(kinds(&plan("root=nfs:10.0.0.9:/r initagent.mode=overlay"))
        .contains(&"overlay".to_string()));
    assert!(kinds(&plan("root=nfs:10.0.0.9:/r STATEMNT=")).contains(&"statelite".to_string()));
    let modules = plan("root=nfs:10.0.0.9:/r initagent.mode=overlay")["modules"].clone();
    assert_eq!(modules, json!(["nfsv4", "nfsv3", "overlay"]));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Any command line gives a plan that serializes, and parse errors reach it.
        #[test]
        fn any_cmdline_plans(s in "\\PC{0,200}") {
            let params = parse(&s);
            let p = boot(&params, &Config::default(), Target::default());
            prop_assert!(p.errors.len() >= params.errors.len());
            prop_assert!(serde_json::to_string(&p).is_ok());
            let ends_in_switch_root = matches!(p.steps.last(), Some(Step::SwitchRoot { .. }));
            prop_assert!(ends_in_switch_root);
        }
    }
}

#[test]
fn the_userspace_client_mounts_nothing_and_needs_no_nfs_modules() {
    let cmd = "root=nfs:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/vda";
    let kernel = plan(&format!("{cmd} initagent.nfs=kernel"));
    let user = plan(&format!("{cmd} initagent.nfs=user"));
    assert_eq!(user["errors"], json!([]), "{user:#}");
    expect(
        &user,
        &[
            ("source.client", json!("user")),
            ("source.kernel_fallback", json!(false)),
        ],
    );
    // Sync mode's default: the userspace client, the kernel's where the
    // server turns out to have no NFSv3 MOUNT service.
    expect(
        &plan(cmd),
        &[
            ("source.client", json!("user")),
            ("source.kernel_fallback", json!(true)),
        ],
    );
    for other in [
        "root=nfs:10.0.0.1:/srv/root initagent.mode=statelite",
        "root=nfs4:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/vda",
    ] {
        expect(&plan(other), &[("source.client", json!("kernel"))]);
    }
    let step = |v: &Value, kind: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == kind)
            .cloned()
    };
    assert!(step(&kernel, "mount_source").is_some());
    assert!(step(&user, "mount_source").is_none());
    assert!(step(&user, "connect_source").is_some());
    assert_eq!(
        step(&user, "connect_source").unwrap()["source"]["path"],
        "/srv/root"
    );
    let modules = |v: &Value| step(v, "load_modules").unwrap()["modules"].to_string();
    assert!(modules(&kernel).contains("nfsv"), "{}", modules(&kernel));
    assert!(!modules(&user).contains("nfsv"), "{}", modules(&user));
    // The configuration can choose it; the command line has the last word.
    let from_config = plan_json(cmd, "[source]\nclient = \"user\"\n");
    expect(&from_config, &[("source.client", json!("user"))]);
    let overridden = plan_json(
        &format!("{cmd} initagent.nfs=kernel"),
        "[source]\nclient = \"user\"\n",
    );
    expect(&overridden, &[("source.client", json!("kernel"))]);
}

#[test]
fn the_userspace_client_is_refused_where_it_cannot_serve() {
    for (cmd, why) in [
        (
            "root=nfs:10.0.0.1:/r initagent.mode=statelite initagent.nfs=user",
            "sync mode only",
        ),
        (
            "root=nfs:10.0.0.1:/r initagent.mode=overlay initagent.nfs=user",
            "sync mode only",
        ),
        (
            "root=nfs4:10.0.0.1:/r initagent.mode=sync initagent.disk=/dev/vda initagent.nfs=user",
            "NFSv3",
        ),
        (
            "root=nfs:10.0.0.1:/r initagent.nfs=fuse",
            "unknown NFS client",
        ),
    ] {
        let v = plan(cmd);
        let errors = v["errors"].to_string();
        assert!(errors.contains(why), "{cmd}: {errors}");
    }
}

const NODES: &str = r#"
[statelite]
image = "img"
statemnt = "10.0.0.1:/state"
[[statelite.litetree]]
priority = 1.0
directory = "10.0.0.1:/trees/$node"
[[statelite.litetree]]
priority = 2.0
directory = "$noderes.nfsserver:/rooms/$nodepos.room/$nodetype.os"

[[node]]
mac = "52:54:00:00:00:01"
name = "cn001"
nodeid = 1
groups = ["rack1", "compute"]
[node.nodetype]
os = "rocky9.4"

[[node]]
name = "cn002"
nodeid = 2
groups = ["compute"]
image = "img2"

[[group]]
name = "compute"
[group.noderes]
nfsserver = "10.0.0.5"
[group.nodetype]
os = "rocky9"
[group.nodepos]
room = "r9"

[[group]]
name = "rack1"
[group.nodepos]
room = "r1"
"#;

const STATELITE: &str = "root=nfs:10.0.0.1:/srv/root initagent.mode=statelite";

#[test]
fn the_node_row_is_matched_by_mac_then_node_then_ip_host_name() {
    let by = |cmdline: &str| plan_json(&format!("{STATELITE} {cmdline}"), NODES);
    for (cmdline, row, name, how, nodeid) in [
        ("BOOTIF=01-52-54-00-00-00-01", 1, "cn001", "mac", "1"),
        (
            "BOOTIF=01-52-54-00-00-00-01 NODE=cn001",
            1,
            "cn001",
            "mac",
            "1",
        ),
        ("NODE=cn002", 2, "cn002", "node", "2"),
        // A MAC no row has: NODE= still finds the row.
        (
            "BOOTIF=01-52-54-00-00-00-09 NODE=cn002",
            2,
            "cn002",
            "node",
            "2",
        ),
        (
            "ip=10.0.0.12::10.0.0.254:255.255.255.0:cn002:eth0:none",
            2,
            "cn002",
            "ip-hostname",
            "2",
        ),
    ] {
        let v = by(cmdline);
        expect(
            &v,
            &[
                ("node_row.row", json!(row)),
                ("node_row.name", json!(name)),
                ("node_row.by", json!(how)),
                ("node", json!(name)),
                ("nodeid", json!(nodeid)),
                ("errors", json!([])),
            ],
        );
    }
    // The row gives the image (and so the statelite rows) too.
    expect(&by("NODE=cn002"), &[("image", json!("img2"))]);
    let v = by("NODE=cn404");
    expect(&v, &[("node_row", Value::Null), ("node", json!("cn404"))]);
}

#[test]
fn a_mac_row_and_another_node_row_are_a_plan_error() {
    for cmdline in [
        "BOOTIF=01-52-54-00-00-00-01 NODE=cn002",
        // NODE= renames the MAC's node: its directory and attributes would not agree.
        "BOOTIF=01-52-54-00-00-00-01 NODE=cn404",
    ] {
        let v = plan_json(&format!("{STATELITE} {cmdline}"), NODES);
        let errors = v["errors"].to_string();
        assert!(
            errors.contains("BOOTIF= matches [[node]] row 1 (cn001) but NODE="),
            "{cmdline}: {errors}"
        );
    }
}

#[test]
fn a_row_named_only_by_dhcp_is_said_to_be_unused() {
    let v = plan_json(STATELITE, NODES);
    expect(&v, &[("node_row", Value::Null), ("node", Value::Null)]);
    assert!(
        v["notes"]
            .to_string()
            .contains("a [[node]] row matched only by that host name is not used"),
        "{v:#}"
    );
}

#[test]
fn litetree_variables_come_from_the_row_then_its_groups_in_order() {
    let v = plan_json(&format!("{STATELITE} BOOTIF=01-52-54-00-00-00-01"), NODES);
    // Its own os, rack1's room (listed before compute), compute's server.
    expect(
        &v,
        &[
            (
                "attributes",
                json!({
                    "nodetype.os": "rocky9.4",
                    "nodepos.room": "r1",
                    "noderes.nfsserver": "10.0.0.5",
                }),
            ),
            ("errors", json!([])),
        ],
    );
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "statelite")
        .unwrap();
    assert_eq!(step["attributes"], v["attributes"]);
    // The same expansion the boot runs, shown by explain.
    let c = config::parse(NODES).unwrap();
    let p = boot(
        &parse(&format!("{STATELITE} BOOTIF=01-52-54-00-00-00-01")),
        &c,
        Target::default(),
    );
    let text = p.steps.iter().map(ToString::to_string).collect::<String>();
    assert!(text.contains("nodepos.room=r1"), "{text}");
    assert!(
        text.contains("litetrees 10.0.0.1:/trees/cn001, 10.0.0.5:/rooms/r1/rocky9.4,"),
        "{text}"
    );
    let shown = crate::boot::explain::render(&p, "test", None);
    assert!(
        shown.contains("node row:  [[node]] row 1 (cn001), matched by BOOTIF= MAC\n"),
        "{shown}"
    );
}

#[test]
fn a_variable_without_a_value_is_an_explain_error_naming_table_column_node() {
    let v = plan_json(&format!("{STATELITE} NODE=cn404"), NODES);
    let errors = v["errors"].to_string();
    assert!(
        errors.contains(
            "litetree row 2: $noderes.nfsserver has no value for node cn404 (table noderes, column nfsserver)"
        ),
        "{errors}"
    );
    // Before DHCP has named the node, explain says whose value is missing.
    let v = plan_json(STATELITE, NODES);
    assert!(
        v["errors"]
            .to_string()
            .contains("has no value for node (DHCP host name)"),
        "{v:#}"
    );
}

#[test]
fn xcat_s_xcatd_endpoint_is_said_to_be_unused() {
    let v = plan_json("root=nfs:10.0.0.1:/img XCAT=10.0.0.1:3001", "");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("XCAT=10.0.0.1:3001 is read and not used")
            && notes.contains("postscripts run as hooks"),
        "{notes}"
    );
    assert_eq!(v["errors"], serde_json::json!([]));
}

#[test]
fn local_mode_boots_the_last_complete_copy_with_neither_network_nor_server() {
    let v = plan_json("initagent.mode=local initagent.disk=/dev/vda ip=off", "");
    assert_eq!(v["errors"], serde_json::json!([]), "{v:#}");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "early",
            "load_modules",
            "mount_last_complete",
            "hooks",
            "switch_root"
        ]
    );
    assert_eq!(v["modules"], serde_json::json!(["ext4"]));
    // A host name nobody can resolve does not matter: nothing is reached.
    let v = plan_json(
        "initagent.mode=local initagent.disk=/dev/vda root=nfs:master:/r ip=10.0.0.5:::24::eth0:off",
        "",
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v:#}");
    // It needs its disk, and the standalone image.
    let v = plan_json("initagent.mode=local", "");
    assert!(v["errors"].to_string().contains("disk"), "{v:#}");
}

#[test]
fn the_cluster_file_is_read_unless_off_and_never_in_local_mode() {
    let cluster = |cmdline: &str| plan(cmdline)["cluster"].clone();
    assert_eq!(
        cluster("root=nfs:10.0.0.9:/r"),
        serde_json::json!("/etc/init-agent/cluster.toml")
    );
    assert_eq!(
        cluster("root=nfs:10.0.0.9:/r initagent.cluster=/etc/site/nodes.toml"),
        serde_json::json!("/etc/site/nodes.toml")
    );
    assert_eq!(
        cluster("root=nfs:10.0.0.9:/r initagent.cluster=off"),
        Value::Null
    );
    assert_eq!(
        cluster("initagent.mode=local initagent.disk=/dev/vda"),
        Value::Null
    );
    let v = plan("root=nfs:10.0.0.9:/r initagent.cluster=etc/x");
    assert!(
        v["errors"].to_string().contains("initagent.cluster"),
        "{v:#}"
    );
}

#[test]
fn with_trust_keys_the_sync_verifies_and_the_local_copy_must_be_verified() {
    use crate::config::tests::{ID_A, ID_B, KEY_A, KEY_B};
    let sync = "root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda";
    let keys = format!("[trust]\nkeys = [\"{KEY_A}\", \"{KEY_B}\"]\n");
    let step = |v: &Value, kind: &str| -> Value {
        v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(v["local"].as_array().into_iter().flatten())
            .find(|s| s["step"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} step in {v:#}"))
    };
    let v = plan_json(sync, &keys);
    assert_eq!(v["errors"], json!([]), "{v:#}");
    assert_eq!(
        step(&v, "sync")["trust"],
        json!({
            "keys": [{"id": ID_A, "key": KEY_A}, {"id": ID_B, "key": KEY_B}],
            "allow_rollback": false,
        })
    );
    assert_eq!(
        step(&v, "mount_last_complete")["verified_only"],
        json!(true)
    );
    let c = config::parse(&keys).unwrap();
    let p = boot(&parse(sync), &c, Target::default());
    let shown = crate::boot::explain::render(&p, "test", None);
    assert!(
        shown.contains(&format!("verify: signed manifest required (keys {ID_A}, {ID_B}; a lower serial than the disk's last verified copy is refused)")),
        "{shown}"
    );
    assert!(
        shown.contains(
            "if the disk is ours and complete and was verified against a signed manifest"
        ),
        "{shown}"
    );
    let v = plan_json(sync, &format!("{keys}allow_rollback = true\n"));
    assert_eq!(step(&v, "sync")["trust"]["allow_rollback"], json!(true));

    // No keys: said so, and any complete copy boots.
    let v = plan_json(sync, "");
    assert_eq!(step(&v, "sync")["trust"], Value::Null);
    assert_eq!(
        step(&v, "mount_last_complete")["verified_only"],
        json!(false)
    );
    let p = boot(&parse(sync), &Config::default(), Target::default());
    assert!(crate::boot::explain::render(&p, "test", None)
        .contains("not verified: no [trust] keys (the node syncs whatever the server serves)"));
    // Mode local boots only a verified copy too.
    let v = plan_json("initagent.mode=local initagent.disk=/dev/vda", &keys);
    assert_eq!(
        step(&v, "mount_last_complete")["verified_only"],
        json!(true)
    );
}

#[test]
fn with_trust_keys_a_live_root_is_said_to_be_unverified() {
    use crate::config::tests::KEY_A;
    let keys = format!("[trust]\nkeys = [\"{KEY_A}\"]\n");
    let unverified = "reads of a live NFS root cannot be verified";
    for cmdline in [
        "root=nfs:10.0.0.9:/r initagent.mode=nfsroot",
        "root=nfs:10.0.0.9:/r initagent.mode=update",
        "root=nfs:10.0.0.9:/r initagent.mode=overlay",
        "root=nfs:10.0.0.9:/r STATEMNT= NODE=cn01",
        "root=nfs:10.0.0.9:/r initagent.mode=nfsroot initagent.nodeid=3",
    ] {
        let v = plan_json(cmdline, &keys);
        assert_eq!(v["errors"], json!([]), "{cmdline}: {v:#}");
        let notes = v["notes"].to_string();
        assert_eq!(notes.matches(unverified).count(), 1, "{cmdline}: {notes}");
        // The boot goes on: nothing else changes but that the cluster file,
        // like anything the master says, is taken only as signed.
        let mut without = plan_json(cmdline, "");
        without["notes"] = v["notes"].clone();
        for (w, s) in without["steps"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(v["steps"].as_array().unwrap())
        {
            if s["step"] == "read_cluster" {
                assert_eq!(s["trust"]["keys"][0]["key"], json!(KEY_A), "{cmdline}");
                w["trust"] = s["trust"].clone();
            }
        }
        assert_eq!(v, without, "{cmdline}");
    }
    for cmdline in [
        "root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda",
        "initagent.mode=local initagent.disk=/dev/vda",
    ] {
        let v = plan_json(cmdline, &keys);
        assert!(!v["notes"].to_string().contains(unverified), "{cmdline}");
    }
    let v = plan_json("root=nfs:10.0.0.9:/r initagent.mode=nfsroot", "");
    assert!(!v["notes"].to_string().contains(unverified));
}

#[test]
fn a_disk_bootloader_is_a_step_after_the_post_sync_hooks_and_its_files_are_protected() {
    let disk = "[[disk]]\ndevice = \"/dev/vda\"\nbootloader = \"extlinux\"\n[[disk.partition]]\nname = \"swap\"\nsize = \"1G\"\nfs = \"swap\"\n[[disk.partition]]\nname = \"root\"\nsize = \"rest\"\nfs = \"ext4\"\nmount = \"/\"\n";
    let sync = "BOOT_IMAGE=vmlinuz initrd=initrd-agent.img root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda NODE=cn01";
    let c = config::parse(disk).unwrap();
    let p = boot(&parse(sync), &c, Target::default());
    assert_eq!(p.errors, Vec::<String>::new());
    let names: Vec<&str> = p.steps.iter().map(Step::name).collect();
    let at = names.iter().position(|n| *n == "bootloader").unwrap();
    assert_eq!(
        names[at - 1..],
        ["hooks", "bootloader", "hooks", "switch_root"],
        "{names:?}"
    );
    let Step::Bootloader(i) = &p.steps[at] else {
        panic!("{:?}", p.steps[at]);
    };
    assert_eq!(
        (i.disk.device.as_str(), i.partition, i.root.as_str()),
        ("/dev/vda", 2, "/sysroot")
    );
    // The boot loader's own keys are its to add, not to hand on.
    assert_eq!(
        i.append,
        "root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda NODE=cn01"
    );
    let protect = p.steps.iter().find_map(|s| match s {
        Step::Sync { protect, .. } => Some(protect.clone()),
        _ => None,
    });
    assert!(protect.unwrap().contains(&"/boot/extlinux/***".to_string()));
    // Never in the `local` fallback, which writes nothing.
    assert!(!p.local.iter().any(|s| s.name() == "bootloader"));
    let shown = crate::boot::explain::render(&p, "test", None);
    assert!(
        shown.contains("install extlinux on /dev/vda (BIOS; each part only when changed): /sysroot/boot/extlinux/ gets the synced root's /boot/vmlinuz-<running kernel release>, this initramfs and extlinux.conf (APPEND root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vda NODE=cn01); extlinux --install chrooted in /sysroot; partition 2 marked bootable; /usr/lib/syslinux/mbr/gptmbr.bin's first 440 bytes on /dev/vda"),
        "{shown}"
    );
    let v = plan_json(sync, disk);
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "bootloader")
        .unwrap();
    assert_eq!(step["loader"], json!("extlinux"));
    assert_eq!(step["partition"], json!(2));

    // Without the key, another disk, another mode: no step, nothing protected.
    for (cmdline, text) in [
        (sync, ""),
        (
            "root=nfs:10.0.0.9:/r initagent.mode=sync initagent.disk=/dev/vdb",
            disk,
        ),
        ("root=nfs:10.0.0.9:/r initagent.mode=nfsroot", disk),
        ("initagent.mode=local initagent.disk=/dev/vda", disk),
    ] {
        let p = boot(
            &parse(cmdline),
            &config::parse(text).unwrap(),
            Target::default(),
        );
        assert!(p.bootloader.is_none(), "{cmdline}");
        assert!(
            !p.steps.iter().any(|s| s.name() == "bootloader"),
            "{cmdline}"
        );
        assert!(
            !p.steps.iter().any(|s| matches!(s, Step::Sync { protect, .. } if protect.iter().any(|x| x.starts_with("/boot")))),
            "{cmdline}"
        );
    }
    // Under a host initramfs: a note, no step.
    for packaging in [Packaging::Dracut, Packaging::InitramfsTools] {
        let p = boot(
            &parse(sync),
            &c,
            Target {
                packaging,
                root: "/sysroot",
            },
        );
        assert!(!p.steps.iter().any(|s| s.name() == "bootloader"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("[[disk]] /dev/vda bootloader: not installed under")),
            "{:?}",
            p.notes
        );
    }
}
