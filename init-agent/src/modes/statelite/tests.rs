//! Statelite applied for real, as root, in a private mount namespace per test
//! (each test's mounts vanish with its thread).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::plan::Store;
use super::*;
use crate::config::{LiteFile, LiteTree, Statelite};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `f` on a thread with its own mount namespace.
fn isolated<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        crate::sys::private_mount_namespace().expect("private mount namespace");
        f();
    })
    .join()
    .expect("test thread panicked");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ia-statelite-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Debian root: the debootstrapped one test.sh provides, else a small
/// stand-in with the paths the ALT table names.
fn image(at: &Path) {
    fs::create_dir_all(at).unwrap();
    if let Ok(src) = std::env::var("INIT_AGENT_TEST_ROOT") {
        let opts = crate::sync::Options {
            quiet: true,
            no_marker: true,
            ..Default::default()
        };
        crate::sync::run(&crate::sync::SyncSource::Dir(src.into()), at, &opts).unwrap();
        return;
    }
    for d in [
        "etc/ssh",
        "tmp",
        "var/cache",
        "var/lib/dhcp",
        "var/log",
        "var/spool",
        "var/tmp",
        "home",
        "root",
        "run",
    ] {
        fs::create_dir_all(at.join(d)).unwrap();
    }
    for f in [
        "etc/adjtime",
        "etc/fstab",
        "etc/resolv.conf",
        "etc/issue",
        "etc/issue.net",
        "etc/hosts",
        "etc/motd",
    ] {
        fs::write(at.join(f), format!("image {f}\n")).unwrap();
    }
    fs::write(at.join("etc/ssh/sshd_config"), "image sshd\n").unwrap();
    fs::write(at.join("var/log/dpkg.log"), "image log\n").unwrap();
    fs::write(at.join("root/.bashrc"), "image bashrc\n").unwrap();
}

const ALT: &str = include_str!("../../../../conf/xcat/litefile-alt.csv");

fn tables(litefile: Vec<LiteFile>, litetree: Vec<LiteTree>) -> Statelite {
    Statelite {
        litefile,
        litetree,
        ..Default::default()
    }
}

/// What the boot's overlay step does: the overlay, then the persistent entries.
fn overlay_apply(lower: &Path, scratch: &Path, target: &Path, req: &Request) {
    overlay::mount(lower, scratch, target).unwrap();
    let persistent = Statelite {
        litefile: req
            .tables
            .litefile
            .iter()
            .filter(|r| matches!(plan::Kind::parse(&r.options), Ok(plan::Kind::Persistent)))
            .cloned()
            .collect(),
        litetree: Vec::new(),
        ..req.tables.clone()
    };
    let only = Request {
        tables: &persistent,
        image: req.image,
        node: req.node,
        store: req.store.clone(),
        attributes: req.attributes.clone(),
    };
    apply_to(target, &only).unwrap();
}

fn request<'a>(t: &'a Statelite, state: &Path) -> Request<'a> {
    Request {
        tables: t,
        image: "debian",
        node: "cn01",
        store: Some(Store::Dir(state.display().to_string())),
        attributes: BTreeMap::new(),
    }
}

#[test]
fn the_alt_table_gives_the_xcat_layout_and_persistence_across_applies() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("alt");
    let (root, state) = (dir.join("root"), dir.join("state"));
    image(&root);
    fs::create_dir_all(&state).unwrap();
    let t = tables(import::parse_litefile(ALT).unwrap(), Vec::new());
    assert_eq!(t.litefile.len(), 33);
    let (r1, s1, t1) = (root.clone(), state.clone(), t.clone());
    isolated(move || {
        let done = apply_to(&r1, &request(&t1, &s1)).unwrap();
        let text: Vec<String> = done.iter().map(|a| a.to_string()).collect();
        for dirname in ["tmpfs", "persistent/cn01", "mnt"] {
            assert!(r1.join(".statelite").join(dirname).is_dir(), "{dirname}");
        }
        let log = fs::read_to_string(r1.join(".statelite/statelite.log")).unwrap();
        assert!(log.contains("mount tmpfs on /.statelite"), "{log}");
        // Paths the image lacks are warnings, not silence.
        assert!(
            text.iter().any(|l| l.starts_with("warning: /xcatpost")),
            "{text:#?}"
        );
        // Blank = link: liteimg's chain, the original kept in /.default.
        assert_eq!(
            fs::read_link(r1.join("etc/fstab")).unwrap(),
            Path::new("../.statelite/tmpfs/etc/fstab")
        );
        assert!(r1.join(".default/etc/fstab").is_file());
        // Writes land in the node's tmpfs, not in the image.
        fs::write(r1.join("etc/fstab"), "node fstab\n").unwrap();
        assert_eq!(
            fs::read_to_string(r1.join(".statelite/tmpfs/etc/fstab")).unwrap(),
            "node fstab\n"
        );
        fs::write(r1.join("tmp/scratch"), "gone at reboot\n").unwrap();
        // persistent: /root lives in <state>/cn01/root.
        fs::write(r1.join("root/marker"), "kept\n").unwrap();
        assert_eq!(
            fs::read_to_string(s1.join("cn01/root/marker")).unwrap(),
            "kept\n"
        );
    });
    // The image itself never saw the node's writes.
    assert!(!root.join("root/marker").exists());
    assert!(!root.join("tmp/scratch").exists());
    // "Reboot": a fresh namespace, the same state directory.
    let (r2, s2) = (root.clone(), state.clone());
    isolated(move || {
        apply_to(&r2, &request(&t, &s2)).unwrap();
        assert_eq!(
            fs::read_to_string(r2.join("root/marker")).unwrap(),
            "kept\n"
        );
        assert!(
            !r2.join("tmp/scratch").exists(),
            "tmpfs content survived a reboot"
        );
        assert_ne!(
            fs::read_to_string(r2.join("etc/fstab")).unwrap(),
            "node fstab\n"
        );
    });
    let _ = fs::remove_dir_all(&dir);
}

fn lf(file: &str, options: &str) -> LiteFile {
    LiteFile {
        image: "ALL".into(),
        file: file.into(),
        options: options.into(),
    }
}

#[test]
fn litetrees_win_by_priority_con_concatenates_and_link_chains_are_made() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("trees");
    let (root, state) = (dir.join("root"), dir.join("state"));
    image(&root);
    fs::create_dir_all(&state).unwrap();
    for (tree, motd) in [("t1", "tree one\n"), ("t2", "tree two\n")] {
        fs::create_dir_all(dir.join(tree).join("etc")).unwrap();
        fs::write(dir.join(tree).join("etc/motd"), motd).unwrap();
        fs::write(dir.join(tree).join("etc/issue"), motd).unwrap();
    }
    let tree = |p: f64, d: &str| LiteTree {
        priority: p,
        image: "ALL".into(),
        directory: dir.join(d).display().to_string(),
        mntopts: None,
    };
    let t = tables(
        vec![
            lf("/etc/motd", ""),
            lf("/etc/issue", "con"),
            lf("/etc/issue.net", "link"),
        ],
        vec![tree(2.0, "t2"), tree(1.0, "t1")],
    );
    let r = root.clone();
    isolated(move || {
        apply_to(&r, &request(&t, &state)).unwrap();
        assert_eq!(
            fs::read_to_string(r.join("etc/motd")).unwrap(),
            "tree one\n"
        );
        assert_eq!(
            fs::read_to_string(r.join("etc/issue")).unwrap(),
            "tree one\ntree two\n"
        );
        assert_eq!(
            fs::read_link(r.join("etc/issue.net")).unwrap(),
            Path::new("../.statelite/tmpfs/etc/issue.net")
        );
        // Through the chain, the node reads its tmpfs copy of the original.
        let original = fs::read_to_string(r.join(".default/etc/issue.net")).unwrap();
        assert_eq!(
            fs::read_to_string(r.join("etc/issue.net")).unwrap(),
            original
        );
    });
    // liteimg's preparation stays in the image: original preserved in /.default.
    assert!(root.join(".default/etc/issue.net").is_file());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn symlinks_in_the_image_cannot_lead_outside_the_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("escape");
    let (root, state, outside) = (dir.join("root"), dir.join("state"), dir.join("outside"));
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(&state).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "outside\n").unwrap();
    // Absolute and climbing links, as a hostile image could hold them.
    std::os::unix::fs::symlink(&outside, root.join("var")).unwrap();
    std::os::unix::fs::symlink("../../../../../outside/secret", root.join("etc/motd")).unwrap();
    let t = tables(
        vec![lf("/var/", ""), lf("/etc/motd", "persistent")],
        Vec::new(),
    );
    let r = root.clone();
    isolated(move || {
        // Whatever the outcome, nothing outside may be read into or written.
        let _ = apply_to(&r, &request(&t, &state));
    });
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "outside\n"
    );
    let copied = fs::read_to_string(dir.join("state/cn01/etc/motd")).ok();
    assert_ne!(
        copied.as_deref(),
        Some("outside\n"),
        "read outside the root"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_second_apply_on_a_live_root_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("twice");
    let (root, state) = (dir.join("root"), dir.join("state"));
    image(&root);
    fs::create_dir_all(&state).unwrap();
    let t = tables(vec![lf("/etc/motd", "")], Vec::new());
    isolated(move || {
        apply_to(&root, &request(&t, &state)).unwrap();
        let e = apply_to(&root, &request(&t, &state)).unwrap_err();
        assert!(e.to_string().contains("already applied"), "{e}");
    });
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn overlay_keeps_the_lower_root_untouched_and_binds_persistent_entries() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("overlay");
    let (lower, state, target, tmp) = (
        dir.join("lower"),
        dir.join("state"),
        dir.join("root"),
        dir.join("scratch"),
    );
    image(&lower);
    fs::create_dir_all(&state).unwrap();
    fs::create_dir_all(&target).unwrap();
    let t = tables(
        vec![lf("/root/", "persistent"), lf("/etc/motd", "")],
        Vec::new(),
    );
    let (l, s, r, x, t1) = (
        lower.clone(),
        state.clone(),
        target.clone(),
        tmp.clone(),
        t.clone(),
    );
    isolated(move || {
        overlay_apply(&l, &x, &r, &request(&t1, &s));
        fs::write(r.join("etc/motd"), "node motd\n").unwrap();
        fs::write(r.join("root/marker"), "kept\n").unwrap();
        // Renaming a symlink: ltsp#860 (ENXIO with an NFS lower on >= 5.15).
        std::os::unix::fs::symlink("motd", r.join("etc/motd-link")).unwrap();
        fs::rename(r.join("etc/motd-link"), r.join("etc/motd-link2")).unwrap();
    });
    assert_ne!(
        fs::read_to_string(lower.join("etc/motd")).unwrap(),
        "node motd\n"
    );
    assert!(!lower.join("etc/motd-link2").exists());
    assert_eq!(
        fs::read_to_string(state.join("cn01/root/marker")).unwrap(),
        "kept\n"
    );
    let (r2, x2) = (target.clone(), tmp.clone());
    isolated(move || {
        overlay_apply(&lower, &x2, &r2, &request(&t, &state));
        assert_eq!(
            fs::read_to_string(r2.join("root/marker")).unwrap(),
            "kept\n"
        );
        assert!(
            !r2.join("etc/motd-link2").exists(),
            "RAM layer survived a reboot"
        );
    });
    let _ = fs::remove_dir_all(&dir);
}
