//! `init-agent explain` and `init-agent check-config`: the plan and the
//! configuration, shown to a human or a program. The plan comes from the
//! same [`super::prepare`] the boot runs; a DHCP answer given with `--dhcp`
//! is resolved by the same function the boot resolves the real one with.

use std::fmt::Write as _;

use anyhow::Context;

use super::plan::{self, BootPlan, DhcpAnswer, Packaging, SourceTarget, Target, NEW_ROOT};
use super::run::{self, Facts};
use crate::cli::{CheckConfig, Explain};
use crate::cmdline;
use crate::config::{self, LoadError};
use crate::sys::record::Recording;

/// `--dhcp KEY=VALUE` flags → the answer they describe.
pub fn parse_dhcp(flags: &[String]) -> anyhow::Result<Option<DhcpAnswer>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut a = DhcpAnswer::default();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--dhcp {f}: expected KEY=VALUE"))?;
        let addr = || {
            v.parse()
                .with_context(|| format!("--dhcp {k}: `{v}` is not an IPv4 address"))
        };
        match k {
            "root-path" => a.root_path = Some(v.to_string()),
            "next-server" => a.next_server = Some(addr()?),
            "server-id" => a.server_id = Some(addr()?),
            "hostname" => {
                a.hostname = Some(
                    crate::source::spec::parse_hostname(v)
                        .map_err(|e| anyhow::anyhow!("--dhcp hostname: {e}"))?,
                )
            }
            // Repeatable, as the options carry lists.
            "dns" => a.dns.push(addr()?),
            "search" => a.search.push(
                crate::source::spec::parse_hostname(v)
                    .map_err(|e| anyhow::anyhow!("--dhcp search: {e}"))?,
            ),
            _ => anyhow::bail!(
                "--dhcp {k}: unknown (root-path, next-server, server-id, hostname, dns, search)"
            ),
        }
    }
    Ok(Some(a))
}

/// What the assumed DHCP answer makes of the plan: the boot's own executor
/// runs the plan's steps against the recording `Sys` with that answer (a dry
/// run: nothing is called on the machine), so any value the boot would
/// refuse is refused here, in its words. Returns the standard root the
/// answer gives, for display.
pub fn assume(p: &mut BootPlan, dhcp: &DhcpAnswer) -> Option<SourceTarget> {
    let host = p.node.clone().or_else(|| dhcp.hostname.clone());
    let target = plan::resolve_source(&p.source, dhcp, host.as_deref()).ok();
    if !p.errors.is_empty() {
        // The boot would stop on these before any step.
        return target;
    }
    // Under dracut the host mounted what root= (or the root-path) names, and
    // mountinfo shows it as `server:path`.
    let mounted = match &target {
        Some(t) => format!("{}:{}", t.servers[0], t.export.path),
        None => format!(
            "{}:{}",
            plan::servers_text(&p.source),
            p.source.path.as_deref().unwrap_or("/")
        ),
    };
    let mut dry = Recording {
        dhcp: dhcp.clone(),
        host_mount: Some((mounted, true)),
        ..Recording::default()
    };
    match run::run(p, &p.steps, &mut dry, &mut Facts::default()) {
        Ok(())
        | Err(run::BootError::Sys {
            step: "switch_root",
            ..
        }) => {}
        Err(e) => p.errors.push(e.to_string()),
    }
    target
}

/// The row the DHCP host name names when no row was matched before DHCP:
/// the boot names the node after it, but does not take that row.
fn unused_row(p: &BootPlan, c: &config::Config, dhcp: &DhcpAnswer) -> Option<String> {
    if p.node_row.is_some() || p.node.is_some() {
        return None;
    }
    let host = dhcp.hostname.as_deref()?;
    let (i, _) = c.node_by_name(host)?;
    Some(format!(
        "the DHCP host name {host} names [[node]] row {}, which this boot does not use (its mode, image, groups and attributes are chosen before DHCP answers): give BOOTIF= or NODE={host}",
        i + 1
    ))
}

/// Prints the plan; `Ok(false)` when it has errors.
pub fn run(args: &Explain) -> anyhow::Result<bool> {
    let raw = match &args.cmdline {
        Some(c) => c.clone().into_bytes(),
        None => super::read_cmdline().context("reading /proc/cmdline")?,
    };
    let dhcp = parse_dhcp(&args.dhcp)?;
    let target = Target {
        packaging: args.packaging,
        root: args.root.as_deref().unwrap_or(NEW_ROOT),
    };
    let prepared = super::prepare(&raw, args.config.as_deref(), target);
    let mut cluster_line = None;
    let mut plan = match (&args.config_root, &prepared.plan.cluster) {
        (Some(dir), Some(path)) => {
            let file = dir.join(path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(text) => {
                    match super::replan(&prepared.params, &prepared.config, target, &text) {
                        Ok(p) => {
                            cluster_line =
                                Some(format!("{} (merged over the initramfs's)", file.display()));
                            p
                        }
                        Err(why) => {
                            let mut p = prepared.plan.clone();
                            p.errors.push(format!(
                            "cluster configuration {}:{why}: the boot goes on with the initramfs's configuration",
                            file.display()
                        ));
                            p
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    cluster_line = Some(format!(
                        "none at {}: the initramfs's configuration",
                        file.display()
                    ));
                    prepared.plan.clone()
                }
                Err(e) => anyhow::bail!("reading {}: {e}", file.display()),
            }
        }
        _ => prepared.plan.clone(),
    };
    plan.errors.splice(0..0, prepared.config_errors.clone());
    let resolved = dhcp.as_ref().and_then(|d| assume(&mut plan, d));
    if let Some(note) = dhcp
        .as_ref()
        .and_then(|d| unused_row(&plan, &prepared.config, d))
    {
        plan.notes.push(note);
    }
    if args.json {
        let mut v = serde_json::to_value(&plan)?;
        if let Some(obj) = v.as_object_mut() {
            if let Some(t) = &resolved {
                obj.insert("resolved_source".into(), serde_json::to_value(t)?);
            }
            if let Some(c) = &cluster_line {
                obj.insert("cluster_file".into(), c.clone().into());
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let source = prepared.config_path.map_or_else(
            || "built-in defaults".to_string(),
            |p| p.display().to_string(),
        );
        if let Some(c) = &cluster_line {
            println!("cluster:   {c}");
        }
        print!("{}", render(&plan, &source, resolved.as_ref()));
    }
    Ok(plan.errors.is_empty())
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// The plan as text for a console.
pub fn render(p: &BootPlan, config_source: &str, resolved: Option<&SourceTarget>) -> String {
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
    let version = match (s.client, s.version) {
        (cmdline::NfsClient::User, _) => "v3".to_string(),
        (_, Some(v)) => format!("v{v}"),
        (_, None) => format!("v{} (default)", crate::source::mount::DEFAULT_VERSION),
    };
    let servers = plan::servers_text(s);
    let statemnt = p.statemnt.as_ref().map_or_else(
        || "-".to_string(),
        |l| {
            format!(
                "{}:{} ({})",
                l.server
                    .as_ref()
                    .map_or_else(|| "(root's server)".to_string(), ToString::to_string),
                l.path,
                l.options.join(",")
            )
        },
    );
    // Writing into a String cannot fail.
    let _ = writeln!(out, "config:    {config_source}");
    let _ = writeln!(
        out,
        "packaging: {}",
        serde_json::to_value(p.packaging)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "mode:      {} (from {})", p.mode, p.mode_from);
    let _ = writeln!(
        out,
        "node:      {} (node id {})",
        or_dash(&p.node),
        or_dash(&p.nodeid)
    );
    let _ = writeln!(
        out,
        "node row:  {}",
        p.node_row.as_ref().map_or_else(
            || "none of the [[node]] rows".to_string(),
            |r| format!(
                "[[node]] row {}{}, matched by {}",
                r.row,
                r.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                r.by
            )
        )
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
    let at = match (s.client, p.packaging) {
        (cmdline::NfsClient::Kernel, _) => format!("on {}", s.mountpoint),
        (cmdline::NfsClient::User, Packaging::Dracut) => format!(
            "mounted by dracut, moved to {}, read by the userspace NFSv3 client",
            s.mountpoint
        ),
        (cmdline::NfsClient::User, _) => "read by the userspace NFSv3 client, not mounted".into(),
    };
    let _ = writeln!(
        out,
        "source:    NFS {version} {servers} path {} [{}] {at}",
        s.path.as_deref().unwrap_or("(DHCP root-path)"),
        s.options.join(","),
    );
    if let Some(t) = resolved {
        let _ = writeln!(
            out,
            "  with the DHCP answer: {} path {} [{}]",
            t.servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            t.export.path,
            t.export.options.join(",")
        );
    }
    let _ = writeln!(out, "statemnt:  {statemnt}");
    for st in &p.steps {
        if let plan::Step::Resolve { names } = st {
            for n in names {
                let _ = writeln!(out, "name:      {} ({})", n.name, n.how);
            }
        }
    }
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
    let _ = writeln!(
        out,
        "report:    stage timings on the console and in {}{}",
        super::report::RUN_REPORT,
        if p.mode == cmdline::Mode::Sync {
            format!(" and /{} on the node's disk", super::report::DISK_REPORT)
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "steps:");
    for (i, st) in p.steps.iter().enumerate() {
        let _ = writeln!(out, "  {:2}. {st}", i + 1);
    }
    if !p.local.is_empty() {
        let _ = writeln!(out, "fallback local (master unreachable, sync failed):");
        for (i, st) in p.local.iter().enumerate() {
            let _ = writeln!(out, "  {:2}. {st}", i + 1);
        }
    }
    for note in &p.notes {
        let _ = writeln!(out, "note:      {note}");
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
