//! The `init-agent` binary: parse arguments, dispatch to the library.

use std::process::ExitCode;

use init_agent::cli::{Cli, Command};

fn main() -> ExitCode {
    // As the initramfs's /init the kernel starts us as PID 1 with no arguments.
    if rustix::process::getpid().is_init() {
        init_agent::boot::pid1::run();
    }
    init_agent::sys::die_of_sigpipe();
    let cli: Cli = argh::from_env();
    let result = match cli.command {
        Command::Explain(a) => init_agent::boot::explain::run(&a),
        Command::CheckConfig(a) => init_agent::boot::explain::check_config(&a),
        Command::Sync(a) => init_agent::sync::command::run(&a),
        Command::Manifest(a) => init_agent::sync::command::manifest(&a),
        Command::Keygen(a) => init_agent::sync::command::keygen(&a),
        Command::Verify(a) => init_agent::sync::command::verify(&a),
        Command::Rollback(a) => init_agent::sync::command::rollback(&a),
        Command::Capture(a) => init_agent::sync::command::capture(&a),
        Command::Statelite(a) => init_agent::modes::statelite::command::run(&a),
        Command::Cdsl(a) => init_agent::modes::cdsl::command(&a),
        Command::Mkinitramfs(a) => init_agent::initramfs::run(&a),
        Command::Hosted(a) => Ok(init_agent::boot::hosted::run(&a)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("init-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}
