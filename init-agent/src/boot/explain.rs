//! `init-agent explain` and `init-agent check-config`: the plan and the
//! configuration, shown to a human or a program.

use std::fmt::Write as _;

use anyhow::Context;

use crate::boot::plan::{self, BootPlan};
use crate::cli::{CheckConfig, Explain};
use crate::cmdline;
use crate::config::{self, LoadError};

/// Prints the plan; `Ok(false)` when it has errors.
pub fn run(args: &Explain) -> anyhow::Result<bool> {
    let params = match &args.cmdline {
        Some(c) => cmdline::parse(c),
        None => {
            cmdline::parse_bytes(&std::fs::read("/proc/cmdline").context("reading /proc/cmdline")?)
        }
    };
    let loaded = config::load_for_boot(args.config.as_deref(), params.agent.config.as_deref());
    let mut plan = plan::boot(&params, &loaded.config);
    plan.errors.splice(0..0, loaded.errors);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        let source = loaded.path.map_or_else(
            || "built-in defaults".to_string(),
            |p| p.display().to_string(),
        );
        print!("{}", render(&plan, &source));
    }
    Ok(plan.errors.is_empty())
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// The plan as text for a console.
pub fn render(p: &BootPlan, config_source: &str) -> String {
    let mut out = String::new();
    let n = &p.net;
    let net = match n.method {
        cmdline::NetMethod::Static => format!(
            "static {}/{} gw {}",
            or_dash(&n.address),
            or_dash(&n.prefix),
            or_dash(&n.gateway)
        ),
        m => format!("{m:?}").to_lowercase(),
    };
    let s = &p.source;
    let version = s
        .version
        .map_or_else(|| "negotiated".to_string(), |v| format!("v{v}"));
    let servers = if s.servers.is_empty() {
        "(DHCP next-server)".to_string()
    } else {
        s.servers.join(", ")
    };
    let statemnt = p.statemnt.as_ref().map_or_else(
        || "-".to_string(),
        |l| {
            format!(
                "{}:{} ({})",
                l.server.as_deref().unwrap_or("(root's server)"),
                l.path,
                p.statemnt_options.join(",")
            )
        },
    );
    // Writing into a String cannot fail.
    let _ = writeln!(out, "config:    {config_source}");
    let _ = writeln!(out, "mode:      {}", p.mode);
    let _ = writeln!(
        out,
        "node:      {} (node id {})",
        or_dash(&p.node),
        or_dash(&p.nodeid)
    );
    let _ = writeln!(
        out,
        "network:   {net} on {} (device {})",
        n.mac.map_or_else(
            || "first interface with carrier".to_string(),
            |m| m.to_string()
        ),
        n.device.as_deref().unwrap_or("auto")
    );
    let at = match s.client {
        cmdline::NfsClient::Kernel => format!("on {}", s.mountpoint),
        cmdline::NfsClient::User => "read by the userspace NFSv3 client, not mounted".into(),
    };
    let _ = writeln!(
        out,
        "source:    NFS {version} {servers} path {} [{}] {at}",
        s.path.as_deref().unwrap_or("(DHCP root-path)"),
        s.options.join(","),
    );
    let _ = writeln!(out, "statemnt:  {statemnt}");
    for d in &p.disks {
        let parts: Vec<String> = d
            .partition
            .iter()
            .map(|pt| {
                format!(
                    "{} {} {}{}",
                    pt.name,
                    pt.size,
                    format!("{:?}", pt.fs).to_lowercase(),
                    pt.mount
                        .as_deref()
                        .map(|m| format!(" on {m}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "disk:      {} {}{} [{}]",
            d.device,
            format!("{:?}", d.table).to_lowercase(),
            if d.wipe { " wipe" } else { "" },
            parts.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "on error:  {} after {} s{}",
        p.fallback,
        p.timeout,
        if p.shell { " (rd.shell)" } else { "" }
    );
    let _ = writeln!(out, "init:      {} {}", p.init, p.init_args.join(" "));
    let _ = writeln!(out, "steps:");
    for (i, st) in p.steps.iter().enumerate() {
        let _ = writeln!(out, "  {:2}. {st}", i + 1);
    }
    if !p.errors.is_empty() {
        let _ = writeln!(out, "errors:");
        for e in &p.errors {
            let _ = writeln!(out, "  - {e}");
        }
    }
    out
}

/// Checks each file; `Ok(false)` when any has an error.
pub fn check_config(args: &CheckConfig) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !args.files.is_empty(),
        "check-config: name at least one file"
    );
    let mut all_ok = true;
    for f in &args.files {
        match config::load_file(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(LoadError::Invalid { path, errors }) => {
                all_ok = false;
                for e in errors {
                    println!("{path}:{e}");
                }
            }
            Err(e) => {
                all_ok = false;
                println!("{e}");
            }
        }
    }
    Ok(all_ok)
}
