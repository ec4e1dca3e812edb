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

/// A litetree directory `dir/<name>` holding `files`, and its row.
fn litetree(dir: &Path, name: &str, priority: f64, files: &[(&str, &str)]) -> LiteTree {
    for (file, text) in files {
        let at = dir.join(name).join(file);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        fs::write(at, text).unwrap();
    }
    LiteTree {
        priority,
        image: "ALL".into(),
        directory: dir.join(name).display().to_string(),
        mntopts: None,
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
    let tree = |priority: f64, name: &str, text: &str| {
        litetree(
            &dir,
            name,
            priority,
            &[("etc/motd", text), ("etc/issue", text)],
        )
    };
    let t = tables(
        vec![
            lf("/etc/motd", ""),
            lf("/etc/issue", "con"),
            lf("/etc/issue.net", "link"),
        ],
        vec![tree(2.0, "t2", "tree two\n"), tree(1.0, "t1", "tree one\n")],
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

#[test]
fn persistent_entries_found_nowhere_are_created_and_persistent_con_concatenates_once() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("persistent-con");
    let (root, state) = (dir.join("root"), dir.join("state"));
    image(&root);
    fs::create_dir_all(&state).unwrap();
    let t = tables(
        vec![
            lf("/etc/hosts", "persistent,con"),
            lf("/etc/machine-info", "persistent"),
            lf("/var/lib/site/", "persistent"),
        ],
        vec![
            litetree(&dir, "t1", 1.0, &[("etc/hosts", "10.0.0.1 master\n")]),
            litetree(&dir, "t2", 2.0, &[("etc/hosts", "10.0.0.2 login\n")]),
        ],
    );
    let (r1, s1, t1) = (root.clone(), state.clone(), t.clone());
    isolated(move || {
        apply_to(&r1, &request(&t1, &s1)).unwrap();
        // First boot: the trees' copies concatenated into the store, bound.
        assert_eq!(
            fs::read_to_string(r1.join("etc/hosts")).unwrap(),
            "10.0.0.1 master\n10.0.0.2 login\n"
        );
        fs::write(r1.join("etc/hosts"), "node's own hosts\n").unwrap();
        // Found nowhere: created empty in the store (file / directory), bound.
        assert_eq!(fs::read(s1.join("cn01/etc/machine-info")).unwrap(), b"");
        assert!(s1.join("cn01/var/lib/site").is_dir());
        fs::write(r1.join("var/lib/site/kept"), "kept\n").unwrap();
        fs::write(r1.join("etc/machine-info"), "PRETTY_HOSTNAME=cn01\n").unwrap();
    });
    assert_eq!(
        fs::read_to_string(state.join("cn01/etc/hosts")).unwrap(),
        "node's own hosts\n"
    );
    // The image got only the empty mount points.
    assert_eq!(fs::read(root.join("etc/machine-info")).unwrap(), b"");
    assert_eq!(fs::read_dir(root.join("var/lib/site")).unwrap().count(), 0);
    // A tree changes; "reboot": the stored file wins, nothing is concatenated again.
    fs::write(dir.join("t2/etc/hosts"), "10.0.0.3 new\n").unwrap();
    let (r2, s2) = (root.clone(), state.clone());
    isolated(move || {
        let done = apply_to(&r2, &request(&t, &s2)).unwrap();
        assert!(
            !done
                .iter()
                .any(|a| matches!(a, plan::Action::Concat { .. })),
            "{done:?}"
        );
        assert_eq!(
            fs::read_to_string(r2.join("etc/hosts")).unwrap(),
            "node's own hosts\n"
        );
        assert_eq!(
            fs::read_to_string(r2.join("var/lib/site/kept")).unwrap(),
            "kept\n"
        );
        assert_eq!(
            fs::read_to_string(r2.join("etc/machine-info")).unwrap(),
            "PRETTY_HOSTNAME=cn01\n"
        );
    });
    let _ = fs::remove_dir_all(&dir);
}

fn tree_listing(at: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![at.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(at).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push((rel, "dir".into()));
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.push((rel, format!("-> {}", fs::read_link(&p).unwrap().display())));
            } else {
                // Sizes and times, not contents: the test root may be a whole Debian.
                out.push((
                    rel,
                    format!("{} bytes, {:?}", meta.len(), meta.modified().ok()),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn liteimg_alone_prepares_the_image_idempotently_and_undoes_removed_rows() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("liteimg");
    let root = dir.join("root");
    image(&root);
    let entries_of = |rows: Vec<LiteFile>| plan::entries(&rows, "debian").unwrap();
    let both = entries_of(vec![lf("/etc/motd", ""), lf("/etc/issue", "link")]);
    // The dry run writes nothing.
    let before = tree_listing(&root);
    let planned = liteimg(&root, &both, true).unwrap();
    assert_eq!(planned.len(), 3, "{planned:?}");
    assert_eq!(tree_listing(&root), before);
    let motd = fs::read_to_string(root.join("etc/motd")).unwrap();
    liteimg(&root, &both, false).unwrap();
    assert_eq!(
        fs::read_link(root.join("etc/motd")).unwrap(),
        Path::new("../.statelite/tmpfs/etc/motd")
    );
    assert_eq!(
        fs::read_to_string(root.join(".default/etc/motd")).unwrap(),
        motd
    );
    assert!(root.join(".statelite/liteimg.json").is_file());
    // No boot layout, no log: only what xCAT's liteimg writes.
    assert!(!root.join(".statelite/statelite.log").exists());
    assert!(!root.join(".statelite/tmpfs").exists());
    // Twice: nothing to do, nothing changed.
    let prepared = tree_listing(&root);
    assert!(liteimg(&root, &both, false).unwrap().is_empty());
    assert_eq!(tree_listing(&root), prepared);
    // /etc/motd's row removed: its original is back, /etc/issue stays linked.
    let done = liteimg(&root, &entries_of(vec![lf("/etc/issue", "link")]), false).unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(fs::read_to_string(root.join("etc/motd")).unwrap(), motd);
    assert!(!root.join(".default/etc/motd").exists());
    assert!(fs::symlink_metadata(root.join("etc/issue"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Every row gone: the image is what it was, bar liteimg's record and
    // the empty directories it made.
    liteimg(&root, &[], false).unwrap();
    let after: Vec<_> = tree_listing(&root)
        .into_iter()
        .filter(|(p, kind)| {
            !(p.starts_with(".statelite") || p.starts_with(".default") && kind == "dir")
        })
        .collect();
    assert_eq!(after, before);
    let _ = fs::remove_dir_all(&dir);
}
