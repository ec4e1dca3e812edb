//! `init-agent sync` against real trees, as root: differential tests on
//! generated hostile trees (tests-support/mktree.py) compared by an independent
//! lister (tests-support/treelist.py), protect/exclude, dry run, hostile
//! destinations, and SIGKILL at random points.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

#[test]
fn hostile_tree_is_copied_exactly_and_a_second_run_changes_nothing() {
    require_root!();
    let s = Scratch::new("hostile");
    let (src, dst) = (s.path("src"), s.path("dst"));
    mktree(&src, 1, "hostile");
    std::fs::create_dir(&dst).unwrap();
    let first = sync(&src, &dst, &[]);
    assert!(first["counts"]["created"].as_u64().unwrap() > 300);
    assert_same_tree(&src, &dst);
    let second = sync(&src, &dst, &[]);
    assert_eq!(changes(&second), 0, "{second}");
    assert_eq!(
        std::fs::read_to_string(dst.join(".init-agent/state")).unwrap(),
        "complete unstamped\n"
    );
}

#[test]
fn mutated_tree_converges_in_one_pass() {
    require_root!();
    for seed in [2, 3, 4] {
        let s = Scratch::new(&format!("mutate{seed}"));
        let (src, dst) = (s.path("src"), s.path("dst"));
        mktree(&src, seed, "hostile");
        std::fs::create_dir(&dst).unwrap();
        sync(&src, &dst, &[]);
        mktree(&src, seed, "mutate");
        // Edits that keep size and the full mtime are invisible without --checksum.
        sync(&src, &dst, &["--checksum"]);
        assert_same_tree(&src, &dst);
        assert_eq!(changes(&sync(&src, &dst, &[])), 0);
    }
}

#[test]
fn same_size_edit_within_one_second_is_seen_where_rsync_misses_it() {
    require_root!();
    let s = Scratch::new("subsecond");
    let (src, dst, rs) = (s.path("src"), s.path("dst"), s.path("rsync"));
    std::fs::create_dir_all(src.join("etc")).unwrap();
    let f = src.join("etc/motd");
    std::fs::write(&f, "version 1\n").unwrap();
    let set_mtime = |ns: &str| run(Command::new("touch").arg("-d").arg(ns).arg(&f));
    set_mtime("2026-01-01 00:00:00.100000000");
    std::fs::create_dir(&dst).unwrap();
    sync(&src, &dst, &[]);
    run(Command::new("rsync")
        .args(["-aHAX", "--delete", "--numeric-ids"])
        .arg(format!("{}/", src.display()))
        .arg(&rs));
    std::fs::write(&f, "version 2\n").unwrap();
    set_mtime("2026-01-01 00:00:00.900000000");
    sync(&src, &dst, &[]);
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/motd")).unwrap(),
        "version 2\n"
    );
    assert_same_tree(&src, &dst);
    // rsync's quick check compares whole seconds only (--modify-window=0 on a
    // file system it thinks has 1 s resolution): documents why we compare ns.
    run(Command::new("rsync")
        .args(["-aHAX", "--delete", "--numeric-ids"])
        .arg(format!("{}/", src.display()))
        .arg(&rs));
    let rsync_saw = std::fs::read_to_string(rs.join("etc/motd")).unwrap();
    eprintln!("rsync left: {rsync_saw:?}");
}

#[test]
fn protected_paths_are_never_deleted_nor_overwritten_and_excluded_ones_are_left_alone() {
    require_root!();
    let s = Scratch::new("protect");
    let (src, dst) = (s.path("src"), s.path("dst"));
    for d in ["etc/ssh", "var/log", "tmp/cache", "run"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("etc/machine-id"), "standard\n").unwrap();
    std::fs::write(src.join("etc/ssh/ssh_host_ed25519_key"), "standard key\n").unwrap();
    std::fs::write(src.join("etc/hostname"), "standard\n").unwrap();
    std::fs::write(src.join("tmp/cache/big"), "excluded in source\n").unwrap();
    std::fs::create_dir(&dst).unwrap();
    let opts = [
        "--protect",
        "/etc/machine-id",
        "--protect",
        "/etc/ssh/ssh_host_*",
        "--protect",
        "/var/log/**",
        "--exclude",
        "/tmp/**",
        "--exclude",
        "*.pid",
    ];
    sync(&src, &dst, &opts);
    // Created when missing.
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/machine-id")).unwrap(),
        "standard\n"
    );
    assert!(
        !dst.join("tmp/cache").exists(),
        "excluded entries are not copied"
    );
    // Node-local state appears on the node.
    std::fs::write(dst.join("etc/machine-id"), "node\n").unwrap();
    std::fs::write(dst.join("etc/ssh/ssh_host_ed25519_key"), "node key\n").unwrap();
    std::fs::write(dst.join("var/log/syslog"), "node log\n").unwrap();
    std::fs::create_dir_all(dst.join("tmp/session")).unwrap();
    std::fs::write(dst.join("run/agent.pid"), "42\n").unwrap();
    std::fs::write(dst.join("etc/hostname"), "drifted\n").unwrap();
    std::fs::write(dst.join("etc/stale"), "not in the standard\n").unwrap();
    let r = sync(&src, &dst, &opts);
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/machine-id")).unwrap(),
        "node\n"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        "node key\n"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("var/log/syslog")).unwrap(),
        "node log\n"
    );
    assert!(dst.join("tmp/session").is_dir());
    assert!(dst.join("run/agent.pid").exists());
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/hostname")).unwrap(),
        "standard\n"
    );
    assert!(!dst.join("etc/stale").exists());
    assert!(r["counts"]["protected"].as_u64().unwrap() >= 3, "{r}");
    // A protected file inside a directory the standard dropped keeps that directory.
    std::fs::remove_dir_all(src.join("var/log")).unwrap();
    sync(&src, &dst, &opts);
    assert_eq!(
        std::fs::read_to_string(dst.join("var/log/syslog")).unwrap(),
        "node log\n"
    );
}

#[test]
fn dry_run_changes_nothing_and_lists_every_change() {
    require_root!();
    let s = Scratch::new("dryrun");
    let (src, dst) = (s.path("src"), s.path("dst"));
    mktree(&src, 5, "small");
    std::fs::create_dir_all(dst.join("old/dir")).unwrap();
    std::fs::write(dst.join("old/dir/file"), "x").unwrap();
    let before = listing(&dst);
    let out = run(Command::new(BIN)
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .args(["--dry-run", "--quiet"]));
    assert_eq!(listing(&dst), before);
    assert!(!dst.join(".init-agent").exists());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l == "-f /old/dir/file"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("+d ")), "{text}");
    // The listed changes are exactly what a real run does.
    let real = run(Command::new(BIN)
        .arg("sync")
        .arg(&src)
        .arg(&dst)
        .args(["-i", "--quiet"]));
    let mut a: Vec<&str> = text.lines().collect();
    let real = String::from_utf8(real.stdout).unwrap();
    let mut b: Vec<&str> = real.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn symlinks_planted_in_the_destination_are_never_followed() {
    require_root!();
    let s = Scratch::new("escape");
    let (src, dst, outside) = (s.path("src"), s.path("dst"), s.path("outside"));
    std::fs::create_dir_all(src.join("etc/conf.d")).unwrap();
    std::fs::write(src.join("etc/conf.d/a"), "from standard\n").unwrap();
    std::fs::write(src.join("etc/passwd"), "root:x:0:0\n").unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("a"), "outside\n").unwrap();
    std::fs::write(outside.join("passwd"), "outside\n").unwrap();
    std::fs::create_dir(&dst).unwrap();
    // Directory and file positions of the destination hold symlinks leading out.
    std::os::unix::fs::symlink(&outside, dst.join("etc")).unwrap();
    sync(&src, &dst, &[]);
    assert_same_tree(&src, &dst);
    std::fs::remove_dir_all(dst.join("etc")).unwrap();
    std::fs::create_dir(dst.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), dst.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("etc/conf.d")).unwrap();
    std::fs::write(src.join("etc/passwd"), "root:x:0:0:changed\n").unwrap();
    sync(&src, &dst, &[]);
    assert_same_tree(&src, &dst);
    assert_eq!(
        std::fs::read_to_string(outside.join("a")).unwrap(),
        "outside\n"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("passwd")).unwrap(),
        "outside\n"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
}

#[test]
fn a_sync_killed_at_random_points_converges_on_the_next_run() {
    require_root!();
    let s = Scratch::new("kill");
    let (src, dst) = (s.path("src"), s.path("dst"));
    mktree(&src, 7, "hostile");
    // Enough bytes that kills land mid-copy.
    let big = src.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..40 {
        std::fs::write(big.join(format!("f{i}")), vec![i as u8 + 1; 2 << 20]).unwrap();
    }
    std::fs::create_dir(&dst).unwrap();
    // Generation stamps, as `init-agent manifest` writes them, name each state.
    let stamp = |g: &str| {
        std::fs::create_dir_all(src.join(".init-agent")).unwrap();
        std::fs::write(src.join(".init-agent/generation"), format!("{g}\n")).unwrap();
    };
    stamp("g1");
    let mut generation = "g1";
    let mut killed = 0;
    for (round, delay_ms) in [5u64, 20, 45, 80, 130, 10, 60, 200].into_iter().enumerate() {
        if round == 4 {
            // Kill during an incremental sync too.
            mktree(&src, 7, "mutate");
            stamp("g2");
            generation = "g2";
        }
        let mut child = Command::new(BIN)
            .arg("sync")
            .arg(&src)
            .arg(&dst)
            // The mutation includes edits only contents comparison sees.
            .args(["--quiet", "--checksum"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
            // The invariant a boot relies on: "complete <generation>" means an
            // exact copy of that generation.
            let state = std::fs::read_to_string(dst.join(".init-agent/state")).unwrap_or_default();
            if state == format!("complete {generation}\n") {
                assert_same_tree(&src, &dst);
            }
        }
        child.wait().unwrap();
    }
    assert!(killed > 0, "no run was killed: make the tree bigger");
    sync(&src, &dst, &["--checksum"]);
    assert_same_tree(&src, &dst);
    let leftovers = run(Command::new("find")
        .arg(&dst)
        .args(["-name", ".init-agent~*"]));
    assert!(leftovers.stdout.is_empty(), "temporaries left behind");
}

/// A sync is a transaction on the copy: a run cut at any moment leaves what
/// `init-agent rollback` turns back into the last complete generation
/// exactly (what a node whose master died mid-sync boots), and what the next
/// run finishes exactly; cut twice, the first record of each path still wins.
#[test]
fn a_cut_sync_rolls_back_to_the_last_complete_copy_exactly_or_is_finished() {
    require_root!();
    let s = Scratch::new("rollback");
    let (g1, g2) = (s.path("g1"), s.path("g2"));
    let stamp = |root: &std::path::Path, g: &str| {
        std::fs::create_dir_all(root.join(".init-agent")).unwrap();
        std::fs::write(root.join(".init-agent/generation"), format!("{g}\n")).unwrap();
    };
    mktree(&g1, 11, "hostile");
    // Enough bytes that cuts land mid-run.
    std::fs::create_dir(g1.join("big")).unwrap();
    for i in 0..24 {
        std::fs::write(g1.join(format!("big/f{i}")), vec![i as u8 + 1; 2 << 20]).unwrap();
    }
    std::fs::create_dir_all(g1.join("shape/a")).unwrap();
    std::fs::write(g1.join("shape/a/inside"), "in a directory\n").unwrap();
    std::fs::write(g1.join("shape/b"), "a file\n").unwrap();
    stamp(&g1, "g1");
    std::fs::create_dir(&g2).unwrap();
    sync(&g1, &g2, &[]);
    // A directory replaced by a file, a file by a directory.
    std::fs::remove_dir_all(g2.join("shape/a")).unwrap();
    std::fs::write(g2.join("shape/a"), "a file now\n").unwrap();
    std::fs::remove_file(g2.join("shape/b")).unwrap();
    std::fs::create_dir(g2.join("shape/b")).unwrap();
    std::fs::write(g2.join("shape/b/inside"), "in a directory now\n").unwrap();
    mktree(&g2, 11, "mutate");
    for i in (0..24).step_by(2) {
        std::fs::write(g2.join(format!("big/f{i}")), vec![0xa5; (2 << 20) + i]).unwrap();
    }
    stamp(&g2, "g2");
    let state = |dst: &std::path::Path| {
        std::fs::read_to_string(dst.join(".init-agent/state")).unwrap_or_default()
    };
    let (mut rolled, mut finished) = (0, 0);
    for (round, delay_ms) in [4u64, 12, 30, 60, 100, 160, 8, 45].into_iter().enumerate() {
        let dst = s.path(&format!("dst{round}"));
        std::fs::create_dir(&dst).unwrap();
        sync(&g1, &dst, &[]);
        let cuts = if round % 3 == 2 { 2 } else { 1 };
        for cut in 0..cuts {
            let mut child = Command::new(BIN)
                .arg("sync")
                .arg(&g2)
                .arg(&dst)
                .args(["--quiet", "--checksum"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms / (cut + 1)));
            let _ = child.kill(); // SIGKILL, if still running
            child.wait().unwrap();
        }
        match state(&dst).as_str() {
            s if s.starts_with("in-progress") && round % 2 == 0 => {
                run(Command::new(BIN).arg("rollback").arg(&dst));
                assert_eq!(state(&dst), "complete g1\n");
                assert_same_tree(&g1, &dst);
                rolled += 1;
            }
            s if s.starts_with("in-progress") => {
                sync(&g2, &dst, &["--checksum"]);
                assert_same_tree(&g2, &dst);
                finished += 1;
            }
            complete => {
                // Cut before its first change or after its marker: nothing to
                // roll back, and the leftover records go.
                run(Command::new(BIN).arg("rollback").arg(&dst));
                let g = if complete == "complete g1\n" {
                    &g1
                } else {
                    &g2
                };
                assert_eq!(
                    complete,
                    format!("complete {}\n", g.file_name().unwrap().to_string_lossy())
                );
                assert_same_tree(g, &dst);
            }
        }
        assert!(
            !dst.join(".init-agent/rollback").exists(),
            "rollback area left"
        );
        let leftovers = run(Command::new("find")
            .arg(&dst)
            .args(["-name", ".init-agent~*"]));
        assert!(leftovers.stdout.is_empty(), "temporaries left behind");
    }
    assert!(
        rolled > 0 && finished > 0,
        "rolled back {rolled}, finished {finished}: retime the cuts"
    );
}

/// What a power cut can leave on ext4: a renamed file with its final size and
/// mtime but zeros for data (the rename was committed, the data not). The
/// run after the interrupted one compares the contents of every file changed
/// since the interrupted run began, and only those.
#[test]
fn files_written_by_an_interrupted_run_are_verified_by_content() {
    require_root!();
    let s = Scratch::new("torn");
    let (src, dst) = (s.path("src"), s.path("dst"));
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/torn"), "data the power cut lost\n").unwrap();
    std::fs::write(src.join("etc/older"), "written before the cut\n").unwrap();
    std::fs::create_dir(&dst).unwrap();
    sync(&src, &dst, &[]);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Both files torn the same way, but only one was written after the
    // interrupted run began; the other's ctime is made older by the marker.
    for (name, since) in [("etc/torn", started - 1), ("etc/older", started + 100)] {
        let path = dst.join(name);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        std::fs::write(&path, vec![0u8; len]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::write(
            dst.join(".init-agent/state"),
            format!("in-progress {since}\n"),
        )
        .unwrap();
        let report = sync(&src, &dst, &[]);
        assert_eq!(report["previous_state"], format!("in-progress {since}"));
        let now = std::fs::read(&path).unwrap();
        if name == "etc/torn" {
            assert_eq!(
                now,
                std::fs::read(src.join(name)).unwrap(),
                "the torn file was kept"
            );
        } else {
            // Not written by the interrupted run: the metadata check stands.
            assert!(now.iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn checksum_catches_edits_that_keep_size_and_mtime() {
    require_root!();
    let s = Scratch::new("checksum");
    let (src, dst) = (s.path("src"), s.path("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "aaaa").unwrap();
    std::fs::create_dir(&dst).unwrap();
    sync(&src, &dst, &[]);
    let mtime = std::fs::metadata(src.join("f"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(src.join("f"), "bbbb").unwrap();
    std::fs::File::options()
        .write(true)
        .open(src.join("f"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    sync(&src, &dst, &[]);
    assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "aaaa");
    sync(&src, &dst, &["--checksum"]);
    assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "bbbb");
}

#[test]
fn overlapping_source_and_destination_are_refused() {
    let s = Scratch::new("overlap");
    std::fs::create_dir_all(s.path("src/sub")).unwrap();
    let out = Command::new(BIN)
        .arg("sync")
        .arg(s.path("src"))
        .arg(s.path("src/sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap"));
}

/// A hostile standard root's sheer size: one directory of 100,000 entries and
/// a 64 GiB sparse file with three data blocks. Copied exactly, holes kept,
/// in bounded memory (a node's initramfs is RAM), the peak measured by the
/// kernel (getrusage of the child).
#[test]
fn huge_directories_and_sparse_files_stay_within_bounded_memory() {
    require_root!();
    let s = Scratch::new("huge");
    // On a tmpfs: 200,000 inode creations on this machine's disk take a minute.
    struct Tmpfs(PathBuf);
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let fs = Tmpfs(s.path("fs"));
    std::fs::create_dir(&fs.0).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1g", "tmpfs"])
        .arg(&fs.0));
    let (src, dst) = (fs.0.join("src"), fs.0.join("dst"));
    let wide = src.join("wide");
    std::fs::create_dir_all(&wide).unwrap();
    for i in 0..100_000u32 {
        std::fs::File::create(wide.join(format!("entry-with-a-longish-name-{i:06}"))).unwrap();
    }
    let sparse = std::fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 << 30).unwrap();
    for off in [0u64, 17 << 30, (64 << 30) - 4096] {
        std::os::unix::fs::FileExt::write_all_at(&sparse, &[0xa5; 4096], off).unwrap();
    }
    std::fs::create_dir(&dst).unwrap();
    let out = run(Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             subprocess.run(sys.argv[1:], check=True)\n\
             print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        ])
        .arg(BIN)
        .args(["sync", "--quiet"])
        .arg(&src)
        .arg(&dst));
    let peak_kib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    eprintln!("peak RSS of the sync: {peak_kib} KiB");
    assert!(peak_kib < 128 * 1024, "the sync peaked at {peak_kib} KiB");
    // The lister would hash 64 GiB of zeros: the sparse file is checked here.
    let (a, b) = (
        listing_with(&src, &["--exclude-root-name", "sparse"]),
        listing_with(&dst, &["--exclude-root-name", "sparse"]),
    );
    let d = differences(&a, &b);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
    use std::os::unix::fs::{FileExt, MetadataExt};
    let copy = std::fs::File::open(dst.join("sparse")).unwrap();
    let meta = copy.metadata().unwrap();
    assert_eq!(meta.len(), 64 << 30);
    // The holes stayed holes: three data blocks, not 64 GiB.
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        meta.blocks()
    );
    let mut block = [0u8; 4096];
    for off in [0u64, 17 << 30, (64 << 30) - 4096] {
        copy.read_exact_at(&mut block, off).unwrap();
        assert!(block.iter().all(|&b| b == 0xa5), "data at {off} lost");
    }
    copy.read_exact_at(&mut block, 1 << 30).unwrap();
    assert!(block.iter().all(|&b| b == 0), "a hole became data");
}
