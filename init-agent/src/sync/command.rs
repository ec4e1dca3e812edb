//! `init-agent sync`: options from the command line and the config's [sync].

use anyhow::Context;

use super::manifest;
use super::pattern::PatternSet;
use super::Options;
use crate::cli;
use crate::config;

/// Runs the sync; Ok(false) when it failed (the cause is printed).
pub fn run(args: &cli::Sync) -> anyhow::Result<bool> {
    // The NFS client's retries and counts, on stderr.
    crate::console::init_cli_logger(if args.quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    });
    let conf = match &args.config {
        Some(path) => {
            config::load_file(path)
                .with_context(|| format!("loading {}", path.display()))?
                .sync
        }
        None => config::Sync::default(),
    };
    let trust = if args.trust.is_empty() {
        None
    } else {
        let keys = args
            .trust
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                super::trust::Key::parse(&text, &p.display().to_string())
                    .map_err(anyhow::Error::msg)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(super::trust::Trust {
            keys,
            allow_rollback: args.allow_rollback,
        })
    };
    let opts = Options {
        exclude: conf.exclude.iter().chain(&args.exclude).cloned().collect(),
        protect: conf.protect.iter().chain(&args.protect).cloned().collect(),
        checksum: args.checksum || conf.checksum,
        dry_run: args.dry_run,
        jobs: args.jobs.unwrap_or(conf.jobs as usize),
        quiet: args.quiet,
        itemize: args.itemize,
        manifest: args.manifest.clone(),
        source_manifest: args.source_manifest,
        no_marker: false,
        inflight: args.inflight.unwrap_or(conf.inflight as usize),
        trust,
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
        sign_manifest(args, key, &m.generation)?;
    }
    Ok(true)
}

/// Signs the manifest just written; the signature replaces the old one
/// atomically.
fn sign_manifest(
    args: &cli::Manifest,
    key: &std::path::Path,
    generation: &str,
) -> anyhow::Result<()> {
    let sig_path = super::trust::signature_path(&args.output);
    let previous = std::fs::read_to_string(&sig_path)
        .ok()
        .and_then(|t| super::trust::unverified_serial(&t));
    let serial = args
        .serial
        .unwrap_or_else(|| previous.map_or(1, |p| p.saturating_add(1)));
    let sk =
        super::trust::load_secret_key(key).with_context(|| format!("reading {}", key.display()))?;
    let bytes = std::fs::read(&args.output)
        .with_context(|| format!("reading {}", args.output.display()))?;
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
