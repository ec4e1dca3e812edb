//! `init-agent verify`: audits a node's local copy against the standard root's
//! manifest and lists every difference. The node's tree is recorded with the
//! manifest's own lister (`manifest::build`, which hashes every file), and the
//! two records are merged directory by directory, so a difference is judged
//! by the same normalised metadata the manifest holds and the `Meta`
//! comparisons the sync engine decides with.
//!
//! Excluded paths are left out on both sides. Protected ones are left out
//! where the node has them and reported missing where it lacks them: what a
//! sync with the same patterns would change, less what it keeps node-local.
//! Below a missing, extra or retyped directory only that directory is listed,
//! with the number of entries below it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use serde::Serialize;

use super::manifest::{self, Manifest};
use super::meta::{Kind, Meta, Xattrs};
use super::pattern::{PatternError, PatternSet};
use super::{display_rel, engine, ALWAYS_PROTECTED};
use crate::sys::fsops;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: io::Error,
    },
}

/// What differs, in the order an audit line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    Missing,
    Extra,
    Type,
    Content,
    Target,
    Device,
    Mode,
    Owner,
    Mtime,
    Xattrs,
    Hardlinks,
}

impl What {
    fn word(self) -> &'static str {
        match self {
            What::Missing => "missing",
            What::Extra => "extra",
            What::Type => "type",
            What::Content => "content",
            What::Target => "target",
            What::Device => "device",
            What::Mode => "mode",
            What::Owner => "owner",
            What::Mtime => "mtime",
            What::Xattrs => "xattrs",
            What::Hardlinks => "hardlinks",
        }
    }
}

/// One difference: what the node has (`found`) against the manifest
/// (`expected`); None on the side that lacks the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub path: String,
    pub what: What,
    pub found: Option<String>,
    pub expected: Option<String>,
    /// Entries below a missing, extra or retyped directory, not listed apart.
    #[serde(skip_serializing_if = "is_zero")]
    pub below: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl std::fmt::Display for Difference {
    /// `mode /usr/bin/su 4755, manifest 0755`; `missing /usr/share/doc (and 812 below)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what.word(), self.path)?;
        match (&self.found, &self.expected) {
            (Some(found), Some(expected)) => write!(f, " {found}, manifest {expected}")?,
            (Some(kind), None) | (None, Some(kind)) => write!(f, " ({kind})")?,
            (None, None) => {}
        }
        if self.below > 0 {
            write!(f, " and {} entries below", self.below)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    /// Entries found on both sides and compared.
    pub compared: usize,
    pub counts: BTreeMap<What, usize>,
    pub differences: Vec<Difference>,
}

/// Compares the tree at `root` with the manifest `m`.
pub fn audit(
    m: &Manifest,
    root: &Path,
    exclude: &[String],
    protect: &[String],
) -> Result<Audit, VerifyError> {
    let mut protect = protect.to_vec();
    protect.push(ALWAYS_PROTECTED.into());
    let left_out: Vec<String> = exclude.iter().chain(&protect).cloned().collect();
    let io_at = |op, source| VerifyError::Io {
        op,
        path: root.display().to_string(),
        source,
    };
    // The node as the manifest records a tree: hashes, normalised hardlink
    // groups, `.init-agent` left out; protected entries the node has too.
    let node =
        manifest::build(root, &PatternSet::new(&left_out)?).map_err(|e| io_at("recording", e))?;
    let rootfd = fsops::open_root(root).map_err(|e| io_at("opening", e))?;
    let sides = Sides {
        m,
        node: &node,
        exclude: PatternSet::new(exclude)?,
        left_out: PatternSet::new(&left_out)?,
        m_links: link_groups(m),
        n_links: link_groups(&node),
    };
    let mut audit = Audit::default();
    sides.compare(0, 0, &mut audit);
    // Depth-first, children merged by name; a stack, not recursion: a
    // hostile tree's depth is not bounded by our stack.
    let mut dirs = vec![(0, 0)];
    while let Some((mi, ni)) = dirs.pop() {
        let mut mc = m.children(mi).peekable();
        let mut nc = node.children(ni).peekable();
        loop {
            let (a, b) = match (mc.peek(), nc.peek()) {
                (None, None) => break,
                (Some(&a), Some(&b)) if m.name(a) == node.name(b) => (mc.next(), nc.next()),
                (Some(&a), Some(&b)) if m.name(a) < node.name(b) => (mc.next(), None),
                (Some(_), None) => (mc.next(), None),
                _ => (None, nc.next()),
            };
            match (a, b) {
                (Some(a), Some(b)) => {
                    if sides.compare(a, b, &mut audit) {
                        dirs.push((a, b));
                    }
                }
                (Some(a), None) => sides.missing(a, rootfd.as_fd(), &mut audit),
                (None, Some(b)) => {
                    let e = &node.entries[b];
                    audit.add(Difference {
                        path: display_rel(&e.rel),
                        what: What::Extra,
                        found: Some(kind_name(e.meta.kind).into()),
                        expected: None,
                        below: e.end - b - 1,
                    });
                }
                (None, None) => break,
            }
        }
    }
    // Parents before children, names in order, whatever the stack did.
    audit.differences.sort_by_cached_key(|d| {
        let parts: Vec<String> = d.path.split('/').map(str::to_owned).collect();
        (parts, d.what)
    });
    Ok(audit)
}

impl Audit {
    fn add(&mut self, d: Difference) {
        *self.counts.entry(d.what).or_default() += 1;
        self.differences.push(d);
    }
}

/// A hardlink group's members (entry indices) by group number.
type Groups = HashMap<u64, Vec<usize>>;

fn link_groups(m: &Manifest) -> Groups {
    let mut groups = Groups::new();
    for (i, e) in m.entries.iter().enumerate() {
        if e.meta.is_linked() {
            groups.entry(e.meta.ino).or_default().push(i);
        }
    }
    groups
}

struct Sides<'a> {
    m: &'a Manifest,
    node: &'a Manifest,
    exclude: PatternSet,
    /// Excluded or protected: what the node's record leaves out.
    left_out: PatternSet,
    m_links: Groups,
    n_links: Groups,
}

impl Sides<'_> {
    /// Compares manifest entry `a` with node entry `b` (the same path); true
    /// when both are directories, to be descended into.
    fn compare(&self, a: usize, b: usize, audit: &mut Audit) -> bool {
        let (want, have) = (&self.m.entries[a], &self.node.entries[b]);
        let is_dir = want.meta.kind == Kind::Dir;
        audit.compared += 1;
        let path = display_rel(&want.rel);
        let mut differ = |what, found: String, expected: String| {
            audit.add(Difference {
                path: path.clone(),
                what,
                found: Some(found),
                expected: Some(expected),
                below: 0,
            })
        };
        let (e, n) = (&want.meta, &have.meta);
        if e.kind != n.kind {
            differ(
                What::Type,
                kind_name(n.kind).into(),
                kind_name(e.kind).into(),
            );
            return false;
        }
        match e.kind {
            Kind::File if e.size != n.size => differ(
                What::Content,
                format!("size {}", n.size),
                format!("size {}", e.size),
            ),
            Kind::File if want.hash != have.hash => {
                differ(What::Content, hex(have.hash), hex(want.hash))
            }
            Kind::Symlink if want.target != have.target => differ(
                What::Target,
                display_target(&have.target),
                display_target(&want.target),
            ),
            Kind::Char | Kind::Block if e.rdev != n.rdev => {
                differ(What::Device, device(n.rdev), device(e.rdev))
            }
            _ => {}
        }
        if !n.same_perm(e) {
            differ(
                What::Mode,
                format!("{:04o}", n.perm),
                format!("{:04o}", e.perm),
            );
        }
        if !n.same_owner(e) {
            differ(
                What::Owner,
                format!("{}:{}", n.uid, n.gid),
                format!("{}:{}", e.uid, e.gid),
            );
        }
        if !n.same_mtime(e) {
            differ(What::Mtime, mtime(n), mtime(e));
        }
        if have.xattrs != want.xattrs {
            let (found, expected) = xattr_difference(&have.xattrs, &want.xattrs);
            differ(What::Xattrs, found, expected);
        }
        if !is_dir {
            let found = self.links(self.node, &self.n_links, b);
            let expected = self.links(self.m, &self.m_links, a);
            if found != expected {
                differ(What::Hardlinks, found, expected);
            }
        }
        is_dir
    }

    /// A manifest entry the node's record lacks: missing, unless left out
    /// by a pattern (excluded; protected and there).
    fn missing(&self, a: usize, root: std::os::fd::BorrowedFd, audit: &mut Audit) {
        let want = &self.m.entries[a];
        if self.exclude.matches(&want.rel, want.meta.kind == Kind::Dir) {
            return;
        }
        // Left out of the record by the node's own type, only when it is there.
        let there = engine::open_parent(root, &want.rel)
            .and_then(|(dir, name)| fsops::lstat(dir.as_fd(), &name));
        if there.is_ok_and(|n| self.left_out.matches(&want.rel, n.kind == Kind::Dir)) {
            return;
        }
        audit.add(Difference {
            path: display_rel(&want.rel),
            what: What::Missing,
            found: None,
            expected: Some(kind_name(want.meta.kind).into()),
            below: want.end - a - 1,
        });
    }

    /// Whom entry `i` shares its inode with, among the entries compared.
    fn links(&self, side: &Manifest, groups: &Groups, i: usize) -> String {
        let e = &side.entries[i];
        if !e.meta.is_linked() {
            return "not linked".into();
        }
        let others: Vec<String> = groups
            .get(&e.meta.ino)
            .into_iter()
            .flatten()
            .filter(|&&j| j != i)
            .map(|&j| &side.entries[j])
            .filter(|o| !self.left_out.matches(&o.rel, false))
            .map(|o| display_rel(&o.rel))
            .collect();
        if others.is_empty() {
            "linked outside the tree compared".into()
        } else {
            format!("linked with {}", others.join(" "))
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Char => "character device",
        Kind::Block => "block device",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
    }
}

fn hex(hash: Option<[u8; 16]>) -> String {
    match hash {
        Some(h) => format!(
            "blake3 {}",
            h.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        None => "no hash".into(),
    }
}

fn display_target(t: &[u8]) -> String {
    // display_rel escapes as paths are escaped; its leading '/' is not the target's.
    format!("-> {}", &display_rel(t)[1..])
}

fn device(rdev: u64) -> String {
    format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

fn mtime(m: &Meta) -> String {
    format!("{}.{:09}", m.mtime_sec, m.mtime_nsec)
}

/// The attributes only one side has or that differ, as `name=<digest>`.
fn xattr_difference(found: &Xattrs, expected: &Xattrs) -> (String, String) {
    let only = |a: &Xattrs, b: &Xattrs| {
        let names: Vec<String> =
            a.0.iter()
                .filter(|x| !b.0.contains(x))
                .map(|(n, v)| {
                    let digest = &blake3::hash(v).to_hex()[..8];
                    format!("{}={digest}", n.to_string_lossy())
                })
                .collect();
        if names.is_empty() {
            "(none)".into()
        } else {
            names.join(" ")
        }
    };
    (only(found, expected), only(expected, found))
}

#[cfg(test)]
mod tests;
