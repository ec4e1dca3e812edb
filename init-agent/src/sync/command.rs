//! `init-agent sync`: options from the command line and the config's [sync].

use anyhow::Context;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::manifest;
use super::pattern::PatternSet;
use super::state::{self, State};
use super::trust;
use super::Options;
use crate::cli;
use crate::config;
use crate::sys::fsops;

/// Runs the sync; Ok(false) when it failed (the cause is printed).
pub fn run(args: &cli::Sync) -> anyhow::Result<bool> {
    cli_logger(args.quiet);
    let full = load_config(args.config.as_deref())?;
    // The config's [trust] keys (as a node's) and --trust files alike.
    let from_config = full.trust.for_sync().map_err(anyhow::Error::msg)?;
    let mut keys = load_keys(&args.trust)?;
    keys.extend(from_config.iter().flat_map(|t| t.keys.iter().cloned()));
    let trust = (!keys.is_empty()).then_some(super::trust::Trust {
        keys,
        allow_rollback: args.allow_rollback || full.trust.allow_rollback,
    });
    let conf = full.sync;
    let opts = Options {
        exclude: conf.exclude.iter().chain(&args.exclude).cloned().collect(),
        protect: conf.protect.iter().chain(&args.protect).cloned().collect(),
        checksum: args.checksum || conf.checksum,
        dry_run: args.dry_run,
        jobs: args.jobs.unwrap_or(conf.jobs as usize),
        quiet: args.quiet,
        itemize: args.itemize,
        collect_changes: args.json,
        manifest: args.manifest.clone(),
        source_manifest: args.source_manifest,
        no_marker: false,
        no_rollback: args.no_rollback,
        inflight: args.inflight.unwrap_or(conf.inflight as usize),
        trust,
        dst_inside_src: false,
    };
    // As rsync does: a missing DST (its parent there) is made; at boot DST
    // is the mounted disk and never made.
    if !args.dry_run && std::fs::symlink_metadata(&args.dst).is_err() {
        match std::fs::create_dir(&args.dst) {
            Ok(()) if !args.quiet => eprintln!("created directory {}", args.dst.display()),
            Ok(()) => {}
            Err(e) => {
                eprintln!(
                    "init-agent sync: failed: creating {}: {e}",
                    args.dst.display()
                );
                return Ok(false);
            }
        }
    }
    let report = match super::SyncSource::parse(&args.src)
        .and_then(|src| super::run(&src, &args.dst, &opts))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("init-agent sync: failed: {e}");
            return Ok(false);
        }
    };
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        // A struct, not json!: its fields print in this order.
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            dry_run: bool,
            changes: &'a [super::engine::Itemized],
            counts: &'a super::Counts,
        }
        let doc = Doc {
            dry_run: report.dry_run,
            changes: report.changes.as_deref().unwrap_or_default(),
            counts: &report.counts,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    if !args.quiet {
        let c = &report.counts;
        eprintln!(
            "sync: {} entries: {} created, {} updated, {} deleted, {} unchanged, {} protected, {} excluded; {} bytes copied in {:.2} s{}",
            c.entries,
            c.created,
            c.updated,
            c.deleted,
            c.unchanged,
            c.protected,
            c.excluded,
            report.bytes_copied,
            report.seconds,
            if report.dry_run { " (dry run)" } else { "" }
        );
    }
    Ok(true)
}

/// The engine's and the NFS client's log lines (retries, counts) on stderr.
fn cli_logger(quiet: bool) {
    crate::console::init_cli_logger(if quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    });
}

/// The [sync] section of a configuration file, or the defaults without one.
fn load_config(path: Option<&Path>) -> anyhow::Result<config::Config> {
    Ok(match path {
        Some(path) => {
            config::load_file(path).with_context(|| format!("loading {}", path.display()))?
        }
        None => config::Config::default(),
    })
}

fn sync_config(path: Option<&Path>) -> anyhow::Result<config::Sync> {
    Ok(load_config(path)?.sync)
}

/// Public key files (`sync --trust`, `verify --key`).
fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<trust::Key>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            trust::Key::parse(&text, &p.display().to_string()).map_err(anyhow::Error::msg)
        })
        .collect()
}

/// `init-agent verify --manifest M [--key K]... ROOT`: Ok(false) when ROOT
/// differs or the signature does not verify.
pub fn verify(args: &cli::Verify) -> anyhow::Result<bool> {
    let conf = sync_config(args.config.as_deref())?;
    let keys = load_keys(&args.key)?;
    let name = args.manifest.display().to_string();
    let bytes = std::fs::read(&args.manifest).with_context(|| format!("reading {name}"))?;
    let (m, verified) = if keys.is_empty() {
        (manifest::decode(&bytes, &name)?, None)
    } else {
        let sig_path = trust::signature_path(&args.manifest);
        let sig = match std::fs::read(&sig_path) {
            Ok(sig) => Some(sig),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", sig_path.display())),
        };
        // An altered manifest is refused like a bad signature.
        match trust::open(&name, Some(&bytes), sig.as_deref(), &keys) {
            Ok((m, signed)) => (m, Some(signed)),
            Err(e) => {
                eprintln!("init-agent verify: refused: {e}");
                return Ok(false);
            }
        }
    };
    let builtin_protect = if args.all {
        &[][..]
    } else {
        crate::boot::plan::SYNC_PROTECT
    };
    let exclude: Vec<String> = crate::boot::plan::SYNC_EXCLUDE
        .iter()
        .map(|s| s.to_string())
        .chain(conf.exclude.iter().chain(&args.exclude).cloned())
        .collect();
    let protect: Vec<String> = builtin_protect
        .iter()
        .map(|s| s.to_string())
        .chain(conf.protect.iter().chain(&args.protect).cloned())
        .collect();
    let audit = super::verify::audit(&m, &args.root, &exclude, &protect)
        .with_context(|| format!("auditing {}", args.root.display()))?;
    let identical = audit.differences.is_empty();
    if args.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            manifest: &'a str,
            generation: &'a str,
            verified: Option<&'a trust::Signed>,
            identical: bool,
            #[serde(flatten)]
            audit: &'a super::verify::Audit,
        }
        let doc = Doc {
            manifest: &name,
            generation: &m.generation,
            verified: verified.as_ref(),
            identical,
            audit: &audit,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for d in &audit.differences {
            println!("{d}");
        }
    }
    let signed = verified.map_or(String::new(), |s| {
        format!(", signed by key {} serial {}", s.key, s.serial)
    });
    eprintln!(
        "verify: {} differences in {} entries compared with generation {}{signed}",
        audit.differences.len(),
        audit.compared,
        m.generation
    );
    Ok(identical)
}

/// `init-agent manifest SRC -o FILE`.
pub fn manifest(args: &cli::Manifest) -> anyhow::Result<bool> {
    let exclude = PatternSet::new(&args.exclude)?;
    if !args.no_stamp {
        // Created before the walk: creating it later would move the root's mtime
        // away from the one recorded.
        let dir = args.src.join(super::STATE_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let m = manifest::build(&args.src, &exclude)
        .with_context(|| format!("recording {}", args.src.display()))?;
    let stamp = (!args.no_stamp).then_some(args.src.as_path());
    manifest::write(&m, &args.output, stamp)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let size = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "manifest: {} entries, generation {}, {} bytes",
        m.entries.len(),
        m.generation,
        size
    );
    if let Some(key) = &args.sign {
        sign_manifest(&args.output, key, args.serial, &m.generation)?;
    }
    Ok(true)
}

/// Signs the manifest just written (serial: the given one, else one more
/// than the old signature's); the signature replaces the old one atomically.
fn sign_manifest(
    output: &Path,
    key: &Path,
    serial: Option<u64>,
    generation: &str,
) -> anyhow::Result<()> {
    let sig_path = super::trust::signature_path(output);
    let previous = std::fs::read_to_string(&sig_path)
        .ok()
        .and_then(|t| super::trust::unverified_serial(&t));
    let serial = serial.unwrap_or_else(|| previous.map_or(1, |p| p.saturating_add(1)));
    let sk =
        super::trust::load_secret_key(key).with_context(|| format!("reading {}", key.display()))?;
    let bytes = std::fs::read(output).with_context(|| format!("reading {}", output.display()))?;
    let sig = super::trust::sign(&bytes, &sk, generation, serial)?;
    let tmp = sig_path.with_extension("minisig.tmp");
    std::fs::write(&tmp, sig).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &sig_path).with_context(|| format!("writing {}", sig_path.display()))?;
    eprintln!("manifest: signed, serial {serial}: {}", sig_path.display());
    Ok(())
}

/// `init-agent keygen -o PREFIX`.
pub fn keygen(args: &cli::Keygen) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let password = match &args.password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        None => None,
    };
    let (sk, pk, key) = super::trust::generate(password)?;
    let path = |ext: &str| {
        let mut s = args.output.as_os_str().to_os_string();
        s.push(ext);
        std::path::PathBuf::from(s)
    };
    for (p, text, mode) in [(path(".key"), sk, 0o600), (path(".pub"), pk, 0o644)] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    eprintln!(
        "keygen: key {}: secret {}, public {}",
        key.id(),
        path(".key").display(),
        path(".pub").display()
    );
    Ok(true)
}

/// `init-agent rollback`: see `cli::Rollback`.
pub fn rollback(args: &cli::Rollback) -> anyhow::Result<bool> {
    let name = args.dst.display().to_string();
    let root = fsops::open_root(&args.dst).with_context(|| format!("opening {name}"))?;
    match super::rollback::roll_back(root.as_fd())
        .with_context(|| format!("rolling back {name}"))?
    {
        Some(state) => {
            println!("{name}: rolled back to {state}");
            Ok(true)
        }
        None => match state::read(root.as_fd()) {
            s @ State::Complete { .. } => {
                println!("{name}: {s}, nothing to roll back");
                Ok(true)
            }
            s => {
                println!("{name}: {s}, and no complete generation kept to roll back to");
                Ok(false)
            }
        },
    }
}

/// `init-agent capture [--dry-run] SRC DEST`: Ok(false) when the capture was
/// refused or failed (the cause is printed).
pub fn capture(args: &cli::Capture) -> anyhow::Result<bool> {
    cli_logger(args.quiet);
    let conf = sync_config(args.config.as_deref())?;
    // The site's node-local paths are the node's, like the built-in ones.
    let exclude = conf
        .exclude
        .iter()
        .chain(&conf.protect)
        .chain(&args.exclude)
        .cloned()
        .collect();
    let opts = super::capture::CaptureOptions {
        exclude,
        dry_run: args.dry_run,
        quiet: args.quiet,
        jobs: args.jobs.unwrap_or(conf.jobs as usize),
    };
    let captured = match super::capture::run(&args.src, &args.dest, &opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("init-agent capture: failed: {e}");
            return Ok(false);
        }
    };
    let (src, dest) = (captured.source.display(), captured.destination.display());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&captured)?);
    } else {
        println!(
            "capture {src} into {dest} ({}), leaving out:",
            captured.destination_was
        );
        for l in &captured.left_out {
            println!("  {}  ({})", l.pattern, l.why);
        }
    }
    let (Some(report), Some(manifest), Some(generation)) =
        (&captured.sync, &captured.manifest, &captured.generation)
    else {
        eprintln!("capture: dry run, nothing written");
        return Ok(true);
    };
    if let Some(key) = &args.sign {
        sign_manifest(manifest, key, args.serial, generation)?;
    }
    if !args.quiet {
        let c = &report.counts;
        eprintln!(
            "capture: {} entries, {} created, {} bytes copied in {:.2} s, {} left out; manifest {}: generation {}, {} entries",
            c.entries,
            c.created,
            report.bytes_copied,
            report.seconds,
            c.excluded,
            manifest.display(),
            generation,
            captured.entries
        );
        eprintln!(
            "capture: next: look at {dest}, then make it the standard on the master: point the nodes' root= (or the export's path) at it; each node syncs it at its next boot"
        );
    }
    Ok(true)
}
