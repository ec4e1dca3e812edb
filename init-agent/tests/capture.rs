//! `init-agent capture` against real trees, as root: a hostile golden tree
//! is captured exactly but for what is the node's own, the capture is a
//! standard a node syncs by its manifest, and a destination that is not new
//! (or lies inside a standard root) is refused untouched.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::*;

fn capture(src: &Path, dest: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("capture")
        .arg("-q")
        .args(extra)
        .arg(src)
        .arg(dest)
        .output()
        .unwrap()
}

/// A golden node's root: the hostile tree (hardlinks, xattrs, ACLs, sparse
/// files, devices, odd names) plus the identity and state a running node has.
fn golden(s: &Scratch) -> std::path::PathBuf {
    let src = s.path("golden");
    mktree(&src, 11, "hostile");
    for d in [
        "etc/ssh",
        "var/log/apt",
        "var/lib/systemd",
        "tmp",
        ".init-agent",
        "opt/node-own",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for (f, text) in [
        ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
        ("etc/hostname", "golden\n"),
        ("etc/ssh/ssh_host_ed25519_key", "secret\n"),
        ("etc/ssh/sshd_config", "PermitRootLogin no\n"),
        ("var/log/syslog", "log\n"),
        ("var/log/apt/history.log", "log\n"),
        ("var/lib/systemd/random-seed", "seed\n"),
        ("tmp/scratch", "tmp\n"),
        (".init-agent/state", "complete g1\n"),
        ("opt/node-own/cache", "mine\n"),
        ("opt/tuned.conf", "hand-tuned\n"),
    ] {
        std::fs::write(src.join(f), text).unwrap();
    }
    src
}

/// The listing without the lines of paths the capture leaves out (and, for
/// the capture, its empty machine-id, checked apart).
fn captured_listing(root: &Path) -> String {
    let left_out = |p: &str| {
        [
            "etc/machine-id ",
            "etc/hostname ",
            "etc/ssh/ssh_host_ed25519_key ",
            "var/lib/systemd/random-seed ",
            "opt/node-own/",
        ]
        .iter()
        .any(|x| p.starts_with(x))
            || ["dev/", "var/log/", "tmp/"]
                .iter()
                .any(|d| p.starts_with(d))
    };
    listing(root)
        .lines()
        .filter(|l| !left_out(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_golden_tree_is_captured_exactly_but_for_the_nodes_own_and_syncs_by_its_manifest() {
    require_root!();
    let s = Scratch::new("capture");
    let src = golden(&s);
    let dest = s.path("captured");
    let out = capture(&src, &dest, &["--exclude", "/opt/node-own/**"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, got) = (captured_listing(&src), captured_listing(&dest));
    let d = differences(&want, &got);
    assert!(d.is_empty(), "capture differs:\n{}", d.join("\n"));
    // The identity left out; an empty machine-id for systemd's first boot.
    let id = std::fs::symlink_metadata(dest.join("etc/machine-id")).unwrap();
    assert_eq!(
        (
            id.len(),
            std::os::unix::fs::PermissionsExt::mode(&id.permissions()) & 0o7777
        ),
        (0, 0o444)
    );
    for gone in [
        "etc/hostname",
        "etc/ssh/ssh_host_ed25519_key",
        "var/log/syslog",
        "var/log/apt",
        "tmp/scratch",
        "opt/node-own/cache",
        "var/lib/systemd/random-seed",
    ] {
        assert!(!dest.join(gone).exists(), "{gone} was captured");
    }
    assert!(dest.join("var/log").is_dir() && dest.join("tmp").is_dir());
    // A standard now: manifest and generation, no sync marker, no capture in progress.
    let state: Vec<String> = std::fs::read_dir(dest.join(".init-agent"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut state = state;
    state.sort();
    assert_eq!(state, ["generation", "manifest"]);
    // The manifest is the captured tree's, exactly.
    let verify = Command::new(BIN)
        .args(["verify", "--all", "--manifest"])
        .arg(dest.join(".init-agent/manifest"))
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // A node syncs the new standard by its manifest.
    let node = s.path("node");
    let report = sync(&dest, &node, &["--source-manifest"]);
    assert_eq!(report["manifest"], "used", "{report}");
    assert_same_tree(&dest, &node);
    // The source was only read.
    assert_eq!(
        std::fs::read_to_string(src.join(".init-agent/state")).unwrap(),
        "complete g1\n"
    );
}

#[test]
fn a_destination_that_is_not_new_or_lies_in_a_standard_is_refused_untouched() {
    require_root!();
    let s = Scratch::new("capture-refused");
    let src = s.path("src");
    mktree(&src, 12, "small");
    let standard = s.path("standard");
    std::fs::create_dir_all(standard.join("etc")).unwrap();
    std::fs::write(standard.join("etc/issue"), "live\n").unwrap();
    run(Command::new(BIN)
        .arg("manifest")
        .arg(&standard)
        .arg("-o")
        .arg(standard.join(".init-agent/manifest")));
    let before = listing(&standard);
    let busy = s.path("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("data"), "keep\n").unwrap();
    for (dest, why) in [
        (standard.clone(), "is inside the standard root"),
        (standard.join("new"), "is inside the standard root"),
        (busy.clone(), "is not empty"),
        (src.join(".."), "lies inside the destination"),
    ] {
        let out = capture(&src, &dest, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", dest.display());
        assert!(err.contains(why), "{}: {err}", dest.display());
    }
    assert_eq!(listing(&standard), before);
    assert!(!standard.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(busy.join("data")).unwrap(),
        "keep\n"
    );
}

#[test]
fn an_interrupted_capture_is_resumed_and_a_destination_inside_the_source_left_out() {
    require_root!();
    let s = Scratch::new("capture-resume");
    let src = s.path("src");
    mktree(&src, 13, "small");
    // A capture cut short: its marker and a file the source no longer has.
    let dest = s.path("src/srv/new");
    std::fs::create_dir_all(dest.join(".init-agent")).unwrap();
    std::fs::write(dest.join(".init-agent/capturing"), "src\n").unwrap();
    std::fs::write(dest.join("half-written"), "x").unwrap();
    let key = s.path("site");
    run(Command::new(BIN).arg("keygen").arg("-o").arg(&key));
    let out = capture(
        &src,
        &dest,
        &["--sign", key.with_extension("key").to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The source without the capture itself (srv/new, inside it).
    let without_dest = |t: String| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("srv/new") && !l.starts_with("srv ") && !l.starts_with(". "))
            .map(String::from)
            .collect()
    };
    let want = without_dest(captured_listing(&src));
    let got = without_dest(captured_listing(&dest));
    assert!(!want.is_empty());
    let d = differences(&want.join("\n"), &got.join("\n"));
    assert!(d.is_empty(), "capture differs:\n{}", d.join("\n"));
    assert!(!dest.join("half-written").exists() && !dest.join("srv/new").exists());
    // Signed as `manifest --sign` signs.
    run(Command::new(BIN)
        .args(["verify", "--all", "--manifest"])
        .arg(dest.join(".init-agent/manifest"))
        .arg("--key")
        .arg(key.with_extension("pub"))
        .arg(&dest));
}
