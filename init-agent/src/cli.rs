//! Command-line interface of the `init-agent` binary: argument types only.

use std::path::PathBuf;

use argh::FromArgs;

/// init-agent: provisions a cluster node at boot (sync-on-boot, statelite, CDSL).
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Explain(Explain),
    CheckConfig(CheckConfig),
    Sync(Sync),
    Manifest(Manifest),
    Keygen(Keygen),
    Verify(Verify),
    Rollback(Rollback),
    Capture(Capture),
    Statelite(Statelite),
    Cdsl(Cdsl),
    Mkinitramfs(Mkinitramfs),
    Hosted(Hosted),
}

/// Assemble the new root from a dracut or initramfs-tools initramfs: the
/// host initramfs brings up the network (and, under dracut, mounts the
/// standard root on --root); the agent does the mode (sync, statelite,
/// overlay, update), CDSL and hooks on --root, and the host initramfs then
/// switches to it. Exits 0 when --root is ready (also by the `local`
/// fallback), 1 with a one-line cause otherwise.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "hosted")]
pub struct Hosted {
    /// where the host initramfs switches root to (/sysroot for dracut, /root for initramfs-tools)
    #[argh(option)]
    pub root: String,
    /// mount the standard root ourselves, with mount(2) (initramfs-tools,
    /// whose klibc nfsmount cannot mount NFSv4); else it is mounted on --root
    #[argh(switch)]
    pub mount: bool,
}

/// Print the boot plan for a kernel command line and configuration.
///
/// Kernel command line keys: ip=, BOOTIF=, ifname=, root=nfs:|nfs4:|nfs://|/dev/nfs|dhcp,
/// nfsroot=, NFSROOT=, STATEMNT=, MNTOPTS=, NODE=, XCAT=, rd.shell, rd.debug,
/// rd.break[=cmdline|net|pre-mount|mount|pre-pivot], rd.live.overlay.overlayfs,
/// init=, console=, ro, rw,
/// nameserver= (and ip='s <dns0>:<dns1> fields: DNS servers for host names),
/// and initagent.mode=sync|statelite|overlay|nfsroot|update|local,
/// initagent.disk=, initagent.config=, initagent.cluster=PATH|off,
/// initagent.fallback=local|shell|reboot|retry,
/// initagent.timeout=SECONDS, initagent.nodeid=, initagent.image=,
/// initagent.checksum[=0|1], initagent.cdsl=0|1, initagent.nfs=user|kernel.
///
/// The node's [[node]] row is matched by BOOTIF='s MAC, else NODE=, else ip='s
/// host name ("node row:", JSON node_row {row, name, by: mac|node|ip-hostname});
/// NODE= naming another row than the MAC's is an error. DHCP's host name names
/// the node but picks no row (the plan is made before DHCP answers): a note
/// says so, and with --dhcp hostname= which row it would have been. Litetree
/// $node, $image and $table.column (noderes, nodetype, nodepos) are expanded
/// from the row and its [[group]]s (JSON attributes) as the boot does; one
/// without a value is an error naming row, table, column and node.
///
/// A server named by host name (root=, STATEMNT=, [source] servers, litetree
/// directories, the DHCP root-path) resolves through the config's [hosts],
/// then DNS: ip='s dns0/dns1 and nameserver=, [net] dns, then DHCP's (options
/// 6, 119/15); [net] search, dns_timeout, dns_attempts. "name:" lines and the
/// resolve step say how each will be; one nothing can resolve is an error.
/// Once the standard root is reached the boot reads its cluster configuration
/// (initagent.cluster=, default /etc/init-agent/cluster.toml): --config-root
/// shows the plan made with it; "mode:" says where the mode came from.
/// In sync mode, [[disk]] bootloader = "extlinux" on the root disk adds the
/// step "install extlinux on <disk>" after the post-sync hooks (standalone
/// image): the standard root's /boot/vmlinuz-<running release>, this
/// initramfs and extlinux.conf with this command line in /boot/extlinux
/// (protected from the sync), extlinux --install chrooted in the copy, the
/// `/` partition marked bootable and the MBR boot code on that disk; each
/// part only when changed, a failure one line (the boot goes on).
/// Exits 1 when the plan has errors.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "explain")]
pub struct Explain {
    /// kernel command line to plan for (default: /proc/cmdline)
    #[argh(option)]
    pub cmdline: Option<String>,
    /// configuration file (default: initagent.config= of the command line, else
    /// /etc/init-agent.toml when it exists, else built-in defaults)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub json: bool,
    /// how the agent is packaged: standalone (default), dracut, initramfs-tools
    #[argh(option, default = "crate::boot::plan::Packaging::Standalone")]
    pub packaging: crate::boot::plan::Packaging,
    /// the new root under dracut / initramfs-tools (default /sysroot)
    #[argh(option)]
    pub root: Option<String>,
    /// the DHCP answer to assume, one KEY=VALUE per flag: root-path=,
    /// next-server=, server-id=, hostname=, dns= and search= (repeatable:
    /// options 6 and 119) (a root-path may hold commas)
    #[argh(option)]
    pub dhcp: Vec<String>,
    /// the standard root (or a copy of it): its cluster configuration
    /// (/etc/init-agent/cluster.toml, or initagent.cluster=) is merged as the
    /// boot merges it, and the plan made with it is shown
    #[argh(option)]
    pub config_root: Option<PathBuf>,
}

/// Check configuration files; report every error with line and column.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check-config")]
pub struct CheckConfig {
    /// files to check
    #[argh(positional, greedy)]
    pub files: Vec<PathBuf>,
}

/// Make DST an exact copy of SRC: rsync -aHAX --delete --numeric-ids semantics,
/// exact in one pass (mtimes to the nanosecond, directory mtimes, hardlink
/// groups), crash-safe (temporary + rename, DST/.init-agent/state marker), never
/// writing outside DST.
///
/// Patterns are rsync-like globs on paths relative to SRC: a leading / anchors
/// at the root (/etc/machine-id), otherwise they match at any depth (*.pid); a
/// trailing / matches directories only; * and ? stop at /, ** does not; dir/**
/// is everything below dir, dir/*** is dir and everything below it. Excluded
/// entries are neither copied nor deleted; protected ones are created when
/// missing but never overwritten nor deleted. /.init-agent is always excluded,
/// /lost+found always protected. Exits 1 when the sync failed (the marker then
/// stays in-progress).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sync")]
pub struct Sync {
    /// the standard root: a directory (e.g. the NFS mount), or
    /// nfs://HOST[:PORT]/PATH[?mountport=N] read with the built-in NFSv3 client
    #[argh(positional)]
    pub src: PathBuf,
    /// the local copy to bring in line
    #[argh(positional)]
    pub dst: PathBuf,
    /// pattern neither copied nor deleted (repeatable)
    #[argh(option)]
    pub exclude: Vec<String>,
    /// pattern of node-local state never deleted nor overwritten (repeatable)
    #[argh(option)]
    pub protect: Vec<String>,
    /// configuration file whose [sync] exclude/protect/checksum/jobs and [trust]
    /// keys apply too
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// compare contents of files whose size and mtime agree
    #[argh(switch)]
    pub checksum: bool,
    /// print what would change (one line per entry), change nothing
    #[argh(switch, short = 'n')]
    pub dry_run: bool,
    /// keep no rollback area: a cut run can be finished but not undone by
    /// `init-agent rollback` (for a disk without room for two versions of
    /// what a run replaces)
    #[argh(switch)]
    pub no_rollback: bool,
    /// write a JSON report (counts, bytes, seconds per phase) to this file
    #[argh(option)]
    pub report: Option<PathBuf>,
    /// worker threads (default: [sync] jobs of the config, else one per CPU;
    /// for nfs:// one per request in flight)
    #[argh(option)]
    pub jobs: Option<usize>,
    /// nfs:// sources: requests in flight at once, one connection each
    /// (default: [sync] inflight of the config, else 8)
    #[argh(option)]
    pub inflight: Option<usize>,
    /// no progress lines on stderr
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print one line per change on stdout: +created >replaced .metadata -deleted
    #[argh(switch, short = 'i')]
    pub itemize: bool,
    /// print the changes (with --dry-run: what would change) and the counts as
    /// one JSON document on stdout: {dry_run, changes: [{change:
    /// create|replace|meta|delete, kind, path}], counts}
    #[argh(switch)]
    pub json: bool,
    /// the standard root's manifest (init-agent manifest): only entries that
    /// differ from it are read from SRC; rejected (full walk) when it does not
    /// match SRC's generation or fails its integrity check
    #[argh(option)]
    pub manifest: Option<PathBuf>,
    /// without --manifest: use SRC/.init-agent/manifest when there is one
    /// (read through the source, so it works for nfs:// too)
    #[argh(switch)]
    pub source_manifest: bool,
    /// a trusted minisign public key file (repeatable): sync only a manifest
    /// one of them signed (--manifest, else SRC/.init-agent/manifest, with
    /// its .minisig), install only contents that hash to it, never walk
    #[argh(option)]
    pub trust: Vec<PathBuf>,
    /// with --trust: take a signed manifest with a lower serial than DST's
    /// last verified copy (a deliberate rollback)
    #[argh(switch)]
    pub allow_rollback: bool,
}

/// Record the standard root SRC in a manifest (paths, types, sizes, ns mtimes,
/// modes, owners, xattrs, hardlink groups, content hashes) and stamp its
/// generation into SRC/.init-agent/generation, so nodes can sync without walking
/// SRC. Run it after every change of the standard root.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "manifest")]
pub struct Manifest {
    /// the standard root
    #[argh(positional)]
    pub src: PathBuf,
    /// the manifest file to write
    #[argh(option, short = 'o')]
    pub output: PathBuf,
    /// pattern left out of the manifest (repeatable)
    #[argh(option)]
    pub exclude: Vec<String>,
    /// do not write SRC/.init-agent/generation (read-only sources)
    #[argh(switch)]
    pub no_stamp: bool,
    /// sign the manifest with this minisign secret key (init-agent keygen or
    /// minisign -G; an encrypted key asks for its password): writes
    /// OUTPUT.minisig, whose signed comment names the generation and serial
    #[argh(option)]
    pub sign: Option<PathBuf>,
    /// the signature's serial (default: one more than OUTPUT.minisig's, else
    /// 1); nodes refuse a serial lower than their last verified copy's
    #[argh(option)]
    pub serial: Option<u64>,
}

/// Make a minisign key pair for signing manifests: PREFIX.key (secret, mode
/// 0600) and PREFIX.pub (for mkinitramfs --trust, [trust] keys, sync --trust).
/// The minisign tool reads and makes the same files.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "keygen")]
pub struct Keygen {
    /// where to write PREFIX.key and PREFIX.pub (never over existing files)
    #[argh(option, short = 'o')]
    pub output: PathBuf,
    /// encrypt the secret key with the password in this file's first line
    /// (default: unencrypted, as minisign -G -W)
    #[argh(option)]
    pub password_file: Option<PathBuf>,
}

/// Audit a node's local copy ROOT against the standard root's manifest (of
/// `init-agent manifest`): list every difference, one line each: missing,
/// extra, type, content (BLAKE3 of every file), target (symlinks), device,
/// mode, owner, mtime, xattrs, hardlinks. Below a missing, extra or retyped
/// directory only the directory is listed. ROOT is walked without following
/// symlinks; /.init-agent is left out, /lost+found protected.
///
/// Patterns are those of `sync`: excluded paths are left out on both sides;
/// protected ones are left out where the node has them (a sync keeps them)
/// and missing where it lacks them (a sync creates them). By default the
/// boot's built-in lists apply, so that a node's own identity is not a
/// difference: protected /etc/machine-id, /etc/hostname,
/// /etc/ssh/ssh_host_*, /var/lib/systemd/random-seed, /var/log/** (SYNC_PROTECT
/// in boot/plan/disks.rs) and excluded /proc/**, /sys/**, /dev/**, /run/**
/// (SYNC_EXCLUDE: a boot never copies them). --all drops the protected list.
/// Exits 0 when ROOT is what the manifest says, 1 when it differs or the
/// signature does not verify, 2 on errors (unreadable manifest, I/O).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
pub struct Verify {
    /// the local copy to audit (e.g. / on a running node)
    #[argh(positional)]
    pub root: PathBuf,
    /// the standard root's manifest
    #[argh(option)]
    pub manifest: PathBuf,
    /// a trusted minisign public key (repeatable): MANIFEST.minisig must be
    /// a signature of one of them before anything is compared
    #[argh(option)]
    pub key: Vec<PathBuf>,
    /// print one JSON document: {manifest, generation, verified, identical,
    /// compared, counts, differences: [{path, what, found, expected, below}]}
    #[argh(switch)]
    pub json: bool,
    /// pattern left out on both sides (repeatable)
    #[argh(option)]
    pub exclude: Vec<String>,
    /// pattern of node-local state: compared only for being there (repeatable)
    #[argh(option)]
    pub protect: Vec<String>,
    /// configuration file whose [sync] exclude/protect apply too, as at boot
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// compare the node's identity too: no built-in protected list
    #[argh(switch)]
    pub all: bool,
}

/// Put back the last complete generation of a local copy whose sync was cut
/// (what a node in `local` fallback does before it boots the copy): what the
/// cut run created is removed, what it replaced or deleted is renamed back
/// from DST/.init-agent/rollback, the metadata it changed is set back, and
/// the copy is marked complete again. Exits 0 when DST is complete (rolled
/// back or already), 1 when it has no complete generation to go back to,
/// 2 on errors.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rollback")]
pub struct Rollback {
    /// the local copy (a synced root)
    #[argh(positional)]
    pub dst: PathBuf,
}

/// Capture a hand-tuned golden node as a new standard root (the reverse of
/// sync): SRC copied exactly into the new directory DEST without the node's
/// own identity and state, then its manifest.
///
/// SRC (the node's root, / on the running node, or its disk mounted
/// elsewhere) is copied by the sync engine, as exactly (rsync -aHAX: owners,
/// modes, ns mtimes, hardlinks, xattrs, ACLs, holes), into DEST, a new
/// directory (missing or empty; one whose capture was cut short is resumed),
/// never inside a standard root (a directory with .init-agent/manifest or
/// generation). DEST is a directory: on the master, or the master's export
/// mounted on the node (the userspace NFS client only reads).
///
/// Left out, with why, printed first: what a sync keeps per node (SYNC_PROTECT:
/// /etc/machine-id, /etc/hostname, /etc/ssh/ssh_host_*,
/// /var/lib/systemd/random-seed, /var/log/**) and never copies (/proc/**,
/// /sys/**, /dev/**, /run/**), /tmp/**, /lost+found,
/// /etc/udev/rules.d/70-persistent-net.rules, swap files (/proc/swaps), the
/// contents of every mount below SRC that is not on a block device (a tmpfs,
/// the NFS export DEST is on, an NFS /home), DEST itself when inside SRC, the
/// config's [sync] exclude and protect, and --exclude. /etc/machine-id is
/// written empty (systemd's first boot, as Debian's images ship it). Then
/// DEST/.init-agent/manifest is written (init-agent manifest, optionally
/// signed). Nothing switches to DEST: the admin does, when satisfied.
/// Exits 1 when refused or failed.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "capture")]
pub struct Capture {
    /// the golden node's root (/ on the running node)
    #[argh(positional)]
    pub src: PathBuf,
    /// the new directory to capture into
    #[argh(positional)]
    pub dest: PathBuf,
    /// check DEST and print what would be left out; write nothing
    #[argh(switch, short = 'n')]
    pub dry_run: bool,
    /// pattern left out too (repeatable)
    #[argh(option)]
    pub exclude: Vec<String>,
    /// configuration file whose [sync] exclude and protect are left out too
    /// (the node-local paths of the site), and whose [sync] jobs apply
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// sign the manifest with this minisign secret key (as manifest --sign)
    #[argh(option)]
    pub sign: Option<PathBuf>,
    /// the signature's serial (as manifest --serial)
    #[argh(option)]
    pub serial: Option<u64>,
    /// worker threads (default: [sync] jobs of the config, else one per CPU)
    #[argh(option)]
    pub jobs: Option<usize>,
    /// print one JSON document on stdout: {source, destination,
    /// destination_was, left_out: [{pattern, why}], sync (the sync report),
    /// manifest, generation, entries}
    #[argh(switch)]
    pub json: bool,
    /// no progress lines on stderr
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// xCAT statelite: import tables, prepare an image, apply them to a root.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "statelite")]
pub struct Statelite {
    #[argh(subcommand)]
    pub command: StateliteCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum StateliteCommand {
    ImportXcat(ImportXcat),
    Liteimg(StateliteLiteimg),
    Apply(StateliteApply),
}

/// Read xCAT tabdump CSV (litefile, litetree, statelite tables; nodelist,
/// noderes, nodetype, nodepos for the nodes) and print the [statelite],
/// [[node]] and [[group]] TOML for init-agent.toml; disabled rows are left out.
/// A noderes/nodetype/nodepos row whose node is a group in nodelist's groups
/// column becomes a [[group]] row, any other a [[node]] row (name only: add
/// each node's mac, or boot it with NODE=).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "import-xcat")]
pub struct ImportXcat {
    /// the `tabdump litefile` output
    #[argh(option)]
    pub litefile: PathBuf,
    /// the `tabdump litetree` output
    #[argh(option)]
    pub litetree: Option<PathBuf>,
    /// the `tabdump statelite` output
    #[argh(option)]
    pub statelite: Option<PathBuf>,
    /// the `tabdump nodelist` output: node names and their groups
    #[argh(option)]
    pub nodelist: Option<PathBuf>,
    /// the `tabdump noderes` output: $noderes.<column> values
    #[argh(option)]
    pub noderes: Option<PathBuf>,
    /// the `tabdump nodetype` output: $nodetype.<column> values
    #[argh(option)]
    pub nodetype: Option<PathBuf>,
    /// the `tabdump nodepos` output: $nodepos.<column> values
    #[argh(option)]
    pub nodepos: Option<PathBuf>,
}

/// Prepare an image as xCAT's liteimg does, and only that: each top-level
/// link entry's original moves to /.default<path> and <path> becomes the
/// link into /.statelite/tmpfs. What it made is recorded in
/// /.statelite/liteimg.json; a later run undoes it for rows since removed
/// (the original moved back). A second run changes nothing and says so.
/// Example: init-agent statelite liteimg --root /install/netboot/img --dry-run
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "liteimg")]
pub struct StateliteLiteimg {
    /// the image directory (writable)
    #[argh(option)]
    pub root: PathBuf,
    /// configuration with the [statelite] tables (default: the image's /etc/init-agent.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// image name matched against the tables (default: [statelite] image, else ALL rows only)
    #[argh(option)]
    pub image: Option<String>,
    /// print the actions, change nothing
    #[argh(switch)]
    pub dry_run: bool,
}

/// Apply the statelite tables to a mounted root as the boot does: tmpfs
/// /.statelite, the node's persistent directory, litetree mounts, then each
/// litefile entry (copies, binds, xCAT link chains; liteimg's preparation of
/// link entries when the root is writable). Prints every action.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "apply")]
pub struct StateliteApply {
    /// the root (image directory or mounted NFS root)
    #[argh(option)]
    pub root: PathBuf,
    /// node name: its persistent directory is <state>/<node>
    #[argh(option)]
    pub node: String,
    /// image name matched against the tables (default: [statelite] image, else ALL rows only)
    #[argh(option)]
    pub image: Option<String>,
    /// persistent store: a local directory, or <server>:<path> over NFS
    #[argh(option)]
    pub state: Option<String>,
    /// configuration with the [statelite] tables
    #[argh(option)]
    pub config: PathBuf,
    /// litetree variable TABLE.COLUMN=VALUE (repeatable), added to and
    /// overriding the attributes of the config's [[node]] row named --node
    /// and its [[group]]s
    #[argh(option)]
    pub var: Vec<String>,
}

/// Open-Sharedroot CDSLs in a shared root: per-node trees under
/// /cluster/cdsl/<nodeid>, host-dependent paths as relative symlinks through
/// /cdsl.local (each node binds its own tree there at boot).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cdsl")]
pub struct Cdsl {
    #[argh(subcommand)]
    pub command: CdslCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum CdslCommand {
    Init(CdslInit),
    Hostdep(CdslPath),
    Shared(CdslShared),
    List(CdslList),
}

/// Create the infrastructure: the default tree, one tree per node (a copy of
/// the default), the shared tree and the link point.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "init")]
pub struct CdslInit {
    /// the shared root
    #[argh(option)]
    pub root: PathBuf,
    /// node ids: --nodes 1,2,3 or --nodes 1 --nodes 2
    #[argh(option)]
    pub nodes: Vec<String>,
    /// configuration with a [cdsl] section (default: built-in paths)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Make PATH host-dependent: copied into every node's tree, replaced by a
/// relative symlink through the link point. A PATH made shared inside a
/// host-dependent directory becomes host-dependent again: each tree gets its
/// own copy of the shared one.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "hostdep")]
pub struct CdslPath {
    /// the shared root
    #[argh(option)]
    pub root: PathBuf,
    /// configuration with a [cdsl] section (default: built-in paths)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// absolute path inside the root
    #[argh(positional)]
    pub path: String,
}

/// Make a host-dependent PATH shared again (from the default tree). A PATH
/// inside a host-dependent directory (com-mkcdsl -s) moves from the default
/// tree to the shared tree and each node's tree links to it.
/// Example: init-agent cdsl hostdep --root R /var; init-agent cdsl shared --root R /var/lib
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "shared")]
pub struct CdslShared {
    /// the shared root
    #[argh(option)]
    pub root: PathBuf,
    /// configuration with a [cdsl] section (default: built-in paths)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// absolute path inside the root
    #[argh(positional)]
    pub path: String,
}

/// List the node trees, the host-dependent paths and the shared paths inside
/// them.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct CdslList {
    /// the shared root
    #[argh(option)]
    pub root: PathBuf,
    /// configuration with a [cdsl] section (default: built-in paths)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Write a standalone initramfs (gzip'ed newc cpio): this binary as /init,
/// the modules the boot needs with their dependencies, optional configuration,
/// the post-sync hooks, and tools with their shared libraries: sfdisk, mke2fs,
/// mkswap, mkfs.xfs, mkfs.vfat and busybox (as /bin/sh, the emergency shell)
/// when this machine has them, plus --add-tool.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "mkinitramfs")]
pub struct Mkinitramfs {
    /// kernel release (uname -r of the node kernel)
    #[argh(option)]
    pub kernel_release: String,
    /// directory holding <release>/modules.dep (e.g. /lib/modules)
    #[argh(option)]
    pub modules_dir: PathBuf,
    /// the initramfs to write
    #[argh(option)]
    pub output: PathBuf,
    /// configuration to embed as /etc/init-agent.toml
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// a public key file (keygen's PREFIX.pub) the node trusts, repeatable:
    /// added as a [trust] table to the embedded configuration (sync mode
    /// then boots only roots signed by one of the keys)
    #[argh(option)]
    pub trust: Vec<PathBuf>,
    /// extra tool to include, repeatable
    #[argh(option)]
    pub add_tool: Vec<PathBuf>,
    /// directory with site hooks (post-sync.d/, pre-switch.d/) to add to the
    /// built-in ones; a hook of the same name replaces the built-in one
    #[argh(option)]
    pub hooks: Option<PathBuf>,
    /// extra kernel module, repeatable
    #[argh(option)]
    pub module: Vec<String>,
    /// the init-agent binary to use as /init (default: this one)
    #[argh(option)]
    pub binary: Option<PathBuf>,
    /// NFS client the image boots with: kernel (default, every mode) or user
    /// (sync mode only: the NFS kernel modules are left out); default: the
    /// config's [source] client
    #[argh(option)]
    pub nfs: Option<crate::cmdline::NfsClient>,
}
