//! The promise, tested: for a corpus of command lines, configurations,
//! packagings and DHCP answers, (a) the executor makes exactly the calls the
//! plan's steps name, in order, with the plan's values, and (b) every case
//! `explain` accepts runs to the end when the environment cooperates: a
//! value `explain` passed never fails the boot.

use proptest::prelude::*;

use super::*;
use crate::boot::plan::{Packaging, Target};
use crate::source::spec;
use crate::sys::record::{Call, Recording};

const CONFIG: &str = r#"
[statelite]
image = "rhels8"
[[statelite.litefile]]
image = "ALL"
file = "/etc/adjtime"
options = "persistent"
[[statelite.litefile]]
image = "ALL"
file = "/var/tmp/"
options = "tmpfs"
[[statelite.litetree]]
priority = 1.0
image = "ALL"
directory = "cnfs:/trees/$node"
[[statelite.litetree]]
priority = 2.0
image = "rhels8"
directory = "$noderes.nfsserver:/rooms/$nodepos.room"
[[node]]
mac = ["52:54:00:12:34:56"]
name = "cn042"
nodeid = "42"
groups = ["compute"]
[[node]]
name = "cn01"
groups = ["compute"]
nodepos = { room = "r2" }
[[group]]
name = "compute"
noderes = { nfsserver = "trees.cluster" }
nodepos = { room = "r1" }
[hosts]
cnfs = "10.0.0.8"
[[disk]]
device = "/dev/sda"
bootloader = "extlinux"
[[disk.partition]]
name = "root"
size = "rest"
fs = "ext4"
mount = "/"
"#;

/// A server's address as the executor must find it: given, from `[hosts]`
/// (no call), else one DNS lookup per name, asking the plan's resolvers
/// then the network's.
fn addr_of(
    host: &Host,
    plan: &BootPlan,
    env: &Recording,
    known: &mut std::collections::BTreeSet<String>,
    calls: &mut Vec<Call>,
) -> IpAddr {
    let name = match host {
        Host::Addr(a) => return *a,
        Host::Name(n) => n,
    };
    if let Some(a) = plan.names.hosts.get(name) {
        return (*a).into();
    }
    if known.insert(name.clone()) {
        let mut servers = plan.names.servers.clone();
        servers.extend(
            env.dhcp
                .dns
                .iter()
                .filter(|a| !plan.names.servers.contains(a)),
        );
        calls.push(Call::Resolve {
            name: name.clone(),
            servers,
        });
    }
    crate::sys::record::RESOLVED.into()
}

/// What the calls of `steps` must be, from the steps' values alone.
fn expected(plan: &BootPlan, steps: &[Step], env: &Recording) -> Vec<Call> {
    let mut calls = Vec::new();
    let hostname = plan.node.clone().or(env.dhcp.hostname.clone());
    // The standard root as the oracle knows it: (mounted on, nfs endpoint).
    let mut mounted: Option<String> = None;
    let mut endpoint: Option<String> = None;
    let mut root_server: Option<Host> = None;
    let mut known = std::collections::BTreeSet::new();
    // The report goes to the node's disk too where one is mounted.
    let disk = steps.iter().find_map(|s| match s {
        Step::MountLocal { at, .. } | Step::MountLastComplete { at, .. } => Some(at.clone()),
        _ => None,
    });
    for s in steps {
        match s {
            Step::Early => calls.push(Call::MountPseudo),
            Step::Break { shell, .. } => calls.push(Call::Shell(shell.clone())),
            Step::LoadModules { modules, .. } => calls.push(Call::LoadModules(modules.clone())),
            Step::Network { net, .. } => calls.push(Call::BringUp(net.mac.map(|m| m.to_string()))),
            Step::HostNetwork => calls.push(Call::HostNetwork),
            Step::Resolve { names } => {
                for n in names {
                    addr_of(
                        &Host::Name(n.name.clone()),
                        plan,
                        env,
                        &mut known,
                        &mut calls,
                    );
                }
            }
            Step::MountSource { source, .. } => {
                let Ok(t) = plan::resolve_source(source, &env.dhcp, hostname.as_deref()) else {
                    continue;
                };
                let a = addr_of(&t.servers[0], plan, env, &mut known, &mut calls);
                root_server = Some(Host::Addr(a));
                calls.push(Call::Mkdir(source.mountpoint.clone()));
                calls.push(Call::MountNfs {
                    mount: nfs_mount(&t.export, a),
                    at: source.mountpoint.clone(),
                });
                mounted = Some(source.mountpoint.clone());
            }
            Step::ConnectSource { source, .. } => {
                let Ok(t) = plan::resolve_source(source, &env.dhcp, hostname.as_deref()) else {
                    continue;
                };
                let a = addr_of(&t.servers[0], plan, env, &mut known, &mut calls);
                root_server = Some(Host::Addr(a));
                let e = Endpoint::new(&t.export, a).to_string();
                calls.push(Call::ProbeNfs(e.clone()));
                endpoint = Some(e);
            }
            Step::ReadCluster { path, trust } => {
                if let Some(src) = endpoint.clone().or(mounted.clone()) {
                    let signed = trust.as_ref().map(|t| {
                        let ids: Vec<String> = t.keys.iter().map(|k| k.id()).collect();
                        format!(" signed by {}", ids.join(","))
                    });
                    calls.push(Call::ReadSourceFile(format!(
                        "{src}{path}{}",
                        signed.unwrap_or_default()
                    )));
                }
            }
            Step::AdoptSource {
                root,
                aside,
                read_write,
                client,
                ..
            } => {
                calls.push(Call::MountedOn(root.clone()));
                mounted = Some(root.clone());
                let device = env
                    .host_mount
                    .as_ref()
                    .and_then(|m| spec::parse_location(&m.0).ok());
                root_server = device.as_ref().and_then(|e| e.server.clone());
                if let Some(a) = aside {
                    calls.push(Call::MoveMount {
                        from: root.clone(),
                        to: a.clone(),
                    });
                    mounted = Some(a.clone());
                } else if *read_write && env.host_mount.as_ref().is_some_and(|m| m.1) {
                    calls.push(Call::RemountRw(root.clone()));
                }
                // The same server and path through the userspace client.
                if let (NfsClient::User, Some(d), Some(host)) = (client, &device, &root_server) {
                    let a = addr_of(&host.clone(), plan, env, &mut known, &mut calls);
                    let export = NfsExport {
                        server: None,
                        path: d.path.clone(),
                        version: plan.source.version,
                        options: plan.source.options.clone(),
                    };
                    let e = Endpoint::new(&export, a).to_string();
                    calls.push(Call::ProbeNfs(e.clone()));
                    endpoint = Some(e);
                    root_server = Some(Host::Addr(a));
                }
            }
            Step::PrepareDisks { disks } => {
                calls.extend(disks.iter().map(|d| Call::PrepareDisk(d.device.clone())))
            }
            Step::MountLocal { disk, at } => {
                calls.push(Call::InspectDisk(disk.device.clone()));
                calls.push(Call::MountLocal {
                    device: disk.device.clone(),
                    at: at.clone(),
                });
            }
            Step::MountLastComplete { disk, at, .. } => {
                calls.push(Call::InspectDisk(disk.device.clone()));
                calls.push(Call::MountLocal {
                    device: disk.device.clone(),
                    at: at.clone(),
                });
                calls.push(Call::LocalState(at.clone()));
            }
            Step::Sync {
                to,
                exclude,
                protect,
                checksum,
                trust,
                ..
            } => calls.push(Call::Sync {
                src: endpoint.clone().or(mounted.clone()).unwrap_or_default(),
                to: to.clone(),
                exclude: exclude.clone(),
                protect: protect.clone(),
                checksum: *checksum,
                trust: trust
                    .as_ref()
                    .map(|t| (t.keys.iter().map(|k| k.id()).collect(), t.allow_rollback)),
            }),
            Step::ReleaseSource { at } => {
                if mounted.as_deref() == Some(at.as_str()) {
                    calls.push(Call::Unmount(at.clone()));
                }
            }
            Step::Statelite {
                root,
                node,
                entries,
                store,
                litetree,
                image,
                attributes,
            } => {
                let name = node
                    .clone()
                    .or(env.dhcp.hostname.clone())
                    .unwrap_or_default();
                let vars = crate::modes::statelite::plan::Variables {
                    node: Some(&name),
                    image,
                    attributes,
                };
                let rows =
                    crate::modes::statelite::plan::trees(litetree, &vars).unwrap_or_default();
                for h in rows.iter().filter_map(|t| t.location.server()) {
                    addr_of(h, plan, env, &mut known, &mut calls);
                }
                let store = store_text(store, &root_server, plan, env, &mut known, &mut calls);
                calls.push(statelite_call(root, node, entries.len(), store, env));
            }
            Step::Overlay {
                lower,
                root,
                node,
                entries,
                store,
                ..
            } => {
                calls.push(Call::Overlay {
                    lower: lower.clone(),
                    root: root.clone(),
                });
                if !entries.is_empty() || store.is_some() {
                    let store = store_text(store, &root_server, plan, env, &mut known, &mut calls);
                    calls.push(statelite_call(root, node, entries.len(), store, env));
                }
            }
            Step::Cdsl { root, nodeid, .. } => calls.push(Call::Cdsl {
                root: root.clone(),
                nodeid: nodeid.clone(),
            }),
            Step::Hooks(h) => calls.push(Call::Hooks {
                root: h.root.clone(),
                phase: h.phase.clone(),
            }),
            Step::Bootloader(i) => calls.push(Call::Bootloader {
                device: i.disk.device.clone(),
                partition: i.partition,
                root: i.root.clone(),
                append: i.append.clone(),
            }),
            Step::SwitchRoot { root, init, .. } => {
                calls.push(Call::BootReport(disk.clone()));
                calls.push(Call::SwitchRoot {
                    root: root.clone(),
                    init: init.clone(),
                })
            }
        }
    }
    if !steps.iter().any(|s| matches!(s, Step::SwitchRoot { .. }))
        && !matches!(steps.last(), Some(Step::ReadCluster { .. }))
    {
        calls.push(Call::BootReport(disk));
    }
    calls
}

/// The statelite executor's call: the node the plan names, else DHCP's.
fn statelite_call(
    root: &str,
    node: &Option<String>,
    entries: usize,
    store: Option<String>,
    env: &Recording,
) -> Call {
    Call::Statelite {
        root: root.into(),
        node: node
            .clone()
            .or(env.dhcp.hostname.clone())
            .unwrap_or_default(),
        entries,
        store,
    }
}

fn store_text(
    store: &Option<NfsExport>,
    root: &Option<Host>,
    plan: &BootPlan,
    env: &Recording,
    known: &mut std::collections::BTreeSet<String>,
    calls: &mut Vec<Call>,
) -> Option<String> {
    let e = store.as_ref()?;
    let server = e.server.as_ref().or(root.as_ref())?;
    let a = addr_of(server, plan, env, known, calls);
    Some(format!("{}:{}", Host::Addr(a), e.path))
}

/// One case through the whole pipeline; `None` when `explain` refuses it.
fn boot(
    cmdline: &str,
    config: &str,
    packaging: Packaging,
    env: Recording,
) -> Option<(BootPlan, Recording, Result<(), BootError>)> {
    let c: config::Config = toml::from_str(config).unwrap();
    let root = if packaging == Packaging::Standalone {
        plan::NEW_ROOT
    } else {
        "/root"
    };
    let mut p = plan::boot(
        &crate::cmdline::parse(cmdline),
        &c,
        Target { packaging, root },
    );
    crate::boot::explain::assume(&mut p, &env.dhcp);
    if !p.errors.is_empty() {
        return None;
    }
    let mut env = env;
    let r = run(&p, &p.steps, &mut env, &mut Facts::default());
    Some((p, env, r))
}

fn check(cmdline: &str, config: &str, packaging: Packaging, env: Recording) -> bool {
    let expected_env = Recording {
        dhcp: env.dhcp.clone(),
        host_mount: env.host_mount.clone(),
        ..Recording::default()
    };
    let Some((p, env, r)) = boot(cmdline, config, packaging, env) else {
        return false;
    };
    match (&r, packaging) {
        (Ok(()), Packaging::Dracut | Packaging::InitramfsTools) => {}
        (
            Err(BootError::Sys {
                step: "switch_root",
                ..
            }),
            Packaging::Standalone,
        ) => {}
        _ => panic!("{cmdline} ({packaging:?}): explain accepted it, the boot failed: {r:?}"),
    }
    assert_eq!(
        env.calls,
        expected(&p, &p.steps, &expected_env),
        "{cmdline} ({packaging:?})"
    );
    if !p.local.is_empty() {
        let mut local = Recording::default();
        run(&p, &p.local, &mut local, &mut Facts::default()).ok();
        assert_eq!(
            local.calls,
            expected(&p, &p.local, &Recording::default()),
            "{cmdline}: local"
        );
    }
    true
}

fn dhcp(root_path: Option<&str>, hostname: Option<&str>) -> Recording {
    Recording {
        dhcp: DhcpAnswer {
            root_path: root_path.map(String::from),
            next_server: Some("10.0.0.254".parse().unwrap()),
            server_id: Some("10.0.0.253".parse().unwrap()),
            hostname: hostname.map(String::from),
            dns: vec!["10.0.0.53".parse().unwrap()],
            search: vec!["cluster".into()],
        },
        host_mount: Some(("10.0.0.1:/srv/root".into(), true)),
        ..Recording::default()
    }
}

const CMDLINES: &[&str] = &[
    "root=nfs:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/vda",
    "root=nfs:10.0.0.1:/srv/root:vers=3 initagent.mode=sync initagent.disk=/dev/vda initagent.nfs=kernel",
    "root=nfs4:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/sda rd.break=pre-pivot rd.break=cmdline",
    "root=nfs://10.0.0.1:2050/srv/root?mountport=635 initagent.mode=sync initagent.disk=/dev/vda",
    "root=[fd00::1]:/srv/root:vers=3 initagent.mode=nfsroot",
    "NFSROOT=172.16.2.2:/install/netboot/alt/x86_64/compute STATEMNT=172.16.2.3:/gpfs/state NODE=cn001",
    "root=nfs:10.0.0.1:/srv/root initagent.mode=statelite STATEMNT=/statelite NODE=cn01",
    "root=nfs:10.0.0.1:/srv/root initagent.mode=overlay STATEMNT=10.0.0.2:/state MNTOPTS=vers=4.2 NODE=cn01",
    "root=nfs:10.0.0.1:/srv/root rd.live.overlay.overlayfs=1",
    "root=nfs:10.0.0.1:/srv/root initagent.mode=update",
    "root=nfs:10.0.0.1:/srv/root initagent.nodeid=7 initagent.cdsl=1",
    "BOOTIF=01-52-54-00-12-34-56 root=nfs:10.0.0.1:/srv/%s initagent.mode=statelite",
    "root=dhcp initagent.mode=sync initagent.disk=/dev/vda",
    "root=/dev/nfs initagent.mode=nfsroot",
    "root=/dev/nfs nfsroot=10.0.0.1:/srv/root,vers=3 ip=10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0:cn05:eth0:off",
    "initagent.mode=statelite",
    // Host names: by DNS via DHCP, nameserver=, ip='s dns0, or [hosts].
    "root=nfs:master.cluster:/srv/root initagent.mode=sync initagent.disk=/dev/vda",
    "NFSROOT=172.16.2.2:/install STATEMNT=cnfs:/gpfs/state NODE=cn001",
    "root=nfs:master:/srv/root STATEMNT=state.cluster:/gpfs/state MNTOPTS=vers=3 NODE=cn001 initagent.mode=statelite",
    "root=nfs:master.cluster:/srv/root ip=10.0.0.5::10.0.0.254:255.255.255.0:cn05:eth0:off:10.0.0.53 initagent.mode=nfsroot",
    "root=nfs:cnfs:/srv/root ip=10.0.0.5::10.0.0.254:255.255.255.0:cn05:eth0:off initagent.mode=overlay STATEMNT=/state",
    // Refused by explain: a name nothing can resolve, bad tables.
    "root=nfs:master.cluster:/srv/root ip=10.0.0.5::10.0.0.254:255.255.255.0:cn05:eth0:off",
    // Refused: the MAC's row is not NODE='s; no row gives $nodepos.room.
    "BOOTIF=01-52-54-00-12-34-56 NODE=cn01 root=nfs:10.0.0.1:/srv/root initagent.mode=statelite",
    "root=nfs:10.0.0.1:/srv/root initagent.mode=statelite NODE=cn77",
];

const ROOT_PATHS: &[Option<&str>] = &[
    None,
    Some("10.0.0.7:/srv/dhcp"),
    Some("nfs:10.0.0.7:/srv/dhcp:vers=3"),
    Some("nfs4:10.0.0.7:/srv/dhcp"),
    Some("/srv/dhcp"),
    Some("/srv/dhcp,vers=3,nolock"),
    Some("master:/srv/dhcp"),
];

#[test]
fn every_step_runs_with_the_plan_values_and_nothing_explain_passed_fails() {
    let mut accepted = 0;
    let mut refused = 0;
    for cmdline in CMDLINES {
        for packaging in [
            Packaging::Standalone,
            Packaging::Dracut,
            Packaging::InitramfsTools,
        ] {
            for rp in ROOT_PATHS {
                for host in [None, Some("cn09")] {
                    if check(cmdline, CONFIG, packaging, dhcp(*rp, host)) {
                        accepted += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
    }
    // The corpus exercises both sides of the promise.
    assert!(
        accepted > 100 && refused > 20,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn a_host_name_is_planned_only_where_something_can_resolve_it() {
    let plan_for = |cmdline: &str, config: &str, packaging| {
        plan::boot(
            &crate::cmdline::parse(cmdline),
            &toml::from_str(config).unwrap(),
            Target {
                packaging,
                root: "/sysroot",
            },
        )
    };
    let fixed = "ip=10.0.0.5::10.0.0.254:255.255.255.0:cn05:eth0:off";
    let unresolvable = [
        format!("root=nfs:master.cluster:/srv/root {fixed}"),
        format!("root=nfs:10.0.0.1:/srv/root STATEMNT=state:/gpfs NODE=cn001 {fixed}"),
    ];
    for cmdline in &unresolvable {
        let p = plan_for(cmdline, "", Packaging::Standalone);
        assert!(
            p.errors
                .iter()
                .any(|e| e.contains("is a host name with no way to resolve it")),
            "{cmdline}: {:?}",
            p.errors
        );
    }
    let resolvable = [
        (
            "root=nfs:master.cluster:/srv/root".to_string(),
            "",
            "resolved at boot by DNS via DHCP",
        ),
        (
            format!("root=nfs:master.cluster:/srv/root {fixed} nameserver=10.0.0.53"),
            "",
            "resolved at boot by DNS via 10.0.0.53",
        ),
        (
            format!("root=nfs:master.cluster:/srv/root {fixed}:10.0.0.53"),
            "",
            "resolved at boot by DNS via 10.0.0.53",
        ),
        (
            format!("root=nfs:master.cluster:/srv/root {fixed}"),
            "[net]\ndns = [\"10.0.0.54\"]",
            "resolved at boot by DNS via 10.0.0.54",
        ),
        (
            format!("root=nfs:master.cluster:/srv/root {fixed}"),
            "[hosts]\n\"master.cluster\" = \"10.0.0.1\"",
            "10.0.0.1 from [hosts]",
        ),
        (
            "root=nfs:master.cluster:/srv/root".to_string(),
            "[net]\ndns = [\"10.0.0.54\"]",
            "resolved at boot by DNS via 10.0.0.54, then DHCP",
        ),
    ];
    for (cmdline, config, how) in &resolvable {
        let p = plan_for(cmdline, config, Packaging::Standalone);
        assert_eq!(p.errors, Vec::<String>::new(), "{cmdline}");
        let resolve = p.steps.iter().find_map(|s| match s {
            Step::Resolve { names } => Some(names.clone()),
            _ => None,
        });
        let names = resolve.unwrap_or_else(|| panic!("{cmdline}: no resolve step"));
        assert_eq!(names[0].to_string(), format!("master.cluster ({how})"));
    }
    // dracut resolves the root's name itself: no step of ours.
    let p = plan_for(
        &format!("root=nfs:master.cluster:/srv/root {fixed}"),
        "",
        Packaging::Dracut,
    );
    assert_eq!(p.errors, Vec::<String>::new());
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Resolve { .. })));
}

#[test]
fn the_oracle_sees_a_skipped_reordered_or_changed_step() {
    let (p, env, _) = boot(CMDLINES[0], CONFIG, Packaging::Standalone, dhcp(None, None)).unwrap();
    let clean = Recording::default();
    assert_eq!(env.calls, expected(&p, &p.steps, &clean));
    let mut skipped = p.steps.clone();
    skipped.remove(3);
    let mut reordered = p.steps.clone();
    reordered.swap(4, 5);
    let mut changed = p.steps.clone();
    if let Some(Step::Sync { to, .. }) = changed.iter_mut().find(|s| matches!(s, Step::Sync { .. }))
    {
        *to = "/elsewhere".into();
    }
    for steps in [skipped, reordered, changed] {
        assert_ne!(env.calls, expected(&p, &steps, &clean));
    }
}

fn token() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "root=nfs:10.0.0.1:/srv/root",
        "root=nfs4:10.0.0.1:/srv/root:vers=4.1",
        "root=nfs:10.0.0.1:/srv/root:vers=3,port=2049",
        "root=dhcp",
        "root=/dev/nfs",
        "nfsroot=10.0.0.2:/srv/r,vers=3",
        "NFSROOT=10.0.0.3:/install/img",
        "STATEMNT=10.0.0.4:/state",
        "STATEMNT=/state",
        "STATEMNT=cnfs:/state",
        "STATEMNT=state.cluster:/state",
        "root=nfs:master.cluster:/srv/root",
        "nameserver=10.0.0.53",
        "STATEMNT=",
        "MNTOPTS=vers=3",
        "NODE=cn07",
        "initagent.mode=sync",
        "initagent.mode=statelite",
        "initagent.mode=overlay",
        "initagent.mode=nfsroot",
        "initagent.mode=update",
        "initagent.disk=/dev/vda",
        "initagent.nfs=user",
        "initagent.nfs=kernel",
        "initagent.nodeid=3",
        "initagent.cdsl=1",
        "initagent.fallback=shell",
        "initagent.checksum",
        "rd.break=pre-mount",
        "rd.break=mount",
        "rd.live.overlay.overlayfs=1",
        "BOOTIF=01-52-54-00-12-34-56",
        "ip=dhcp",
        "ip=10.0.0.5::10.0.0.254:255.255.255.0:cn05:eth0:off",
        "init=/bin/sh",
        "rw",
    ])
    .prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn generated_cases_keep_the_promise(
        tokens in prop::collection::vec(token(), 1..8),
        packaging in prop::sample::select(vec![Packaging::Standalone, Packaging::Dracut, Packaging::InitramfsTools]),
        rp in prop::sample::select(ROOT_PATHS.to_vec()),
        host in prop::sample::select(vec![None, Some("cn11")]),
    ) {
        check(&tokens.join(" "), CONFIG, packaging, dhcp(rp, host));
    }
}

/// The boot with a cluster configuration on the master: the second plan
/// goes on from its source step, reaching the root again only when it
/// reaches it another way; a broken file leaves the first plan in force.
#[test]
fn the_cluster_file_makes_the_rest_of_the_boot() {
    // The mode is the site's ([boot] mode), not the PXE line's: the command
    // line would win over the master.
    let params =
        crate::cmdline::parse("root=nfs:10.0.0.1:/srv/root initagent.disk=/dev/vda NODE=cn01");
    let embedded = config::parse("[boot]\nmode = \"sync\"\n").unwrap();
    let first = plan::boot(&params, &embedded, Target::default());
    let replan = |text: &[u8]| crate::boot::replan(&params, &embedded, Target::default(), text);
    let boot_with = |cluster: &str| {
        let mut env = Recording {
            cluster: Some(cluster.as_bytes().to_vec()),
            ..Recording::default()
        };
        let (plan, ended) = run_boot(&first, &replan, &mut env, &mut Facts::default());
        (plan, ended, env.calls)
    };
    let probes = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| matches!(c, Call::ProbeNfs(_)))
            .count()
    };
    // Same mode, new excludes: the root reached once, the sync takes them.
    let (plan, ended, calls) = boot_with("[sync]\nexclude = [\"/scratch/**\"]\n");
    assert!(
        matches!(
            ended,
            Err(BootError::Sys {
                step: "switch_root",
                ..
            })
        ),
        "{ended:?}"
    );
    assert_eq!(probes(&calls), 1, "{calls:#?}");
    assert!(calls.iter().any(|c| matches!(c, Call::Sync { exclude, .. } if exclude.iter().any(|e| e == "/scratch/**"))), "{calls:#?}");
    assert_eq!(plan.mode, crate::cmdline::Mode::Sync);
    // The master says this node is the update node: the root is mounted
    // read-write by the kernel client instead, nothing is synced.
    let (plan, _, calls) = boot_with("[[node]]\nname = \"cn01\"\nmode = \"update\"\n");
    assert_eq!(
        (plan.mode, plan.mode_from),
        (crate::cmdline::Mode::Update, "the node's [[node]] row")
    );
    assert!(
        calls.iter().any(|c| matches!(c, Call::MountNfs { .. })),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Sync { .. } | Call::PrepareDisk(_))),
        "{calls:#?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::BringUp(_)))
            .count(),
        1
    );
    // Local from the master: no second reach, the last complete copy.
    let (plan, _, calls) = boot_with("[[node]]\nname = \"cn01\"\nmode = \"local\"\n");
    assert_eq!(plan.mode, crate::cmdline::Mode::Local);
    assert_eq!(probes(&calls), 1);
    assert!(
        calls.iter().any(|c| matches!(c, Call::LocalState(_))),
        "{calls:#?}"
    );
    // Broken: the first plan goes on.
    let (plan, _, calls) = boot_with("[net]\ndns = [\"10.0.0.9\"]\n");
    assert_eq!(plan, first);
    assert!(
        calls.iter().any(|c| matches!(c, Call::Sync { .. })),
        "{calls:#?}"
    );
    // A file that parses but makes a plan with problems is refused the same
    // way (here: sync mode for a node the command line gives no disk).
    let no_disk = crate::cmdline::parse("root=nfs:10.0.0.1:/srv/root NODE=cn01");
    let why = crate::boot::replan(
        &no_disk,
        &embedded,
        Target::default(),
        b"[boot]\nmode = \"sync\"\n",
    )
    .unwrap_err();
    assert!(
        why.starts_with(" the plan made with it: ") && why.contains("disk"),
        "{why}"
    );
}

/// `[trust]` keys reach the sync as they are planned; with them the local
/// copy boots only when its marker says it was verified.
#[test]
fn trust_keys_reach_the_sync_and_an_unverified_local_copy_is_not_booted() {
    use crate::config::tests::{ID_A, ID_B, KEY_A, KEY_B};
    use crate::sync::state::State;
    let keys = format!("{CONFIG}[trust]\nkeys = [\"{KEY_A}\", \"{KEY_B}\"]\n");
    let mut accepted = 0;
    for cmdline in CMDLINES.iter().filter(|c| c.contains("mode=sync")) {
        for packaging in [Packaging::Standalone, Packaging::InitramfsTools] {
            // Accepted, and run, exactly as without keys.
            let env = || dhcp(Some("10.0.0.7:/srv/dhcp"), Some("cn09"));
            let with_keys = check(cmdline, &keys, packaging, env());
            assert_eq!(
                with_keys,
                check(cmdline, CONFIG, packaging, env()),
                "{cmdline}"
            );
            accepted += usize::from(with_keys);
        }
    }
    assert!(accepted > 8, "{accepted}");
    let (_, env, _) = boot(CMDLINES[0], &keys, Packaging::Standalone, dhcp(None, None)).unwrap();
    assert!(
        env.calls.iter().any(
            |c| matches!(c, Call::Sync { trust: Some((ids, false)), .. } if ids == &[ID_A, ID_B])
        ),
        "{:#?}",
        env.calls
    );

    let local = |config: &str, marker: State| {
        let p = plan::boot(
            &crate::cmdline::parse("initagent.mode=local initagent.disk=/dev/vda"),
            &toml::from_str(config).unwrap(),
            Target::default(),
        );
        let mut env = Recording {
            local: Some(marker),
            ..Recording::default()
        };
        let r = run(&p, &p.steps, &mut env, &mut Facts::default());
        (r, env.calls)
    };
    let unverified = State::Complete {
        generation: "g1".into(),
        verified: false,
    };
    let (r, calls) = local(&keys, unverified.clone());
    let why = r.unwrap_err().to_string();
    assert!(
        why.starts_with("local root: the local copy on /dev/vda")
            && why.ends_with(
                "(generation g1) was not verified against a signed manifest: not booted"
            ),
        "{why}"
    );
    assert_eq!(calls.last(), Some(&Call::Unmount("/sysroot".into())));
    // Verified, or no keys: it boots (to switch_root).
    let verified = State::Complete {
        generation: "g1".into(),
        verified: true,
    };
    for (config, marker) in [(keys.as_str(), verified), (CONFIG, unverified)] {
        let (r, calls) = local(config, marker);
        assert!(
            matches!(
                r,
                Err(BootError::Sys {
                    step: "switch_root",
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(!calls.contains(&Call::Unmount("/sysroot".into())));
    }
}

/// A copy whose sync was cut boots in `local` fallback once rolled back to
/// the generation it kept; without one it is refused, never booted half-made.
#[test]
fn an_interrupted_copy_is_rolled_back_before_it_boots() {
    use crate::sync::state::State;
    let p = plan::boot(
        &crate::cmdline::parse("initagent.mode=local initagent.disk=/dev/vda"),
        &toml::from_str(CONFIG).unwrap(),
        Target::default(),
    );
    let kept = State::Complete {
        generation: "g1".into(),
        verified: false,
    };
    for rolled_back in [Some(kept), None] {
        let mut env = Recording {
            local: Some(State::InProgress(Some(1_700_000_000))),
            rolled_back: rolled_back.clone(),
            ..Recording::default()
        };
        let r = run(&p, &p.steps, &mut env, &mut Facts::default());
        assert!(env.calls.contains(&Call::RollBack("/sysroot".into())));
        match rolled_back {
            Some(_) => assert!(
                matches!(
                    &r,
                    Err(BootError::Sys {
                        step: "switch_root",
                        ..
                    })
                ),
                "{r:?}"
            ),
            None => {
                let why = r.unwrap_err().to_string();
                assert!(
                    why.ends_with(
                        "is not complete (state in-progress 1700000000): it cannot be booted"
                    ),
                    "{why}"
                );
                assert_eq!(env.calls.last(), Some(&Call::Unmount("/sysroot".into())));
            }
        }
    }
}

/// The boot loader is a best-effort extra: the copy is complete when it
/// runs, so its failure is logged and the boot goes on to the switch.
#[test]
fn a_boot_loader_that_fails_does_not_stop_the_boot() {
    let cmdline = "root=nfs:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/sda";
    let env = Recording {
        bootloader_fails: Some("extlinux --install failed".into()),
        ..dhcp(None, None)
    };
    let (p, env, r) = boot(cmdline, CONFIG, Packaging::Standalone, env).unwrap();
    assert!(
        matches!(
            r,
            Err(BootError::Sys {
                step: "switch_root",
                ..
            })
        ),
        "{r:?}"
    );
    let at = env
        .calls
        .iter()
        .position(|c| matches!(c, Call::Bootloader { .. }))
        .expect("the boot loader step ran");
    assert_eq!(
        env.calls[at + 1..]
            .iter()
            .map(|c| match c {
                Call::Hooks { phase, .. } => phase.as_str(),
                Call::BootReport(_) => "report",
                Call::SwitchRoot { .. } => "switch_root",
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        ["pre-switch", "report", "switch_root"]
    );
    assert_eq!(env.calls, expected(&p, &p.steps, &dhcp(None, None)));
}

/// Under dracut, sync mode reads the server and path dracut mounted with the
/// userspace client; a server without NFSv3 MOUNT is read through dracut's
/// mount (moved aside, unmounted after the sync) unless the client was asked.
#[test]
fn dracut_sync_reads_its_mount_s_server_with_the_userspace_client() {
    let sync_src = |cmdline: &str, probe_fails: Option<&str>| {
        let env = Recording {
            probe_fails: probe_fails.map(String::from),
            ..dhcp(None, None)
        };
        let (p, env, r) = boot(cmdline, "", Packaging::Dracut, env).unwrap();
        assert!(
            p.steps.iter().any(|s| matches!(
                s,
                Step::AdoptSource {
                    client: NfsClient::User,
                    ..
                }
            )),
            "{:?}",
            p.steps
        );
        let src = env.calls.iter().find_map(|c| match c {
            Call::Sync { src, .. } => Some(src.clone()),
            _ => None,
        });
        let unmounted = env
            .calls
            .iter()
            .any(|c| *c == Call::Unmount(plan::SOURCE_MOUNT.into()));
        (src, unmounted, r)
    };
    let sync = "root=nfs:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/vda";
    let (src, unmounted, r) = sync_src(sync, None);
    assert_eq!(src.as_deref(), Some("nfs://10.0.0.1/srv/root"), "{r:?}");
    assert!(unmounted, "dracut's mount left behind");
    let (src, unmounted, _) = sync_src(sync, Some("no MOUNT service"));
    assert_eq!(src.as_deref(), Some(plan::SOURCE_MOUNT));
    assert!(unmounted);
    let (src, _, r) = sync_src(
        &format!("{sync} initagent.nfs=user"),
        Some("no MOUNT service"),
    );
    assert_eq!(src, None);
    assert!(
        matches!(&r, Err(BootError::Sys { step: "nfs", .. })),
        "{r:?}"
    );
}
