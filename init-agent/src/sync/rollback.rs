//! A sync as a transaction on the node's disk: before the first change to an
//! entry of the last complete generation, what it was is kept in
//! `DST/.init-agent/rollback` on the same file system, with no data copied:
//!
//! - `old/<path>`: a hardlink of a non-directory about to be replaced or
//!   deleted (the replacement is a new inode renamed over it, so the link
//!   keeps the old contents and metadata);
//! - `records/<n>.meta`: a marker whose own owner, permissions, mtime and
//!   xattrs are the entry's before its metadata changed in place, or before a
//!   directory was deleted (a directory marker for a directory);
//! - `records/<n>.new`: a path the complete generation did not have;
//! - `state`: the marker of the complete generation.
//!
//! A record's path is in its `trusted.init-agent.path` xattr, set last: a
//! marker cut half-made names nothing. Every record is made with metadata
//! operations only (link, mkdir, create, chown, setxattr, utimes), which a
//! journalling file system commits in the order they were made, so a record
//! is on disk whenever the change it precedes is. A directory's own metadata
//! is recorded before its first entry changes (their changes move its mtime).
//!
//! A run that is cut leaves the marker in progress and the records: the next
//! run either finishes the new generation (the records grow, the first record
//! of a path wins) or `roll_back` puts the complete generation back exactly and
//! marks it complete again. A completed run removes the area.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use super::meta::{Kind, Meta, Xattrs};
use super::state::{self, c_state_dir, State};
use crate::sys::fsops::{self, mkdir_in};

const AREA: &CStr = c"rollback";
const PATH_XATTR: &CStr = c"trusted.init-agent.path";

/// What is about to happen to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Created, replaced or deleted.
    Entry,
    /// Its owner, permissions, xattrs or mtime set in place.
    Meta,
}

/// The records of one transaction, shared by the engine's workers.
pub struct Journal<'a> {
    root: BorrowedFd<'a>,
    /// The complete generation's marker, written back by a roll-back.
    saved: State,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Made by the first record: a sync that changes nothing writes nothing.
    area: Option<Area>,
    /// Every recorded path; true for one the complete generation did not have.
    recorded: HashMap<Vec<u8>, bool>,
    next: u64,
}

struct Area {
    old: OwnedFd,
    records: OwnedFd,
}

impl<'a> Journal<'a> {
    /// The journal of a run into `root` whose marker reads `previous`: a new
    /// one after a complete generation (an area a run left after marking it
    /// complete is removed), the interrupted run's to resume, or None when
    /// there is no complete generation to keep.
    pub fn open(root: BorrowedFd<'a>, previous: &State) -> io::Result<Option<Journal<'a>>> {
        let found = Found::read(root)?;
        let journal = |saved, inner| Journal {
            root,
            saved,
            inner: Mutex::new(inner),
        };
        match (previous, found) {
            (State::Complete { .. }, found) => {
                if found.is_some() {
                    // Cut after it kept something, the marker still
                    // complete: what it did undone, or a completed run's
                    // area removed.
                    drop(found);
                    roll_back(root)?;
                }
                Ok(Some(journal(previous.clone(), Inner::default())))
            }
            (State::InProgress(_), Some(found)) if found.saved.is_some() => {
                let Found {
                    saved,
                    area,
                    records,
                    next,
                } = found;
                let recorded = records.iter().map(|r| (r.path.clone(), r.new)).collect();
                Ok(Some(journal(
                    saved.unwrap_or(State::None),
                    Inner {
                        area: Some(area),
                        recorded,
                        next,
                    },
                )))
            }
            (_, found) => {
                if found.is_some() {
                    remove_area(root)?;
                }
                Ok(None)
            }
        }
    }

    /// Keeps what `rel` is before `change` happens to it (and its directory's
    /// metadata, before its first entry changes). Once per path.
    pub fn keep(&self, rel: &[u8], change: Change) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.area.is_none() {
            inner.area = Some(self.make_area()?);
        }
        // Rolling back removes a new directory and all it holds.
        let mut up = parent_of(rel);
        while let Some(a) = up {
            if inner.recorded.get(a) == Some(&true) {
                return Ok(());
            }
            up = parent_of(a);
        }
        if let Some(parent) = parent_of(rel) {
            if !inner.recorded.contains_key(parent) {
                inner.record(self.root, parent, Change::Meta)?;
            }
        }
        // A temporary an earlier cut run left is no part of any generation:
        // kept, a roll-back would put it back. Its directory's record (above)
        // makes the roll-back remove it.
        let temporary = rel
            .rsplit(|&b| b == b'/')
            .next()
            .is_some_and(fsops::is_temp);
        if !temporary && !inner.recorded.contains_key(rel) {
            inner.record(self.root, rel, change)?;
        }
        Ok(())
    }

    /// The generation is complete: its records are no longer needed.
    pub fn finish(self) -> io::Result<()> {
        let made = self
            .inner
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .area
            .is_some();
        if made {
            remove_area(self.root)?;
        }
        Ok(())
    }

    fn make_area(&self) -> io::Result<Area> {
        let state_dir = fsops::open_dir(self.root, &c_state_dir())?;
        mkdir_in(state_dir.as_fd(), AREA)?;
        let area = fsops::open_dir(state_dir.as_fd(), AREA)?;
        mkdir_in(area.as_fd(), c"old")?;
        mkdir_in(area.as_fd(), c"records")?;
        // Durable before the first change: a roll-back needs it.
        state::write_in(area.as_fd(), &self.saved)?;
        Ok(Area {
            old: fsops::open_dir(area.as_fd(), c"old")?,
            records: fsops::open_dir(area.as_fd(), c"records")?,
        })
    }
}

impl Inner {
    fn record(&mut self, root: BorrowedFd, rel: &[u8], change: Change) -> io::Result<()> {
        let Inner {
            area: Some(area),
            recorded,
            next,
        } = self
        else {
            return Err(io::Error::other("no rollback area"));
        };
        let (dir, name) = open_at(root, rel)?;
        let live = match fsops::lstat(dir.as_fd(), &name) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let new = live.is_none();
        match (change, live) {
            // Gone already: nothing to keep.
            (Change::Meta, None) => return Ok(()),
            (Change::Entry, None) => {
                let marker = marker_name(next, "new");
                fsops::create_temp_file(area.records.as_fd(), &marker)?;
                fsops::set_xattr(area.records.as_fd(), &marker, PATH_XATTR, rel)?;
            }
            (Change::Entry, Some(m)) if m.kind != Kind::Dir => {
                let (old_dir, old_name) = make_parents(area.old.as_fd(), rel)?;
                match fsops::link(dir.as_fd(), &name, old_dir.as_fd(), &old_name) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    r => r?,
                }
            }
            (_, Some(m)) => {
                let x = fsops::read_xattrs(dir.as_fd(), &name)?;
                let marker = marker_name(next, "meta");
                let records = area.records.as_fd();
                // A directory's marker is a directory; any other's a file.
                let kind = if m.kind == Kind::Dir {
                    fsops::mkdir(records, &marker)?;
                    Kind::Dir
                } else {
                    fsops::create_temp_file(records, &marker)?;
                    Kind::File
                };
                apply_meta(records, &marker, &Meta { kind, ..m }, &x)?;
                fsops::set_xattr(records, &marker, PATH_XATTR, rel)?;
            }
        }
        recorded.insert(rel.to_vec(), new);
        Ok(())
    }
}

fn marker_name(next: &mut u64, tag: &str) -> CString {
    *next += 1;
    // Digits and a fixed tag: no NUL.
    CString::new(format!("{next}.{tag}")).unwrap_or_default()
}

/// One record as found on disk.
struct Record {
    path: Vec<u8>,
    /// The marker's name in `records/`; None for a hardlink in `old/`.
    marker: Option<(CString, Meta)>,
    new: bool,
}

/// What an area holds.
struct Found {
    saved: Option<State>,
    area: Area,
    records: Vec<Record>,
    next: u64,
}

impl Found {
    fn read(root: BorrowedFd) -> io::Result<Option<Found>> {
        let Ok(state_dir) = fsops::open_dir(root, &c_state_dir()) else {
            return Ok(None);
        };
        let area = match fsops::open_dir(state_dir.as_fd(), AREA) {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let saved = state::read_in(area.as_fd()).filter(|s| matches!(s, State::Complete { .. }));
        mkdir_in(area.as_fd(), c"old")?;
        mkdir_in(area.as_fd(), c"records")?;
        let area = Area {
            old: fsops::open_dir(area.as_fd(), c"old")?,
            records: fsops::open_dir(area.as_fd(), c"records")?,
        };
        let mut records = Vec::new();
        let mut next = 0;
        for name in fsops::read_names(area.records.as_fd())? {
            let text = name.to_string_lossy();
            let (n, tag) = text.split_once('.').unwrap_or((&text, ""));
            next = next.max(n.parse().unwrap_or(0));
            let path = fsops::get_xattr(area.records.as_fd(), &name, PATH_XATTR)?;
            let meta = fsops::lstat(area.records.as_fd(), &name)?;
            match path {
                Some(path) => records.push(Record {
                    path,
                    new: tag == "new",
                    marker: Some((name, meta)),
                }),
                // Cut before it named its path: the change it preceded never
                // happened.
                None => fsops::unlink(area.records.as_fd(), &name, meta.kind == Kind::Dir)?,
            }
        }
        list_old(area.old.as_fd(), &mut Vec::new(), &mut records)?;
        Ok(Some(Found {
            saved,
            area,
            records,
            next,
        }))
    }
}

/// Every non-directory below `dir` (`old/` mirrors the tree: its
/// directories only hold the kept entries).
fn list_old(dir: BorrowedFd, prefix: &mut Vec<u8>, out: &mut Vec<Record>) -> io::Result<()> {
    for name in fsops::read_names(dir)? {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(name.to_bytes());
        if fsops::lstat(dir, &name)?.kind == Kind::Dir {
            let sub = fsops::open_dir(dir, &name)?;
            list_old(sub.as_fd(), prefix, out)?;
        } else {
            out.push(Record {
                path: prefix.clone(),
                marker: None,
                new: false,
            });
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// Puts the complete generation back where an interrupted run left `root`:
/// its paths that run created removed (and the temporaries it left), its
/// directories made again, its kept entries renamed back, its metadata set
/// back (directories deepest first, after everything in them), then the
/// marker says complete again and the area is removed. The state it rolled
/// back to; None when there is nothing to roll back to (no area, or the
/// marker is not in progress). A complete copy's leftover area is removed,
/// after undoing what it records when it was kept for that same copy (a run
/// cut between its first write, a temporary, and its in-progress marker).
pub fn roll_back(root: BorrowedFd) -> io::Result<Option<State>> {
    let now = state::read(root);
    let cut = match now {
        State::InProgress(_) => true,
        State::Complete { .. } => false,
        State::None => return Ok(None),
    };
    let Some(Found {
        saved,
        area,
        records,
        ..
    }) = Found::read(root)?
    else {
        return Ok(None);
    };
    let saved = match saved {
        Some(saved) if cut || saved == now => saved,
        // The area of a run that completed (cut before it removed it).
        _ if !cut => {
            remove_area(root)?;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let depth = |p: &[u8]| p.iter().filter(|&&b| b == b'/').count() + usize::from(!p.is_empty());
    let mut parents: Vec<&[u8]> = records.iter().filter_map(|r| parent_of(&r.path)).collect();
    parents.sort_unstable();
    parents.dedup();
    for p in parents {
        if let Ok((dir, name)) = open_at(root, p) {
            if let Ok(d) = fsops::open_dir(dir.as_fd(), &name) {
                remove_temps(d.as_fd())?;
            }
        }
    }
    let mut new: Vec<&Record> = records.iter().filter(|r| r.new).collect();
    new.sort_by_key(|r| std::cmp::Reverse(depth(&r.path)));
    for r in new {
        if let Ok((dir, name)) = open_at(root, &r.path) {
            remove_if_there(dir.as_fd(), &name)?;
        }
    }
    let mut metas: Vec<(&[u8], &CStr, &Meta)> = records
        .iter()
        .filter(|r| !r.new)
        .filter_map(|r| {
            r.marker
                .as_ref()
                .map(|(n, m)| (r.path.as_slice(), n.as_c_str(), m))
        })
        .collect();
    metas.sort_by_key(|(p, _, _)| depth(p));
    for (path, _, m) in &metas {
        if m.kind == Kind::Dir && !path.is_empty() {
            let make = || {
                let (dir, name) = open_at(root, path)?;
                match fsops::lstat(dir.as_fd(), &name) {
                    Ok(now) if now.kind == Kind::Dir => Ok(()),
                    Ok(_) => {
                        remove_if_there(dir.as_fd(), &name)?;
                        fsops::mkdir(dir.as_fd(), &name)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fsops::mkdir(dir.as_fd(), &name)
                    }
                    Err(e) => Err(e),
                }
            };
            make().map_err(|e| at("making again the directory", path, e))?;
        }
    }
    for r in records.iter().filter(|r| r.marker.is_none()) {
        let put_back = || {
            let (dir, name) = open_at(root, &r.path)?;
            if fsops::lstat(dir.as_fd(), &name).is_ok_and(|m| m.kind == Kind::Dir) {
                remove_if_there(dir.as_fd(), &name)?;
            }
            let (old_dir, old_name) = open_at(area.old.as_fd(), &r.path)?;
            fsops::rename_between(old_dir.as_fd(), &old_name, dir.as_fd(), &name)
        };
        put_back().map_err(|e| at("putting back", &r.path, e))?;
    }
    // Directories last, deepest first: setting anything below moves their mtime.
    metas.sort_by_key(|(p, _, m)| (m.kind == Kind::Dir, std::cmp::Reverse(depth(p))));
    for (path, marker, m) in metas {
        let set_back = || {
            let (dir, name) = open_at(root, path)?;
            let now = fsops::lstat(dir.as_fd(), &name)?;
            let mut want = fsops::read_xattrs(area.records.as_fd(), marker)?;
            want.0.retain(|(n, _)| n.as_c_str() != PATH_XATTR);
            apply_meta(
                dir.as_fd(),
                &name,
                &Meta {
                    kind: now.kind,
                    ..m.clone()
                },
                &want,
            )
        };
        set_back().map_err(|e| at("setting back the metadata of", path, e))?;
    }
    fsops::syncfs(root)?;
    state::write(root, &saved)?;
    remove_area(root)?;
    Ok(cut.then_some(saved))
}

/// An error naming the path it happened to.
fn at(op: &str, rel: &[u8], e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", super::display_rel(rel)))
}

/// Owner, xattrs, permissions, mtime, in the order that keeps each (as the
/// engine sets them).
fn apply_meta(dir: BorrowedFd, name: &CStr, m: &Meta, want: &Xattrs) -> io::Result<()> {
    fsops::chown(dir, name, m.uid, m.gid)?;
    let have = fsops::read_xattrs(dir, name)?;
    fsops::write_xattrs(dir, name, &have, want)?;
    fsops::chmod(dir, name, m.kind, m.perm)?;
    fsops::set_mtime(dir, name, m)
}

/// The directory holding `rel` and its name there; the root itself as ".".
fn open_at(root: BorrowedFd, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    if rel.is_empty() {
        return Ok((fsops::open_dir(root, c".")?, c".".to_owned()));
    }
    super::engine::open_parent(root, rel)
}

/// `rel`'s directory below `base`, made as needed, and its last component.
fn make_parents(base: BorrowedFd, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    let mut parts = rel.split(|&b| b == b'/');
    let last = parts.next_back().unwrap_or_default();
    let mut dir = fsops::open_dir(base, c".")?;
    for part in parts {
        let part = CString::new(part).map_err(io::Error::other)?;
        mkdir_in(dir.as_fd(), &part)?;
        dir = fsops::open_dir(dir.as_fd(), &part)?;
    }
    Ok((dir, CString::new(last).map_err(io::Error::other)?))
}

fn parent_of(rel: &[u8]) -> Option<&[u8]> {
    if rel.is_empty() {
        return None;
    }
    Some(
        rel.iter()
            .rposition(|&b| b == b'/')
            .map_or(&[][..], |i| &rel[..i]),
    )
}

fn remove_temps(dir: BorrowedFd) -> io::Result<()> {
    for name in fsops::read_names(dir)? {
        if fsops::is_temp(name.to_bytes()) {
            remove_if_there(dir, &name)?;
        }
    }
    Ok(())
}

/// Removes an entry and, for a directory, everything below it.
fn remove_if_there(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    let m = match fsops::lstat(dir, name) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if m.kind == Kind::Dir {
        let sub = fsops::open_dir(dir, name)?;
        for child in fsops::read_names(sub.as_fd())? {
            remove_if_there(sub.as_fd(), &child)?;
        }
    }
    fsops::unlink(dir, name, m.kind == Kind::Dir)
}

fn remove_area(root: BorrowedFd) -> io::Result<()> {
    let state_dir = fsops::open_dir(root, &c_state_dir())?;
    remove_if_there(state_dir.as_fd(), AREA)?;
    fsops::fsync(&state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Found by the power-cut campaign: a run cut while it copied left a
    /// temporary; the next run, resuming, deleted it and was cut too; the
    /// roll-back then put the temporary back into the complete copy, because
    /// the deletion had kept it like an entry of that generation.
    #[test]
    fn a_temporary_a_cut_run_left_is_never_rolled_back_into_the_copy() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (trusted xattrs)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ia-rollback-temp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::create_dir_all(dir.join(".init-agent")).unwrap();
        fs::write(dir.join("d/f"), "generation 1\n").unwrap();
        let root = fs::File::open(&dir).unwrap();
        let root = root.as_fd();
        let complete = State::Complete {
            generation: "g1".into(),
            verified: false,
        };
        state::write(root, &complete).unwrap();
        let temp = dir.join(format!(
            "d/{}5.0",
            String::from_utf8_lossy(fsops::TEMP_PREFIX)
        ));

        // The first run keeps d/f, writes its replacement's temporary, is cut.
        let j = Journal::open(root, &complete).unwrap().unwrap();
        j.keep(b"d/f", Change::Entry).unwrap();
        state::write(root, &State::InProgress(Some(1))).unwrap();
        fs::write(&temp, "half of generation 2").unwrap();
        drop(j);

        // The second run deletes the stray temporary, replaces d/f, is cut.
        let j = Journal::open(root, &State::InProgress(Some(1)))
            .unwrap()
            .unwrap();
        j.keep(
            temp.strip_prefix(&dir)
                .unwrap()
                .as_os_str()
                .as_encoded_bytes(),
            Change::Entry,
        )
        .unwrap();
        fs::remove_file(&temp).unwrap();
        fs::write(dir.join("d/f.new"), "generation 2\n").unwrap();
        fs::rename(dir.join("d/f.new"), dir.join("d/f")).unwrap();
        drop(j);

        assert_eq!(roll_back(root).unwrap(), Some(complete.clone()));
        let names: Vec<_> = fs::read_dir(dir.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
        assert_eq!(
            fs::read_to_string(dir.join("d/f")).unwrap(),
            "generation 1\n"
        );
        assert_eq!(state::read(root), complete);
        fs::remove_dir_all(&dir).unwrap();
    }
}
