use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn row(image: &str, file: &str, options: &str) -> LiteFile {
    LiteFile {
        image: image.into(),
        file: file.into(),
        options: options.into(),
    }
}

struct Fake {
    files: BTreeSet<String>,
    empty_dirs: BTreeSet<String>,
    links: BTreeSet<String>,
    writable: bool,
}

impl Fake {
    fn new(files: &[&str]) -> Fake {
        Fake {
            files: files.iter().map(|s| s.to_string()).collect(),
            empty_dirs: BTreeSet::new(),
            links: BTreeSet::new(),
            writable: false,
        }
    }
}

impl Probe for Fake {
    fn found(&self, path: &str) -> Option<bool> {
        if self.files.contains(path) {
            Some(true)
        } else if self.empty_dirs.contains(path) {
            Some(false)
        } else {
            None
        }
    }
    fn is_prepared_link(&self, path: &str) -> bool {
        self.links.contains(path)
    }
    fn writable(&self) -> bool {
        self.writable
    }
}

fn lines(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

fn one(file: &str, options: &str) -> Vec<Entry> {
    entries(&[row("ALL", file, options)], "img").unwrap()
}

#[test]
fn options_parse_as_documented() {
    for (o, k) in [
        ("", Kind::Link),
        ("tmpfs", Kind::Tmpfs),
        ("rw", Kind::Tmpfs),
        ("tmpfs,rw", Kind::Link),
        ("persistent", Kind::Persistent),
        ("persistent,con", Kind::PersistentCon),
        ("con", Kind::Con),
        ("ro", Kind::Ro),
        ("link", Kind::Link),
        ("link,persistent", Kind::LinkPersistent),
        ("link,con", Kind::LinkCon),
        ("link,ro", Kind::LinkRo),
    ] {
        assert_eq!(Kind::parse(o), Ok(k), "{o:?}");
    }
    assert_eq!(
        Kind::parse("localdisk").unwrap_err().to_string(),
        "localdisk is not supported: use sync mode for local disks"
    );
    assert!(Kind::parse("bogus").is_err());
}

#[test]
fn image_rows_override_all_rows_and_children_know_their_parent() {
    let rows = [
        row("ALL", "/var/log/", ""),
        row("", "/etc/hostname", "tmpfs"),
        row("img", "/var/log/", "persistent"),
        row("other", "/etc/motd", "persistent"),
        row("ALL", "/var/log/audit/", "persistent"),
    ];
    let e = entries(&rows, "img").unwrap();
    let got: Vec<(&str, bool, Kind, Option<usize>)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.dir, e.kind, e.parent))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/etc/hostname", false, Kind::Tmpfs, None),
            ("/var/log", true, Kind::Persistent, None),
            ("/var/log/audit", true, Kind::Persistent, Some(1)),
        ]
    );
}

#[test]
fn rows_for_every_image_apply_when_the_image_is_unnamed() {
    let e = entries(
        &[row("", "/etc/motd", ""), row("ALL", "/etc/hosts", "")],
        "",
    )
    .unwrap();
    assert_eq!(e.len(), 2);
}

#[test]
fn hostile_and_inconsistent_tables_are_refused_naming_the_entry() {
    let cases: Vec<(Vec<LiteFile>, &str)> = vec![
        (vec![row("ALL", "etc/motd", "")], "absolute"),
        (vec![row("ALL", "/etc/../../shadow", "")], "'..'"),
        (vec![row("ALL", "/etc//motd", "")], "empty"),
        (vec![row("ALL", "/", "")], "root"),
        (vec![row("ALL", "/.statelite/x", "")], "statelite layout"),
        (
            vec![
                row("ALL", "/etc/motd", ""),
                row("ALL", "/etc/motd", "persistent"),
            ],
            "twice",
        ),
        (vec![row("ALL", "/etc/", "con")], "con applies to files"),
        (
            vec![row("ALL", "/etc/", "ro"), row("ALL", "/etc/motd", "")],
            "ro/con",
        ),
        (
            vec![
                row("ALL", "/etc/", "tmpfs"),
                row("ALL", "/etc/motd", "link"),
            ],
            "non-link parent",
        ),
        (
            vec![
                row("ALL", "/etc/", "link"),
                row("ALL", "/etc/motd", "tmpfs"),
            ],
            "link parent",
        ),
        (
            vec![
                row("ALL", "/etc/", "link"),
                row("ALL", "/etc/motd", "link,ro"),
            ],
            "link parent",
        ),
        (
            vec![
                row("ALL", "/var/", "persistent"),
                row("ALL", "/var/x", "tmpfs"),
            ],
            "persistent parent",
        ),
        (vec![row("ALL", "/var/x", "localdisk")], "localdisk"),
    ];
    for (rows, want) in cases {
        let errs = entries(&rows, "img").expect_err(want);
        let text = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(text.contains(want), "{text:?} lacks {want:?}");
        assert!(text.starts_with("litefile "), "{text}");
    }
    let inp = Inputs {
        entries: &[],
        trees: &[],
        node: "a/b",
        store: None,
    };
    assert!(plan_layout(&inp).is_err());
}

#[test]
fn litetrees_sort_by_priority_and_expand_variables() {
    let attributes: BTreeMap<String, String> = [("nodetype.os", "rhels8")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let vars = Variables {
        node: Some("cn01"),
        image: "img",
        attributes: &attributes,
    };
    let rows = [
        LiteTree {
            priority: 2.0,
            image: "ALL".into(),
            directory: "10.0.0.1:/trees/${nodetype.os}".into(),
            mntopts: None,
        },
        LiteTree {
            priority: 1.5,
            image: "img".into(),
            directory: "10.0.0.1:/trees/$node/x".into(),
            mntopts: Some("vers=4".into()),
        },
    ];
    let t = trees(&rows, &vars).unwrap();
    assert_eq!(t[0].location.to_string(), "10.0.0.1:/trees/cn01/x");
    let tree = t[0].mount(addr).unwrap();
    let Mountable::Nfs(m) = &tree.source else {
        panic!("{:?}", tree.source)
    };
    assert_eq!(
        (m.fstype, m.data.as_str(), m.read_only),
        ("nfs4", "vers=4,addr=10.0.0.1,proto=tcp", true)
    );
    assert_eq!(t[1].location.to_string(), "10.0.0.1:/trees/rhels8");
    // A known column without a value names table, column, node and row.
    let named = [
        rows[1].clone(),
        LiteTree {
            priority: 1.0,
            image: String::new(),
            directory: "$noderes.nfsserver:/trees".into(),
            mntopts: None,
        },
    ];
    let e = trees(&named, &vars).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "litetree row 2: $noderes.nfsserver has no value for node cn01 (table noderes, column nfsserver)"
    );
    // Before DHCP has named the node, the error says so.
    let e = trees(&named, &Variables { node: None, ..vars }).unwrap_err();
    assert!(
        e[0].to_string().contains("for node (DHCP host name)"),
        "{e:?}"
    );
    let with_server = |server: &str| {
        let mut with = attributes.clone();
        with.insert("noderes.nfsserver".into(), server.into());
        let vars = Variables {
            attributes: &with,
            ..vars
        };
        trees(&named, &vars)
    };
    // A server name stays a name until the tree is mounted; the mount
    // asks for its address then.
    let t = with_server("cnfs").unwrap();
    assert_eq!(t[0].location.to_string(), "cnfs:/trees");
    let mut asked = Vec::new();
    let tree = t[0]
        .mount(|h: &Host| {
            asked.push(h.to_string());
            Ok::<_, ()>("10.0.0.7".parse().unwrap())
        })
        .unwrap();
    assert_eq!(asked, ["cnfs"]);
    assert_eq!(tree.source.to_string(), "10.0.0.7:/trees");
    let t = with_server("10.0.0.9").unwrap();
    assert_eq!(t[0].location.to_string(), "10.0.0.9:/trees");
    // Neither $node, $image nor a column of the three tables.
    for unknown in ["srv:/$nope", "srv:/$nodepos.floor", "srv:/$hosts.ip"] {
        let bad = [LiteTree {
            priority: 1.0,
            image: String::new(),
            directory: unknown.into(),
            mntopts: None,
        }];
        let e = trees(&bad, &vars).unwrap_err();
        assert!(
            matches!(e[0].reason, Reason::UnknownVariable { .. }),
            "{unknown}: {e:?}"
        );
    }
    let up = [LiteTree {
        priority: 1.0,
        image: String::new(),
        directory: "srv:/a/../../etc".into(),
        mntopts: None,
    }];
    assert!(trees(&up, &vars).is_err());
}

#[test]
fn link_targets_are_relative_like_liteimg() {
    assert_eq!(
        link_target("/etc/hosts", "/.statelite/tmpfs/etc/hosts"),
        "../.statelite/tmpfs/etc/hosts"
    );
    assert_eq!(
        link_target("/a", "/.statelite/tmpfs/a"),
        ".statelite/tmpfs/a"
    );
}

#[test]
fn layout_mounts_store_and_trees_in_order() {
    let mountable = |l: &str, o: &[&str]| {
        let options: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        Location::parse(l, &options)
            .unwrap()
            .mountable(addr)
            .unwrap()
    };
    let store = mountable("10.0.0.1:/state", &["rw", "nolock"]);
    let trees = [Tree {
        priority: 1.0,
        source: mountable("10.0.0.1:/tree", &["ro"]),
    }];
    let inp = Inputs {
        entries: &[],
        trees: &trees,
        node: "cn01",
        store: Some(&store),
    };
    assert_eq!(
        lines(&plan_layout(&inp).unwrap()),
        vec![
            "mount tmpfs on /.statelite",
            "mkdir /.statelite/tmpfs",
            "mkdir /.statelite/persistent",
            "mkdir /.statelite/mnt",
            "mount 10.0.0.1:/state on /.statelite/persistent (rw,nolock,vers=4.2,addr=10.0.0.1,proto=tcp)",
            "mkdir /.statelite/persistent/cn01",
            "mkdir /.statelite/mnt/0",
            "mount 10.0.0.1:/tree on /.statelite/mnt/0 (ro,vers=4.2,addr=10.0.0.1,proto=tcp)",
        ]
    );
}

fn entry_plan(e: &[Entry], trees: usize, store: bool, probe: &Fake) -> Vec<String> {
    let t: Vec<Tree> = (0..trees)
        .map(|i| Tree {
            priority: i as f64,
            source: Mountable::Dir(format!("/trees/{i}")),
        })
        .collect();
    let s = Store::Dir("/state".into());
    let inp = Inputs {
        entries: e,
        trees: &t,
        node: "cn01",
        store: store.then_some(&s),
    };
    lines(&plan_entries(&inp, probe))
}

#[test]
fn tmpfs_copies_the_first_litetree_hit_else_the_image_and_binds() {
    let e = one("/etc/motd", "tmpfs");
    let probe = Fake::new(&["/etc/motd", "/.statelite/mnt/1/etc/motd"]);
    assert_eq!(
        entry_plan(&e, 2, false, &probe),
        vec![
            "copy /.statelite/mnt/1/etc/motd -> /.statelite/tmpfs/etc/motd",
            "bind /.statelite/tmpfs/etc/motd on /etc/motd",
        ]
    );
    // An empty directory in a tree counts as not found (xCAT).
    let e = one("/var/spool/", "tmpfs");
    let mut probe = Fake::new(&["/var/spool"]);
    probe
        .empty_dirs
        .insert("/.statelite/mnt/0/var/spool".into());
    assert_eq!(
        entry_plan(&e, 1, false, &probe)[0],
        "copy /var/spool -> /.statelite/tmpfs/var/spool"
    );
}

#[test]
fn persistent_copies_once_into_the_node_directory_and_binds() {
    let e = one("/root/", "persistent");
    let probe = Fake::new(&["/root"]);
    assert_eq!(
        entry_plan(&e, 0, true, &probe),
        vec![
            "copy /root -> /.statelite/persistent/cn01/root (if missing)",
            "bind /.statelite/persistent/cn01/root on /root",
        ]
    );
    let without_store = entry_plan(&e, 0, false, &probe);
    assert!(without_store[0].starts_with("warning: /root: persistent but no STATEMNT"));
}

#[test]
fn con_concatenates_every_tree_that_has_the_file() {
    let e = one("/etc/hosts", "con");
    let probe = Fake::new(&[
        "/etc/hosts",
        "/.statelite/mnt/0/etc/hosts",
        "/.statelite/mnt/2/etc/hosts",
    ]);
    assert_eq!(
        entry_plan(&e, 3, false, &probe)[0],
        "concatenate /.statelite/mnt/0/etc/hosts + /.statelite/mnt/2/etc/hosts -> /.statelite/tmpfs/etc/hosts"
    );
}

#[test]
fn ro_binds_the_tree_copy_read_only_or_warns() {
    let e = one("/opt/app/", "ro");
    let probe = Fake::new(&["/.statelite/mnt/0/opt/app"]);
    assert_eq!(
        entry_plan(&e, 1, false, &probe),
        vec!["bind /.statelite/mnt/0/opt/app on /opt/app (ro)"]
    );
    assert!(entry_plan(&e, 0, false, &Fake::new(&[]))[0].contains("ro needs a litetree copy"));
}

#[test]
fn a_file_found_nowhere_is_a_warning() {
    let e = one("/etc/ntp.conf", "tmpfs");
    assert_eq!(
        entry_plan(&e, 1, false, &Fake::new(&[])),
        vec!["warning: /etc/ntp.conf: not found in any litetree, /.default or the image"]
    );
}

#[test]
fn link_entries_use_the_chain_prepare_it_or_fall_back_to_a_bind() {
    let e = one("/etc/hosts", "link");
    let mut prepared = Fake::new(&["/.default/etc/hosts"]);
    prepared.links.insert("/etc/hosts".into());
    assert_eq!(
        entry_plan(&e, 0, false, &prepared),
        vec!["copy /.default/etc/hosts -> /.statelite/tmpfs/etc/hosts"]
    );
    let mut writable = Fake::new(&["/etc/hosts"]);
    writable.writable = true;
    assert_eq!(
        entry_plan(&e, 0, false, &writable),
        vec![
            "prepare link /etc/hosts: original to /.default/etc/hosts, /etc/hosts -> ../.statelite/tmpfs/etc/hosts",
            "copy /.default/etc/hosts -> /.statelite/tmpfs/etc/hosts",
        ]
    );
    let read_only = Fake::new(&["/etc/hosts"]);
    let got = entry_plan(&e, 0, false, &read_only);
    assert!(got[0].starts_with("warning: /etc/hosts: the image has no link chain"));
    assert_eq!(got[2], "bind /.statelite/tmpfs/etc/hosts on /etc/hosts");
    let lp = one("/etc/ssh/", "link,persistent");
    let mut prepared = Fake::new(&["/.default/etc/ssh"]);
    prepared.links.insert("/etc/ssh".into());
    assert_eq!(
        entry_plan(&lp, 0, true, &prepared),
        vec![
            "copy /.default/etc/ssh -> /.statelite/persistent/cn01/etc/ssh (if missing)",
            "symlink /.statelite/tmpfs/etc/ssh -> ../../../.statelite/persistent/cn01/etc/ssh",
        ]
    );
}

#[test]
fn persistent_found_nowhere_is_created_in_the_store_and_bound() {
    // The image has the mount point: only the store copy is created.
    let f = one("/etc/machine-info", "persistent");
    assert_eq!(
        entry_plan(&f, 1, true, &Fake::new(&["/etc/machine-info"])),
        vec![
            "copy /etc/machine-info -> /.statelite/persistent/cn01/etc/machine-info (if missing)",
            "bind /.statelite/persistent/cn01/etc/machine-info on /etc/machine-info",
        ]
    );
    let mut writable = Fake::new(&[]);
    writable.writable = true;
    assert_eq!(
        entry_plan(&f, 1, true, &writable),
        vec![
            "create empty file /.statelite/persistent/cn01/etc/machine-info",
            "create empty file /etc/machine-info",
            "bind /.statelite/persistent/cn01/etc/machine-info on /etc/machine-info",
        ]
    );
    let d = one("/var/lib/site/", "persistent");
    assert_eq!(
        entry_plan(&d, 0, true, &writable),
        vec![
            "create directory /.statelite/persistent/cn01/var/lib/site",
            "create directory /var/lib/site",
            "bind /.statelite/persistent/cn01/var/lib/site on /var/lib/site",
        ]
    );
    // Stored already (an earlier boot), none in the image: the mount point
    // is created, the stored copy bound.
    let mut stored = Fake::new(&["/.statelite/persistent/cn01/var/lib/site"]);
    stored.writable = true;
    assert_eq!(
        entry_plan(&d, 0, true, &stored),
        vec![
            "create directory /var/lib/site",
            "bind /.statelite/persistent/cn01/var/lib/site on /var/lib/site"
        ]
    );
    // A read-only image without the mount point: a warning, never a failed bind.
    let got = entry_plan(&d, 0, true, &Fake::new(&[]));
    assert_eq!(
        got[0],
        "create directory /.statelite/persistent/cn01/var/lib/site"
    );
    assert!(
        got[1].starts_with("warning: /var/lib/site: not in the read-only image"),
        "{got:?}"
    );
    assert_eq!(got.len(), 2);
}

#[test]
fn persistent_con_concatenates_once_into_the_store_then_binds_it() {
    let e = one("/etc/hosts", "persistent,con");
    assert_eq!(e[0].describe(), "/etc/hosts persistent,con");
    let first = Fake::new(&[
        "/etc/hosts",
        "/.statelite/mnt/0/etc/hosts",
        "/.statelite/mnt/1/etc/hosts",
    ]);
    assert_eq!(
        entry_plan(&e, 2, true, &first),
        vec![
            "concatenate /.statelite/mnt/0/etc/hosts + /.statelite/mnt/1/etc/hosts -> /.statelite/persistent/cn01/etc/hosts",
            "bind /.statelite/persistent/cn01/etc/hosts on /etc/hosts",
        ]
    );
    // No litetree copy: the image's own file, as con does.
    assert_eq!(
        entry_plan(&e, 2, true, &Fake::new(&["/etc/hosts"]))[0],
        "concatenate /etc/hosts -> /.statelite/persistent/cn01/etc/hosts"
    );
    // Later boots: the node's stored file, never concatenated again.
    let later = Fake::new(&[
        "/etc/hosts",
        "/.statelite/mnt/0/etc/hosts",
        "/.statelite/persistent/cn01/etc/hosts",
    ]);
    assert_eq!(
        entry_plan(&e, 1, true, &later),
        vec!["bind /.statelite/persistent/cn01/etc/hosts on /etc/hosts"]
    );
    // Without STATEMNT: in tmpfs, with the usual warning.
    let got = entry_plan(&e, 1, false, &first);
    assert!(got[0].starts_with("warning: /etc/hosts: persistent but no STATEMNT"));
    assert_eq!(
        got[1],
        "concatenate /.statelite/mnt/0/etc/hosts -> /.statelite/tmpfs/etc/hosts"
    );
    // A directory cannot be concatenated.
    let refused = entries(&[row("ALL", "/etc/ssh/", "persistent,con")], "img").unwrap_err();
    assert_eq!(refused[0].reason, Reason::ConDirectory);
}

#[test]
fn localdisk_is_refused_by_the_planner_in_its_own_words() {
    let refused = entries(&[row("ALL", "/var/tmp/", "localdisk")], "img").unwrap_err();
    assert_eq!(
        refused[0].to_string(),
        "litefile /var/tmp/: localdisk is not supported: use sync mode for local disks"
    );
}

#[test]
fn liteimg_prepares_link_entries_records_them_and_undoes_removed_rows() {
    let e = entries(
        &[
            row("ALL", "/etc/motd", ""),
            row("ALL", "/etc/hosts", "link"),
            row("ALL", "/etc/fstab", "tmpfs"),
            row("ALL", "/etc/gone", "link"),
        ],
        "img",
    )
    .unwrap();
    let mut fresh = Fake::new(&["/etc/motd", "/etc/hosts", "/etc/fstab"]);
    fresh.writable = true;
    assert_eq!(
        lines(&plan_liteimg(&e, &[], &fresh)),
        vec![
            "warning: /etc/gone: not in the image nor in /.default: no link made",
            "prepare link /etc/hosts: original to /.default/etc/hosts, /etc/hosts -> ../.statelite/tmpfs/etc/hosts",
            "prepare link /etc/motd: original to /.default/etc/motd, /etc/motd -> ../.statelite/tmpfs/etc/motd",
            "record the link entries in /.statelite/liteimg.json: /etc/hosts /etc/motd",
        ]
    );
    // Prepared and recorded: nothing but the warning.
    let mut done = Fake::new(&["/.default/etc/motd", "/.default/etc/hosts", "/etc/fstab"]);
    done.writable = true;
    done.links = ["/etc/motd", "/etc/hosts"].map(String::from).into();
    let recorded = ["/etc/hosts".to_string(), "/etc/motd".to_string()];
    assert!(plan_liteimg(&e, &recorded, &done)
        .iter()
        .all(|a| matches!(a, Action::Warn(_))));
    // /etc/motd's row removed, /etc/hosts's turned tmpfs: both restored.
    let fewer = entries(&[row("ALL", "/etc/hosts", "tmpfs")], "img").unwrap();
    assert_eq!(
        lines(&plan_liteimg(&fewer, &recorded, &done)),
        vec![
            "restore /etc/hosts: liteimg's link removed, the original moved back from /.default/etc/hosts",
            "restore /etc/motd: liteimg's link removed, the original moved back from /.default/etc/motd",
            "record the link entries in /.statelite/liteimg.json: none",
        ]
    );
    // A recorded path the admin has replaced since is theirs: left alone.
    done.links.clear();
    let got = lines(&plan_liteimg(&fewer, &recorded, &done));
    assert!(
        got[0].contains("/etc/hosts: no longer a link entry, but not liteimg's link any more"),
        "{got:?}"
    );
    // A hostile record cannot name a path outside the tables' rules.
    let got = lines(&plan_liteimg(&[], &["/../etc/passwd".into()], &done));
    assert!(got[0].starts_with("warning: /../etc/passwd"), "{got:?}");
}

/// An address server as given; these tests name no host.
fn addr(h: &Host) -> Result<std::net::IpAddr, String> {
    match h {
        Host::Addr(a) => Ok(*a),
        Host::Name(n) => Err(format!("{n}: no address in this test")),
    }
}
