//! The executor: runs `plan.steps`, in order, through [`Sys`]. Each step
//! takes its values from the step itself; what the boot learns on the way
//! (the DHCP answer, the server that answered and the client that reached
//! it, what the sync did) is kept in [`Facts`] for the steps after it,
//! never written back into the plan. PID 1, the dracut / initramfs-tools
//! driver and the `local` fallback all run through here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::plan::{self, BootPlan, DhcpAnswer, SourcePlan, SourceTarget, Step};
use super::report::{BootReport, SyncFigures};
use crate::cmdline::{BreakStage, NfsClient};
use crate::config;
use crate::modes::disk::Found;
use crate::modes::statelite::plan::{trees as plan_trees, Entry, Inputs, Mountable, Variables};
use crate::source::mount::nfs_mount;
use crate::source::nfs::Endpoint;
use crate::source::spec::{Host, NfsExport};
use crate::sync::state::State;
use crate::sync::{Options, SyncSource};
use crate::sys::{Sys, SysError};

/// What the boot has learned so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// What DHCP said (PID 1's own exchange, or the host initramfs's).
    pub dhcp: DhcpAnswer,
    /// The standard root as reached.
    pub source: Option<Reached>,
    /// Sync mode: what the copy did.
    pub synced: Option<Synced>,
    /// Host names given addresses so far (`[hosts]` or DNS).
    pub addrs: BTreeMap<String, IpAddr>,
    /// The cluster configuration read from the standard root: where, and its text.
    pub cluster: Option<(String, Vec<u8>)>,
    /// When the first step began, and what each step took.
    pub started: Option<Instant>,
    pub timings: Vec<(&'static str, Duration)>,
}

/// The standard root once a server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    /// `server:path`, as hooks and logs name it.
    pub name: String,
    /// The server that answered; `None` when the host's mount names none.
    pub server: Option<Host>,
    pub export: NfsExport,
    pub client: NfsClient,
    /// Where the kernel client mounted it; `None` for the userspace client.
    pub mounted_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub first: bool,
    pub generation: String,
    pub fstab: Vec<String>,
    pub figures: Option<SyncFigures>,
}

/// Why the boot stopped at a step.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("boot plan: {first} ({count} problem(s) in all)")]
    Plan { first: String, count: usize },
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: SysError,
    },
    #[error("{step}: {why}")]
    Refused { step: &'static str, why: String },
}

/// Runs `steps` of `plan`; returns when the steps are done (under a host
/// initramfs, which switches itself) or with why they stopped.
pub fn run(
    plan: &BootPlan,
    steps: &[Step],
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<(), BootError> {
    if let Some(first) = plan.errors.first() {
        return Err(BootError::Plan {
            first: first.clone(),
            count: plan.errors.len(),
        });
    }
    let started = *facts.started.get_or_insert_with(Instant::now);
    // Sync mode: the node's disk keeps the report beside its state marker.
    let disk = steps.iter().find_map(|s| match s {
        Step::MountLocal { at, .. } | Step::MountLastComplete { at, .. } => Some(at.as_str()),
        _ => None,
    });
    let report = |sys: &mut dyn Sys, facts: &Facts| {
        let figures = facts.synced.as_ref().and_then(|s| s.figures.clone());
        let r = BootReport::new(plan, &facts.timings, started.elapsed(), figures);
        sys.boot_report(&r, disk);
    };
    for step in steps {
        log::debug!("step: {step}");
        if matches!(step, Step::SwitchRoot { .. }) {
            report(sys, facts);
        }
        let began = Instant::now();
        execute(plan, step, sys, facts)?;
        facts.timings.push((step.name(), began.elapsed()));
    }
    // Under a host initramfs, which switches itself; not after the first
    // part of a boot that goes on with the cluster configuration.
    if !matches!(steps.last(), Some(Step::ReadCluster { .. })) {
        report(sys, facts);
    }
    Ok(())
}

/// The boot: `first`'s steps up to reading the cluster configuration, then
/// the plan made with it (`replan` with the merged configuration), from its
/// source step on: the network, the names found and the modules loaded stay,
/// the standard root reached stays when the second plan reaches it the same
/// way (else it is let go and reached again). A cluster file that does not
/// parse is one line and the first plan goes on. Returns the plan the boot
/// ended in (its fallback applies) and how it ended.
pub fn run_boot(
    first: &BootPlan,
    replan: &dyn Fn(&[u8]) -> Result<BootPlan, String>,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> (BootPlan, Result<(), BootError>) {
    let Some(split) = first
        .steps
        .iter()
        .position(|s| matches!(s, Step::ReadCluster { .. }))
    else {
        return (first.clone(), run(first, &first.steps, sys, facts));
    };
    if let Err(e) = run(first, &first.steps[..=split], sys, facts) {
        return (first.clone(), Err(e));
    }
    let rest_of_first = || first.steps[split + 1..].to_vec();
    let Some((at, text)) = facts.cluster.clone() else {
        return (first.clone(), run(first, &rest_of_first(), sys, facts));
    };
    let second = match replan(&text) {
        Ok(p) => p,
        Err(why) => {
            log::error!(
                "cluster configuration {at}:{why}; booting with the initramfs's configuration"
            );
            return (first.clone(), run(first, &rest_of_first(), sys, facts));
        }
    };
    log::info!(
        "cluster configuration {at}: mode {} (from {}), fallback {}",
        second.mode,
        second.mode_from,
        second.fallback
    );
    for n in &second.notes {
        log::warn!("{n}");
    }
    let reached_by = |p: &BootPlan| p.steps.iter().find(|s| is_source_step(s)).cloned();
    let same_source = reached_by(first) == reached_by(&second);
    if !same_source {
        let_go(first, sys, facts);
    }
    let loaded: Vec<String> = first
        .steps
        .iter()
        .find_map(|s| match s {
            Step::LoadModules { modules, .. } => Some(modules.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let rest: Vec<Step> = second
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Early | Step::Network { .. } | Step::HostNetwork | Step::ReadCluster { .. } => {
                None
            }
            Step::Break {
                stage: BreakStage::Cmdline | BreakStage::Net,
                ..
            } => None,
            Step::LoadModules { modules, skip } => {
                let more: Vec<String> = modules
                    .iter()
                    .filter(|m| !loaded.contains(m))
                    .cloned()
                    .collect();
                (!more.is_empty()).then(|| Step::LoadModules {
                    modules: more,
                    skip: skip.clone(),
                })
            }
            s if is_source_step(s) && same_source => None,
            s => Some(s.clone()),
        })
        .collect();
    let ended = run(&second, &rest, sys, facts);
    (second, ended)
}

fn is_source_step(s: &Step) -> bool {
    matches!(
        s,
        Step::MountSource { .. } | Step::ConnectSource { .. } | Step::AdoptSource { .. }
    )
}

/// Lets the standard root go as the first plan reached it, for the second
/// plan to reach it its own way: what the agent mounted is unmounted, what
/// dracut mounted is moved back.
fn let_go(first: &BootPlan, sys: &mut dyn Sys, facts: &mut Facts) {
    let Some(reached) = facts.source.take() else {
        return;
    };
    let adopted = first.steps.iter().find_map(|s| match s {
        Step::AdoptSource { root, aside, .. } => Some((root, aside)),
        _ => None,
    });
    let undone = match (adopted, &reached.mounted_on) {
        (Some((root, Some(aside))), _) => sys.move_mount(aside, root),
        (Some((_, None)), _) | (None, None) => Ok(()),
        (None, Some(on)) => sys.unmount(on),
    };
    if let Err(e) = undone {
        log::warn!("letting the standard root go: {e}");
    }
}

fn execute(
    plan: &BootPlan,
    step: &Step,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<(), BootError> {
    let name = step.name();
    let at = |source: SysError| BootError::Sys { step: name, source };
    let refused = |why: String| BootError::Refused { step: name, why };
    match step {
        Step::Early => sys.mount_pseudo().map_err(at)?,
        Step::Break { stage, shell } => {
            log::warn!("rd.break={stage}: starting {shell}; exit it to continue the boot");
            sys.shell(shell);
        }
        Step::LoadModules { modules, skip } => sys.load_modules(modules, skip).map_err(at)?,
        Step::Network { net, config } => facts.dhcp = sys.bring_up(net, config).map_err(at)?,
        Step::HostNetwork => facts.dhcp = sys.host_network(),
        Step::Resolve { names } => {
            for n in names {
                address(plan, &Host::Name(n.name.clone()), sys, facts).map_err(at)?;
            }
        }
        Step::MountSource { source, timeout } | Step::ConnectSource { source, timeout } => {
            let target =
                plan::resolve_source(source, &facts.dhcp, hostname(plan, facts).as_deref())
                    .map_err(|e| refused(e.to_string()))?;
            facts.source = Some(reach(plan, source, &target, *timeout, sys, facts).map_err(at)?);
        }
        Step::ReadCluster { path, trust } => {
            let reached = facts
                .source
                .as_ref()
                .ok_or_else(|| refused("the standard root was not reached".into()))?;
            let at = format!("{}{path}", reached.name.trim_end_matches('/'));
            // Never a reason to stop: the initramfs's configuration serves.
            let read = |src: SyncSource, sys: &mut dyn Sys| match trust {
                Some(t) => sys.read_signed_source_file(&src, path, t),
                None => sys.read_source_file(&src, path),
            };
            match sync_source(reached).map(|src| read(src, sys)) {
                Some(Ok(Some(text))) => facts.cluster = Some((at, text)),
                Some(Ok(None)) => {
                    log::info!("no cluster configuration at {at}: the initramfs's is in force")
                }
                Some(Err(e)) => log::error!(
                    "cluster configuration {at}: {e}; booting with the initramfs's configuration"
                ),
                None => {}
            }
        }
        Step::AdoptSource {
            root,
            aside,
            read_write,
            client,
            kernel_fallback,
        } => {
            let (name, read_only) = sys.mounted_on(root).ok_or_else(|| {
                refused(format!(
                    "nothing is mounted on {root}: the standard root should be (root=nfs:…)"
                ))
            })?;
            let mut on = root.clone();
            if let Some(aside) = aside {
                sys.move_mount(root, aside).map_err(at)?;
                log::info!("standard root {name} moved to {aside}");
                on = aside.clone();
            } else if *read_write && read_only {
                sys.remount_rw(root).map_err(at)?;
                log::info!("standard root {name} remounted read-write (update mode)");
            }
            // The kernel's device name, read by the one parser: the server
            // a STATEMNT without its own stands for, and what the userspace
            // client reads.
            let device = crate::source::spec::parse_location(&name).ok();
            let export = NfsExport {
                server: None,
                path: device.as_ref().map(|e| e.path.clone()).unwrap_or_default(),
                version: plan.source.version,
                options: plan.source.options.clone(),
            };
            let server = device.and_then(|e| e.server);
            let mut reached = Reached {
                export,
                name,
                server,
                client: NfsClient::Kernel,
                mounted_on: Some(on),
            };
            if *client == NfsClient::User {
                match read_adopted(plan, &reached, sys, facts) {
                    Ok(addr) => {
                        log::info!(
                            "standard root {}: read by the userspace NFSv3 client (the host's mount kept aside)",
                            reached.name
                        );
                        reached.server = Some(Host::Addr(addr));
                        reached.client = NfsClient::User;
                    }
                    Err(e) if *kernel_fallback => log::warn!(
                        "{}: not readable by the userspace NFSv3 client ({e}): syncing through the host's kernel mount",
                        reached.name
                    ),
                    Err(e) => return Err(at(e)),
                }
            }
            facts.source = Some(reached);
        }
        Step::PrepareDisks { disks } => {
            let mut first = false;
            for (n, d) in disks.iter().enumerate() {
                let p = sys.prepare_disk(d).map_err(at)?;
                first |= n == 0 && p.fresh;
            }
            facts.synced = Some(Synced {
                first,
                generation: String::new(),
                fstab: crate::modes::disk::fstab_lines(disks),
                figures: None,
            });
        }
        Step::MountLocal { disk, at: to } => {
            let (device, _) = sys.inspect_disk(disk).map_err(at)?;
            sys.mount_local(disk, &device, to).map_err(at)?;
        }
        Step::MountLastComplete {
            disk,
            at: to,
            verified_only,
        } => {
            let (device, found) = sys.inspect_disk(disk).map_err(at)?;
            if found != Found::Ours {
                return Err(refused(format!(
                    "disk {}: no prepared local copy on it ({found:?})",
                    device.display()
                )));
            }
            sys.mount_local(disk, &device, to).map_err(at)?;
            let state = match sys.local_state(to) {
                // A sync cut (the master gone mid-sync): back to the
                // generation it kept, if it kept one.
                State::InProgress(since) => match sys.roll_back(to) {
                    Ok(Some(s)) => {
                        log::warn!(
                            "the interrupted sync on {} rolled back to the last complete copy",
                            device.display()
                        );
                        s
                    }
                    Ok(None) => State::InProgress(since),
                    Err(e) => {
                        log::error!("{e}");
                        State::InProgress(since)
                    }
                },
                s => s,
            };
            let why = match state {
                State::Complete {
                    generation: g,
                    verified,
                } if verified || !verified_only => {
                    log::warn!(
                        "booting the last complete local copy (generation {g}{}) without syncing",
                        if verified { ", verified" } else { "" }
                    );
                    return Ok(());
                }
                State::Complete { generation: g, .. } => format!(
                    "the local copy on {} (generation {g}) was not verified against a signed manifest: not booted",
                    device.display()
                ),
                other => format!(
                    "the local copy on {} is not complete (state {other}): it cannot be booted",
                    device.display()
                ),
            };
            let _ = sys.unmount(to);
            return Err(refused(why));
        }
        Step::Sync {
            to,
            exclude,
            protect,
            checksum,
            jobs,
            inflight,
            trust,
        } => {
            let reached = facts
                .source
                .as_ref()
                .ok_or_else(|| refused("the standard root was not reached".into()))?;
            let src = sync_source(reached)
                .ok_or_else(|| refused("the standard root was not reached".into()))?;
            let opts = Options {
                exclude: exclude.clone(),
                protect: protect.clone(),
                checksum: *checksum,
                jobs: *jobs as usize,
                inflight: *inflight as usize,
                // A kernel mount shows the manifest as a file; the userspace
                // client reads it through.
                source_manifest: true,
                trust: trust.clone(),
                ..Options::default()
            };
            let report = sys.sync(&src, to, &opts).map_err(at)?;
            let k = &report.counts;
            log::info!(
                "synced {} entries in {:.1} s: {} created, {} updated, {} deleted, {} unchanged, {} protected; {} bytes copied; manifest {}",
                k.entries, report.seconds, k.created, k.updated, k.deleted, k.unchanged,
                k.protected, report.bytes_copied, report.manifest
            );
            if let Some(s) = facts.synced.as_mut() {
                s.generation = report.generation.clone();
                s.figures = Some(SyncFigures {
                    counts: report.counts.clone(),
                    bytes_copied: report.bytes_copied,
                    manifest: report.manifest.clone(),
                });
            }
        }
        Step::ReleaseSource { at: on } => {
            if facts.source.as_ref().and_then(|r| r.mounted_on.as_deref()) == Some(on.as_str()) {
                // The node runs from its disk: a failure here costs nothing.
                if let Err(e) = sys.unmount(on) {
                    log::warn!("{e}");
                }
            }
        }
        Step::Statelite {
            root,
            image,
            node,
            entries,
            litetree,
            attributes,
            store,
        } => {
            let node = node_name(name, node, facts)?;
            let vars = Variables {
                node: Some(&node),
                image,
                attributes,
            };
            let rows = plan_trees(litetree, &vars).map_err(|e| refused(list(&e)))?;
            let trees = rows
                .iter()
                .map(|t| t.mount(|h| address(plan, h, sys, facts)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            let store = store_mount(plan, name, store, sys, facts)?;
            let actions = sys
                .statelite(
                    root,
                    &Inputs {
                        entries,
                        trees: &trees,
                        node: &node,
                        store: store.as_ref(),
                    },
                )
                .map_err(at)?;
            for a in &actions {
                log::debug!("statelite: {a}");
            }
            log::info!("statelite for node {node}: {} actions", actions.len());
        }
        Step::Overlay {
            lower,
            scratch,
            root,
            node,
            entries,
            store,
            ..
        } => {
            sys.overlay(lower, scratch, root).map_err(at)?;
            if !entries.is_empty() || store.is_some() {
                let node = node_name(name, node, facts)?;
                let store = store_mount(plan, name, store, sys, facts)?;
                sys.statelite(
                    root,
                    &Inputs {
                        entries: entries as &[Entry],
                        trees: &[],
                        node: &node,
                        store: store.as_ref(),
                    },
                )
                .map_err(at)?;
            }
            log::info!("overlay: the standard root under a tmpfs upper layer on {root}");
        }
        Step::Cdsl {
            root,
            nodeid,
            tree,
            link,
        } => {
            let cfg = config::Cdsl {
                tree: tree.clone(),
                link: link.clone(),
                ..config::Cdsl::default()
            };
            sys.cdsl(root, &cfg, nodeid).map_err(at)?;
            log::info!("CDSL: {tree}/{nodeid} on {link}");
        }
        Step::Hooks(phase) => sys.run_hooks(phase, &hook_env(plan, facts)).map_err(at)?,
        Step::Bootloader(install) => match sys.install_bootloader(install) {
            Ok(changed) if changed.is_empty() => {
                log::info!("bootloader: {} unchanged", install.disk.device)
            }
            Ok(changed) => log::info!(
                "bootloader: {} ready to boot its local copy: {}",
                install.disk.device,
                changed.join(", ")
            ),
            // Best effort: the copy is complete and marked so, and PXE
            // still boots the node; failing here would only take the
            // `local` fallback into the same copy.
            Err(e) => log::error!(
                "bootloader: {e}; the local copy is complete, the boot goes on without a boot loader on {}",
                install.disk.device
            ),
        },
        Step::SwitchRoot { root, init, args } => {
            sys.reap_orphans();
            return Err(at(sys.switch_root(root, init, args)));
        }
    }
    Ok(())
}

fn list(e: &[impl ToString]) -> String {
    e.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The node's name: the plan's, else DHCP's; `step` needs it.
fn node_name(
    step: &'static str,
    planned: &Option<String>,
    facts: &Facts,
) -> Result<String, BootError> {
    planned
        .clone()
        .or_else(|| facts.dhcp.hostname.clone())
        .ok_or_else(|| BootError::Refused {
            step,
            why: plan::NEEDS_NODE.into(),
        })
}

/// A server's address: as given, or its name's from `[hosts]`, else from
/// DNS (the resolvers named in the plan, then the network's); once found,
/// kept for the rest of the boot.
fn address(
    plan: &BootPlan,
    host: &Host,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<IpAddr, SysError> {
    let name = match host {
        Host::Addr(a) => return Ok(*a),
        Host::Name(n) => n,
    };
    if let Some(a) = facts.addrs.get(name) {
        return Ok(*a);
    }
    let addr = match plan.names.hosts.get(name) {
        Some(&a) => {
            log::info!("{name} is {a} ([hosts])");
            a
        }
        None => {
            let ask = plan.names.ask(&facts.dhcp);
            let a = sys.resolve(name, &ask)?;
            log::info!("{name} is {a} (DNS {})", ask.servers_text());
            a
        }
    };
    facts.addrs.insert(name.clone(), addr.into());
    Ok(addr.into())
}

/// The persistent store's mount: its own server, else the standard root's.
fn store_mount(
    plan: &BootPlan,
    step: &'static str,
    store: &Option<NfsExport>,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<Option<Mountable>, BootError> {
    let Some(export) = store else {
        return Ok(None);
    };
    let refused = |why: String| BootError::Refused { step, why };
    let server = match &export.server {
        Some(h) => h.clone(),
        None => facts
            .source
            .as_ref()
            .and_then(|r| r.server.clone())
            .ok_or_else(|| {
                refused("STATEMNT names no server and the standard root's is not known".into())
            })?,
    };
    let addr =
        address(plan, &server, sys, facts).map_err(|source| BootError::Sys { step, source })?;
    let mut rw = export.clone();
    rw.options.retain(|o| o != "ro");
    rw.options.insert(0, "rw".into());
    Ok(Some(Mountable::Nfs(nfs_mount(&rw, addr))))
}

/// What the sync reads: the kernel mount, or the server through ours.
fn sync_source(r: &Reached) -> Option<SyncSource> {
    match (r.client, &r.server, &r.mounted_on) {
        (NfsClient::User, Some(Host::Addr(addr)), _) => {
            Some(SyncSource::Nfs(Endpoint::new(&r.export, *addr)))
        }
        (_, _, Some(dir)) => Some(SyncSource::Dir(dir.into())),
        _ => None,
    }
}

fn hostname(plan: &BootPlan, facts: &Facts) -> Option<String> {
    plan.node.clone().or_else(|| facts.dhcp.hostname.clone())
}

/// What every hook is told about this boot (see hooks/README.md).
pub fn hook_env(plan: &BootPlan, facts: &Facts) -> Vec<(String, String)> {
    let mut env = vec![("INITAGENT_MODE".to_string(), plan.mode.to_string())];
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            env.push((k.to_string(), v));
        }
    };
    put("INITAGENT_HOSTNAME", hostname(plan, facts));
    put("INITAGENT_NODEID", plan.nodeid.clone());
    put("INITAGENT_BOOTIF", plan.net.mac.map(|m| m.to_string()));
    put(
        "INITAGENT_SOURCE",
        facts.source.as_ref().map(|r| r.name.clone()),
    );
    if let Some(s) = &facts.synced {
        put("INITAGENT_FIRST_SYNC", Some(u8::from(s.first).to_string()));
        put("INITAGENT_GENERATION", Some(s.generation.clone()));
        put("INITAGENT_FSTAB", Some(s.fstab.join("\n")));
    }
    let ask = plan.names.ask(&facts.dhcp);
    let words = |v: Vec<String>| (!v.is_empty()).then(|| v.join(" "));
    put(
        "INITAGENT_DNS",
        words(ask.servers.iter().map(ToString::to_string).collect()),
    );
    put("INITAGENT_SEARCH", words(ask.search));
    env
}

/// The standard root reached as the step says: mounted by the kernel
/// client, or (sync mode) checked reachable by the userspace NFSv3 client,
/// which the sync then reads through; where the userspace client was only
/// the default, a server that answers NFS but not NFSv3's MOUNT (v4 only)
/// gets the kernel client. Servers in order, again with a doubling pause,
/// until the timeout.
fn reach(
    plan: &BootPlan,
    source: &SourcePlan,
    target: &SourceTarget,
    timeout: u32,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<Reached, SysError> {
    let deadline = Instant::now() + Duration::from_secs(timeout.into());
    let mut delay = 1;
    loop {
        let mut last = None;
        for host in &target.servers {
            // A name that does not resolve is that server failing: the next
            // one may be an address, or resolve.
            let tried = address(plan, host, sys, facts)
                .and_then(|a| reach_one(source, &target.export, a, sys));
            match tried {
                Ok(r) => return Ok(r),
                Err(e) => {
                    log::warn!("{e}");
                    last = Some(e);
                }
            }
        }
        let last = last.unwrap_or(SysError::NoServer);
        if Instant::now() + Duration::from_secs(delay) > deadline {
            return Err(SysError::Io {
                what: last.to_string(),
                source: std::io::Error::other(format!("gave up after {timeout} s")),
            });
        }
        std::thread::sleep(Duration::from_secs(delay));
        delay = (delay * 2).min(16);
    }
}

/// The server and path dracut mounted, reached by the userspace client: its
/// address (a name resolved as the plan says) once the MOUNT service answers.
fn read_adopted(
    plan: &BootPlan,
    reached: &Reached,
    sys: &mut dyn Sys,
    facts: &mut Facts,
) -> Result<IpAddr, SysError> {
    let host = reached.server.as_ref().ok_or_else(|| SysError::Io {
        what: reached.name.clone(),
        source: std::io::Error::other("the host's mount names no server"),
    })?;
    let addr = address(plan, host, sys, facts)?;
    sys.probe_nfs(&Endpoint::new(&reached.export, addr))?;
    Ok(addr)
}

fn reach_one(
    source: &SourcePlan,
    export: &NfsExport,
    addr: IpAddr,
    sys: &mut dyn Sys,
) -> Result<Reached, SysError> {
    let name = export.display_with(&Host::Addr(addr).to_string());
    let reached = |client, mounted_on| Reached {
        name: name.clone(),
        server: Some(Host::Addr(addr)),
        export: export.clone(),
        client,
        mounted_on,
    };
    let mount = |sys: &mut dyn Sys| -> Result<Reached, SysError> {
        sys.mkdir_p(&source.mountpoint)?;
        sys.mount_nfs(&nfs_mount(export, addr), &source.mountpoint)?;
        Ok(reached(NfsClient::Kernel, Some(source.mountpoint.clone())))
    };
    if source.client == NfsClient::Kernel {
        return mount(sys);
    }
    let e = match sys.probe_nfs(&Endpoint::new(export, addr)) {
        Ok(()) => {
            log::info!("standard root {name}: reached by the userspace NFSv3 client");
            return Ok(reached(NfsClient::User, None));
        }
        Err(e) => e,
    };
    if !(source.kernel_fallback && sys.serves_nfs(addr, export.port().unwrap_or(2049))) {
        return Err(e);
    }
    log::warn!("{name}: no NFSv3 MOUNT service ({e}): mounting it with the kernel client");
    let nfs: Vec<String> = crate::modules::NFS_MODULES
        .iter()
        .map(|m| m.to_string())
        .collect();
    sys.load_modules(&nfs, &[])?;
    mount(sys)
}

#[cfg(test)]
mod tests;
