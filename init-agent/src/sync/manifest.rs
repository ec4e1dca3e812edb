//! The manifest of a standard root: every entry's path, type, size, mtime (ns),
//! permissions, owner, xattrs, hardlink group and content hash, in walk order,
//! so a node can compare its local copy without walking the NFS tree.
//!
//! File layout: `IAMANIF\0`, a postcard-encoded [`Body`], then the BLAKE3 hash of
//! everything before it (integrity). Paths are prefix-compressed. The generation
//! is derived from the records, so an unchanged tree gives the same generation;
//! `init-agent manifest` also stamps it into `SRC/.init-agent/generation`, which
//! is what a node checks before trusting the manifest.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::engine::open_parent;
use super::meta::{Kind, Meta, Xattrs};
use super::pattern::PatternSet;
use super::STATE_DIR;
use crate::sys::fsops;

pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"IAMANIF\0";
const TRAILER: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}: not an init-agent manifest")]
    NotManifest(String),
    #[error("{0}: integrity check failed (truncated or altered)")]
    Integrity(String),
    #[error("{path}: format version {found}, this agent reads version {FORMAT_VERSION}")]
    Version { path: String, found: u32 },
    #[error("{0}: {1}")]
    Decode(String, String),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

/// Written from owned records, read back borrowing the file's bytes (one
/// allocation per entry fewer on a 100k-entry root).
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    version: u32,
    generation: String,
    #[serde(borrow)]
    records: Vec<Record<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    /// Bytes shared with the previous path.
    prefix: u32,
    suffix: &'a [u8],
    kind: u8,
    perm: u32,
    uid: u32,
    gid: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    size: u64,
    rdev: u64,
    target: &'a [u8],
    xattrs: Vec<(&'a [u8], &'a [u8])>,
    /// Hardlink group, 0 for none.
    group: u32,
    /// BLAKE3 of the content, first 16 bytes; none for non-files.
    hash: Option<[u8; 16]>,
    /// Entries below this one (directories), so readers find siblings.
    descendants: u32,
}

/// One entry as a reader uses it. A hardlink group shows as nlink 2 and the
/// group number as inode, so the engine groups manifest entries as it groups
/// inodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub rel: Vec<u8>,
    pub meta: Meta,
    pub target: Vec<u8>,
    pub xattrs: Xattrs,
    pub hash: Option<[u8; 16]>,
    /// Index one past this entry's subtree.
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub generation: String,
    /// Entry 0 is the root (`rel` empty); then depth-first, names sorted bytewise.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Indices of the direct children of directory `i`, in name order.
    pub fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.entries.get(i).map_or(i, |e| e.end);
        let mut j = i + 1;
        std::iter::from_fn(move || {
            if j >= end {
                return None;
            }
            let k = j;
            j = self.entries[k].end.max(k + 1);
            Some(k)
        })
    }

    pub fn name(&self, i: usize) -> &[u8] {
        let rel = &self.entries[i].rel;
        match rel.iter().rposition(|&b| b == b'/') {
            Some(p) => &rel[p + 1..],
            None => rel,
        }
    }

    /// The entry at a relative path, following children lists.
    pub fn find(&self, rel: &[u8]) -> Option<usize> {
        let mut at = 0;
        if rel.is_empty() {
            return Some(0);
        }
        for part in rel.split(|&b| b == b'/') {
            at = self.children(at).find(|&c| self.name(c) == part)?;
        }
        Some(at)
    }
}

fn hash_file(root: BorrowedFd, rel: &[u8]) -> io::Result<[u8; 16]> {
    let (dir, name) = open_parent(root, rel)?;
    let fd = fsops::open_file(dir.as_fd(), &name)?;
    super::digest::of_fd(&fd)
}

/// Walks `src` (never following symlinks) and records it; contents are hashed in
/// parallel.
pub fn build(src: &Path, exclude: &PatternSet) -> io::Result<Manifest> {
    let root = fsops::open_root(src)?;
    let mut entries = Vec::new();
    let root_meta = fsops::lstat(root.as_fd(), c".")?;
    let xattrs = fsops::read_xattrs(root.as_fd(), c".")?;
    entries.push(entry(Vec::new(), root_meta, Vec::new(), xattrs));
    walk(root.as_fd(), b"", exclude, &mut entries)?;
    entries[0].end = entries.len();
    // Hardlink groups numbered in walk order: the same tree gives the same numbers.
    let mut groups: HashMap<(u64, u64), u64> = HashMap::new();
    for e in &mut entries {
        if e.meta.is_linked() {
            let next = groups.len() as u64 + 1;
            let g = *groups.entry((e.meta.dev, e.meta.ino)).or_insert(next);
            (e.meta.dev, e.meta.ino, e.meta.nlink) = (0, g, 2);
        } else {
            (e.meta.dev, e.meta.ino, e.meta.nlink) = (0, 0, 1);
        }
    }
    entries
        .par_iter_mut()
        .filter(|e| e.meta.kind == Kind::File)
        .try_for_each(|e| {
            e.hash = Some(hash_file(root.as_fd(), &e.rel).map_err(|err| {
                io::Error::new(err.kind(), format!("{}: {err}", super::display_rel(&e.rel)))
            })?);
            Ok::<(), io::Error>(())
        })?;
    let mut m = Manifest {
        generation: String::new(),
        entries,
    };
    m.generation = generation_of(&records(&m));
    Ok(m)
}

fn entry(rel: Vec<u8>, meta: Meta, target: Vec<u8>, xattrs: Xattrs) -> Entry {
    Entry {
        rel,
        meta,
        target,
        xattrs,
        hash: None,
        end: 0,
    }
}

fn walk(dir: BorrowedFd, rel: &[u8], exclude: &PatternSet, out: &mut Vec<Entry>) -> io::Result<()> {
    for name in fsops::read_names(dir)? {
        let mut crel = rel.to_vec();
        if !crel.is_empty() {
            crel.push(b'/');
        }
        crel.extend_from_slice(name.to_bytes());
        let meta = fsops::lstat(dir, &name)?;
        let is_dir = meta.kind == Kind::Dir;
        if (rel.is_empty() && name.to_bytes() == STATE_DIR.as_bytes())
            || exclude.matches(&crel, is_dir)
            || meta.kind == Kind::Socket
        {
            continue;
        }
        let target = if meta.kind == Kind::Symlink {
            fsops::readlink(dir, &name)?.into_bytes()
        } else {
            Vec::new()
        };
        let xattrs = fsops::read_xattrs(dir, &name)?;
        let at = out.len();
        out.push(entry(crel.clone(), meta, target, xattrs));
        if is_dir {
            let sub = fsops::open_dir(dir, &name)?;
            walk(sub.as_fd(), &crel, exclude, out)?;
        }
        out[at].end = out.len();
    }
    Ok(())
}

fn records(m: &Manifest) -> Vec<Record<'_>> {
    let mut prev: &[u8] = &[];
    m.entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let prefix = prev.iter().zip(&e.rel).take_while(|(a, b)| a == b).count();
            prev = &e.rel;
            Record {
                prefix: prefix as u32,
                suffix: &e.rel[prefix..],
                kind: e.meta.kind.letter() as u8,
                perm: e.meta.perm,
                uid: e.meta.uid,
                gid: e.meta.gid,
                mtime_sec: e.meta.mtime_sec,
                mtime_nsec: e.meta.mtime_nsec,
                size: e.meta.size,
                rdev: e.meta.rdev,
                target: &e.target,
                xattrs: e
                    .xattrs
                    .0
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_slice()))
                    .collect(),
                group: if e.meta.nlink > 1 {
                    e.meta.ino as u32
                } else {
                    0
                },
                hash: e.hash,
                descendants: (e.end.saturating_sub(i + 1)) as u32,
            }
        })
        .collect()
}

fn generation_of(records: &[Record]) -> String {
    let bytes = postcard::to_allocvec(records).unwrap_or_default();
    let h = blake3::hash(&bytes);
    h.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn encode(m: &Manifest) -> Vec<u8> {
    let body = Body {
        version: FORMAT_VERSION,
        generation: m.generation.clone(),
        records: records(m),
    };
    let mut out = MAGIC.to_vec();
    // Encoding plain structs into a Vec cannot fail.
    out.extend(postcard::to_allocvec(&body).unwrap_or_default());
    let h = blake3::hash(&out);
    out.extend_from_slice(h.as_bytes());
    out
}

pub fn decode(bytes: &[u8], name: &str) -> Result<Manifest, ManifestError> {
    if bytes.len() < MAGIC.len() + TRAILER || !bytes.starts_with(MAGIC) {
        return Err(ManifestError::NotManifest(name.into()));
    }
    let (data, trailer) = bytes.split_at(bytes.len() - TRAILER);
    if blake3::hash(data).as_bytes() != trailer {
        return Err(ManifestError::Integrity(name.into()));
    }
    let body: Body = postcard::from_bytes(&data[MAGIC.len()..])
        .map_err(|e| ManifestError::Decode(name.into(), e.to_string()))?;
    if body.version != FORMAT_VERSION {
        return Err(ManifestError::Version {
            path: name.into(),
            found: body.version,
        });
    }
    let bad = |what: &str| ManifestError::Decode(name.into(), what.into());
    let mut entries: Vec<Entry> = Vec::with_capacity(body.records.len());
    for (i, r) in body.records.into_iter().enumerate() {
        let prev = entries.last().map_or(&[][..], |e| e.rel.as_slice());
        let prefix = r.prefix as usize;
        if prefix > prev.len() {
            return Err(bad("path prefix longer than the previous path"));
        }
        let mut rel = prev[..prefix].to_vec();
        rel.extend_from_slice(r.suffix);
        if (i == 0) != rel.is_empty() || rel.contains(&0) {
            return Err(bad("malformed path"));
        }
        let kind = Kind::from_letter(r.kind).ok_or_else(|| bad("unknown entry type"))?;
        let end = i
            .checked_add(1)
            .and_then(|n| n.checked_add(r.descendants as usize))
            .ok_or_else(|| bad("subtree size overflows"))?;
        let mut xattrs = Vec::with_capacity(r.xattrs.len());
        for (n, v) in r.xattrs {
            xattrs.push((
                CString::new(n).map_err(|_| bad("xattr name with NUL"))?,
                v.to_vec(),
            ));
        }
        entries.push(Entry {
            rel,
            meta: Meta {
                kind,
                perm: r.perm & 0o7777,
                uid: r.uid,
                gid: r.gid,
                size: r.size,
                mtime_sec: r.mtime_sec,
                mtime_nsec: r.mtime_nsec,
                rdev: r.rdev,
                nlink: if r.group > 0 { 2 } else { 1 },
                dev: 0,
                ino: r.group as u64,
                blocks: r.size.div_ceil(512),
                ctime_sec: 0,
            },
            target: r.target.to_vec(),
            xattrs: Xattrs(xattrs),
            hash: r.hash,
            end,
        });
    }
    validate_tree(&entries).map_err(bad)?;
    Ok(Manifest {
        generation: body.generation,
        entries,
    })
}

/// Subtree bounds nest and only directories have children: a reader can then
/// never index out of range or loop.
fn validate_tree(entries: &[Entry]) -> Result<(), &'static str> {
    if entries.is_empty() || entries[0].meta.kind != Kind::Dir || entries[0].end != entries.len() {
        return Err("the root entry does not span the manifest");
    }
    let mut open: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        while open.last().is_some_and(|&p| entries[p].end <= i) {
            open.pop();
        }
        if let Some(&p) = open.last() {
            if e.end > entries[p].end {
                return Err("a subtree overlaps its parent's end");
            }
            let parent = &entries[p].rel;
            let direct = e.rel.len() > parent.len() + usize::from(p != 0)
                && e.rel.starts_with(parent)
                && (p == 0 || e.rel[parent.len()] == b'/')
                && !e.rel[parent.len() + usize::from(p != 0)..].contains(&b'/');
            if !direct
                || e.rel
                    .split(|&b| b == b'/')
                    .any(|c| c.is_empty() || c == b"." || c == b"..")
            {
                return Err("an entry is not a direct child of its directory");
            }
        } else if i != 0 {
            return Err("an entry lies outside the root");
        }
        if e.end < i + 1 || (e.end > i + 1 && e.meta.kind != Kind::Dir) {
            return Err("a non-directory has children");
        }
        if e.meta.kind == Kind::Dir {
            open.push(i);
        }
    }
    // The engine merges children with a directory listing by name: sorted, unique.
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.meta.kind == Kind::Dir)
    {
        let mut j = i + 1;
        let mut last: Option<&[u8]> = None;
        while j < e.end {
            let rel = &entries[j].rel;
            let name = &rel[rel.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1)..];
            if last.is_some_and(|l| l >= name) {
                return Err("directory entries out of order");
            }
            last = Some(name);
            j = entries[j].end;
        }
    }
    Ok(())
}

pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ManifestError::Io(name.clone(), e))?;
    decode(&bytes, &name)
}

/// Writes the manifest atomically and stamps the generation into the source.
pub fn write(m: &Manifest, out: &Path, src: Option<&Path>) -> io::Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, encode(m))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, out)?;
    if let Some(src) = src {
        let dir = src.join(STATE_DIR);
        std::fs::create_dir_all(&dir)?;
        let stamp = dir.join("generation");
        let tmp = dir.join("generation.tmp");
        std::fs::write(&tmp, format!("{}\n", m.generation))?;
        std::fs::rename(tmp, stamp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
