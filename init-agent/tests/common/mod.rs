//! Helpers shared by the sync tests (local and NFS sources): scratch
//! directories, the tree generator and the independent lister.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_init-agent");

pub fn support(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests-support")
        .join(script)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Root-only tests say so instead of passing silently.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!("skipped: needs root (chown, devices, trusted xattrs)");
            return;
        }
    };
}

pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ia-sync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn mktree(root: &Path, seed: u32, profile: &str) {
    run(Command::new("python3")
        .arg(support("mktree.py"))
        .arg(root)
        .args(["--seed", &seed.to_string(), "--profile", profile]));
}

pub fn listing(root: &Path) -> String {
    listing_with(root, &[])
}

/// The listing with further treelist.py options.
pub fn listing_with(root: &Path, extra: &[&str]) -> String {
    let out = run(Command::new("python3")
        .arg(support("treelist.py"))
        .arg(root)
        .args([
            "--exclude-root-name",
            ".init-agent",
            "--exclude-root-name",
            "lost+found",
            "--no-sockets",
        ])
        .args(extra));
    String::from_utf8(out.stdout).unwrap()
}

/// Lines only one side has, for a readable failure.
pub fn differences(a: &str, b: &str) -> Vec<String> {
    use std::collections::HashSet;
    let (sa, sb): (HashSet<&str>, HashSet<&str>) = (a.lines().collect(), b.lines().collect());
    let mut d: Vec<String> = a
        .lines()
        .filter(|l| !sb.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    d.extend(
        b.lines()
            .filter(|l| !sa.contains(l))
            .map(|l| format!("+ {l}")),
    );
    d
}

pub fn assert_same_tree(src: &Path, dst: &Path) {
    let (a, b) = (listing(src), listing(dst));
    let d = differences(&a, &b);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

pub fn sync(src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    let report = dst.with_extension("report.json");
    run(Command::new(BIN)
        .arg("sync")
        .arg(src)
        .arg(dst)
        .arg("--quiet")
        .arg("--report")
        .arg(&report)
        .args(extra));
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

pub fn changes(report: &serde_json::Value) -> u64 {
    let c = &report["counts"];
    ["created", "updated", "deleted"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum()
}
