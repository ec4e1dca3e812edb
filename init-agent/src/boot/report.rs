//! The boot report: where a boot's time went, stage by stage, and what the
//! sync did. The executor times every step it runs; right before the switch
//! (or, under a host initramfs, when its steps are done) the report is
//! written to `/run/init-agent/boot.json` (moved into the new root with
//! /run), in sync mode also to `<root>/.init-agent/last-boot.json` on the
//! node's disk, and its headline goes to the console.

use std::time::Duration;

use serde::Serialize;

use super::plan::BootPlan;
use crate::sync::Counts;

/// Where the report goes in every mode.
pub const RUN_REPORT: &str = "/run/init-agent/boot.json";
/// Sync mode: the copy on the node's disk, beside the state marker.
pub const DISK_REPORT: &str = ".init-agent/last-boot.json";

/// One stage: the steps of that name, their time added up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub stage: &'static str,
    pub ms: u64,
}

/// What the sync did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncFigures {
    pub counts: Counts,
    pub bytes_copied: u64,
    /// "used", "none", or why the manifest was not used.
    pub manifest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootReport {
    pub mode: String,
    pub packaging: String,
    /// Milliseconds from the agent's first step to the switch.
    pub total_ms: u64,
    /// In the order they first ran.
    pub stages: Vec<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncFigures>,
    /// The agent's peak resident memory (the kernel's VmHWM), filled in
    /// where the report is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
}

/// VmHWM from the text of /proc/self/status.
pub fn peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Step times, added up per stage name, in the order the stages first ran.
pub fn stages(timings: &[(&'static str, Duration)]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for &(stage, took) in timings {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match out.iter_mut().find(|s| s.stage == stage) {
            Some(s) => s.ms = s.ms.saturating_add(ms),
            None => out.push(Stage { stage, ms }),
        }
    }
    out
}

impl BootReport {
    pub fn new(
        plan: &BootPlan,
        timings: &[(&'static str, Duration)],
        total: Duration,
        sync: Option<SyncFigures>,
    ) -> BootReport {
        let name = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        };
        BootReport {
            mode: plan.mode.to_string(),
            packaging: name(serde_json::to_value(plan.packaging)),
            total_ms: u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
            stages: stages(timings),
            sync,
            peak_rss_kib: None,
        }
    }

    /// The console's one line: `boot: 5.31 s to the switch: modules 0.41 s, …`.
    pub fn headline(&self) -> String {
        let secs = |ms: u64| format!("{:.2} s", ms as f64 / 1000.0);
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {}", s.stage, secs(s.ms)))
            .collect();
        let mut line = format!(
            "boot: {} to the switch: {}",
            secs(self.total_ms),
            stages.join(", ")
        );
        if let Some(s) = &self.sync {
            line.push_str(&format!(
                "; sync {} entries, {} bytes copied, manifest {}",
                s.counts.entries, s.bytes_copied, s.manifest
            ));
        }
        if let Some(kib) = self.peak_rss_kib {
            line.push_str(&format!("; peak RSS {:.1} MiB", kib as f64 / 1024.0));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_in_first_run_order() {
        let ms = Duration::from_millis;
        let t = [
            ("modules", ms(400)),
            ("network", ms(1200)),
            ("hooks", ms(30)),
            ("sync", ms(2500)),
            ("hooks", ms(20)),
        ];
        let s = stages(&t);
        let got: Vec<(&str, u64)> = s.iter().map(|s| (s.stage, s.ms)).collect();
        assert_eq!(
            got,
            [
                ("modules", 400),
                ("network", 1200),
                ("hooks", 50),
                ("sync", 2500)
            ]
        );
        let plan = crate::boot::plan::boot(
            &crate::cmdline::parse(
                "root=nfs:10.0.0.1:/r initagent.mode=sync initagent.disk=/dev/vda",
            ),
            &crate::config::Config::default(),
            crate::boot::plan::Target::default(),
        );
        let r = BootReport::new(
            &plan,
            &t,
            ms(4300),
            Some(SyncFigures {
                counts: Counts {
                    entries: 2800,
                    ..Counts::default()
                },
                bytes_copied: 1 << 20,
                manifest: "used".into(),
            }),
        );
        assert_eq!(
            r.headline(),
            "boot: 4.30 s to the switch: modules 0.40 s, network 1.20 s, hooks 0.05 s, sync 2.50 s; sync 2800 entries, 1048576 bytes copied, manifest used"
        );
        let r = BootReport {
            peak_rss_kib: peak_rss_kib(
                "Name:\tinit-agent\nVmPeak:\t  9000 kB\nVmHWM:\t    6656 kB\n",
            ),
            ..r
        };
        assert!(r.headline().ends_with("manifest used; peak RSS 6.5 MiB"));
        assert_eq!(peak_rss_kib("VmHWM: lots\n"), None);
        assert_eq!(peak_rss_kib(""), None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["peak_rss_kib"], 6656);
        assert_eq!(
            (v["mode"].as_str(), v["packaging"].as_str()),
            (Some("sync"), Some("standalone"))
        );
        assert_eq!(v["stages"][3]["ms"], 2500);
    }
}
