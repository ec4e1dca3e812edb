//! Assembling the new root once the standard root is mounted: the mode's
//! work (sync, statelite, overlay; nothing for nfsroot and update), the CDSL
//! bind, the hooks. Shared by PID 1 and by the dracut / initramfs-tools
//! integration (`init-agent hosted`), which differ only before and after it.

use std::path::Path;
use std::time::Duration;

use crate::boot::plan::{self, BootPlan};
use crate::cmdline::Mode;
use crate::config::{self, Config};

/// The mode, CDSL and hooks on `plan.root`; `source` is `server:path` of the
/// mounted standard root.
pub fn run(
    plan: &BootPlan,
    c: &Config,
    source: &str,
    dhcp_hostname: Option<&str>,
) -> Result<(), String> {
    let mut env = hook_env(plan, dhcp_hostname);
    env.push(("INITAGENT_SOURCE".into(), source.to_string()));
    match plan.mode {
        Mode::Sync => {
            let synced = crate::modes::sync::run(plan, c, source)?;
            // The node runs from its disk: the standard root is not needed any more.
            if plan.source.client == crate::cmdline::NfsClient::Kernel {
                if let Err(e) = crate::sys::unmount(Path::new(plan::SOURCE_MOUNT), true) {
                    log::warn!("{e}");
                }
            }
            env.push((
                "INITAGENT_FIRST_SYNC".into(),
                u8::from(synced.first).to_string(),
            ));
            env.push((
                "INITAGENT_GENERATION".into(),
                synced.report.generation.clone(),
            ));
            env.push(("INITAGENT_FSTAB".into(), synced.fstab.join("\n")));
            run_hooks(plan, "post-sync", &c.hooks, &env)?;
        }
        Mode::Statelite | Mode::Overlay => {
            let name = env
                .iter()
                .find(|(k, _)| k == "INITAGENT_HOSTNAME")
                .map(|(_, v)| v.clone());
            crate::modes::statelite::boot(plan, c, name.as_deref(), source)?;
        }
        Mode::Nfsroot | Mode::Update => {}
    }
    if let Some(plan::Step::Cdsl { nodeid, .. }) = plan
        .steps
        .iter()
        .find(|s| matches!(s, plan::Step::Cdsl { .. }))
    {
        crate::modes::cdsl::plan_boot(&c.cdsl, nodeid)
            .and_then(|a| crate::modes::cdsl::apply(Path::new(&plan.root), &c.cdsl, &a))
            .map_err(|e| format!("cdsl: {e}"))?;
        log::info!("CDSL: {}/{nodeid} on {}", c.cdsl.tree, c.cdsl.link);
    }
    run_hooks(plan, "pre-switch", &c.hooks, &env)
}

/// The `local` fallback up to switch_root: the last complete copy mounted
/// on `plan.root` and the pre-switch hooks run.
pub fn local(plan: &BootPlan, hooks: &config::Hooks) -> Result<(), String> {
    let generation = crate::modes::sync::mount_last_complete(plan)?;
    log::warn!("booting the last complete local copy (generation {generation}) without syncing");
    run_hooks(plan, "pre-switch", hooks, &hook_env(plan, None))
}

/// What every hook is told about this boot (see hooks/README.md).
pub fn hook_env(plan: &BootPlan, dhcp_hostname: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("INITAGENT_MODE".to_string(), plan.mode.to_string())];
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            env.push((k.to_string(), v));
        }
    };
    put(
        "INITAGENT_HOSTNAME",
        plan.node
            .clone()
            .or_else(|| dhcp_hostname.map(String::from)),
    );
    put("INITAGENT_NODEID", plan.nodeid.clone());
    put("INITAGENT_BOOTIF", plan.net.mac.map(|m| m.to_string()));
    env
}

fn run_hooks(
    plan: &BootPlan,
    phase: &str,
    h: &config::Hooks,
    env: &[(String, String)],
) -> Result<(), String> {
    crate::hooks::run_phase(
        Path::new(&plan.root),
        &h.dir,
        phase,
        env,
        &h.skip,
        Duration::from_secs(h.timeout.into()),
    )
    .map(drop)
    .map_err(|e| format!("{phase} hooks: {e}"))
}
