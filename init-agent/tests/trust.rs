//! Signed standard roots through the commands an admin runs, as root: keygen,
//! manifest --sign, sync --trust. Every refusal leaves the destination's
//! last verified copy as it was, marked complete.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_init-agent");

fn agent(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(BIN);
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

/// `manifest SRC --sign KEY` into SRC/.init-agent/manifest.
fn publish(src: &Path, key: &Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .arg("manifest")
        .arg(src)
        .arg("-o")
        .arg(src.join(".init-agent/manifest"))
        .arg("--sign")
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sync --trust PUB --source-manifest SRC DST`: Ok(stderr) or Err(stderr).
fn trusted_sync(src: &Path, dst: &Path, key: &Path, extra: &[&str]) -> Result<String, String> {
    let out = Command::new(BIN)
        .arg("sync")
        .arg("--quiet")
        .arg("--trust")
        .arg(key)
        .args(extra)
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(err)
    } else {
        Err(err)
    }
}

fn marker(dst: &Path) -> String {
    std::fs::read_to_string(dst.join(".init-agent/state")).unwrap_or_default()
}

fn generation(src: &Path) -> String {
    std::fs::read_to_string(src.join(".init-agent/generation"))
        .unwrap()
        .trim()
        .to_string()
}

/// Sets `path`'s contents without changing its size or mtime: what a
/// compromised server can do unseen by a size-and-mtime comparison.
fn swap_contents(path: &Path, text: &str) {
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(before.len(), text.len() as u64);
    std::fs::write(path, text).unwrap();
    let at = format!("@{}.{:09}", before.mtime(), before.mtime_nsec());
    run(Command::new("touch").arg("-d").arg(at).arg(path));
}

struct Setup {
    _s: Scratch,
    src: std::path::PathBuf,
    dst: std::path::PathBuf,
    key: std::path::PathBuf,
    public: std::path::PathBuf,
}

/// A small standard root signed at serial 1, synced into DST.
fn signed_root(name: &str) -> Setup {
    let s = Scratch::new(name);
    let (src, dst) = (s.path("src"), s.path("dst"));
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("usr/bin/tool"), "version 1\n").unwrap();
    std::fs::write(src.join("etc/motd"), "welcome\n").unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", src.join("etc/tool")).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let prefix = s.path("site");
    let out = agent(&[&"keygen", &"-o", &prefix]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    publish(&src, &key, &[]);
    trusted_sync(&src, &dst, &public, &[]).unwrap();
    assert_same_tree(&src, &dst);
    assert_eq!(
        marker(&dst),
        format!("complete {} verified\n", generation(&src))
    );
    assert_eq!(
        std::fs::read_to_string(dst.join(".init-agent/serial")).unwrap(),
        "1\n"
    );
    Setup {
        _s: s,
        src,
        dst,
        key,
        public,
    }
}

/// The refusal names `what`; DST still holds the verified copy it had.
#[track_caller]
fn assert_refused(
    r: Result<String, String>,
    what: &str,
    dst: &Path,
    before: &str,
    listing_before: &str,
) {
    let err = r.expect_err("the sync was not refused");
    assert!(err.contains("refused: ") && err.contains(what), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(marker(dst), before);
    assert_eq!(listing(dst), listing_before, "the verified copy changed");
}

#[test]
fn a_signed_root_syncs_and_each_tampering_is_refused_leaving_the_verified_copy() {
    require_root!();
    let t = signed_root("trust-refusals");
    let (src, dst) = (&t.src, &t.dst);
    let (before, listing_before) = (marker(dst), listing(dst));
    // A no-change sync stays verified.
    trusted_sync(src, dst, &t.public, &[]).unwrap();
    assert_eq!(marker(dst), before);

    // Unsigned: the signature is gone.
    let sig = src.join(".init-agent/manifest.minisig");
    let saved = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(
        r,
        "the manifest is not signed",
        dst,
        &before,
        &listing_before,
    );
    std::fs::write(&sig, &saved).unwrap();

    // Signed by a key the node does not trust.
    let other = src.parent().unwrap().join("other");
    assert!(agent(&[&"keygen", &"-o", &other]).status.success());
    publish(src, &other.with_extension("key"), &[]);
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(
        r,
        "which this node does not trust",
        dst,
        &before,
        &listing_before,
    );

    // A new generation whose manifest was rebuilt after signing.
    std::fs::write(src.join("etc/motd"), "welcome back\n").unwrap();
    publish(src, &t.key, &[]);
    std::fs::write(src.join("etc/motd"), "welcome, intruder\n").unwrap();
    let out = agent(&[&"manifest", src, &"-o", &src.join(".init-agent/manifest")]);
    assert!(out.status.success());
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(r, "does not verify", dst, &before, &listing_before);

    // The cases below keep motd's change pending beside the tampered file:
    // the refusal comes before either is installed.
    std::fs::write(src.join("etc/motd"), "welcome back\n").unwrap();

    // Signed again: one file's contents then swapped on the server, size
    // and mtime kept.
    std::fs::write(src.join("usr/bin/tool"), "version 2\n").unwrap();
    publish(src, &t.key, &[]);
    swap_contents(&src.join("usr/bin/tool"), "version X\n");
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(
        r,
        "/usr/bin/tool: the contents served differ from the signed manifest",
        dst,
        &before,
        &listing_before,
    );

    // The server serves the right bytes but a setuid bit the manifest lacks.
    swap_contents(&src.join("usr/bin/tool"), "version 2\n");
    std::fs::set_permissions(
        src.join("usr/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(
        r,
        "/usr/bin/tool: the server gives mode 4755, the signed manifest 0644",
        dst,
        &before,
        &listing_before,
    );

    // Served as signed: the new generation goes in, verified, at serial 4
    // (each signing took the next serial, the unknown key's included).
    std::fs::set_permissions(
        src.join("usr/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    trusted_sync(src, dst, &t.public, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(dst.join("usr/bin/tool")).unwrap(),
        "version 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/motd")).unwrap(),
        "welcome back\n"
    );
    assert_same_tree(src, dst);
    assert!(
        std::fs::read_dir(dst.join(".init-agent/staging"))
            .unwrap()
            .next()
            .is_none(),
        "the staging directory was left with files"
    );
    assert_eq!(
        marker(dst),
        format!("complete {} verified\n", generation(src))
    );
    assert_eq!(
        std::fs::read_to_string(dst.join(".init-agent/serial")).unwrap(),
        "4\n"
    );
}

#[test]
fn an_older_signed_manifest_is_a_rollback_unless_allowed() {
    require_root!();
    let t = signed_root("trust-rollback");
    let (src, dst) = (&t.src, &t.dst);
    // The server's state at serial 1, kept to be replayed.
    let old = src.parent().unwrap().join("serial1");
    run(Command::new("cp").arg("-a").arg(src).arg(&old));
    std::fs::write(src.join("etc/motd"), "new motd\n").unwrap();
    publish(src, &t.key, &[]);
    trusted_sync(src, dst, &t.public, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(dst.join(".init-agent/serial")).unwrap(),
        "2\n"
    );
    let (before, listing_before) = (marker(dst), listing(dst));
    let r = trusted_sync(&old, dst, &t.public, &[]);
    assert_refused(
        r,
        "serial 1 is older than serial 2",
        dst,
        &before,
        &listing_before,
    );
    // The admin's deliberate rollback.
    trusted_sync(&old, dst, &t.public, &["--allow-rollback"]).unwrap();
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/motd")).unwrap(),
        "welcome\n"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join(".init-agent/serial")).unwrap(),
        "1\n"
    );
    assert_eq!(
        marker(dst),
        format!("complete {} verified\n", generation(&old))
    );
}

#[test]
fn without_a_manifest_a_trusted_sync_never_walks_the_source() {
    require_root!();
    let t = signed_root("trust-nomanifest");
    let (src, dst) = (&t.src, &t.dst);
    std::fs::remove_file(src.join(".init-agent/manifest")).unwrap();
    std::fs::write(src.join("etc/motd"), "unsigned change\n").unwrap();
    let (before, listing_before) = (marker(dst), listing(dst));
    let r = trusted_sync(src, dst, &t.public, &[]);
    assert_refused(
        r,
        "never walks the source unverified",
        dst,
        &before,
        &listing_before,
    );
    // The keys of a node's configuration count on a host too.
    let key_line = std::fs::read_to_string(&t.public).unwrap();
    let conf = src.parent().unwrap().join("node.toml");
    let key = key_line.lines().nth(1).unwrap();
    std::fs::write(&conf, format!("[trust]\nkeys = [\"{key}\"]\n")).unwrap();
    let out = agent(&[&"sync", &"--quiet", &"--config", &conf, src, dst]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never walks the source unverified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same sync without keys walks, as before.
    let out = agent(&[&"sync", &"--quiet", src, dst]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/motd")).unwrap(),
        "unsigned change\n"
    );
    assert!(!marker(dst).contains("verified"), "{}", marker(dst));
}
