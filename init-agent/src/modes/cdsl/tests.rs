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
    }
}

#[test]
fn plans_read_like_the_admin_commands() {
    assert_eq!(
        lines(&plan_boot(&cfg(), "3").unwrap()),
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
        assert!(plan_boot(&cfg(), id)
            .unwrap_err()
            .to_string()
            .contains("node id"));
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ia-cdsl-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("etc/conf.d")).unwrap();
    fs::write(dir.join("etc/hostname"), "shared\n").unwrap();
    fs::write(dir.join("etc/conf.d/net"), "shared net\n").unwrap();
    dir
}

fn run(root: &Path, actions: Result<Vec<Action>, CdslError>) {
    apply(root, &cfg(), &actions.unwrap()).unwrap();
}

#[test]
fn two_nodes_see_their_own_files_through_one_shared_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let root = scratch("nodes");
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
    for n in ["1", "2"] {
        let r = root.clone();
        let n = n.to_string();
        std::thread::spawn(move || {
            crate::sys::private_mount_namespace().unwrap();
            run(&r, plan_boot(&cfg(), &n));
            assert_eq!(
                fs::read_to_string(r.join("etc/hostname")).unwrap(),
                format!("node{n}\n")
            );
            assert_eq!(
                fs::read_to_string(r.join("etc/conf.d/net")).unwrap(),
                format!("net{n}\n")
            );
        })
        .join()
        .unwrap();
    }
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
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let root = scratch("escape");
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
