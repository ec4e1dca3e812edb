//! Passes 2 and 3. Pass 1 puts hardlink group members aside, since a group's
//! names may sit in any directories and are all known only once the walk is
//! done; pass 2 then makes each group one inode at the destination. Linking
//! moves the mtimes of the directories it writes in, so pass 3 sets those
//! back to the source's.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::apply::swap_in;
use super::{
    at, base_name, lstat_opt, open_parent, parent_of, Change, Engine, Entry, Result, SrcAt,
};
use crate::source::tree::{self as source, Source};
use crate::sync::meta::{Kind, Meta};
use crate::sync::rollback::Change as Kept;
use crate::sync::{display_rel, Counters, SyncError};
use crate::sys::fsops;

pub(super) struct LinkMember {
    dev: u64,
    ino: u64,
    rel: Vec<u8>,
    idx: Option<usize>,
}

impl<S: Source> Engine<'_, S> {
    /// Pass 1 meets a member of a hardlink group (`idx`: its manifest index).
    pub(super) fn defer_link(&self, s: &Meta, rel: Vec<u8>, idx: Option<usize>) -> Result<()> {
        let member = LinkMember {
            dev: s.dev,
            ino: s.ino,
            rel,
            idx,
        };
        self.links
            .lock()
            .map_err(|_| SyncError::Aborted)?
            .push(member);
        Ok(())
    }

    /// Pass 2: every hardlink group of the source becomes one inode at the
    /// destination. The first name (bytewise) is synced like a file; the others
    /// are linked to it (link to a temporary, rename over). Returns the
    /// directories whose mtime the pass disturbed.
    pub(super) fn sync_links(&self) -> Result<Vec<Vec<u8>>> {
        let dst = self.dst_root;
        let mut members = std::mem::take(&mut *self.links.lock().map_err(|_| SyncError::Aborted)?);
        members.sort_unstable_by(|a, b| (a.dev, a.ino, &a.rel).cmp(&(b.dev, b.ino, &b.rel)));
        let mut touched = Vec::new();
        for group in members.chunk_by(|a, b| (a.dev, a.ino) == (b.dev, b.ino)) {
            let mut leader: Option<&[u8]> = None;
            for m in group {
                let rel = m.rel.as_slice();
                let name = base_name(rel)?;
                // With a manifest, the source is opened only for file contents.
                let sp;
                let s_at = match m.idx {
                    Some(i) => SrcAt::Listed(i),
                    None => {
                        sp = source::open_parent(self.src, self.src_root, rel)
                            .map_err(at("opening", rel))?
                            .0;
                        SrcAt::Tree(&sp)
                    }
                };
                let Some(s) = self.src_meta(s_at, &name, m.idx, rel)? else {
                    continue;
                };
                let dp = match open_parent(dst, rel) {
                    Ok((dp, _)) => Some(dp),
                    Err(_) if self.dry_run => None,
                    Err(e) => return Err(at("opening", rel)(e)),
                };
                let d = match &dp {
                    Some(dp) => lstat_opt(dp.as_fd(), &name, rel)?,
                    None => None,
                };
                if d.as_ref()
                    .is_some_and(|d| self.protect.matches(rel, d.kind == Kind::Dir))
                {
                    Counters::add(&self.counters.protected, 1);
                    continue;
                }
                let e = Entry {
                    rel,
                    name: &name,
                    src: s_at,
                    s: &s,
                    d: d.as_ref(),
                };
                let dfd = dp.as_ref().map(|f| f.as_fd());
                let Some(lrel) = leader else {
                    if self.sync_nondir(&e, dfd, true)? {
                        touched.push(parent_of(rel));
                    }
                    leader = Some(rel);
                    continue;
                };
                if self.link_member(&e, dfd, lrel)? {
                    touched.push(parent_of(rel));
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    /// Links `e` to the group's `leader`, in `dp`, its directory at the
    /// destination (None in a dry run where that is only planned).
    fn link_member(
        &self,
        e: &Entry<S::Dir>,
        dp: Option<BorrowedFd>,
        leader: &[u8],
    ) -> Result<bool> {
        let lead = open_parent(self.dst_root, leader).and_then(|(lp, lname)| {
            let m = fsops::lstat(lp.as_fd(), &lname)?;
            Ok((lp, lname, m))
        });
        let (Some(dp), Ok((lp, lname, lm))) = (dp, lead) else {
            if self.dry_run {
                // The leader or this directory is only planned, not there yet.
                self.change(Change::write(e.d.is_some()), e.s.kind, e.rel);
                return match dp {
                    Some(dp) => self.make_room(e, dp, "not linked"),
                    None => Ok(true),
                };
            }
            return Err(SyncError::Setup(format!(
                "hardlink leader {} vanished",
                display_rel(leader)
            )));
        };
        if e.d.is_some_and(|d| d.dev == lm.dev && d.ino == lm.ino) {
            Counters::add(&self.counters.unchanged, 1);
            return Ok(false);
        }
        self.change(Change::write(e.d.is_some()), e.s.kind, e.rel);
        // A dry run lists the deletions a directory in the way takes, and stops.
        let room = self.make_room(e, dp, "not linked")?;
        if !room || self.dry_run {
            return Ok(room);
        }
        self.keep(e.rel, Kept::Entry)?;
        self.begin_change()?;
        swap_in(e, dp, |tmp| {
            fsops::link(lp.as_fd(), &lname, dp, tmp).map_err(at("linking", e.rel))
        })?;
        Ok(true)
    }

    /// Pass 3: directory mtimes the link pass disturbed, back to the source's.
    pub fn restore_dir_mtimes(&self, dirs: &[Vec<u8>]) -> Result<()> {
        let dst = self.dst_root;
        if self.dry_run || dirs.is_empty() {
            return Ok(());
        }
        self.begin_change()?;
        for rel in dirs {
            let s = match self.manifest {
                Some(m) => {
                    let i = m.find(rel).ok_or(SyncError::Aborted)?;
                    self.listed(i)?.meta.clone()
                }
                None if rel.is_empty() => self
                    .src
                    .lstat(self.src_root, c".")
                    .map_err(at("lstat", rel))?,
                None => {
                    let (sp, name) = source::open_parent(self.src, self.src_root, rel)
                        .map_err(at("opening", rel))?;
                    self.src.lstat(&sp, &name).map_err(at("lstat", rel))?
                }
            };
            self.keep(rel, Kept::Meta)?;
            let dfd = open_dir_path(dst, rel).map_err(at("opening", rel))?;
            fsops::set_mtime(dfd.as_fd(), c".", &s).map_err(at("setting mtime", rel))?;
        }
        Ok(())
    }
}

fn open_dir_path(root: BorrowedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    if rel.is_empty() {
        return fsops::open_dir(root, c".");
    }
    let (parent, name) = open_parent(root, rel)?;
    fsops::open_dir(parent.as_fd(), &name)
}
