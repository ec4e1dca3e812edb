//! `init-agent mkinitramfs`: a gzip'ed newc cpio that boots on its own, with
//! the static binary as `/init`, the kernel modules the boot needs (and their
//! dependencies), an optional configuration and extra tools with their
//! libraries.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::{self, Config, ConfigError};
use crate::modules::{ModuleDb, DEFAULT_MODULES, NFS_MODULES};
use crate::sync::trust::Key;

/// Tools taken from this machine when it has them: what sync mode needs to
/// partition and format (by the layouts' file systems), and busybox for the
/// emergency shell.
pub const DEFAULT_TOOLS: &[&str] = &[
    "sfdisk",
    "mke2fs",
    "mkswap",
    "mkfs.xfs",
    "mkfs.vfat",
    "busybox",
];

/// Finds a tool on this machine's usual paths.
fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

enum Item {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink(String),
}

/// The archive's entries by path: parents are emitted before their children,
/// as the kernel's unpacker will not create a missing parent directory.
#[derive(Default)]
pub struct Archive {
    items: BTreeMap<String, Item>,
}

impl Archive {
    fn parents(&mut self, path: &str) {
        let mut at = String::new();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, r)| r)
        {
            at.push_str(if at.is_empty() { "" } else { "/" });
            at.push_str(part);
            self.items.entry(at.clone()).or_insert(Item::Dir);
        }
    }

    pub fn dir(&mut self, path: &str) {
        let p = path.trim_matches('/').to_string();
        self.parents(&p);
        self.items.insert(p, Item::Dir);
    }

    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        let p = path.trim_matches('/').to_string();
        self.parents(&p);
        self.items.insert(p, Item::File { mode, data });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let p = path.trim_matches('/').to_string();
        self.parents(&p);
        self.items.insert(p, Item::Symlink(target.to_string()));
    }

    /// newc: "070701", 13 eight-digit hex fields, the NUL-terminated name and
    /// the data, each padded to 4 bytes.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut ino = 1u32;
        let mut header = |w: &mut dyn Write,
                          name: &str,
                          mode: u32,
                          size: usize|
         -> io::Result<()> {
            let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
            write!(
                w,
                "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                0, 0, 0, 0, 0, 0, 0,
                name.len() + 1,
                0
            )?;
            ino += 1;
            w.write_all(name.as_bytes())?;
            w.write_all(&[0])?;
            pad(w, 110 + name.len() + 1)
        };
        for (name, item) in &self.items {
            match item {
                Item::Dir => header(w, name, 0o040755, 0)?,
                Item::File { mode, data } => {
                    header(w, name, 0o100000 | mode, data.len())?;
                    w.write_all(data)?;
                    pad(w, data.len())?;
                }
                Item::Symlink(t) => {
                    header(w, name, 0o120777, t.len())?;
                    w.write_all(t.as_bytes())?;
                    pad(w, t.len())?;
                }
            }
        }
        header(w, "TRAILER!!!", 0, 0)
    }
}

/// gzip'ed as the kernel unpacks it: the same bytes for the same input
/// (flate2's header carries no time).
pub fn gzip(data: &[u8], w: impl Write) -> io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::new(6));
    gz.write_all(data)?;
    gz.finish()?.flush()
}

/// The running initramfs written back out as a newc cpio (`[[disk]]
/// bootloader`): the tree at `top` (`/` before switch_root) as the kernel
/// unpacked it. What is mounted on it (/proc, /sys, /dev, /run, the new
/// root) keeps its directory, empty. Device nodes, fifos and sockets are
/// left out: an image of ours has none (/dev is devtmpfs).
pub fn running_image(top: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    fn walk(ar: &mut Archive, dir: &Path, rel: &str, dev: u64) -> io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                ar.dir(&rel);
                if meta.dev() == dev {
                    walk(ar, &path, &rel, dev)?;
                }
            } else if kind.is_symlink() {
                ar.symlink(&rel, &std::fs::read_link(&path)?.to_string_lossy());
            } else if kind.is_file() {
                ar.file(&rel, meta.mode() & 0o7777, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut ar = Archive::default();
    walk(&mut ar, top, "", std::fs::metadata(top)?.dev())?;
    let mut out = Vec::new();
    ar.write(&mut out)?;
    Ok(out)
}

fn pad(w: &mut dyn Write, len: usize) -> io::Result<()> {
    w.write_all(&[0u8; 3][..(4 - len % 4) % 4])
}

/// The shared libraries a dynamically linked tool needs, from `ldd`.
fn libraries(tool: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(tool)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// A tool as /bin/<name> with the shared libraries it needs at their paths.
fn add_tool(ar: &mut Archive, tool: &Path) -> anyhow::Result<()> {
    let name = tool
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        bail!("--add-tool {}: not a file", tool.display());
    }
    ar.file(
        &format!("bin/{name}"),
        0o755,
        std::fs::read(tool).with_context(|| format!("reading {}", tool.display()))?,
    );
    for lib in libraries(tool)? {
        let data = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        ar.file(&lib.to_string_lossy(), 0o755, data);
    }
    if name == "busybox" {
        ar.symlink("bin/sh", "busybox");
    }
    Ok(())
}

/// The built-in hooks, then the site's (`--hooks DIR`), under `[hooks] dir`.
fn add_hooks(ar: &mut Archive, dir: &str, site: Option<&Path>) -> anyhow::Result<()> {
    let dir = dir.trim_matches('/');
    for (phase, name, text) in crate::hooks::BUILTIN {
        ar.file(
            &format!("{dir}/{phase}.d/{name}"),
            0o755,
            text.as_bytes().to_vec(),
        );
    }
    let Some(site) = site else {
        return Ok(());
    };
    for phase in ["post-sync", "pre-switch"] {
        let from = site.join(format!("{phase}.d"));
        let Ok(rd) = std::fs::read_dir(&from) else {
            continue;
        };
        for e in rd {
            let e = e.with_context(|| format!("reading {}", from.display()))?;
            let path = e.path();
            if !path.is_file() {
                continue;
            }
            let data =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            ar.file(&format!("{dir}/{phase}.d/{name}"), 0o755, data);
        }
    }
    Ok(())
}

/// What the image embeds as /etc/init-agent.toml: `--config`'s text, with a
/// `[trust]` table of the `--trust` keys appended; checked as the boot will
/// load it. `None`: neither was given.
fn embedded_config(
    config: Option<&Path>,
    trust: &[PathBuf],
) -> anyhow::Result<Option<(String, Config)>> {
    let keys = trust
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Key::parse(&text, &format!("--trust {}", p.display())).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<Key>>>()?;
    let (name, text) = match config {
        Some(conf) => (
            conf.display().to_string(),
            std::fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?,
        ),
        None if keys.is_empty() => return Ok(None),
        None => ("the embedded configuration".to_string(), String::new()),
    };
    let invalid = |what: &str, errors: Vec<ConfigError>| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{what}:{e}")).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    };
    let given = config::parse(&text).map_err(|e| invalid(&name, e))?;
    let text = with_trust(&text, &given, &name, &keys)?;
    let c =
        config::parse(&text).map_err(|e| invalid(&format!("{name} with the --trust keys"), e))?;
    Ok(Some((text, c)))
}

/// `text` (the configuration `given`) with a `[trust]` table of `keys`
/// appended. One it has already is not rewritten (comments and layout would
/// not survive): unless it lists the keys already, the admin lists them.
fn with_trust(text: &str, given: &Config, name: &str, keys: &[Key]) -> anyhow::Result<String> {
    let listed: Vec<String> = given.trust.parsed().flatten().map(|k| k.id()).collect();
    if keys.iter().all(|k| listed.contains(&k.id())) {
        return Ok(text.to_string());
    }
    let quoted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.base64())).collect();
    let has_trust = text
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("trust"));
    if has_trust {
        bail!(
            "{name} has a [trust] table already: list the keys in its `keys` instead of --trust (keys = [{}])",
            quoted.join(", ")
        );
    }
    let mut out = text.to_string();
    if !out.is_empty() {
        out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
    }
    out.push_str(
        "# mkinitramfs --trust: the keys a standard root must be signed with.\n[trust]\nkeys = [\n",
    );
    for (k, q) in keys.iter().zip(&quoted) {
        out.push_str(&format!("    {q}, # key {}\n", k.id()));
    }
    out.push_str("]\n");
    Ok(out)
}

pub fn run(args: &crate::cli::Mkinitramfs) -> anyhow::Result<bool> {
    let release_dir = args.modules_dir.join(&args.kernel_release);
    let db = ModuleDb::load(&release_dir)
        .with_context(|| format!("reading {}/modules.dep", release_dir.display()))?;
    let mut wanted: Vec<String> = DEFAULT_MODULES.iter().map(|s| s.to_string()).collect();
    let mut ar = Archive::default();
    let mut hooks_dir = crate::config::Hooks::default().dir;
    let mut client = args.nfs;
    if let Some((text, c)) = embedded_config(args.config.as_deref(), &args.trust)? {
        client = client.or(c.source.client);
        wanted.extend(c.boot.modules.iter().cloned());
        hooks_dir = c.hooks.dir;
        ar.file("etc/init-agent.toml", 0o644, text.into_bytes());
    }
    wanted.extend(args.module.iter().cloned());
    if client == Some(crate::cmdline::NfsClient::User) {
        // Sync-only images: the userspace client needs no NFS in the kernel.
        wanted.retain(|m| !NFS_MODULES.contains(&m.as_str()));
    }
    // A module this kernel lacks is left out with a note; the boot reports it again.
    let (order, missing) = db.order_available(&wanted);
    for e in missing {
        eprintln!("mkinitramfs: {e}: left out");
    }
    let moddir = format!("lib/modules/{}", args.kernel_release);
    for rel in &order {
        ar.file(
            &format!("{moddir}/{rel}"),
            0o644,
            std::fs::read(release_dir.join(rel))?,
        );
    }
    for meta in ["modules.dep", "modules.builtin", "modules.order"] {
        if let Ok(data) = std::fs::read(release_dir.join(meta)) {
            ar.file(&format!("{moddir}/{meta}"), 0o644, data);
        }
    }
    let agent = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding the init-agent binary")?,
    };
    ar.file(
        "init",
        0o755,
        std::fs::read(&agent).with_context(|| format!("reading {}", agent.display()))?,
    );
    for d in [
        "proc", "sys", "dev", "run", "tmp", "sysroot", "etc", "bin", "sbin",
    ] {
        ar.dir(d);
    }
    let mut tools: Vec<PathBuf> = Vec::new();
    for name in DEFAULT_TOOLS {
        match find_tool(name) {
            Some(p) => tools.push(p),
            None => eprintln!("mkinitramfs: {name} not found on this machine: left out"),
        }
    }
    tools.extend(args.add_tool.iter().cloned());
    for tool in &tools {
        add_tool(&mut ar, tool)?;
    }
    if let Ok(conf) = std::fs::read("/etc/mke2fs.conf") {
        ar.file("etc/mke2fs.conf", 0o644, conf);
    }
    add_hooks(&mut ar, &hooks_dir, args.hooks.as_deref())?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut cpio = Vec::new();
    ar.write(&mut cpio)?;
    gzip(&cpio, io::BufWriter::new(file))
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "mkinitramfs: {} with {} modules for {}",
        args.output.display(),
        order.len(),
        args.kernel_release
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{ID_A, ID_B, KEY_A, KEY_B};

    /// The embedded configuration for `--config` (its text, if any) and
    /// `--trust` files holding these keys.
    fn embedded(config: Option<&str>, keys: &[&str]) -> anyhow::Result<Option<(String, Config)>> {
        // One directory per call: the tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ia-mkinitramfs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = config.map(|text| {
            let p = dir.join("init-agent.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        let trust: Vec<PathBuf> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let p = dir.join(format!("{i}.pub"));
                std::fs::write(&p, format!("untrusted comment: minisign public key\n{k}\n"))
                    .unwrap();
                p
            })
            .collect();
        let r = embedded_config(conf.as_deref(), &trust);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn ids(c: &Config) -> Vec<String> {
        c.trust.parsed().map(|k| k.unwrap().id()).collect()
    }

    #[test]
    fn trust_keys_are_appended_to_the_embedded_configuration() {
        let site = "[boot]\nmode = \"sync\"\n\n[hosts]\nmaster = \"10.0.0.1\"";
        let (text, c) = embedded(Some(site), &[KEY_A, KEY_B]).unwrap().unwrap();
        assert!(text.starts_with(site), "{text}");
        assert_eq!(ids(&c), [ID_A, ID_B]);
        assert_eq!(c.hosts.len(), 1);
        // The configuration as the boot reads it.
        assert_eq!(crate::config::parse(&text).unwrap(), c);
        // Without --config: the [trust] table alone.
        let (text, c) = embedded(None, &[KEY_B]).unwrap().unwrap();
        assert!(text.starts_with("# mkinitramfs --trust"), "{text}");
        assert_eq!(ids(&c), [ID_B]);
        assert_eq!(c.boot, crate::config::Boot::default());
        // Without --trust: the file as it is; with neither: nothing.
        let (text, _) = embedded(Some(site), &[]).unwrap().unwrap();
        assert_eq!(text, site);
        assert!(embedded(None, &[]).unwrap().is_none());
    }

    #[test]
    fn trust_keys_are_refused_beside_a_trust_table_and_bad_keys() {
        let site = format!("[trust]\nkeys = [\"{KEY_A}\"]\n");
        // Listed there already: taken as it is.
        let (text, _) = embedded(Some(&site), &[KEY_A]).unwrap().unwrap();
        assert_eq!(text, site);
        let e = embedded(Some(&site), &[KEY_B]).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!("has a [trust] table already: list the keys in its `keys` instead of --trust (keys = [\"{KEY_B}\"])")),
            "{e}"
        );
        let e = embedded(None, &["RWQnot-a-key"]).unwrap_err().to_string();
        assert!(e.contains("0.pub: not a minisign public key"), "{e}");
        // A key given twice: the boot would refuse the file, so does mkinitramfs.
        let e = embedded(None, &[KEY_A, KEY_A]).unwrap_err().to_string();
        assert!(e.contains(&format!("key {ID_A} is listed twice")), "{e}");
        // A broken --config is reported at its own lines.
        let e = embedded(Some("[boot]\nmode = \"fast\"\n"), &[KEY_A])
            .unwrap_err()
            .to_string();
        assert!(e.contains("init-agent.toml:2:"), "{e}");
    }

    #[test]
    fn newc_entries_are_aligned_and_parents_come_first() {
        let mut ar = Archive::default();
        ar.file("lib/modules/x/a.ko", 0o644, b"abc".to_vec());
        ar.symlink("bin/sh", "busybox");
        let mut out = Vec::new();
        ar.write(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        let names: Vec<&str> = [
            "bin\0",
            "bin/sh\0",
            "lib\0",
            "lib/modules\0",
            "lib/modules/x\0",
            "lib/modules/x/a.ko\0",
            "TRAILER!!!\0",
        ]
        .into_iter()
        .collect();
        let mut at = 0;
        for n in names {
            let i = text[at..]
                .find(n)
                .unwrap_or_else(|| panic!("{n:?} missing or out of order"))
                + at;
            // Each name starts right after a 110-byte header that starts 4-aligned.
            assert_eq!((i - 110) % 4, 0, "{n:?}");
            assert_eq!(&text[i - 110..i - 104], "070701");
            at = i;
        }
        assert_eq!(out.len() % 4, 0);
    }
}
