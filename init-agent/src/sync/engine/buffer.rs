//! One copy buffer per worker thread, for copying and comparing file contents:
//! allocated once per thread and grown as needed, not once per file.

use std::cell::RefCell;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `f` with this thread's copy buffer. The buffer is taken out for the call,
/// not borrowed: a worker that picks up other work while it waits (rayon
/// does) finds an empty buffer, never a borrowed one.
pub(super) fn with_buf<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = BUF.with(RefCell::take);
    let r = f(&mut buf);
    BUF.with(|b| b.replace(buf));
    r
}
