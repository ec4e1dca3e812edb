//! Arbitrary UTF-8 text as `init-agent.toml` → `Config` (every error with its line
//! and column) → `BootPlan` with an empty kernel command line → the `explain`
//! rendering. None of it may panic: `check-config` and PID 1 both run it.
#![no_main]

use init_agent::boot::{explain, plan};
use init_agent::{cmdline, config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(config) => {
            let plan = plan::boot(
                &cmdline::BootParams::default(),
                &config,
                plan::Target::default(),
            );
            let _ = explain::render(&plan, "fuzz.toml", None);
        }
        Err(errors) => {
            for e in &errors {
                let _ = e.to_string();
            }
        }
    }
});
