//! Every write to the destination: an entry created or replaced (written under
//! a temporary name, renamed into place), its metadata set in place, a subtree
//! deleted. Each calls `begin_change` first, so that the state marker says
//! in-progress before the destination is touched.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use super::{at, join, lstat_opt, Change, Engine, Entry, Result};
use crate::source::tree::Source;
use crate::sync::meta::{Kind, Meta, Xattrs};
use crate::sync::rollback::Change as Kept;
use crate::sync::Counters;
use crate::sys::fsops;

/// Puts what `write` makes under a temporary name in `dst` in the place of
/// `e` with one rename: a crash leaves either the old or the new entry, plus
/// at most a temporary the next run removes. A write that fails (a signed
/// root's file refused) leaves the directory as it was, its mtime included.
pub(super) fn swap_in<D>(
    e: &Entry<D>,
    dst: BorrowedFd,
    write: impl FnOnce(&CStr) -> Result<()>,
) -> Result<()> {
    let tmp = fsops::temp_name();
    let dir_before = fsops::lstat(dst, c".").map_err(at("lstat", e.rel))?;
    let r = write(&tmp)
        .and_then(|()| fsops::rename(dst, &tmp, e.name).map_err(at("renaming into place", e.rel)));
    if r.is_err() {
        // Best effort: a leftover temporary is removed by the next run anyway.
        if fsops::unlink(dst, &tmp, false).is_ok() {
            let _ = fsops::set_mtime(dst, c".", &dir_before);
        }
    }
    r
}

impl<S: Source> Engine<'_, S> {
    /// Writes the new entry with all its metadata in the place of the old one.
    /// The marker says in-progress only once the new entry is written (and,
    /// for a signed root, verified): an entry refused then leaves a complete
    /// copy complete.
    pub(super) fn replace(&self, e: &Entry<S::Dir>, dst: BorrowedFd, sx: &Xattrs) -> Result<bool> {
        if !self.make_room(e, dst, "not replaced")? {
            return Ok(false);
        }
        self.keep(e.rel, Kept::Entry)?;
        swap_in(e, dst, |tmp| {
            self.write_temp(e, dst, tmp, sx)
                .and_then(|()| self.begin_change())
        })?;
        Ok(true)
    }

    /// A directory where a non-directory is to go is deleted first. False, and
    /// a note that the entry is `not_done`, when it holds protected entries.
    pub(super) fn make_room(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        not_done: &str,
    ) -> Result<bool> {
        if let Some(d) = e.d.filter(|d| d.kind == Kind::Dir) {
            if !self.remove(dst, e.name, e.rel, d)? {
                let what = format!("{not_done}: the directory holds protected entries");
                self.note(&what, e.rel);
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write_temp(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        tmp: &CStr,
        sx: &Xattrs,
    ) -> Result<()> {
        let (s, rel) = (e.s, e.rel);
        match s.kind {
            Kind::File => {
                if !self.take_staged(e, dst, tmp)? {
                    let to = fsops::create_temp_file(dst, tmp).map_err(at("creating", rel))?;
                    self.fetch(e, &to)?;
                }
            }
            Kind::Symlink => {
                let target = self.src_readlink(e)?;
                fsops::symlink(&target, dst, tmp).map_err(at("creating symlink", rel))?;
            }
            _ => fsops::mknod(dst, tmp, s).map_err(at("creating node", rel))?,
        }
        fsops::chown(dst, tmp, s.uid, s.gid).map_err(at("chown", rel))?;
        // A default ACL on the directory gives new entries an inherited ACL.
        let have = fsops::read_xattrs(dst, tmp).map_err(at("reading xattrs", rel))?;
        fsops::write_xattrs(dst, tmp, &have, sx).map_err(at("writing xattrs", rel))?;
        fsops::chmod(dst, tmp, s.kind, s.perm).map_err(at("chmod", rel))?;
        fsops::set_mtime(dst, tmp, s).map_err(at("setting mtime", rel))
    }

    /// Owner, xattrs (ACLs, capabilities), permissions, mtime, in the order that
    /// keeps each: chown clears setuid bits and capabilities, an ACL write
    /// changes group permission bits. `d` is the entry as it stands at the
    /// destination, `have` its xattrs.
    pub(super) fn apply_meta(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        d: &Meta,
        mut have: Xattrs,
        want: &Xattrs,
    ) -> Result<()> {
        let (name, rel, s) = (e.name, e.rel, e.s);
        self.keep(rel, Kept::Meta)?;
        self.begin_change()?;
        if s.uid != d.uid || s.gid != d.gid {
            fsops::chown(dst, name, s.uid, s.gid).map_err(at("chown", rel))?;
            have = fsops::read_xattrs(dst, name).map_err(at("reading xattrs", rel))?;
        }
        fsops::write_xattrs(dst, name, &have, want).map_err(at("writing xattrs", rel))?;
        fsops::chmod(dst, name, s.kind, s.perm).map_err(at("chmod", rel))?;
        fsops::set_mtime(dst, name, s).map_err(at("setting mtime", rel))
    }

    /// Deletes a destination entry and, for a directory, everything below it but
    /// protected and excluded entries (and what holds them). False when something
    /// was kept.
    pub(super) fn remove(
        &self,
        dst: BorrowedFd,
        name: &CStr,
        rel: &[u8],
        d: &Meta,
    ) -> Result<bool> {
        if d.kind == Kind::Dir {
            let dir = fsops::open_dir(dst, name).map_err(at("opening", rel))?;
            let mut kept = false;
            for child in fsops::read_names(dir.as_fd()).map_err(at("reading directory", rel))? {
                let crel = join(rel, &child);
                let Some(c) = lstat_opt(dir.as_fd(), &child, &crel)? else {
                    continue;
                };
                let is_dir = c.kind == Kind::Dir;
                let stale_temp = fsops::is_temp(child.to_bytes());
                if !stale_temp
                    && (self.protect.matches(&crel, is_dir) || self.exclude.matches(&crel, is_dir))
                {
                    Counters::add(&self.counters.protected, 1);
                    kept = true;
                    continue;
                }
                kept |= !self.remove(dir.as_fd(), &child, &crel, &c)?;
            }
            if kept {
                return Ok(false);
            }
        }
        self.change(Change::Delete, d.kind, rel);
        if !self.dry_run {
            self.keep(rel, Kept::Entry)?;
            self.begin_change()?;
            fsops::unlink(dst, name, d.kind == Kind::Dir).map_err(at("deleting", rel))?;
        }
        Ok(true)
    }
}
