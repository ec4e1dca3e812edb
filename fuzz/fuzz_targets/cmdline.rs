//! Arbitrary bytes as `/proc/cmdline` → `BootParams` → `BootPlan` (built-in
//! configuration) → the `explain` rendering. None of it may panic: PID 1 runs
//! exactly this path on whatever the boot loader handed the kernel.
#![no_main]

use init_agent::{cmdline, config::Config, explain, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = cmdline::parse_bytes(data);
    // Error messages are printed on the console during a boot.
    for e in &params.errors {
        let _ = e.to_string();
    }
    let plan = plan::boot(&params, &Config::default());
    let _ = explain::render(&plan, "built-in defaults");
});
