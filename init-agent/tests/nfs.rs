//! `init-agent sync nfs://…` against a real NFS server: nfs-ganesha (NFSv3)
//! in a private network namespace, started by tests-support/with-ganesha.sh,
//! which test.sh runs these tests under:
//!
//!     tests-support/with-ganesha.sh --export DIR -- \
//!         env INIT_AGENT_TEST_NFS_DIR=DIR cargo test --test nfs -- --test-threads=1
//!
//! The same differential checks as the local source, where NFSv3 allows:
//! no xattrs without a manifest, seconds modulo 2^32. And server faults:
//! an export that does not exist, the server killed mid-sync (and back),
//! the server gone for good.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The server's URL and the directory it exports.
struct Server {
    url: String,
    dir: PathBuf,
}

impl Server {
    /// None (and says so) outside with-ganesha.sh; test.sh sets
    /// INIT_AGENT_REQUIRE_NFS so that there a missing server fails.
    fn get() -> Option<Server> {
        match (
            std::env::var("NFS_URL"),
            std::env::var("INIT_AGENT_TEST_NFS_DIR"),
        ) {
            (Ok(url), Ok(dir)) => Some(Server {
                url,
                dir: PathBuf::from(dir),
            }),
            _ => {
                assert!(
                    std::env::var_os("INIT_AGENT_REQUIRE_NFS").is_none(),
                    "INIT_AGENT_REQUIRE_NFS is set but no server: NFS_URL and INIT_AGENT_TEST_NFS_DIR are needed"
                );
                eprintln!("skipped: needs an NFS server (run under tests-support/with-ganesha.sh)");
                None
            }
        }
    }

    /// A fresh directory below the export and its URL.
    fn area(&self, name: &str) -> (PathBuf, String) {
        let p = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        (p, format!("{}/{name}", self.url.trim_end_matches('/')))
    }

    /// A fresh area with `src` (to be filled, served at the returned URL)
    /// and an empty `dst` beside it.
    fn src_dst(&self, name: &str) -> (PathBuf, PathBuf, String) {
        let (area, url) = self.area(name);
        let dst = area.with_extension("dst");
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir(&dst).unwrap();
        (area.join("src"), dst, format!("{url}/src"))
    }
}

macro_rules! require_server {
    () => {{
        require_root!();
        match Server::get() {
            Some(s) => s,
            None => return,
        }
    }};
}

/// What NFSv3 keeps of a listing line: the mtime's seconds modulo 2^32
/// (it has no more), everything else; xattrs are left out by the lister.
fn nfs_view(listing: &str) -> String {
    listing
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(' ').map(String::from).collect();
            if let Some(ns) = f.get(4).and_then(|x| x.parse::<i128>().ok()) {
                let (sec, nsec) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
                f[4] = format!("{}.{nsec:09}", sec.rem_euclid(1 << 32));
            }
            f.join(" ") + "\n"
        })
        .collect()
}

fn assert_same_over_nfs(src: &Path, dst: &Path, xattrs: bool) {
    let extra: &[&str] = if xattrs { &[] } else { &["--no-xattrs"] };
    let (a, b) = (
        nfs_view(&listing_with(src, extra)),
        nfs_view(&listing_with(dst, extra)),
    );
    let d = differences(&a, &b);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

fn sync_url(url: &str, dst: &Path, extra: &[&str]) -> serde_json::Value {
    sync(Path::new(url), dst, extra)
}

#[test]
fn hostile_tree_over_nfs_is_copied_and_a_second_run_changes_nothing() {
    let server = require_server!();
    let (src, dst, url) = server.src_dst("hostile");
    mktree(&src, 1, "hostile");
    // The export is the server's top directory: the client mounts it and
    // looks up the rest of the path.
    let first = sync_url(&url, &dst, &[]);
    assert_eq!(first["source"], url.as_str());
    assert!(first["counts"]["created"].as_u64().unwrap() > 300);
    assert_same_over_nfs(&src, &dst, false);
    let second = sync_url(&url, &dst, &[]);
    assert_eq!(changes(&second), 0, "{second}");
    std::fs::remove_dir_all(&dst).unwrap();
}

#[test]
fn mutated_tree_over_nfs_converges_in_one_pass() {
    let server = require_server!();
    for seed in [2, 3] {
        let (src, dst, url) = server.src_dst(&format!("mutate{seed}"));
        mktree(&src, seed, "hostile");
        sync_url(&url, &dst, &[]);
        mktree(&src, seed, "mutate");
        sync_url(&url, &dst, &["--checksum"]);
        assert_same_over_nfs(&src, &dst, false);
        assert_eq!(changes(&sync_url(&url, &dst, &[])), 0);
        std::fs::remove_dir_all(&dst).unwrap();
    }
}

/// The manifest, read through NFS itself, carries what NFSv3 cannot: the
/// copy is exact with xattrs (ACLs, capabilities) too.
#[test]
fn manifest_read_over_nfs_carries_xattrs() {
    let server = require_server!();
    let (src, dst, url) = server.src_dst("manifest");
    let manifest = |src: &Path| {
        run(Command::new(BIN)
            .arg("manifest")
            .arg(src)
            .arg("-o")
            .arg(src.join(".init-agent/manifest")));
    };
    mktree(&src, 5, "hostile");
    manifest(&src);
    let first = sync_url(&url, &dst, &["--source-manifest"]);
    assert_eq!(first["manifest"], "used", "{first}");
    assert_same_over_nfs(&src, &dst, true);
    mktree(&src, 5, "mutate");
    manifest(&src);
    // The mutation includes edits that keep size and mtime: the manifest's
    // hashes find them (--checksum), without reading the server's files.
    let second = sync_url(&url, &dst, &["--source-manifest", "--checksum"]);
    assert_eq!(second["manifest"], "used", "{second}");
    assert_same_over_nfs(&src, &dst, true);
    std::fs::remove_dir_all(&dst).unwrap();
}

/// A signed root over NFS: every file is hashed as its READs arrive, a big
/// one's in parallel pieces merged as BLAKE3's tree; one piece swapped on
/// the server (size and mtime kept) is refused, naming the file.
#[test]
fn signed_root_over_nfs_hashes_files_as_they_arrive() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let server = require_server!();
    let (src, dst, url) = server.src_dst("signed");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::write(src.join("small"), "small file\n").unwrap();
    // Well above two READs, the last piece short; not compressible to zeros.
    let big: Vec<u8> = (0..(5u32 << 20) + 777)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("big/file"), &big).unwrap();
    let prefix = dst.parent().unwrap().join("signed-site");
    run(Command::new(BIN).arg("keygen").arg("-o").arg(&prefix));
    run(Command::new(BIN)
        .arg("manifest")
        .arg(&src)
        .arg("-o")
        .arg(src.join(".init-agent/manifest"))
        .arg("--sign")
        .arg(prefix.with_extension("key")));
    let public = prefix.with_extension("pub");
    let trust = ["--trust", public.to_str().unwrap()];
    sync_url(&url, &dst, &trust);
    assert_same_over_nfs(&src, &dst, true);
    assert!(state(&dst).ends_with(" verified\n"), "{}", state(&dst));

    // One byte of the third MiB changed, size and mtime as signed.
    let f = src.join("big/file");
    let before = std::fs::metadata(&f).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.write_at(&[big[(2 << 20) + 5] ^ 1], (2 << 20) + 5)
        .unwrap();
    drop(file);
    let at = format!("@{}.{:09}", before.mtime(), before.mtime_nsec());
    run(Command::new("touch").arg("-d").arg(at).arg(&f));
    std::fs::remove_file(dst.join("big/file")).unwrap();
    let out = sync_cmd(&url, &dst).args(trust).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("big/file: the contents served differ from the signed manifest"),
        "{err}"
    );
    assert!(!dst.join("big/file").exists());
    std::fs::remove_dir_all(&dst).unwrap();
}

fn sync_cmd(url: &str, dst: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("sync").arg(url).arg(dst).arg("--quiet");
    c
}

fn state(dst: &Path) -> String {
    std::fs::read_to_string(dst.join(".init-agent/state")).unwrap_or_default()
}

fn server_ctl(what: &str) {
    run(&mut Command::new(what));
}

/// Starts a sync and returns once it has written a few of the big files (so
/// that a fault lands in the middle of the copy, not before nor after it).
fn start_copying(url: &str, dst: &Path, extra: &[&str]) -> std::process::Child {
    let mut child = sync_cmd(url, dst)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_copying(dst, &mut child);
    child
}

fn wait_for_copying(dst: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = std::fs::read_dir(dst.join("big")).map_or(0, |d| d.count());
        if written >= 8 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before the fault"
        );
        assert!(Instant::now() < deadline, "the sync copies nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs one after the other in one test: they stop the server the others use.
#[test]
fn server_faults_give_clear_errors_and_never_a_complete_half_copy() {
    let server = require_server!();
    let (src, dst, url) = server.src_dst("faults");
    mktree(&src, 9, "small");
    // Enough data that the server can be killed in the middle.
    let big = src.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..300u32 {
        std::fs::write(
            big.join(format!("f{i}")),
            vec![(i % 251) as u8 + 1; 1 << 20],
        )
        .unwrap();
    }

    // An export path that does not exist: refused, with the server's answer.
    let missing = format!("{}/no/such/export", server.url.rsplit_once('/').unwrap().0);
    let out = sync_cmd(&missing, &dst).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused to mount"), "{err}");
    assert_eq!(state(&dst), "", "nothing was written");

    // Killed mid-sync and back a moment later: the client reconnects and
    // the sync completes exactly.
    let child = start_copying(&url, &dst, &["--inflight", "2"]);
    server_ctl("ganesha_stop");
    std::thread::sleep(Duration::from_secs(1));
    server_ctl("ganesha_start");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(state(&dst), "complete unstamped\n");
    assert_same_over_nfs(&src, &dst, false);

    // Gone for good in the middle of a sync: a clear error in bounded time,
    // the marker says in-progress (a boot never takes this copy), and the
    // next run, with the server back, converges.
    for i in 0..300u32 {
        std::fs::write(big.join(format!("f{i}")), vec![(i % 13) as u8 + 7; 1 << 20]).unwrap();
    }
    std::fs::remove_dir_all(dst.join("big")).unwrap();
    let started = Instant::now();
    let child = start_copying(&url, &dst, &["--inflight", "2"]);
    server_ctl("ganesha_stop");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    server_ctl("ganesha_start");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("attempts"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    assert!(state(&dst).starts_with("in-progress"), "{}", state(&dst));
    let report = sync_url(&url, &dst, &[]);
    assert!(report["previous_state"]
        .as_str()
        .unwrap()
        .starts_with("in-progress"));
    assert_same_over_nfs(&src, &dst, false);
    std::fs::remove_dir_all(&dst).unwrap();
}

/// Eight nodes syncing from one server at once (host-side agents next to
/// ganesha): every copy converges, first by walking the server, then after a
/// change with the manifest. Prints the calls each node made (every call is
/// one operation the server served).
#[test]
fn eight_nodes_at_once_all_converge() {
    let server = require_server!();
    let (area, url) = server.area("eight");
    let src = area.join("src");
    mktree(&src, 11, "hostile");
    let dsts: Vec<PathBuf> = (0..8)
        .map(|i| {
            let d = area.with_extension(format!("node{i}"));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir(&d).unwrap();
            d
        })
        .collect();
    let all_at_once = |extra: &[&str]| -> Vec<serde_json::Value> {
        let children: Vec<_> = dsts
            .iter()
            .map(|d| {
                let report = PathBuf::from(format!("{}.json", d.display()));
                let child = sync_cmd(&format!("{url}/src"), d)
                    .args(["--report", report.to_str().unwrap()])
                    .args(extra)
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, report)
            })
            .collect();
        children
            .into_iter()
            .map(|(child, report)| {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap()
            })
            .collect()
    };
    let calls = |reports: &[serde_json::Value]| -> Vec<u64> {
        reports
            .iter()
            .map(|r| r["nfs_calls"].as_u64().unwrap())
            .collect()
    };
    let first = all_at_once(&[]);
    for d in &dsts {
        assert_same_over_nfs(&src, d, false);
    }
    mktree(&src, 11, "mutate");
    run(Command::new(BIN)
        .arg("manifest")
        .arg(&src)
        .arg("-o")
        .arg(src.join(".init-agent/manifest")));
    let second = all_at_once(&["--source-manifest", "--checksum"]);
    for (d, r) in dsts.iter().zip(&second) {
        assert_eq!(r["manifest"], "used", "{r}");
        assert_same_over_nfs(&src, d, true);
    }
    eprintln!(
        "NFS calls per node: first sync (walk) {:?}; after the change (manifest) {:?}",
        calls(&first),
        calls(&second)
    );
    for d in &dsts {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The admin replaces the standard root (a new tree moved into its place, the
/// old one deleted) while a node syncs from it: the node's handles go stale.
/// The copy is never marked complete unless it is exactly the new tree, and
/// the next run makes it exact.
#[test]
fn a_standard_root_replaced_mid_sync_is_never_marked_complete_half_copied() {
    let server = require_server!();
    let (src, dst, url) = server.src_dst("replaced");
    let area = src.parent().unwrap().to_path_buf();
    let stamp = |root: &Path, g: &str| {
        std::fs::create_dir_all(root.join(".init-agent")).unwrap();
        std::fs::write(root.join(".init-agent/generation"), format!("{g}\n")).unwrap();
    };
    let fill = |root: &Path, byte: u8| {
        mktree(root, 13, "small");
        std::fs::create_dir_all(root.join("big")).unwrap();
        for i in 0..300u32 {
            std::fs::write(root.join(format!("big/f{i}")), vec![byte; 1 << 20]).unwrap();
        }
    };
    fill(&src, 1);
    stamp(&src, "g1");
    let next = area.join("next");
    fill(&next, 2);
    std::fs::write(next.join("etc/new-in-g2"), "g2\n").unwrap();
    stamp(&next, "g2");

    let child = start_copying(&url, &dst, &["--inflight", "1", "--jobs", "1"]);
    let old = area.join("old");
    std::fs::rename(&src, &old).unwrap();
    std::fs::rename(&next, &src).unwrap();
    std::fs::remove_dir_all(&old).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("the sync that saw the replacement: {}; {err}", out.status);
    if out.status.success() {
        assert_eq!(state(&dst), "complete g2\n", "{err}");
        assert_same_over_nfs(&src, &dst, false);
    } else {
        assert!(state(&dst).starts_with("in-progress"), "{}", state(&dst));
    }
    let report = sync_url(&url, &dst, &[]);
    assert_eq!(report["generation"], "g2");
    assert_eq!(state(&dst), "complete g2\n");
    assert_same_over_nfs(&src, &dst, false);
    std::fs::remove_dir_all(&dst).unwrap();
}

/// An export that squashes root (the server maps us to nobody): a file only
/// root may read is refused by the server, and the sync says so, naming the
/// file, instead of copying what it could and calling the copy complete.
#[test]
fn permission_denied_by_the_server_is_named() {
    let _server = require_server!();
    let (Ok(dir), Ok(url)) = (
        std::env::var("INIT_AGENT_TEST_NFS_SQUASHED_DIR"),
        std::env::var("NFS_URL2"),
    ) else {
        assert!(
            std::env::var_os("INIT_AGENT_REQUIRE_NFS").is_none(),
            "no squashed export: with-ganesha.sh --squashed-export DIR and INIT_AGENT_TEST_NFS_SQUASHED_DIR"
        );
        eprintln!("skipped: needs a root-squashed export");
        return;
    };
    let src = Path::new(&dir).join("perm");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), "readable by all\n").unwrap();
    std::fs::write(src.join("etc/shadow"), "root only\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let dst = Path::new(&dir).with_extension("perm-dst");
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir(&dst).unwrap();
    let out = sync_cmd(&format!("{url}/perm"), &dst).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/etc/shadow") && err.contains("Permission denied"),
        "{err}"
    );
    assert_ne!(state(&dst), "complete unstamped\n");
    std::fs::remove_dir_all(&dst).unwrap();
}
