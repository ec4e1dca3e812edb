//! `init-agent verify` against real trees, as root: an exact copy is
//! identical, each kind of tampering is exactly its one difference, a bad or
//! unknown key is refused; and `sync --json` lists what a run changes.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::*;

/// (exit code, stdout, stderr) of `init-agent verify`.
fn verify(root: &Path, manifest: &Path, extra: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(BIN)
        .arg("verify")
        .arg("--manifest")
        .arg(manifest)
        .args(extra)
        .arg(root)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The standard root of these tests, signed: every kind of entry an audit
/// compares, a setuid-free binary, a symlink, a hardlink pair, an xattr.
fn standard(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (src, m, key) = (s.path("src"), s.path("manifest"), s.path("key"));
    for d in ["etc/ssh", "usr/bin", "usr/lib"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(src.join("etc/hostname"), "standard\n").unwrap();
    std::fs::write(src.join("usr/bin/su"), "#!/bin/sh\necho su\n").unwrap();
    std::fs::write(src.join("usr/bin/ls"), "ls binary\n").unwrap();
    std::fs::hard_link(src.join("usr/bin/ls"), src.join("usr/bin/dir")).unwrap();
    std::os::unix::fs::symlink("../lib/libc.so.6", src.join("usr/bin/libc")).unwrap();
    std::fs::write(src.join("usr/lib/libc.so.6"), "libc\n").unwrap();
    set_xattr(&src.join("usr/lib/libc.so.6"), "standard");
    run(Command::new("chmod")
        .arg("0755")
        .arg(src.join("usr/bin/su")));
    run(Command::new(BIN).arg("keygen").arg("-o").arg(&key));
    run(Command::new(BIN)
        .arg("manifest")
        .arg(&src)
        .arg("-o")
        .arg(&m)
        .arg("--sign")
        .arg(key.with_extension("key")));
    (src, m, key.with_extension("pub"))
}

/// user.origin (python3, as the tree generator: no setfattr needed).
fn set_xattr(path: &Path, value: &str) {
    run(Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.origin', sys.argv[2].encode())",
        ])
        .arg(path)
        .arg(value));
}

/// Sets `path`'s mtime (not following a symlink) back to `like`'s.
fn keep_mtime(path: &Path, like: &Path) {
    run(Command::new("touch")
        .arg("-h")
        .arg("-r")
        .arg(like)
        .arg(path));
}

#[test]
fn an_exact_copy_is_identical_and_each_tampering_is_exactly_one_difference() {
    require_root!();
    let s = Scratch::new("verify");
    let (src, m, key) = standard(&s);
    let dst = s.path("dst");
    sync(&src, &dst, &[]);
    let key_arg = ["--key", key.to_str().unwrap()];
    let (code, out, err) = verify(&dst, &m, &key_arg);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("0 differences"), "{err}");

    // Each tampering, made undetectable by size and mtime where it can be,
    // and the one line it must give; the copy is synced back after each.
    type Tamper = fn(&Path, &Path);
    let cases: [(Tamper, &str); 7] = [
        (
            |src, dst| {
                let f = dst.join("etc/passwd");
                std::fs::write(&f, "root:x:0:0::/root:/bin/zz\n").unwrap();
                keep_mtime(&f, &src.join("etc/passwd"));
            },
            "content /etc/passwd blake3 ",
        ),
        (
            |_, dst| {
                run(Command::new("chmod")
                    .arg("4755")
                    .arg(dst.join("usr/bin/su")));
            },
            "mode /usr/bin/su 4755, manifest 0755",
        ),
        (
            |_, dst| {
                std::os::unix::fs::chown(dst.join("usr/bin/su"), Some(1000), Some(1000)).unwrap();
                // chown clears setuid bits, not these; the mode stays 0755.
            },
            "owner /usr/bin/su 1000:1000, manifest 0:0",
        ),
        (
            |src, dst| {
                std::fs::write(dst.join("usr/bin/evil"), "x").unwrap();
                keep_mtime(&dst.join("usr/bin"), &src.join("usr/bin"));
            },
            "extra /usr/bin/evil (file)",
        ),
        (
            |src, dst| {
                std::fs::remove_file(dst.join("usr/lib/libc.so.6")).unwrap();
                keep_mtime(&dst.join("usr/lib"), &src.join("usr/lib"));
            },
            "missing /usr/lib/libc.so.6 (file)",
        ),
        (
            |src, dst| {
                let l = dst.join("usr/bin/libc");
                std::fs::remove_file(&l).unwrap();
                std::os::unix::fs::symlink("/tmp/evil.so", &l).unwrap();
                keep_mtime(&l, &src.join("usr/bin/libc"));
                keep_mtime(&dst.join("usr/bin"), &src.join("usr/bin"));
            },
            "target /usr/bin/libc -> /tmp/evil.so, manifest -> ../lib/libc.so.6",
        ),
        (
            |_, dst| {
                set_xattr(&dst.join("usr/lib/libc.so.6"), "node");
            },
            "xattrs /usr/lib/libc.so.6 user.origin=",
        ),
    ];
    for (tamper, want) in cases {
        tamper(&src, &dst);
        let (code, out, err) = verify(&dst, &m, &key_arg);
        assert_eq!(code, 1, "{want}: {out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{want}: {out}");
        assert!(lines[0].starts_with(want), "{want}: {out}");
        // --checksum: the content edit kept size and mtime.
        sync(&src, &dst, &["--checksum"]);
        assert_eq!(verify(&dst, &m, &key_arg).0, 0, "synced back after {want}");
    }

    // A hardlink broken apart, contents and mtimes kept: both names say so.
    let dir = dst.join("usr/bin/dir");
    std::fs::remove_file(&dir).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(dst.join("usr/bin/ls"))
        .arg(&dir));
    keep_mtime(&dst.join("usr/bin"), &src.join("usr/bin"));
    let (code, out, _) = verify(&dst, &m, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "hardlinks /usr/bin/dir not linked, manifest linked with /usr/bin/ls\n\
         hardlinks /usr/bin/ls not linked, manifest linked with /usr/bin/dir\n"
    );
}

#[test]
fn node_identity_is_left_out_unless_all_and_json_lists_the_same() {
    require_root!();
    let s = Scratch::new("verify-protect");
    let (src, m, _) = standard(&s);
    let dst = s.path("dst");
    sync(&src, &dst, &[]);
    let f = dst.join("etc/hostname");
    std::fs::write(&f, "node0042\n").unwrap();
    keep_mtime(&f, &src.join("etc/hostname"));
    assert_eq!(verify(&dst, &m, &[]).0, 0);
    let (code, out, _) = verify(&dst, &m, &["--all"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("content /etc/hostname blake3 "), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    // Excluded: not compared at all.
    assert_eq!(
        verify(&dst, &m, &["--all", "--exclude", "/etc/hostname"]).0,
        0
    );
    // A protected path the node lacks is missing: a sync would create it.
    std::fs::remove_file(&f).unwrap();
    keep_mtime(&dst.join("etc"), &src.join("etc"));
    let (code, out, _) = verify(&dst, &m, &[]);
    assert_eq!((code, out.as_str()), (1, "missing /etc/hostname (file)\n"));
    let (code, json, _) = verify(&dst, &m, &["--json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["counts"]["missing"], 1);
    assert_eq!(
        doc["differences"][0],
        serde_json::json!({"path": "/etc/hostname", "what": "missing", "found": null, "expected": "file"})
    );
}

#[test]
fn a_hostile_tree_synced_is_identical_to_its_manifest() {
    require_root!();
    let s = Scratch::new("verify-hostile");
    let (src, dst, m) = (s.path("src"), s.path("dst"), s.path("manifest"));
    mktree(&src, 11, "hostile");
    run(Command::new(BIN)
        .arg("manifest")
        .arg(&src)
        .arg("-o")
        .arg(&m));
    sync(&src, &dst, &[]);
    let (code, out, err) = verify(&dst, &m, &["--all"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}

#[test]
fn a_bad_or_unknown_key_or_signature_is_refused() {
    require_root!();
    let s = Scratch::new("verify-keys");
    let (src, m, key) = standard(&s);
    let dst = s.path("dst");
    sync(&src, &dst, &[]);
    let other = s.path("other");
    run(Command::new(BIN).arg("keygen").arg("-o").arg(&other));
    let other = other.with_extension("pub");
    let (code, out, err) = verify(&dst, &m, &["--key", other.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("does not trust"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Not a key at all: a usage error.
    let junk = s.path("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    assert_eq!(verify(&dst, &m, &["--key", junk.to_str().unwrap()]).0, 2);
    // Both keys: the signing one is found.
    let both = [
        "--key",
        other.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    assert_eq!(verify(&dst, &m, &both).0, 0);
    // A signature of other bytes, and none at all.
    let sig = trust_sig(&m);
    let text = std::fs::read_to_string(&sig).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = lines[1].replacen('A', "B", 1).replacen('a', "b", 1);
    std::fs::write(&sig, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = verify(&dst, &m, &["--key", key.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    std::fs::remove_file(&sig).unwrap();
    let (code, _, err) = verify(&dst, &m, &["--key", key.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not signed"), "{err}");
    // Without a key the manifest's own integrity is all that is checked.
    assert_eq!(verify(&dst, &m, &[]).0, 0);
}

fn trust_sig(m: &Path) -> std::path::PathBuf {
    let mut s = m.as_os_str().to_os_string();
    s.push(".minisig");
    s.into()
}

/// `sync --json`'s changes: one JSON document on stdout.
fn json_changes(src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new(BIN)
        .arg("sync")
        .arg(src)
        .arg(dst)
        .args(["--json", "--quiet"])
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dry_run_json_lists_exactly_what_the_real_run_changes() {
    require_root!();
    let s = Scratch::new("json");
    let (src, dst) = (s.path("src"), s.path("dst"));
    mktree(&src, 12, "hostile");
    sync(&src, &dst, &[]);
    mktree(&src, 12, "mutate");
    let planned = json_changes(&src, &dst, &["--dry-run", "--checksum"]);
    assert_eq!(planned["dry_run"], true);
    let done = json_changes(&src, &dst, &["--checksum"]);
    assert_eq!(done["dry_run"], false);
    assert!(done["changes"].as_array().unwrap().len() > 10, "{done}");
    for c in done["changes"].as_array().unwrap() {
        assert!(
            ["create", "replace", "meta", "delete"].contains(&c["change"].as_str().unwrap()),
            "{c}"
        );
    }
    let lines = |doc: &serde_json::Value| -> String {
        let list = doc["changes"].as_array().unwrap().iter();
        list.map(|c| format!("{} {} {}\n", c["change"], c["kind"], c["path"]))
            .collect()
    };
    let d = differences(&lines(&planned), &lines(&done));
    assert!(
        d.is_empty(),
        "dry run (-) and real run (+) differ:\n{}",
        d.join("\n")
    );
    assert_eq!(planned["changes"], done["changes"]);
    for k in ["created", "updated", "deleted"] {
        assert_eq!(planned["counts"][k], done["counts"][k], "{k}");
    }
    assert_same_tree(&src, &dst);
    let again = json_changes(&src, &dst, &[]);
    assert_eq!(again["changes"], serde_json::json!([]));
}
