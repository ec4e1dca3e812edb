//! The order of the steps, by packaging and mode: who does what when the
//! agent is PID 1, or runs inside dracut or initramfs-tools.

use super::disks::{SYNC_EXCLUDE, SYNC_PROTECT};
use super::{BootPlan, Named, Packaging, Step, OVERLAY_SCRATCH};
use crate::cmdline::{BreakStage, Mode, NfsClient};
use crate::config::Config;
use crate::hooks::Phase;
use crate::modes::statelite::plan::{trees, TableError, TreeRow, Variables};
use crate::source::spec::Host;

/// The host names the agent itself connects to, known from the plan, each
/// with how it will be resolved (names nothing can resolve are the plan's
/// errors already). Names only DHCP's root-path gives are resolved when
/// they come, by the same executor function.
fn named(plan: &BootPlan, trees: &[&Host]) -> Vec<Named> {
    let root = plan
        .source
        .servers
        .iter()
        .filter(|_| plan.packaging != Packaging::Dracut);
    let store = plan.statemnt.iter().filter_map(|e| e.server.as_ref());
    let mut out: Vec<Named> = Vec::new();
    for host in root.chain(store).chain(trees.iter().copied()) {
        if let Host::Name(name) = host {
            if let (Ok(how), false) = (plan.names.how(name), out.iter().any(|n| &n.name == name)) {
                out.push(Named {
                    name: name.clone(),
                    how,
                });
            }
        }
    }
    out
}

/// Statelite: the litetree rows the boot will mount, expanded with what is
/// known now (the boot expands them again, by the same function, with the
/// node's name once DHCP gave it).
fn litetree_rows(plan: &BootPlan, c: &Config) -> Result<Vec<TreeRow>, Vec<TableError>> {
    if plan.mode != Mode::Statelite {
        return Ok(Vec::new());
    }
    let image = plan.image.clone().unwrap_or_default();
    trees(
        &c.statelite.litetree,
        &Variables {
            node: plan.node.as_deref(),
            image: &image,
            attributes: &plan.attributes,
        },
    )
}

/// The boot's steps and the `local` fallback's, from the plan's values;
/// with the table errors found on the way.
pub(super) fn steps(
    plan: &BootPlan,
    c: &Config,
    checksum: bool,
    cdsl: Option<&str>,
) -> (Vec<Step>, Vec<Step>, Vec<String>) {
    let mut errors = Vec::new();
    let tree_rows = litetree_rows(plan, c);
    let mut tree_hosts: Vec<&Host> = Vec::new();
    for host in tree_rows
        .iter()
        .flatten()
        .filter_map(|t| t.location.server())
    {
        match plan.names.check(host) {
            Err(e) => errors.push(format!("litetree: {e}")),
            // A name made with the stand-in for a node name DHCP gives
            // later is resolved when it is known.
            Ok(()) if plan.node.is_some() => tree_hosts.push(host),
            Ok(()) => {}
        }
    }
    let hooks = |phase: &str| {
        Step::Hooks(Phase {
            phase: phase.into(),
            root: plan.root.clone(),
            dir: c.hooks.dir.clone(),
            skip: c.hooks.skip.clone(),
            timeout: c.hooks.timeout,
        })
    };
    let switch = Step::SwitchRoot {
        root: plan.root.clone(),
        init: plan.init.clone(),
        args: plan.init_args.clone(),
    };
    let standalone = plan.packaging == Packaging::Standalone;
    // With keys, a local copy boots only if it was verified when synced: an
    // unverified one may hold what a rogue server served before the keys.
    let verified_only = c.trust.required();
    let trust = c.trust.for_sync().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let mut steps = Vec::new();
    // rd.break and the shell are the host initramfs's under dracut and initramfs-tools.
    let brk = |steps: &mut Vec<Step>, stage| {
        if standalone && plan.breaks.contains(&stage) {
            steps.push(Step::Break {
                stage,
                shell: c.boot.shell.clone(),
            });
        }
    };
    if plan.mode == Mode::Local {
        // The last complete copy as the `local` fallback boots it, with
        // neither network nor server.
        steps.push(Step::Early);
        brk(&mut steps, BreakStage::Cmdline);
        steps.push(Step::LoadModules {
            modules: plan.modules.clone(),
            skip: Vec::new(),
        });
        if let Some(root_disk) = plan.disks.first() {
            steps.push(Step::MountLastComplete {
                disk: root_disk.clone(),
                at: plan.root.clone(),
                verified_only,
            });
            steps.push(hooks("pre-switch"));
            brk(&mut steps, BreakStage::PrePivot);
            steps.push(switch);
        }
        return (steps, Vec::new(), errors);
    }
    if standalone {
        steps.push(Step::Early);
        brk(&mut steps, BreakStage::Cmdline);
        steps.push(Step::LoadModules {
            modules: plan.modules.clone(),
            skip: match plan.source.client {
                NfsClient::User => crate::modules::NFS_MODULES
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
                NfsClient::Kernel => Vec::new(),
            },
        });
        brk(&mut steps, BreakStage::Net);
        steps.push(Step::Network {
            net: plan.net.clone(),
            config: c.net.clone(),
        });
    } else {
        steps.push(Step::HostNetwork);
    }
    let names = named(plan, &tree_hosts);
    if !names.is_empty() {
        steps.push(Step::Resolve { names });
    }
    brk(&mut steps, BreakStage::PreMount);
    steps.push(match (plan.packaging, plan.source.client) {
        (Packaging::Dracut, client) => Step::AdoptSource {
            root: plan.root.clone(),
            aside: (plan.source.mountpoint != plan.root).then(|| plan.source.mountpoint.clone()),
            read_write: plan.mode == Mode::Update,
            client,
            kernel_fallback: plan.source.kernel_fallback,
        },
        (_, NfsClient::Kernel) => Step::MountSource {
            source: plan.source.clone(),
            timeout: plan.timeout,
        },
        (_, NfsClient::User) => Step::ConnectSource {
            source: plan.source.clone(),
            timeout: plan.timeout,
        },
    });
    if let Some(path) = &plan.cluster {
        steps.push(Step::ReadCluster {
            path: path.clone(),
            trust: trust.clone(),
        });
    }
    brk(&mut steps, BreakStage::Mount);
    let mut local = Vec::new();
    match plan.mode {
        Mode::Sync => {
            if let Some(root_disk) = plan.disks.first() {
                steps.push(Step::PrepareDisks {
                    disks: plan.disks.clone(),
                });
                steps.push(Step::MountLocal {
                    disk: root_disk.clone(),
                    at: plan.root.clone(),
                });
                let mut exclude: Vec<String> = SYNC_EXCLUDE.iter().map(|s| s.to_string()).collect();
                exclude.extend(c.sync.exclude.iter().cloned());
                let mut protect: Vec<String> = SYNC_PROTECT.iter().map(|s| s.to_string()).collect();
                // The boot loader's files are the node's: the standard root
                // has none of them, and the sync would delete them.
                let loader = plan
                    .bootloader
                    .as_ref()
                    .map(|_| crate::modes::bootloader::PROTECT.to_string());
                for extra in c.sync.protect.iter().chain(&loader) {
                    if !protect.contains(extra) {
                        protect.push(extra.clone());
                    }
                }
                steps.push(Step::Sync {
                    to: plan.root.clone(),
                    exclude,
                    protect,
                    checksum,
                    jobs: c.sync.jobs,
                    inflight: c.sync.inflight,
                    trust: trust.clone(),
                });
                // dracut's mount is there whichever client reads it.
                if plan.source.client == NfsClient::Kernel
                    || plan.source.kernel_fallback
                    || plan.packaging == Packaging::Dracut
                {
                    steps.push(Step::ReleaseSource {
                        at: plan.source.mountpoint.clone(),
                    });
                }
                steps.push(hooks("post-sync"));
                if let Some(install) = &plan.bootloader {
                    steps.push(Step::Bootloader(install.clone()));
                }
                local = vec![
                    Step::MountLastComplete {
                        disk: root_disk.clone(),
                        at: plan.root.clone(),
                        verified_only,
                    },
                    hooks("pre-switch"),
                ];
                if standalone {
                    local.push(switch.clone());
                }
            }
        }
        Mode::Statelite | Mode::Overlay => {
            let img = plan.image.clone().unwrap_or_default();
            let entries = match crate::modes::statelite::plan::entries(&c.statelite.litefile, &img)
            {
                Ok(e) => e,
                Err(table_errors) => {
                    errors.extend(table_errors.iter().map(|e| e.to_string()));
                    Vec::new()
                }
            };
            let litetree = c.statelite.litetree.clone();
            if let Err(table_errors) = &tree_rows {
                errors.extend(table_errors.iter().map(|e| e.to_string()));
            }
            if plan.mode == Mode::Statelite {
                steps.push(Step::Statelite {
                    root: plan.root.clone(),
                    image: img,
                    node: plan.node.clone(),
                    entries,
                    litetree,
                    attributes: plan.attributes.clone(),
                    store: plan.statemnt.clone(),
                });
            } else {
                steps.push(Step::Overlay {
                    lower: plan.source.mountpoint.clone(),
                    scratch: OVERLAY_SCRATCH.into(),
                    root: plan.root.clone(),
                    image: img,
                    node: plan.node.clone(),
                    entries: entries
                        .into_iter()
                        .filter(|e| e.kind.is_persistent())
                        .collect(),
                    store: plan.statemnt.clone(),
                });
            }
        }
        Mode::Nfsroot | Mode::Update | Mode::Local => {}
    }
    if let Some(id) = cdsl {
        steps.push(Step::Cdsl {
            root: plan.root.clone(),
            nodeid: id.to_string(),
            tree: c.cdsl.tree.clone(),
            link: c.cdsl.link.clone(),
        });
    }
    steps.push(hooks("pre-switch"));
    brk(&mut steps, BreakStage::PrePivot);
    if standalone {
        steps.push(switch);
    }

    (steps, local, errors)
}
