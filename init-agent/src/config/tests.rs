use super::*;

const EXAMPLE: &str = include_str!("../../../conf/init-agent.toml");

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("should be refused")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
}

#[test]
fn example_config_is_valid_and_complete() {
    let c = parse(EXAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.boot.mode, Some(Mode::Sync));
    assert_eq!(c.boot.fallback, Some(Fallback::Local));
    assert_eq!(c.source.servers, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(c.disk[0].partition[1].size, Size::Rest);
    assert_eq!(c.disk[0].partition[0].size, Size::Bytes(4 << 30));
    assert_eq!(c.statelite.litefile[1].file, "/var/log/");
    assert_eq!(c.statelite.litetree[0].priority, 1.0);
    let update = c
        .node_by_mac(&"52:54:00:12:35:fe".parse().unwrap())
        .unwrap()
        .1;
    assert_eq!(
        (update.name.as_deref(), update.nodeid.as_deref()),
        (Some("update"), Some("254"))
    );
    assert_eq!(update.mode, Some(Mode::Update));
    // Every section the schema has appears in the example, so it documents them all.
    let shown: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let all = toml::Table::try_from(Config::default()).unwrap();
    for key in all.keys() {
        assert!(shown.contains_key(key), "example lacks [{key}]");
    }
}

#[test]
fn syntax_errors_have_positions() {
    let e = parse("[boot]\nmode = \"sync\n").unwrap_err();
    assert_eq!((e[0].line, e[0].column > 1), (2, true), "{e:?}");
}

#[test]
fn every_type_error_is_reported_with_its_position() {
    let text = r#"[boot]
mode = "diskless"
timeout = "long"

[net]
dhcp_timeout = -3

[[disk]]
device = "/dev/sda"
wpie = true

[[disk.partition]]
name = "root"
size = "lots"
fs = "ext4"

[[node]]
mac = "52:54:00:zz:00:01"

[[node]]
mac = "52:54:00:00:00:02"
nodeid = -1

[statelit]
image = "x"
"#;
    let e = errors(text);
    let lines: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
    assert_eq!(
        lines,
        ["2", "3", "6", "10", "14", "18", "22", "24"],
        "{e:#?}"
    );
    assert!(e[0].contains("diskless"), "{}", e[0]);
    assert!(e[3].contains("wpie"), "{}", e[3]);
    assert!(e[7].contains("statelit"), "{}", e[7]);
    // Columns point at the value.
    assert!(e[0].starts_with("2:8:"), "{}", e[0]);
}

#[test]
fn every_semantic_error_is_reported_with_its_position() {
    let text = r#"[boot]
init = "sbin/init"

[source]
servers = ["10.0.0.1", "bad server"]
options = ["vers=2"]

[[disk]]
device = "sda"

[[disk.partition]]
name = "a"
size = "rest"
fs = "ext4"
mount = "/"

[[disk.partition]]
name = "a"
size = "1G"
fs = "swap"
mount = "/swap"

[[disk]]
device = "/dev/sdb"
[[disk.partition]]
name = "label-far-too-long-for-ext4"
size = "1G"
fs = "ext4"
mount = "/"

[[statelite.litefile]]
file = "/etc/ssh/"
options = "con"
[[statelite.litefile]]
image = "ALL"
file = "/etc/ssh/"
options = "tmpfs"
[[statelite.litefile]]
file = "/var"
options = "sometimes"

[[node]]
mac = "52:54:00:00:00:01"
nodeid = "../x"
[[node]]
mac = ["52:54:00:00:00:01"]
name = "n2"
"#;
    let e = errors(text);
    let lines: Vec<usize> = e
        .iter()
        .map(|s| s.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        lines,
        [2, 5, 6, 9, 13, 18, 21, 26, 29, 33, 36, 40, 44, 46],
        "{e:#?}"
    );
    let all = e.join("\n");
    for needle in [
        "sbin/init",
        "bad server",
        "version `2`",
        "not a device",
        "only the last partition",
        "used twice",
        "cannot be mounted",
        "not a label",
        "also the mount point",
        "`con`",
        "listed twice",
        "sometimes",
        "../x",
        "also belongs",
    ] {
        assert!(all.contains(needle), "no error mentions {needle}:\n{all}");
    }
}

#[test]
fn sizes() {
    for (s, b) in [
        ("512M", 512u64 << 20),
        ("20G", 20 << 30),
        ("1T", 1 << 40),
        ("4KiB", 4096),
    ] {
        assert_eq!(s.parse::<Size>(), Ok(Size::Bytes(b)));
        assert_eq!(
            Size::Bytes(b).to_string().parse::<Size>(),
            Ok(Size::Bytes(b))
        );
    }
    for bad in ["", "0G", "12", "1.5G", "G", "-1G", "99999999999T", "1g"] {
        assert!(bad.parse::<Size>().is_err(), "{bad}");
    }
}

#[test]
fn load_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("ia-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[boot]\ntimeout = -1\n").unwrap();
    let msg = load_file(&f).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: 2:", f.display())), "{msg}");
    let missing = load_file(&dir.join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.toml"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn never_panics_on_text(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        /// Mutations of the example: every refusal carries a position inside the text.
        #[test]
        fn errors_point_inside_the_text(cut in 0..EXAMPLE.len(), junk in "[\\[\\]=\"a-z0-9 \n,.-]{0,12}") {
            let mut text = EXAMPLE.to_string();
            let cut = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.insert_str(cut, &junk);
            if let Err(errs) = parse(&text) {
                let lines = text.lines().count().max(1) + 1;
                for e in errs {
                    prop_assert!(e.line >= 1 && e.line <= lines && e.column >= 1, "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}

#[test]
fn sync_patterns_are_checked_with_the_engine_syntax() {
    let e = errors("[sync]\nexclude = [\"/tmp/**\", \"[a-\"]\nprotect = [\"/\"]\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("2:") && e[0].contains("[a-"), "{e:?}");
    assert!(e[1].starts_with("3:") && e[1].contains("root"), "{e:?}");
}

#[test]
fn litefile_parent_child_rules_are_checked_at_the_child_row() {
    let e = errors(
        "[[statelite.litefile]]\nfile = \"/var/\"\noptions = \"persistent\"\n\n[[statelite.litefile]]\nfile = \"/var/x\"\noptions = \"tmpfs\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("6:") && e[0].contains("persistent parent"),
        "{e:?}"
    );
}

#[test]
fn hosts_and_resolver_settings_are_checked_where_they_are_written() {
    let text = r#"[net]
dns = ["10.0.0.53"]
search = ["cluster", "bad domain"]
dns_timeout = 0

[hosts]
"master.cluster" = "10.0.0.1"
"10.0.0.2" = "10.0.0.2"
"-bad" = "10.0.0.3"
"#;
    let mut e = errors(text);
    e.sort();
    let lines: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
    assert_eq!(lines, ["3", "4", "8", "9"], "{e:#?}");
    assert!(e[2].contains("is an address, not a name"), "{}", e[2]);
    assert!(e[3].contains("`-bad` is not a host name"), "{}", e[3]);
    // An address that is not one is a type error, at its line.
    let e = errors("[hosts]\nmaster = \"10.0.0.300\"\n");
    assert!(e[0].starts_with("2:"), "{e:?}");
}

#[test]
fn localdisk_is_refused_and_persistent_con_accepted_by_check_config() {
    let e = errors("[[statelite.litefile]]\nfile = \"/var/tmp/\"\noptions = \"localdisk\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    // The planner's own words: what the boot would say, said here first.
    assert!(
        e[0].starts_with("3:")
            && e[0].contains("localdisk is not supported: use sync mode for local disks"),
        "{e:?}"
    );
    let c = parse("[[statelite.litefile]]\nfile = \"/etc/hosts\"\noptions = \"persistent,con\"\n")
        .expect("persistent,con is accepted");
    assert_eq!(c.statelite.litefile[0].options, "persistent,con");
    let e = errors("[[statelite.litefile]]\nfile = \"/etc/ssh/\"\noptions = \"persistent,con\"\n");
    assert!(e[0].contains("`con` applies to files"), "{e:?}");
}

#[test]
fn a_node_row_needs_a_mac_or_a_name_and_matches_one_node() {
    assert!(parse("[[node]]\nname = \"cn002\"\n").is_ok());
    let e = errors("[[node]]\nnodeid = 3\n");
    assert!(
        e[0].starts_with("1:") && e[0].contains("a MAC or a name"),
        "{e:?}"
    );
    let e = errors(
        "[[node]]\nmac = \"52:54:00:00:00:01\"\nname = \"cn001\"\n\n[[node]]\nmac = \"52:54:00:00:00:01\"\nname = \"cn001\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("6:") && e[0].contains("also belongs to node entry 1"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("7:") && e[1].contains("`cn001` is used twice"),
        "{e:?}"
    );
}

#[test]
fn attribute_columns_are_xcat_s_and_groups_are_one_row_each() {
    let e = errors(
        "[[node]]\nname = \"cn001\"\n[node.nodepos]\nroom = \"r1\"\nfloor = \"2\"\n\n[[group]]\nname = \"compute\"\n[group.noderes]\nnfsserver = \"10.0.0.1\"\n\n[[group]]\nname = \"compute\"\n\n[[group]]\nname = \"cn001\"\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].contains("`floor` is not a column of xCAT's nodepos table (rack, u, chassis"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("13:") && e[1].contains("group `compute` has two rows"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("16:") && e[2].contains("`cn001` is both a node and a group"),
        "{e:?}"
    );
    // A table that is not one of the three is a typo serde already names.
    let e = errors("[[node]]\nname = \"cn001\"\n[node.noderez]\nnfsserver = \"x\"\n");
    assert!(e[0].contains("noderez"), "{e:?}");
}

#[test]
fn attributes_are_the_node_s_then_its_groups_in_its_order() {
    let c = parse(
        r#"
[[node]]
name = "cn001"
groups = ["rack1", "compute", "missing"]
nodetype = { os = "rocky9.4" }
[[group]]
name = "compute"
nodetype = { os = "rocky9", arch = "x86_64" }
nodepos = { room = "r9" }
[[group]]
name = "rack1"
nodepos = { room = "r1" }
"#,
    )
    .unwrap();
    let (_, n) = c.node_by_name("cn001").unwrap();
    let got: Vec<(String, String)> = c.attributes(n).into_iter().collect();
    let want = [
        ("nodepos.room", "r1"),
        ("nodetype.arch", "x86_64"),
        ("nodetype.os", "rocky9.4"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(got, want);
}

#[test]
fn litetree_variables_are_checked_for_every_node_row() {
    let base = r#"
[[statelite.litetree]]
priority = 1.0
directory = "$noderes.nfsserver:/rooms/$nodepos.room"
[[statelite.litetree]]
priority = 2.0
directory = "10.0.0.1:/t/$nodepos.floor"
[[node]]
name = "cn001"
noderes = { nfsserver = "10.0.0.1" }
"#;
    let e = errors(base);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("4:")
            && e[0]
                .contains("$nodepos.room has no value for node cn001 (table nodepos, column room)"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("7:") && e[1].contains("unknown variable $nodepos.floor"),
        "{e:?}"
    );
    // A node whose mode mounts no litetrees needs no values.
    assert!(parse(&format!(
        "{base}nodepos = {{ room = \"r1\" }}\n[[node]]\nname = \"upd\"\nmode = \"update\"\n"
    ))
    .unwrap_err()
    .iter()
    .all(|e| !e.to_string().contains("node upd")));
    // Without node rows, unknown variables are still found.
    let e = errors("[[statelite.litetree]]\npriority = 1.0\ndirectory = \"10.0.0.1:/t/$nope\"\n");
    assert!(
        e.iter().any(|e| e.contains("unknown variable $nope")),
        "{e:?}"
    );
}

#[test]
fn a_cluster_file_replaces_the_sections_it_has_and_not_how_to_reach_the_master() {
    let embedded = parse(
        "[boot]\nmode = \"sync\"\n[sync]\nexclude = [\"/scratch/**\"]\n[net]\ndns = [\"10.0.0.53\"]\n",
    )
    .unwrap();
    let (merged, taken) = parse_cluster(
        "[sync]\nprotect = [\"/var/lib/site/**\"]\n\n[[node]]\nname = \"cn001\"\nmode = \"local\"\n",
        &embedded,
    )
    .unwrap();
    assert_eq!(taken, ["node", "sync"]);
    // [sync] replaced whole: the embedded exclude is gone, [boot] and [net] stay.
    assert_eq!(merged.sync.protect, ["/var/lib/site/**"]);
    assert!(merged.sync.exclude.is_empty());
    assert_eq!(merged.boot.mode, Some(crate::cmdline::Mode::Sync));
    assert_eq!(merged.net.dns, embedded.net.dns);
    assert_eq!(merged.node[0].mode, Some(crate::cmdline::Mode::Local));
    // What reaches the master, and a broken file: line and column.
    let e = parse_cluster(
        "[boot]\nmode = \"sync\"\n\n[net]\ndns = [\"10.0.0.9\"]\n",
        &embedded,
    )
    .unwrap_err();
    assert_eq!((e[0].line, e[0].column), (4, 1), "{e:?}");
    assert!(
        e[0].message
            .contains("[net] cannot come from the cluster file"),
        "{e:?}"
    );
    let e = parse_cluster("[boot]\nmode = \"fast\"\n", &embedded).unwrap_err();
    assert_eq!(e[0].line, 2, "{e:?}");
}

/// Two keys made by `init-agent keygen`, and their minisign ids.
pub(crate) const KEY_A: &str = "RWRtah1xZ0taxsWIwUfqHNiK8TrTiqInYvTCxbPA4Z6ueujiAdUuOKct";
pub(crate) const KEY_B: &str = "RWSker+IQrLo+zZTlXDjJ6IquAmvnXvvMapGrVwJjhmbQuKQIgwZn1VO";
pub(crate) const ID_A: &str = "C65A4B67711D6A6D";
pub(crate) const ID_B: &str = "FBE8B24288BF7AA4";

#[test]
fn trust_takes_several_keys_and_defaults_to_none() {
    assert_eq!(Config::default().trust.for_sync(), Ok(None));
    let c = parse(&format!(
        "[trust]\nkeys = [\"{KEY_A}\", \"{KEY_B}\"]\nallow_rollback = true\n"
    ))
    .unwrap();
    let t = c
        .trust
        .for_sync()
        .unwrap()
        .expect("keys give a verifying sync");
    assert_eq!(
        t.keys.iter().map(|k| k.id()).collect::<Vec<_>>(),
        [ID_A, ID_B]
    );
    assert!(t.allow_rollback);
    // Unvalidated (built in code, or read without the checks), a bad key
    // fails the sync's trust whole: none is left out.
    let mut c = c;
    c.trust.keys.push("RWQnot-a-key".into());
    assert!(c.trust.for_sync().is_err());
}

#[test]
fn a_key_that_does_not_parse_is_an_error_at_its_line_and_column() {
    let text =
        format!("[boot]\nmode = \"sync\"\n\n[trust]\nkeys = [\"{KEY_A}\", \"RWQnot-a-key\"]\n");
    let e = errors(&text);
    let column = 9 + KEY_A.len() + 4;
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "5:{column}: [trust] keys: not a minisign public key"
        )),
        "{e:?}"
    );
    let e = errors("[trust]\nallow_rolback = true\n");
    assert!(
        e[0].starts_with("2:1: unknown field `allow_rolback`"),
        "{e:?}"
    );
    let e = errors(&format!("[trust]\nkeys = [\"{KEY_A}\", \"{KEY_A}\"]\n"));
    assert_eq!(e, [format!("2:{column}: key {ID_A} is listed twice")]);
}

#[test]
fn the_cluster_file_cannot_change_what_the_node_trusts() {
    let embedded = parse(&format!(
        "[boot]\nmode = \"sync\"\n[trust]\nkeys = [\"{KEY_A}\"]\n"
    ))
    .unwrap();
    let e = parse_cluster(
        &format!("[sync]\nchecksum = true\n\n[trust]\nkeys = [\"{KEY_B}\"]\n"),
        &embedded,
    )
    .unwrap_err();
    assert_eq!((e[0].line, e[0].column), (4, 1), "{e:?}");
    assert!(
        e[0].message
            .contains("[trust] cannot come from the cluster file: the master must not choose what the node trusts"),
        "{e:?}"
    );
    // Nor take a verifying node off its signed roots by naming a live mode.
    let e = parse_cluster(
        "[boot]\nmode = \"nfsroot\"\n[[node]]\nname = \"cn001\"\nmode = \"local\"\n[[node]]\nname = \"cn002\"\nmode = \"update\"\n",
        &embedded,
    )
    .unwrap_err();
    let at: Vec<(usize, usize)> = e.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(2, 8), (8, 8)], "{e:?}");
    assert!(
        e[1].message.starts_with(
            "mode update cannot come from the cluster file of a node with [trust] keys"
        ),
        "{e:?}"
    );
    // Without keys the cluster file may choose any mode.
    let unsigned = parse("[boot]\nmode = \"sync\"\n").unwrap();
    let (merged, _) = parse_cluster("[boot]\nmode = \"nfsroot\"\n", &unsigned).unwrap();
    assert_eq!(merged.boot.mode, Some(Mode::Nfsroot));
    // With keys, the embedded ones stay when the cluster file is taken.
    let (merged, _) = parse_cluster("[boot]\nmode = \"local\"\n", &embedded).unwrap();
    assert_eq!(merged.trust, embedded.trust);
}

/// A broken initramfs configuration never takes the node's keys with it:
/// its `[trust]` is kept where it can be read; where it cannot, nothing is
/// trusted and the plan says so (the node never syncs unverified).
#[test]
fn a_broken_boot_configuration_keeps_its_keys_or_trusts_nothing() {
    let dir = std::env::temp_dir().join(format!("ia-salvage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let load = |name: &str, text: &str| {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        load_for_boot(Some(&f), None)
    };
    let trust = format!("[trust]\nkeys = [\"{KEY_A}\"]\n");
    // A type error elsewhere: defaults, keys kept.
    let l = load(
        "typo.toml",
        &format!("[boot]\nmode = \"sideways\"\n\n{trust}"),
    );
    assert!(!l.errors.is_empty());
    assert_eq!(l.config.trust.keys, vec![KEY_A.to_string()]);
    assert!(l.config.trust.for_sync().unwrap().is_some());
    // Broken syntax: the table cannot be read, so nothing is trusted.
    let l = load("syntax.toml", &format!("[boot\nmode = \"sync\"\n{trust}"));
    assert!(l.config.trust.required());
    let e = l.config.trust.for_sync().unwrap_err();
    assert!(e.contains("nothing is trusted"), "{e}");
    assert!(
        l.errors.iter().any(|e| e.contains("[trust] table")),
        "{:?}",
        l.errors
    );
    let plan = crate::boot::plan::boot(
        &crate::cmdline::parse_bytes(
            b"root=nfs:10.0.2.2:/std initagent.mode=sync initagent.disk=/dev/vda",
        ),
        &l.config,
        Default::default(),
    );
    assert!(
        plan.errors.iter().any(|e| e.contains("nothing is trusted")),
        "{:?}",
        plan.errors
    );
    // The [trust] table itself wrong: the same.
    let l = load("badtrust.toml", "[trust]\nkeys = \"one\"\n");
    assert!(l.config.trust.for_sync().is_err());
    // Broken, with no [trust] at all: defaults, unverified as before.
    let l = load("plain.toml", "[boot\nmode = \"sync\"\n");
    assert!(!l.config.trust.required());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn salvage_trust_reads_only_the_trust_table() {
    assert_eq!(salvage_trust("[boot]\nmode = 1\n"), Ok(None));
    let t = salvage_trust(&format!(
        "[boot]\nx = 1\n[trust]\nkeys = [\"{KEY_B}\"]\nallow_rollback = true\n"
    ))
    .unwrap()
    .unwrap();
    assert_eq!((t.keys, t.allow_rollback), (vec![KEY_B.to_string()], true));
    assert!(salvage_trust("[trust]\nkeys = [1]\n").is_err());
    assert!(salvage_trust("[ trust ]\nkeys = [\nbroken").is_err());
    assert_eq!(salvage_trust("[boot\nbroken"), Ok(None));
}

#[test]
fn a_bootloader_needs_the_disk_s_root_partition_on_ext4() {
    let disk = |fs: &str, mount: &str| {
        format!("[[disk]]\ndevice = \"/dev/sda\"\nbootloader = \"extlinux\"\n[[disk.partition]]\nname = \"root\"\nsize = \"rest\"\nfs = \"{fs}\"\n{mount}")
    };
    let c = parse(&disk("ext4", "mount = \"/\"\n")).unwrap();
    assert_eq!(c.disk[0].bootloader, Some(Bootloader::Extlinux));
    let e = errors(&disk("xfs", "mount = \"/\"\n"));
    assert!(
        e[0].starts_with("3:")
            && e[0].contains("extlinux boots the `/` partition from ext4 here, not xfs"),
        "{e:?}"
    );
    let e = errors(&disk("ext4", "mount = \"/data\"\n"));
    assert!(e[0].contains("this disk has none"), "{e:?}");
    let e = errors("[[disk]]\ndevice = \"/dev/sda\"\nbootloader = \"grub\"\n");
    assert!(e[0].starts_with("3:") && e[0].contains("grub"), "{e:?}");
}
