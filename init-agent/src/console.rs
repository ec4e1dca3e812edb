//! The agent's log: every line to the console (stderr, which is
//! /dev/console for PID 1 and the host initramfs's console for its hooks)
//! and to /dev/kmsg with its level; `rd.debug` lowers the threshold to debug.

use std::io::Write;
use std::sync::Mutex;

/// Console plus /dev/kmsg.
struct Logger {
    kmsg: Mutex<Option<std::fs::File>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!("init-agent: {}", r.args());
        let _ = writeln!(std::io::stderr(), "{line}");
        // kmsg priorities: 3 err, 4 warning, 6 info, 7 debug.
        let prio = match r.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            _ => 7,
        };
        if let Ok(mut k) = self.kmsg.lock() {
            if let Some(f) = k.as_mut() {
                let _ = writeln!(f, "<{prio}>{line}");
            }
        }
    }

    fn flush(&self) {}
}

pub fn init_logger(debug: bool) {
    let kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .ok();
    install(
        kmsg,
        if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        },
    );
}

/// The command line tools' log: stderr only (their runs are not boots).
pub fn init_cli_logger(level: log::LevelFilter) {
    install(None, level);
}

fn install(kmsg: Option<std::fs::File>, level: log::LevelFilter) {
    let logger = Box::leak(Box::new(Logger {
        kmsg: Mutex::new(kmsg),
    }));
    // A second init (retry) keeps the first logger.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}
