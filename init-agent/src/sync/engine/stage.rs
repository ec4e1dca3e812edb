//! A signed root's contents are fetched and verified before the copy is
//! touched: a dry run lists the manifest entries whose contents the sync
//! will write, each is fetched into `DST/.init-agent/staging/<index>` and
//! checked against the signed hash, and only when every one passed does the
//! real run begin, moving staged files into place instead of fetching them.
//! A refusal (a swapped file, a served setuid bit) thus leaves the last
//! verified copy complete and bootable, however many other files changed.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::buffer::with_buf;
use super::{at, Engine, Entry, Result, SrcAt};
use crate::source::tree::Source;
use crate::sync::{display_rel, Counters, SyncError};
use crate::sys::fsops;

/// The staging directory's name below the state directory.
pub const STAGING: &std::ffi::CStr = c"staging";

fn staged_name(i: usize) -> CString {
    // Decimal digits: no NUL.
    CString::new(i.to_string()).unwrap_or_default()
}

impl<S: Source> Engine<'_, S> {
    /// Dry run: the manifest entry `i` is a file whose contents a real run
    /// would write.
    pub(super) fn want_contents(&self, e: &Entry<S::Dir>) {
        if let (Some(list), SrcAt::Listed(i)) = (self.wanted, e.src) {
            list.lock().unwrap_or_else(|p| p.into_inner()).push(i);
        }
    }

    /// Fetches manifest entry `i` into the staging directory, verified.
    pub fn stage(&self, i: usize, staging: BorrowedFd) -> Result<()> {
        let entry = self.listed(i)?;
        let name = staged_name(i);
        let e = Entry {
            rel: &entry.rel,
            name: &name,
            src: SrcAt::Listed(i),
            s: &entry.meta,
            d: None,
        };
        let to = fsops::create_temp_file(staging, &name).map_err(at("creating", e.rel))?;
        self.fetch(&e, &to)
    }

    /// The source file's contents into `to`, counted, and for a signed root
    /// hashed on the way and checked against the manifest.
    pub(super) fn fetch(&self, e: &Entry<S::Dir>, to: &OwnedFd) -> Result<()> {
        let from = self.src_open_file(e)?;
        let copied = with_buf(|buf| self.src.copy_to(&from, e.s, to, buf, self.verify))
            .map_err(at("copying", e.rel))?;
        Counters::add(&self.counters.bytes, copied.bytes);
        if !self.verify {
            return Ok(());
        }
        let refused = match e.src {
            SrcAt::Tree(_) => "not in the signed manifest",
            SrcAt::Listed(i) => match self.listed(i)?.hash {
                None => "the signed manifest holds no hash for it",
                Some(h) if copied.digest == Some(h) => return Ok(()),
                Some(_) => "the contents served differ from the signed manifest",
            },
        };
        Err(SyncError::Untrusted(format!(
            "{}: {refused}",
            display_rel(e.rel)
        )))
    }

    /// Moves the staged contents of `e` to `tmp` in `dst`; false when none
    /// was staged (then it is fetched as usual).
    pub(super) fn take_staged(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        tmp: &std::ffi::CStr,
    ) -> Result<bool> {
        let (Some(staging), SrcAt::Listed(i)) = (self.staged, e.src) else {
            return Ok(false);
        };
        match rustix::fs::renameat(staging, staged_name(i).as_c_str(), dst, tmp) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(err) => Err(at("moving the staged file", e.rel)(err.into())),
        }
    }
}

/// Opens DST/.init-agent/staging, emptied of what an earlier run left.
pub fn open_staging(droot: BorrowedFd) -> std::io::Result<OwnedFd> {
    let state = crate::sync::state::c_state_dir();
    fsops::mkdir_in(droot, &state)?;
    let state_fd = fsops::open_dir(droot, &state)?;
    fsops::mkdir_in(state_fd.as_fd(), STAGING)?;
    let staging = fsops::open_dir(state_fd.as_fd(), STAGING)?;
    clear(staging.as_fd())?;
    Ok(staging)
}

/// Removes the staging directory's files (what a refused run staged, or a
/// run that was cut).
pub fn clear(staging: BorrowedFd) -> std::io::Result<()> {
    for name in fsops::read_names(staging)? {
        fsops::unlink(staging, &name, false)?;
    }
    Ok(())
}
