//! The generation marker `DST/.init-agent/state`: `in-progress <seconds>` from
//! the first change of a sync (when, by the realtime clock) until everything it
//! wrote is on disk, then `complete <generation>` (`complete <generation>
//! verified` when every file was checked against a signed manifest). A node never boots a copy
//! whose marker is not complete, and the run after an interrupted one knows
//! which files the interrupted run may have left with unwritten data: those
//! changed (ctime) since that time.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{Mode, OFlags};

use super::{fsops, STATE_DIR};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    None,
    /// Since when, in seconds of the realtime clock; None when unknown (a
    /// torn marker): then any file may be suspect.
    InProgress(Option<i64>),
    Complete {
        generation: String,
        verified: bool,
    },
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::None => write!(f, "none"),
            State::InProgress(Some(t)) => write!(f, "in-progress {t}"),
            State::InProgress(None) => write!(f, "in-progress"),
            State::Complete {
                generation,
                verified: false,
            } => write!(f, "complete {generation}"),
            State::Complete {
                generation,
                verified: true,
            } => write!(f, "complete {generation} verified"),
        }
    }
}

impl State {
    pub fn parse(text: &str) -> State {
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("complete"), Some(g), None, None) => State::Complete {
                generation: g.to_string(),
                verified: false,
            },
            (Some("complete"), Some(g), Some("verified"), None) => State::Complete {
                generation: g.to_string(),
                verified: true,
            },
            (Some("in-progress"), Some(t), None, None) => State::InProgress(t.parse().ok()),
            // Anything else, a torn write included, means "not known complete".
            _ => State::InProgress(None),
        }
    }
}

/// Reads the marker of the tree open at `root`.
pub fn read(root: BorrowedFd) -> State {
    read_text(root, c"state").map_or(State::None, |t| State::parse(&t))
}

/// The highest serial of a signed manifest this disk held a complete verified
/// copy of: the floor below which a manifest is a rollback. Kept apart from
/// the marker, which says in-progress during a sync, so that an interrupted
/// sync cannot lower it.
pub fn read_serial(root: BorrowedFd) -> Option<u64> {
    read_text(root, c"serial")?.trim().parse().ok()
}

fn read_text(root: BorrowedFd, name: &std::ffi::CStr) -> Option<String> {
    let dir = fsops::open_dir(root, &c_state_dir()).ok()?;
    read_text_in(dir.as_fd(), name)
}

/// A marker kept in another directory (the rollback area's copy).
pub fn read_in(dir: BorrowedFd) -> Option<State> {
    read_text_in(dir, c"state").map(|t| State::parse(&t))
}

fn read_text_in(dir: BorrowedFd, name: &std::ffi::CStr) -> Option<String> {
    let fd = fsops::open_file(dir, name).ok()?;
    let mut text = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = rustix::io::read(&fd, &mut buf) {
        if n == 0 || text.len() > 4096 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// The state directory's name, for the *at calls.
pub fn c_state_dir() -> std::ffi::CString {
    // A constant without NUL.
    std::ffi::CString::new(STATE_DIR).unwrap_or_default()
}

/// Writes the marker durably: temporary, fsync, rename, fsync of the directory.
pub fn write(root: BorrowedFd, state: &State) -> io::Result<()> {
    write_text(root, c"state", &format!("{state}\n"))
}

/// Writes the rollback floor (see `read_serial`), as durably as the marker.
pub fn write_serial(root: BorrowedFd, serial: u64) -> io::Result<()> {
    write_text(root, c"serial", &format!("{serial}\n"))
}

fn write_text(root: BorrowedFd, name: &std::ffi::CStr, text: &str) -> io::Result<()> {
    let dir_name = c_state_dir();
    fsops::mkdir_in(root, &dir_name)?;
    let dir = fsops::open_dir(root, &dir_name)?;
    write_text_in(dir.as_fd(), name, text)?;
    fsops::fsync(root)
}

/// Writes a marker into another directory (the rollback area's copy), as
/// durably as the marker itself.
pub fn write_in(dir: BorrowedFd, state: &State) -> io::Result<()> {
    write_text_in(dir, c"state", &format!("{state}\n"))
}

fn write_text_in(dir: BorrowedFd, name: &std::ffi::CStr, text: &str) -> io::Result<()> {
    // A fixed temporary name (NAME.tmp), truncated: the state directory is
    // excluded from the sync, so a unique temporary left by a crash here would
    // never be cleaned.
    let tmp =
        std::ffi::CString::new([name.to_bytes(), b".tmp"].concat()).map_err(io::Error::other)?;
    let fd = rustix::fs::openat(
        dir,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let n = rustix::io::write(&fd, text.as_bytes())?;
    if n != text.len() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    fsops::fsync(&fd)?;
    fsops::rename(dir, &tmp, name)?;
    fsops::fsync(dir)
}
