//! Arbitrary bytes as `/proc/cmdline` → `BootParams` → `BootPlan` (built-in
//! configuration) → the `explain` rendering, and the last word of the bytes
//! as a DHCP root-path through `explain --dhcp`'s dry run of the executor.
//! None of it may panic: PID 1 runs exactly this path on whatever the boot
//! loader and the DHCP server handed it.
#![no_main]

use init_agent::boot::{explain, plan};
use init_agent::{cmdline, config::Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = cmdline::parse_bytes(data);
    // Error messages are printed on the console during a boot.
    for e in &params.errors {
        let _ = e.to_string();
    }
    let mut plan = plan::boot(&params, &Config::default(), plan::Target::default());
    let text = String::from_utf8_lossy(data);
    let answer = plan::DhcpAnswer {
        root_path: text.split_whitespace().last().map(String::from),
        ..plan::DhcpAnswer::default()
    };
    let resolved = explain::assume(&mut plan, &answer);
    let _ = explain::render(&plan, "built-in defaults", resolved.as_ref());
});
