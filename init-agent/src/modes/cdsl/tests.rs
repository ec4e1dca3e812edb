use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn cfg() -> Cdsl {
    Cdsl::default()
}

fn lines(a: &[Action]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn layout_of(trees: &[&str], hostdep: &[&str]) -> Layout {
    Layout {
        trees: trees.iter().map(|s| s.to_string()).collect(),
        hostdep: hostdep.iter().map(|s| s.to_string()).collect(),
        shared: Vec::new(),
    }
}

fn boot_plan(nodeid: &str) -> Result<Vec<Action>, CdslError> {
    plan_boot(&cfg(), &layout_of(&[], &[]), nodeid, &|_, _| true)
}

#[test]
fn plans_read_like_the_admin_commands() {
    assert_eq!(
        lines(&boot_plan("3").unwrap()),
        vec!["bind /cluster/cdsl/3 -> /cdsl.local"]
    );
    assert_eq!(
        lines(&plan_init(&cfg(), &["1".into(), "2".into()]).unwrap()),
        vec![
            "mkdir /cluster/cdsl/default",
            "copy /cluster/cdsl/default -> /cluster/cdsl/1",
            "copy /cluster/cdsl/default -> /cluster/cdsl/2",
            "mkdir /cluster/shared",
            "mkdir /cdsl.local",
        ]
    );
    let l = layout_of(&["/cluster/cdsl/default", "/cluster/cdsl/1"], &[]);
    assert_eq!(
        lines(&plan_hostdep(&cfg(), &l, "/etc/hostname").unwrap()),
        vec![
            "copy /etc/hostname -> /cluster/cdsl/default/etc/hostname",
            "copy /etc/hostname -> /cluster/cdsl/1/etc/hostname",
            "remove /etc/hostname",
            "symlink /etc/hostname -> ../cdsl.local/etc/hostname",
            "inventory add /etc/hostname",
        ]
    );
    let l = layout_of(
        &["/cluster/cdsl/default", "/cluster/cdsl/1"],
        &["/etc/hostname"],
    );
    assert_eq!(
        lines(&plan_shared(&cfg(), &l, "/etc/hostname").unwrap()),
        vec![
            "remove /etc/hostname",
            "copy /cluster/cdsl/default/etc/hostname -> /etc/hostname",
            "remove /cluster/cdsl/default/etc/hostname",
            "remove /cluster/cdsl/1/etc/hostname",
            "inventory drop /etc/hostname",
        ]
    );
}

#[test]
fn bad_ids_and_paths_are_refused_by_name() {
    let l = layout_of(&["/cluster/cdsl/default"], &["/etc/motd"]);
    for id in ["", "a/b", "..", "."] {
        assert!(boot_plan(id).unwrap_err().to_string().contains("node id"));
        assert!(plan_init(&cfg(), &[id.to_string()]).is_err());
    }
    for (p, why) in [
        ("etc/x", "absolute"),
        ("/etc/../shadow", "normalised"),
        ("/etc//x", "normalised"),
        ("/cluster/cdsl/1/x", "infrastructure"),
        ("/cdsl.local", "infrastructure"),
        ("/cluster", "infrastructure"),
        ("/etc/motd", "already"),
    ] {
        let e = plan_hostdep(&cfg(), &l, p).unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains(p.trim_end_matches('/')),
            "{p}: {e}"
        );
    }
    assert!(plan_shared(&cfg(), &l, "/etc/hosts")
        .unwrap_err()
        .to_string()
        .contains("not host-dependent"));
    assert!(plan_hostdep(&cfg(), &layout_of(&[], &[]), "/etc/x")
        .unwrap_err()
        .to_string()
        .contains("cdsl init"));
}

/// A scratch root for a test that needs root; None (and a note) otherwise.
fn root_scratch(name: &str) -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("ia-cdsl-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("etc/conf.d")).unwrap();
    fs::write(dir.join("etc/hostname"), "shared\n").unwrap();
    fs::write(dir.join("etc/conf.d/net"), "shared net\n").unwrap();
    Some(dir)
}

/// Boots nodes 1 and 2, each in its own mount namespace, and runs `check`
/// there as that node.
fn boot_each(root: &Path, check: fn(&Path, &str)) {
    for n in ["1", "2"] {
        let r = root.to_path_buf();
        std::thread::spawn(move || {
            crate::sys::private_mount_namespace().unwrap();
            boot(&r, &cfg(), n).unwrap();
            check(&r, n);
        })
        .join()
        .unwrap();
    }
}

fn run(root: &Path, actions: Result<Vec<Action>, CdslError>) {
    apply(root, &cfg(), &actions.unwrap()).unwrap();
}

#[test]
fn two_nodes_see_their_own_files_through_one_shared_root() {
    let Some(root) = root_scratch("nodes") else {
        return;
    };
    run(&root, plan_init(&cfg(), &["1".into(), "2".into()]));
    for p in ["/etc/hostname", "/etc/conf.d"] {
        let l = layout(&root, &cfg()).unwrap();
        run(&root, plan_hostdep(&cfg(), &l, p));
    }
    assert_eq!(
        fs::read_link(root.join("etc/hostname")).unwrap(),
        Path::new("../cdsl.local/etc/hostname")
    );
    assert_eq!(
        fs::read_link(root.join("etc/conf.d")).unwrap(),
        Path::new("../cdsl.local/etc/conf.d")
    );
    let l = layout(&root, &cfg()).unwrap();
    assert_eq!(l.hostdep, vec!["/etc/conf.d", "/etc/hostname"]);
    assert_eq!(
        l.trees,
        vec![
            "/cluster/cdsl/default",
            "/cluster/cdsl/1",
            "/cluster/cdsl/2"
        ]
    );
    for n in ["1", "2"] {
        fs::write(
            root.join(format!("cluster/cdsl/{n}/etc/hostname")),
            format!("node{n}\n"),
        )
        .unwrap();
        fs::write(
            root.join(format!("cluster/cdsl/{n}/etc/conf.d/net")),
            format!("net{n}\n"),
        )
        .unwrap();
    }
    boot_each(&root, |r, n| {
        assert_eq!(
            fs::read_to_string(r.join("etc/hostname")).unwrap(),
            format!("node{n}\n")
        );
        assert_eq!(
            fs::read_to_string(r.join("etc/conf.d/net")).unwrap(),
            format!("net{n}\n")
        );
    });
    // Shared again: the default copy comes back as the real file.
    let l = layout(&root, &cfg()).unwrap();
    run(&root, plan_shared(&cfg(), &l, "/etc/hostname"));
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "shared\n"
    );
    assert!(!root.join("cluster/cdsl/1/etc/hostname").exists());
    assert_eq!(layout(&root, &cfg()).unwrap().hostdep, vec!["/etc/conf.d"]);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn symlinks_in_the_root_cannot_lead_a_conversion_outside() {
    let Some(root) = root_scratch("escape") else {
        return;
    };
    let outside = root.with_extension("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/evil")).unwrap();
    run(&root, plan_init(&cfg(), &["1".into()]));
    let l = layout(&root, &cfg()).unwrap();
    // /etc/evil/secret resolves inside the root (to nothing): refused or
    // harmless, never touching the real outside.
    let _ = plan_hostdep(&cfg(), &l, "/etc/evil/secret").map(|a| apply(&root, &cfg(), &a));
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "outside\n"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&outside);
}

#[test]
fn shared_inside_a_hostdep_directory_links_every_tree_to_the_shared_copy() {
    let c = cfg();
    let l = layout_of(&["/cluster/cdsl/default", "/cluster/cdsl/1"], &["/var"]);
    assert_eq!(
        lines(&plan_shared(&c, &l, "/var/lib").unwrap()),
        vec![
            "mkdir /cluster/shared/var",
            "copy /cluster/cdsl/default/var/lib -> /cluster/shared/var/lib",
            "remove /cluster/cdsl/default/var/lib",
            "symlink /cluster/cdsl/default/var/lib -> ../../cluster/shared/var/lib",
            "remove /cluster/cdsl/1/var/lib",
            "symlink /cluster/cdsl/1/var/lib -> ../../cluster/shared/var/lib",
            "inventory add shared /var/lib",
        ]
    );
    let mut l = l;
    l.shared.push("/var/lib".into());
    // Shared already; its hostdep parent cannot be undone under it; nor can
    // a path inside the hostdep directory be made hostdep on its own.
    for (p, why) in [
        ("/var/lib", "shared already"),
        ("/var", "holds the shared /var/lib"),
    ] {
        let e = plan_shared(&c, &l, p).unwrap_err().to_string();
        assert!(e.contains(why), "{p}: {e}");
    }
    assert!(plan_hostdep(&c, &l, "/var/log")
        .unwrap_err()
        .to_string()
        .contains("inside the host-dependent /var"));
    // Undone by `cdsl hostdep`: each tree gets its own copy back.
    assert_eq!(
        lines(&plan_hostdep(&c, &l, "/var/lib").unwrap()),
        vec![
            "remove /cluster/cdsl/default/var/lib",
            "copy /cluster/shared/var/lib -> /cluster/cdsl/default/var/lib",
            "remove /cluster/cdsl/1/var/lib",
            "copy /cluster/shared/var/lib -> /cluster/cdsl/1/var/lib",
            "remove /cluster/shared/var/lib",
            "inventory drop shared /var/lib",
        ]
    );
    // Boot: nothing more where the tree has the link; a bind where it lacks it.
    assert_eq!(
        lines(&plan_boot(&c, &l, "1", &|_, _| true).unwrap()),
        vec!["bind /cluster/cdsl/1 -> /cdsl.local"]
    );
    let asked = std::cell::RefCell::new(Vec::new());
    let got = plan_boot(&c, &l, "1", &|path, target| {
        asked.borrow_mut().push(format!("{path} -> {target}"));
        false
    })
    .unwrap();
    assert_eq!(
        asked.into_inner(),
        vec!["/cluster/cdsl/1/var/lib -> ../../cluster/shared/var/lib"]
    );
    assert_eq!(
        lines(&got),
        vec![
            "bind /cluster/cdsl/1 -> /cdsl.local",
            "bind /cluster/shared/var/lib -> /cdsl.local/var/lib",
        ]
    );
    assert!(plan_shared(&c, &layout_of(&[], &[]), "/opt/x")
        .unwrap_err()
        .to_string()
        .contains("nor inside a host-dependent directory"));
}

#[test]
fn a_shared_path_inside_a_hostdep_directory_is_one_copy_for_every_node() {
    let Some(root) = root_scratch("shared-inside") else {
        return;
    };
    fs::create_dir_all(root.join("var/lib/app")).unwrap();
    fs::write(root.join("var/lib/app/data"), "shared data\n").unwrap();
    fs::write(root.join("var/state"), "per node\n").unwrap();
    run(&root, plan_init(&cfg(), &["1".into(), "2".into()]));
    run(
        &root,
        layout(&root, &cfg()).and_then(|l| plan_hostdep(&cfg(), &l, "/var")),
    );
    run(
        &root,
        layout(&root, &cfg()).and_then(|l| plan_shared(&cfg(), &l, "/var/lib")),
    );
    let l = layout(&root, &cfg()).unwrap();
    assert_eq!(
        (l.hostdep.clone(), l.shared.clone()),
        (vec!["/var".into()], vec!["/var/lib".into()])
    );
    assert_eq!(
        fs::read_to_string(root.join("cluster/shared/var/lib/app/data")).unwrap(),
        "shared data\n"
    );
    for t in ["default", "1", "2"] {
        assert_eq!(
            fs::read_link(root.join(format!("cluster/cdsl/{t}/var/lib"))).unwrap(),
            Path::new("../../cluster/shared/var/lib")
        );
    }
    // Node 2's tree lost its link (made by hand): the boot binds instead.
    fs::remove_file(root.join("cluster/cdsl/2/var/lib")).unwrap();
    fs::create_dir(root.join("cluster/cdsl/2/var/lib")).unwrap();
    boot_each(&root, |r, n| {
        fs::write(r.join("var/state"), format!("node{n}\n")).unwrap();
        // Every node writes into the one shared copy.
        fs::write(r.join(format!("var/lib/app/from{n}")), "x").unwrap();
        assert_eq!(
            fs::read_to_string(r.join("var/lib/app/data")).unwrap(),
            "shared data\n"
        );
    });
    assert!(root.join("cluster/shared/var/lib/app/from1").exists());
    assert!(root.join("cluster/shared/var/lib/app/from2").exists());
    assert_eq!(
        fs::read_to_string(root.join("cluster/cdsl/2/var/state")).unwrap(),
        "node2\n"
    );
    // And back: every tree has its own copy again, the shared one gone.
    run(
        &root,
        layout(&root, &cfg()).and_then(|l| plan_hostdep(&cfg(), &l, "/var/lib")),
    );
    assert!(root.join("cluster/cdsl/1/var/lib/app/from2").is_file());
    assert!(!root.join("cluster/shared/var/lib").exists());
    assert!(layout(&root, &cfg()).unwrap().shared.is_empty());
    let _ = fs::remove_dir_all(&root);
}
