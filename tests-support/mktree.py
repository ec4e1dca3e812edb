#!/usr/bin/env python3
"""Deterministic test trees for the sync tests (run as root, stdlib only).

    mktree.py ROOT --seed N [--profile hostile|small|mutate] [--verbose]

hostile (ROOT missing or empty): odd names (newline, space, tab, CR, backslash,
  invalid UTF-8, NFC/NFD twins, 255 bytes, leading dash, '..a'), a 200-deep
  directory chain, 300+ files of edge sizes (0, 1, 4095, 4096, 4097, 1 MiB), sparse
  files, hardlink groups of 2-4 across directories (also of symlinks, fifos,
  devices, empty files), symlinks (relative, absolute, dangling, loops, escaping,
  to directories, odd and 4000-byte targets), fifos, devices, a socket, modes
  0000/4755/2755/6755/1777/0600/0000-dir, owners without passwd entries (symlinks
  too), user.* and trusted.* xattrs (odd names, binary and 3000-byte values, on a
  symlink), access and default ACLs (setfacl), a file capability (setcap),
  excluded-looking names deeper down (sub/.init-agent, sub/lost+found), identical
  separate twins, and nanosecond mtimes on everything (pre-1970 and post-2038 too),
  set last, directories deepest first.
small (ROOT missing or empty): a few directories and files, a symlink, a hardlink pair.
mutate (ROOT made by this script): what quick checks and naive copiers miss:
  same-size edits in the same second (other ns), same-size edits with the full
  mtime restored (listed, escaped as treelist.py does, in ROOT/../mutate-checksum-only.txt,
  the only file written outside ROOT), ns-only mtime changes, deletions of files and
  subtrees, type changes both ways (file<->dir, dir<->symlink, file->symlink,
  fifo->file, ...), a hardlink group split (identical copy, same metadata) and one
  formed from identical twins, a new link joining a group, mode/owner/xattr/ACL/
  capability changes only, directory renames and a swap, a new deep subtree; then
  new ns mtimes on every directory touched, deepest first.

Randomness comes only from random.Random(seed): the same arguments on an empty
ROOT give the same tree. Symlinks are never followed; ROOT may be neither "/" nor
a symlink; top-level .init-agent and lost+found are never touched by mutate.
"""
import argparse
import errno
import os
import random
import shutil
import socket
import stat
import subprocess
import sys

MARK = "trusted.mktree"  # on ROOT: which profile and seed made it
SKIP_TOP = {b".init-agent", b"lost+found"}
VERBOSE = False
_warned = set()


def die(msg):
    sys.exit("mktree: " + msg)


def warn(msg):
    if msg not in _warned:
        _warned.add(msg)
        print("mktree: warning: " + msg, file=sys.stderr)


def log(msg):
    if VERBOSE:
        print("mktree: " + msg, file=sys.stderr)


def esc(b: bytes) -> str:
    """As treelist.py escapes paths."""
    return "".join("\\\\" if c == 0x5C else chr(c) if 0x21 <= c <= 0x7E else "\\x%02x" % c
                   for c in b)


def find_tool(name):
    p = shutil.which(name)
    if p is None:
        for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return p


def tool(*cmd):
    """Run setfacl/setcap; missing or unsupported: warn and go on."""
    exe = find_tool(cmd[0])
    if exe is None:
        warn("%s missing, skipped (install %s)" % (cmd[0], {"setfacl": "acl", "setcap": "libcap2-bin"}
                                                   .get(cmd[0], cmd[0])))
        return False
    r = subprocess.run([exe] + [os.fsdecode(c) if isinstance(c, bytes) else c for c in cmd[1:]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        warn("%s failed: %s" % (" ".join(map(str, cmd[:-1])), r.stdout.decode(errors="replace").strip()))
        return False
    return True


def setx(path, name, value, follow=False):
    try:
        os.setxattr(path, name, value, follow_symlinks=follow)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EPERM):
            raise
        warn("xattr %s unsupported here (%s), skipped" % (name.split(".")[0], e.strerror))


def write(path, data=b"", mode=0o644):
    """A new file only: never follows a symlink, never overwrites."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def make_socket(directory, name):
    """A socket file left behind by a bound, closed unix socket."""
    s = socket.socket(socket.AF_UNIX)
    cwd = os.open(".", os.O_RDONLY)
    try:
        os.chdir(directory)  # sun_path holds 108 bytes: bind a relative name
        s.bind(name)
    finally:
        s.close()
        os.fchdir(cwd)
        os.close(cwd)


def rand_ns(rng):
    """An mtime in 2001..2030 with nonzero nanoseconds."""
    return rng.randrange(1_000_000_000, 1_900_000_000) * 10**9 + rng.randrange(1, 10**9)


def utime(path, ns):
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def walk(root):
    """Sorted relative paths below ROOT, never following symlinks, top-level
    .init-agent and lost+found left out."""
    out = []
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                if not rel and e.name in SKIP_TOP:
                    continue
                r = os.path.join(rel, e.name) if rel else e.name
                out.append(r)
                if e.is_dir(follow_symlinks=False):
                    stack.append(r)
    out.sort()
    return out


def depth(rel):
    return rel.count(b"/") + 1 if rel else 0


def stamp_all(root, rng, fixed):
    """ns mtimes on every entry: non-directories, then directories deepest first,
    ROOT last, so that no later change moves a directory's mtime."""
    rels = walk(root)
    kinds = {r: os.lstat(os.path.join(root, r)).st_mode for r in rels}
    for r in rels:
        if not stat.S_ISDIR(kinds[r]):
            t = rand_ns(rng)
            utime(os.path.join(root, r), fixed.get(r, t))
    dirs = [r for r in rels if stat.S_ISDIR(kinds[r])]
    for r in sorted(dirs, key=lambda r: (-depth(r), r)) + [b""]:
        t = rand_ns(rng)
        utime(os.path.join(root, r) if r else root, fixed.get(r, t))


# --------------------------------------------------------------------------- hostile

ODD_NAMES = [b"new\nline", b"back\\slash", b"\\x41", b"A", b"\xff\xfe", b"\xff\xfe-invalid",
             b"-leading-dash", b"--delete", b"-", b"..a", b"...", b".hidden", b"sp ace",
             b" leading-space", b"trailing-space ", b"tab\there", b"cr\rhere", b"\x01ctl",
             b"x" * 255, "ünïcode".encode(), "caf\u00e9".encode(), "cafe\u0301".encode(),
             b"CASE", b"case", b"star*?[ok]", b"colon:semi;", b"quote'\"", b"percent%s",
             b"~tilde", b"#hash", b"{brace}", b"a=b", b"\x7f"]


def hostile(root, rng):
    j = lambda *p: os.path.join(root, *p)
    fixed = {}  # rel path -> mtime ns, for the edge cases
    for d in (b"etc", b"usr/bin", b"usr/lib", b"names", b"links", b"hard", b"dev", b"modes",
              b"owners", b"xattrs", b"sparse", b"dups", b"times", b"empty", b"sub", b"data"):
        os.makedirs(j(d))

    # Odd names: files, directories holding files, a symlink with an odd target.
    for n in ODD_NAMES:
        write(j(b"names", n), n + b"\n")
    for n in (b"dir\nnl", b"\xff dir", b"d" * 255, b"-dir", b".hidden-dir"):
        os.mkdir(j(b"names", n))
        write(j(b"names", n, b"y" * 255 if n == b"d" * 255 else b"inside"), rng.randbytes(100))
    os.symlink(b"target\nwith\xffbytes and space", j(b"names", b"link\n\xff"))

    # A 200-deep chain (about 1800 bytes of path), with a link back up half way.
    chain = [b"level%03d" % i for i in range(200)]
    os.makedirs(j(b"deep", *chain))
    write(j(b"deep", *chain, b"bottom"), b"deep\n")
    write(j(b"deep", *chain[:100], b"middle"), rng.randbytes(5000))
    os.symlink(b"../" * 100 + b"level000", j(b"deep", *chain[:100], b"up"))

    # 300+ regular files of edge and random sizes over 12 directories.
    edge = [0, 1, 4095, 4096, 4097, 65535, 65536, 65537]
    big = 0
    for i in range(324):
        d = j(b"data", b"%02d" % (i % 12))
        os.makedirs(d, exist_ok=True)
        if i < 4 * len(edge):
            size = edge[i % len(edge)]
        elif i % 50 == 7 and big < 5:
            size, big = 1 << 20, big + 1
        else:
            size = rng.choice([rng.randrange(0, 200), rng.randrange(0, 20000), rng.randrange(0, 150000)])
        write(os.path.join(d, b"f%03d" % i), rng.randbytes(size))
    for i, n in enumerate((b"passwd", b"group", b"hostname", b"fstab", b"os-release")):
        write(j(b"etc", n), rng.randbytes(50 + 30 * i))
    for i in range(10):
        write(j(b"usr/lib", b"lib%d.so" % i), rng.randbytes(rng.randrange(1000, 40000)), 0o755)

    # Sparse files (truncate + pwrite): 64 MiB with data at 0 and 40 MiB, all hole, tail only.
    for name, size, extents in ((b"s64", 64 << 20, [(0, 5000), (40 << 20, 7000)]),
                                (b"hole16", 16 << 20, []),
                                (b"tail8", 8 << 20, [((8 << 20) - 3000, 3000)])):
        fd = os.open(j(b"sparse", name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.ftruncate(fd, size)
            for off, n in extents:
                os.pwrite(fd, rng.randbytes(n), off)
        finally:
            os.close(fd)

    # Hardlink groups of 2-4, across directories, of every linkable kind.
    write(j(b"usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755)
    os.link(j(b"usr/bin/tool"), j(b"usr/bin/tool-alias"))
    os.link(j(b"usr/bin/tool"), j(b"links/tool-copy"))
    write(j(b"hard/g4-1"), rng.randbytes(3000))
    for p in (j(b"data/00/g4-2"), j(b"names/g4\nodd"), j(b"etc/g4-4")):
        os.link(j(b"hard/g4-1"), p)
    write(j(b"hard/g2a"), rng.randbytes(10))
    os.link(j(b"hard/g2a"), j(b"hard/g2b"))
    write(j(b"hard/meta1"), b"with metadata\n", 0o600)
    os.link(j(b"hard/meta1"), j(b"xattrs/meta2"))
    setx(j(b"hard/meta1"), "user.shared", b"one inode")
    os.chown(j(b"hard/meta1"), 12345, 54321)
    write(j(b"hard/empty1"))
    os.link(j(b"hard/empty1"), j(b"hard/empty2"))
    os.symlink(b"../etc/passwd", j(b"hard/sym1"))
    os.link(j(b"hard/sym1"), j(b"hard/sym2"), follow_symlinks=False)
    os.mkfifo(j(b"hard/fifo1"))
    os.link(j(b"hard/fifo1"), j(b"hard/fifo2"))
    os.mknod(j(b"hard/null1"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.link(j(b"hard/null1"), j(b"hard/null2"))
    data_files = sorted(r for r in walk(j(b"data")) if b"/f" in r)
    for r in rng.sample(data_files, 8):
        for k in range(rng.randrange(1, 4)):
            os.link(j(b"data", r), j(b"data", b"%02d" % rng.randrange(12), b"%s-link%d" % (r.replace(b"/", b"_"), k)))

    # Identical separate twins (same content and metadata): mutate joins a pair.
    for i in range(3):
        content, t = rng.randbytes(rng.randrange(1, 3000)), rand_ns(rng)
        for side in (b"a", b"b"):
            r = b"dups/twin%d-%s" % (i, side)
            write(j(r), content, 0o640)
            fixed[r] = t

    # Symlinks.
    for name, target in ((b"rel", b"../usr/bin/tool"), (b"abs", b"/etc/passwd"),
                         (b"dangling", b"nowhere/at/all"), (b"loop-a", b"loop-b"),
                         (b"loop-b", b"loop-a"), (b"self", b"self"),
                         (b"escape", b"../../../../etc/passwd"), (b"to-dir", b"../usr"),
                         (b"abs-dir", b"/usr"), (b"dot", b"."), (b"dotdot", b".."),
                         (b"long", (b"abcdefghi/" * 400)[:4000]), (b"-dash", b"-n")):
        os.symlink(target, j(b"links", name))

    # Special files.
    os.mkfifo(j(b"dev/fifo"))
    os.mknod(j(b"dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(j(b"dev/loop0"), 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    os.mknod(j(b"dev/bigdev"), 0o600 | stat.S_IFCHR, os.makedev(259, 65536))
    os.mknod(j(b"dev/nvme-like"), 0o660 | stat.S_IFBLK, os.makedev(259, 3))
    for r, mode in ((b"dev/null", 0o666), (b"dev/loop0", 0o660), (b"dev/nvme-like", 0o660),
                    (b"hard/null1", 0o666), (b"hard/fifo1", 0o620)):
        os.chmod(j(r), mode)
    make_socket(j(b"dev"), "socket")
    make_socket(j(b"owners"), "socket")

    # Excluded-looking names below the top: only the top-level ones are excluded.
    for d in (b"sub/.init-agent", b"sub/lost+found", b"sub/deeper/.init-agent"):
        os.makedirs(j(d))
        write(j(d, b"state"), b"not the engine's\n")
    os.mkdir(j(b"empty/also-empty"))

    # Modes (contents first: chmod comes last among content changes).
    write(j(b"modes/zero"), b"0000\n")
    write(j(b"modes/suid"), b"suid\n")
    write(j(b"modes/sgid"), b"sgid\n")
    write(j(b"modes/both"), b"6755\n")
    write(j(b"modes/sticky-file"), b"1644\n")
    write(j(b"modes/exec-only"), b"0111\n")
    for d in (b"tmp", b"private", b"locked", b"sgid-dir", b"wx"):
        os.mkdir(j(b"modes", d))
        write(j(b"modes", d, b"inside"), d)

    # Owners with no passwd entry, on every kind, symlinks included.
    ids = [(12345, 54321), (4242, 4343), (2147483648, 2147483649), (4000000000, 65534), (0, 12345),
           (54321, 0)]
    write(j(b"owners/file"), b"owned\n")
    os.mkdir(j(b"owners/dir"))
    os.symlink(b"file", j(b"owners/symlink"))
    os.mkfifo(j(b"owners/fifo"))
    os.mknod(j(b"owners/chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    for (uid, gid), n in zip(ids, (b"file", b"dir", b"symlink", b"fifo", b"chr", b"")):
        os.chown(j(b"owners", n), uid, gid, follow_symlinks=False)
    os.chown(j(b"links/rel"), 777, 888, follow_symlinks=False)
    os.chown(j(b"modes/suid"), 12345, 54321)
    os.chown(j(b"modes/private"), 4242, 4343)
    os.chown(j(b"dev/socket"), 12345, 54321)
    for r in rng.sample(data_files, 20):
        os.chown(j(b"data", r), *rng.choice(ids), follow_symlinks=False)

    for r, m in ((b"modes/zero", 0o000), (b"modes/suid", 0o4755), (b"modes/sgid", 0o2755),
                 (b"modes/both", 0o6755), (b"modes/sticky-file", 0o1644),
                 (b"modes/exec-only", 0o111), (b"modes/tmp", 0o1777), (b"modes/private", 0o600),
                 (b"modes/locked", 0o000), (b"modes/sgid-dir", 0o2775), (b"modes/wx", 0o333),
                 (b"owners/file", 0o4750)):
        os.chmod(j(r), m)
    for r in rng.sample(data_files, 20):
        os.chmod(j(b"data", r), rng.choice([0o600, 0o640, 0o755, 0o444, 0o4711, 0o2700, 0o000]))

    # xattrs: user.* and trusted.* on files and directories, odd names and values.
    setx(j(b"etc"), "trusted.overlay.opaque", b"y")
    setx(j(b"etc"), "user.dir-note", b"a directory")
    setx(j(b"modes/zero"), "user.note", b"hello")
    setx(j(b"xattrs"), "trusted.dir", bytes(range(256)))
    write(j(b"xattrs/many"), b"many\n")
    for i in range(20):
        setx(j(b"xattrs/many"), "user.k%02d" % i, rng.randbytes(rng.randrange(0, 40)))
    write(j(b"xattrs/big"), b"big\n")
    setx(j(b"xattrs/big"), "user.big", rng.randbytes(3000))
    setx(j(b"xattrs/big"), "trusted.secret", b"\x00\x01\x02\xff")
    write(j(b"xattrs/empty-value"), b"")
    setx(j(b"xattrs/empty-value"), "user.empty", b"")
    write(j(b"xattrs/odd-names"), b"odd\n")
    setx(j(b"xattrs/odd-names"), "user.with space", b"1")
    setx(j(b"xattrs/odd-names"), os.fsdecode(b"user.inv\xffalid"), b"2")
    setx(j(b"xattrs/odd-names"), "user.new\nline", b"3")
    os.symlink(b"many", j(b"xattrs/symlink"))
    setx(j(b"xattrs/symlink"), "trusted.on-link", b"symlink xattr")
    for r in rng.sample(data_files, 15):
        setx(j(b"data", r), rng.choice(["user.r", "trusted.r"]), rng.randbytes(rng.randrange(1, 64)))

    # ACLs: access + default on a directory (children inherit), access ACL on a file.
    os.mkdir(j(b"acl"))
    if tool("setfacl", "-m", "u:1234:rwx,g:99:r-x,m::rwx", j(b"acl")):
        tool("setfacl", "-d", "-m", "u:1234:r-x,g:4242:rwx,o::---", j(b"acl"))
    write(j(b"acl/inherits"), b"inherited acl\n", 0o666)
    os.mkdir(j(b"acl/subdir"))
    write(j(b"acl/subdir/inner"), b"inner\n")
    os.mkdir(j(b"acl2"))
    if tool("setfacl", "-d", "-m", "u:12345:rwx,g:54321:r-x", j(b"acl2")):
        tool("setfacl", "-m", "g:54321:rwx", j(b"acl2"))
    write(j(b"acl2/inherits"), b"inherited default acl\n", 0o640)
    write(j(b"acl-file"), b"file acl\n", 0o640)
    tool("setfacl", "-m", "u:31337:rw-,g:0:r--", j(b"acl-file"))

    # A file capability, after every chown (chown drops capabilities).
    write(j(b"usr/bin/capped"), b"#!/bin/sh\necho ping\n", 0o755)
    tool("setcap", "cap_net_raw+ep", j(b"usr/bin/capped"))
    tool("setcap", "cap_net_admin,cap_sys_time+eip", j(b"usr/bin/tool"))

    # Edge mtimes.
    write(j(b"times/pre-1970"), b"1966\n")
    write(j(b"times/post-2038"), b"2100\n")
    write(j(b"times/ns-1"), b"1\n")
    write(j(b"times/ns-max"), b"999999999\n")
    os.mkdir(j(b"times/old-dir"))
    os.symlink(b"pre-1970", j(b"times/old-link"))
    fixed.update({b"times/pre-1970": -123_456_789 * 10**9 + 7,
                  b"times/post-2038": 4_102_444_800 * 10**9 + 123_456_789,
                  b"times/ns-1": 1_700_000_000 * 10**9 + 1,
                  b"times/ns-max": 1_700_000_000 * 10**9 + 999_999_999,
                  b"times/old-dir": -1 * 10**9 + 500,
                  b"times/old-link": 86_400 * 10**9 + 42})
    return fixed


def small(root, rng):
    j = lambda *p: os.path.join(root, *p)
    for d in (b"etc/conf.d", b"usr/bin", b"var/lib/app", b"home/user"):
        os.makedirs(j(d))
    write(j(b"etc/hostname"), b"node\n")
    write(j(b"etc/conf.d/net"), rng.randbytes(300))
    write(j(b"usr/bin/a"), b"#!/bin/sh\necho a\n", 0o755)
    os.link(j(b"usr/bin/a"), j(b"usr/bin/b"))
    os.symlink(b"../etc/hostname", j(b"usr/host"))
    write(j(b"var/lib/app/db"), rng.randbytes(rng.randrange(5000, 50000)), 0o600)
    write(j(b"home/user/.profile"), b"export PATH\n")
    os.chown(j(b"home/user"), 1000, 1000)
    os.chown(j(b"home/user/.profile"), 1000, 1000)
    return {}


# --------------------------------------------------------------------------- mutate

class Mutator:
    def __init__(self, root, rng):
        self.root, self.rng = root, rng
        self.snap = walk(root)
        self.claimed = set()
        self.claimed_anc = set()  # every ancestor of a claimed path
        self.cache = {}           # rel -> (lstat, xattr names), dropped on change
        self.touched = set()   # directories whose mtime must be set again
        self.checksum_only = []
        self.n = 0

    def j(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def lst(self, rel):
        try:
            return os.lstat(self.j(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def xn(self, rel):
        """xattr names of rel (cached while rel is unchanged)."""
        return self.cached(rel)[1]

    def cached(self, rel):
        c = self.cache.get(rel)
        if c is None:
            st = self.lst(rel)
            c = (st, os.listxattr(self.j(rel), follow_symlinks=False) if st else [])
            self.cache[rel] = c
        return c

    def forget(self, rel):
        pre = rel + b"/"
        for k in [k for k in self.cache if k == rel or k.startswith(pre)]:
            del self.cache[k]

    def free(self, rel):
        """Neither claimed, nor inside nor above a claimed path."""
        if rel in self.claimed or rel in self.claimed_anc:
            return False
        p = os.path.dirname(rel)
        while p:
            if p in self.claimed:
                return False
            p = os.path.dirname(p)
        return True

    def claim(self, *rels):
        for r in rels:
            self.claimed.add(r)
            self.forget(r)
            p = os.path.dirname(r)
            while p:
                self.claimed_anc.add(p)
                p = os.path.dirname(p)

    def changed(self, rel):
        """rel was created, removed or renamed: its parent's mtime moved."""
        self.forget(rel)
        self.touched.add(os.path.dirname(rel))

    def pick(self, what, pred, claim=True, quiet=False):
        cands = []
        clear = {b"": True}  # neither r nor any ancestor of r claimed
        for r in self.snap:
            p = r.rpartition(b"/")[0]
            up = clear[p] if p in clear else self.free(p)
            clear[r] = up and r not in self.claimed
            if not clear[r] or r in self.claimed_anc:
                continue
            st = self.cached(r)[0]
            if st is not None and pred(r, st):
                cands.append(r)
        if not cands:
            if not quiet:
                warn("mutate: no candidate for %s, skipped" % what)
            return None
        r = self.rng.choice(cands)
        if claim:
            self.claim(r)
        log("%s: %s" % (what, esc(r)))
        self.n += 1
        return r

    def stamp(self, rel):
        utime(self.j(rel), rand_ns(self.rng))

    def new_dir(self, rel):
        os.mkdir(self.j(rel))
        self.changed(rel)
        self.touched.add(rel)

    def new_file(self, rel, data):
        write(self.j(rel), data)
        self.changed(rel)
        self.stamp(rel)

    def new_symlink(self, target, rel):
        os.symlink(target, self.j(rel))
        self.changed(rel)
        self.stamp(rel)

    def remove(self, rel):
        st = self.lst(rel)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(self.j(rel))  # fd-based, never follows symlinks
        else:
            os.unlink(self.j(rel))
        self.changed(rel)


def flip_byte(path, rng):
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        off = rng.randrange(size)
        b = os.pread(fd, 1, off)
        os.pwrite(fd, bytes([b[0] ^ (1 + rng.randrange(255))]), off)
    finally:
        os.close(fd)


def is_reg(r, st):
    return stat.S_ISREG(st.st_mode)


def is_dir(r, st):
    return stat.S_ISDIR(st.st_mode)


def is_lnk(r, st):
    return stat.S_ISLNK(st.st_mode)


def copy_meta_file(m, rel, st, data, xattrs):
    """A new independent file at rel equal to the old one in all but its inode."""
    p = m.j(rel)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        for n, v in xattrs:
            os.setxattr(fd, n, v)
    finally:
        os.close(fd)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    m.changed(rel)


def mutate(root, rng):
    m = Mutator(root, rng)
    J = m.j

    def editable(r, st):
        """A plain regular file whose edit changes nothing but its content."""
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size == 0:
            return False
        if st.st_mode & 0o6000 or st.st_blocks * 512 < st.st_size:
            return False
        return "security.capability" not in m.xn(r)

    # 1. Same size, full mtime restored: only a content comparison sees these.
    for _ in range(3):
        r = m.pick("checksum-only edit", editable)
        if r:
            st = m.lst(r)
            flip_byte(J(r), rng)
            os.utime(J(r), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            m.checksum_only.append(r)
    # 2. Same size, same second, other nanoseconds: rsync's quick check misses these.
    for _ in range(8):
        r = m.pick("same-second edit", editable)
        if r:
            st = m.lst(r)
            flip_byte(J(r), rng)
            sec, ns = divmod(st.st_mtime_ns, 10**9)
            ns2 = (ns + rng.randrange(1, 10**9 - 1)) % 10**9 or 1
            if ns2 == ns:
                ns2 = ns % (10**9 - 1) + 1
            utime(J(r), sec * 10**9 + ns2)
    # 3. Ordinary edits: size changes with the mtime kept, and new content and mtime.
    for _ in range(2):
        r = m.pick("append, mtime kept", editable)
        if r:
            st = m.lst(r)
            with open(J(r), "ab") as f:
                f.write(rng.randbytes(rng.randrange(1, 5000)))
            os.utime(J(r), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    for _ in range(2):
        r = m.pick("rewrite", editable)
        if r:
            fd = os.open(J(r), os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            os.write(fd, rng.randbytes(rng.randrange(0, 9000)))
            os.close(fd)
            m.stamp(r)
    # 4. mtime only, nanoseconds only, on a file and on a symlink.
    for what, pred in (("ns-only mtime, file", editable), ("ns-only mtime, symlink", is_lnk)):
        r = m.pick(what, pred)
        if r:
            t = m.lst(r).st_mtime_ns
            utime(J(r), t - t % 10**9 + (t % 10**9 + 1 + rng.randrange(10**8)) % 10**9)

    # 5. Metadata only: modes, owners, xattrs, ACLs, capabilities.
    for _ in range(3):
        r = m.pick("chmod", is_reg)
        if r:
            old = stat.S_IMODE(m.lst(r).st_mode)
            os.chmod(J(r), rng.choice([x for x in (0o600, 0o4755, 0o2711, 0o000, 0o1644, 0o777)
                                       if x != old]))
    r = m.pick("chmod dir", lambda r, st: is_dir(r, st) and depth(r) > 1)
    if r:
        old = stat.S_IMODE(m.lst(r).st_mode)
        os.chmod(J(r), rng.choice([x for x in (0o700, 0o1777, 0o2755, 0o555) if x != old]))
    for what, pred in (("chown file", is_reg), ("chown file", is_reg), ("chown symlink", is_lnk),
                       ("chown dir", lambda r, st: is_dir(r, st) and depth(r) > 1),
                       ("chown special", lambda r, st: stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode))):
        r = m.pick(what, pred)
        if r:
            st = m.lst(r)
            os.chown(J(r), (st.st_uid + 1000 + rng.randrange(100000)) % 4294967295,
                     (st.st_gid + 7) % 4294967295, follow_symlinks=False)
    for _ in range(2):
        r = m.pick("xattr added", editable)
        if r:
            os.setxattr(J(r), "user.mutated", rng.randbytes(rng.randrange(1, 100)))
    has_user_x = lambda r, st: (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) and any(
        n.startswith("user.") for n in m.xn(r))
    r = m.pick("xattr value changed", has_user_x)
    if r:
        n = sorted(x for x in os.listxattr(J(r)) if x.startswith("user."))[0]
        os.setxattr(J(r), n, b"changed:" + os.getxattr(J(r), n))
    r = m.pick("xattr removed", has_user_x)
    if r:
        n = sorted(x for x in os.listxattr(J(r)) if x.startswith("user."))[-1]
        os.removexattr(J(r), n)
    r = m.pick("trusted xattr on dir", lambda r, st: is_dir(r, st) and depth(r) > 1)
    if r:
        os.setxattr(J(r), "trusted.mutated", b"dir", follow_symlinks=False)
    r = m.pick("trusted xattr on symlink", is_lnk)
    if r:
        os.setxattr(J(r), "trusted.mutated", b"link", follow_symlinks=False)
    acl = lambda name: (lambda r, st: name in m.xn(r))
    r = m.pick("default ACL removed", lambda r, st: is_dir(r, st) and acl("system.posix_acl_default")(r, st))
    if r:
        tool("setfacl", "-k", J(r))
    r = m.pick("ACL modified", lambda r, st: is_dir(r, st) and acl("system.posix_acl_access")(r, st),
               quiet=True)
    r = r or m.pick("ACL added to a directory", lambda r, st: is_dir(r, st) and depth(r) > 1)
    if r:
        tool("setfacl", "-m", "u:4321:r--,g:99:---", J(r))
    r = m.pick("ACL removed", lambda r, st: is_reg(r, st) and acl("system.posix_acl_access")(r, st))
    if r:
        tool("setfacl", "-b", J(r))
    r = m.pick("ACL added", editable)
    if r:
        tool("setfacl", "-m", "g:777:rw-", J(r))
    r = m.pick("capability removed", lambda r, st: is_reg(r, st) and acl("security.capability")(r, st))
    if r:
        tool("setcap", "-r", J(r))
    r = m.pick("capability added", editable)
    if r:
        tool("setcap", "cap_sys_admin+ep", J(r))

    # 6. Hardlinks: a group split by an identical independent copy, a group formed
    #    from identical twins, a new path joining a group.
    groups = {}
    for r in m.snap:
        st = m.lst(r)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(r)
    splittable = sorted(g for g in groups.values() if len(g) >= 2 and all(m.free(x) for x in g))
    if splittable:
        g = rng.choice(splittable)
        m.claim(*g)
        r = rng.choice(g)
        log("hardlink split: %s" % esc(r))
        m.n += 1
        st = m.lst(r)
        with open(J(r), "rb") as f:
            data = f.read()
        xs = [(n, os.getxattr(J(r), n)) for n in sorted(os.listxattr(J(r)))]
        os.unlink(J(r))
        copy_meta_file(m, r, st, data, xs)
    else:
        warn("mutate: no hardlink group to split")
    twins = {}
    for r in m.snap:
        st = m.lst(r)
        if st is not None and m.free(r) and stat.S_ISREG(st.st_mode) and st.st_nlink == 1 \
                and not os.listxattr(J(r)):
            key = (st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
            twins.setdefault(key, []).append(r)
    pairs = []
    for key, rs in sorted(twins.items(), key=lambda kv: kv[1]):
        if len(rs) >= 2:
            contents = {}
            for r in rs:
                with open(J(r), "rb") as f:
                    contents.setdefault(f.read(), []).append(r)
            pairs += [v[:2] for v in contents.values() if len(v) >= 2]
    if pairs:
        a, b = rng.choice(sorted(pairs))
        m.claim(a, b)
        log("hardlink group formed: %s %s" % (esc(a), esc(b)))
        m.n += 1
        os.unlink(J(b))
        os.link(J(a), J(b))
        m.changed(b)
    else:
        warn("mutate: no identical twins to link")
    join = m.pick("joins a hardlink group", lambda r, st: is_reg(r, st) and st.st_nlink > 1)

    # 7. Type changes both ways.
    def file_to_dir(r):
        m.remove(r)
        m.new_dir(r)
        m.new_file(r + b"/now-a-dir", rng.randbytes(rng.randrange(1, 3000)))

    def to_file(r):
        m.remove(r)
        m.new_file(r, b"was another type\n" + rng.randbytes(rng.randrange(0, 2000)))

    def to_symlink(r):
        m.remove(r)
        m.new_symlink(rng.choice([b"../etc/passwd", b"/usr", b"dangling-now", b"."]), r)

    def to_fifo(r):
        m.remove(r)
        os.mkfifo(J(r))
        m.changed(r)
        m.stamp(r)

    def chr_to_blk(r):
        m.remove(r)
        os.mknod(J(r), 0o640 | stat.S_IFBLK, os.makedev(8, 1))
        m.changed(r)
        m.stamp(r)

    sub = lambda r, st: is_dir(r, st) and depth(r) > 1
    for what, pred, change in (
            ("file->dir", is_reg, file_to_dir),
            ("file->dir (hardlinked)", lambda r, st: is_reg(r, st) and st.st_nlink > 1, file_to_dir),
            ("dir->file", sub, to_file),
            ("empty dir->file", lambda r, st: sub(r, st) and not os.listdir(J(r)), to_file),
            ("dir->symlink", sub, to_symlink),
            ("symlink->dir", is_lnk, file_to_dir),
            ("symlink->file", is_lnk, to_file),
            ("file->symlink", is_reg, to_symlink),
            ("fifo->file", lambda r, st: stat.S_ISFIFO(st.st_mode), to_file),
            ("file->fifo", is_reg, to_fifo),
            ("chr->blk", lambda r, st: stat.S_ISCHR(st.st_mode), chr_to_blk),
            ("socket->dir", lambda r, st: stat.S_ISSOCK(st.st_mode), file_to_dir)):
        r = m.pick(what, pred)
        if r:
            change(r)

    # 8. Deletions: files and other non-directories, whole subtrees.
    for _ in range(4):
        r = m.pick("deleted", lambda r, st: not is_dir(r, st))
        if r:
            m.remove(r)
    for _ in range(2):
        r = m.pick("subtree deleted", lambda r, st: is_dir(r, st) and os.listdir(J(r)))
        if r:
            m.remove(r)

    # 9. Renames: a directory moved elsewhere, two directories swapped, a file renamed.
    r = m.pick("dir renamed", sub)
    to = m.pick("rename destination", lambda r, st: is_dir(r, st), claim=False)
    if r and to:
        new = os.path.join(to, b"renamed-" + os.path.basename(r)[:200])
        if m.lst(new) is None:
            os.rename(J(r), J(new))
            m.changed(r)
            m.changed(new)
            m.claim(new)
    a = m.pick("dir swapped", sub)
    b = m.pick("dir swapped with", sub)
    if a and b and not (a + b"/").startswith(b + b"/") and not (b + b"/").startswith(a + b"/"):
        tmp = os.path.join(os.path.dirname(a), b".mktree-swap")
        os.rename(J(a), J(tmp))
        os.rename(J(b), J(a))
        os.rename(J(tmp), J(b))
        m.changed(a)
        m.changed(b)
    r = m.pick("file renamed", lambda r, st: is_reg(r, st) and len(os.path.basename(r)) < 240)
    if r:
        os.rename(J(r), J(r + b".renamed"))
        m.changed(r)
        m.changed(r + b".renamed")

    # 10. A new deep subtree, with a link into an existing group.
    top = b"added"
    while m.lst(top) is not None:
        top += b"+"
    path = top
    m.new_dir(path)
    for i in range(40):
        path = os.path.join(path, b"n%02d" % i)
        m.new_dir(path)
        if i % 5 == 0:
            m.new_file(path + b"/leaf", rng.randbytes(rng.randrange(0, 20000)))
    m.new_symlink(b"../" * 20 + b"etc", path + b"/up")
    m.new_file(path + b"/pair1", rng.randbytes(100))
    os.link(J(path + b"/pair1"), J(path + b"/pair2"))
    os.mkfifo(J(path + b"/fifo"))
    m.stamp(path + b"/fifo")
    os.chown(J(os.path.join(top, b"n00")), 12345, 54321)
    os.setxattr(J(os.path.join(top, b"n00")), "user.new", b"subtree")
    if join and m.lst(join) is not None:
        os.link(J(join), J(path + b"/joined"))
    m.n += 1
    log("new subtree: %s" % esc(top))

    # 11. New ns mtimes on every directory touched, deepest first, ROOT last.
    dirs = [d for d in m.touched if (lambda st: st is not None and stat.S_ISDIR(st.st_mode))(m.lst(d))]
    for d in sorted(dirs, key=lambda d: (-depth(d), d)):
        m.stamp(d)
    listfile = os.path.join(os.path.dirname(root), b"mutate-checksum-only.txt")
    with open(listfile, "w") as f:
        f.write("".join(esc(r) + "\n" for r in m.checksum_only))
    log("%d mutations, %d directories re-stamped" % (m.n, len(dirs)))


# --------------------------------------------------------------------------- main

def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--profile", choices=["hostile", "small", "mutate"], default="hostile")
    ap.add_argument("--verbose", action="store_true", help="log each mutation to stderr")
    a = ap.parse_args()
    VERBOSE = a.verbose
    root = os.fsencode(os.path.abspath(a.root)).rstrip(b"/") or b"/"
    if root == b"/" or os.path.islink(root) or os.path.realpath(root) == b"/":
        die("refusing ROOT %r: it is / or a symlink" % a.root)
    if os.geteuid() != 0:
        die("run as root (chown, mknod, trusted xattrs)")
    os.umask(0o022)
    rng = random.Random(a.seed)
    if a.profile == "mutate":
        try:
            mark = os.getxattr(root, MARK, follow_symlinks=False)
        except OSError:
            mark = b""
        if not os.path.isdir(root) or not mark:
            die("mutate needs a tree made by mktree.py (no %s on ROOT)" % MARK)
        mutate(root, rng)
        return
    if os.path.lexists(root) and (not os.path.isdir(root) or os.listdir(root)):
        die("ROOT must be missing or an empty directory")
    os.makedirs(root, exist_ok=True)
    fixed = (hostile if a.profile == "hostile" else small)(root, rng)
    os.chown(root, 0, 0)
    os.chmod(root, 0o755)
    os.setxattr(root, MARK, b"%s:%d" % (a.profile.encode(), a.seed))
    stamp_all(root, rng, fixed)


if __name__ == "__main__":
    main()
