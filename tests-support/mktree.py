#!/usr/bin/env python3
"""Deterministic test trees for the sync tests (run as root).

    mktree.py ROOT --seed N --profile hostile|small|mutate

hostile: odd names (newline, backslash, invalid UTF-8, 255 bytes, leading dash),
200-deep nesting, files of edge sizes, sparse files, hardlink groups across
directories, symlinks (relative, absolute, dangling, looping, escaping), fifos,
devices, a socket, odd modes (0000, setuid, setgid, sticky), owners without
passwd entries (symlinks too), user/trusted xattrs, ACLs, a file capability, and
nanosecond mtimes everywhere (directories last, deepest first).
small: a few directories, files, a symlink and a hardlink pair.
mutate: on an existing tree, the changes quick checks miss: same-size edits in
the same second, type changes both ways, hardlink groups split and formed,
metadata-only changes, deletions, a renamed directory, a new deep subtree.
Never touches anything outside ROOT.
"""
import argparse
import os
import random
import shutil
import socket
import stat
import subprocess
import sys


def die(msg):
    sys.exit("mktree: " + msg)


def tool(*cmd):
    if shutil.which(cmd[0]) is None:
        print("mktree: warning: %s missing, skipped" % cmd[0], file=sys.stderr)
        return
    subprocess.run(cmd, check=True)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def all_entries(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs) + sorted(files):
            out.append(os.path.join(d, n))
    return out


def set_times(root, rng):
    """ns mtimes on everything, directories deepest first so theirs stick."""
    entries = all_entries(root)
    nondirs = [p for p in entries if not os.path.isdir(p) or os.path.islink(p)]
    dirs = [p for p in entries if os.path.isdir(p) and not os.path.islink(p)]
    for p in nondirs:
        t = rng.randrange(1_000_000_000, 1_900_000_000) * 10**9 + rng.randrange(1, 10**9)
        os.utime(p, ns=(t, t), follow_symlinks=False)
    for p in sorted(dirs, key=lambda p: -p.count(b"/")) + [root]:
        t = rng.randrange(1_000_000_000, 1_900_000_000) * 10**9 + rng.randrange(1, 10**9)
        os.utime(p, ns=(t, t), follow_symlinks=False)


def hostile(root, rng):
    j = lambda *p: os.path.join(root, *p)
    for d in (b"etc", b"usr/bin", b"usr/lib", b"var/log", b"names", b"links", b"dev", b"acl"):
        os.makedirs(j(d))
    # Odd names.
    for n in (b"new\nline", b"back\\slash", b"\xff\xfe-invalid", b"-leading-dash", b"..a",
              b".hidden", b"sp ace", b"x" * 255, "ünïcode".encode()):
        write(j(b"names", n), n)
    # Deep nesting.
    deep = j(b"deep")
    os.makedirs(os.path.join(deep, *([b"d"] * 200)))
    write(os.path.join(deep, *([b"d"] * 200), b"bottom"), b"deep\n")
    # Files of edge sizes.
    sizes = [0, 1, 4095, 4096, 4097, 65536, 1 << 20]
    for i in range(320):
        size = sizes[i % len(sizes)] if i < 70 else rng.randrange(0, 20000)
        write(j(b"usr/lib", b"f%03d" % i), rng.randbytes(size))
    # Sparse files: two data extents in 64 MiB.
    for n in (b"sparse1", b"sparse2"):
        with open(j(n), "wb") as f:
            f.truncate(64 << 20)
            f.write(rng.randbytes(5000))
            f.seek(40 << 20)
            f.write(rng.randbytes(7000))
    # Hardlink groups, some across directories.
    write(j(b"usr/bin/tool"), b"#!/bin/sh\necho tool\n")
    os.link(j(b"usr/bin/tool"), j(b"usr/bin/tool-alias"))
    os.link(j(b"usr/bin/tool"), j(b"links/tool-copy"))
    write(j(b"links/a"), b"group a\n")
    os.link(j(b"links/a"), j(b"etc/a-link"))
    write(j(b"links/solo-pair1"), b"pair\n")
    os.link(j(b"links/solo-pair1"), j(b"links/solo-pair2"))
    # Symlinks.
    os.symlink(b"../usr/bin/tool", j(b"links/rel"))
    os.symlink(b"/etc/passwd", j(b"links/abs"))
    os.symlink(b"nowhere/at/all", j(b"links/dangling"))
    os.symlink(b"loop-b", j(b"links/loop-a"))
    os.symlink(b"loop-a", j(b"links/loop-b"))
    os.symlink(b"../../../../etc/passwd", j(b"links/escape"))
    os.symlink(b"../usr", j(b"links/to-dir"))
    # Special files.
    os.mkfifo(j(b"dev/fifo"))
    os.mknod(j(b"dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(j(b"dev/loop0"), 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    s = socket.socket(socket.AF_UNIX)
    s.bind(j(b"dev/socket"))
    s.close()
    # Modes and owners.
    write(j(b"usr/bin/suid"), b"suid\n")
    write(j(b"usr/bin/sgid"), b"sgid\n")
    write(j(b"etc/shadow"), b"secret\n")
    os.makedirs(j(b"tmp"))
    os.makedirs(j(b"private"))
    write(j(b"private/inside"), b"x\n")
    os.chown(j(b"usr/bin/suid"), 12345, 54321)
    os.chmod(j(b"usr/bin/suid"), 0o4755)
    os.chmod(j(b"usr/bin/sgid"), 0o2755)
    os.chmod(j(b"etc/shadow"), 0o000)
    os.chmod(j(b"tmp"), 0o1777)
    os.chown(j(b"private"), 4242, 4343)
    os.chmod(j(b"private"), 0o700)
    os.chown(j(b"links/rel"), 777, 888, follow_symlinks=False)
    # xattrs, ACLs, capability.
    os.setxattr(j(b"etc/shadow"), "user.note", b"hello")
    os.setxattr(j(b"etc"), "trusted.overlay.opaque", b"y")
    os.setxattr(j(b"usr/lib/f001"), "user.empty", b"")
    tool("setfacl", "-m", "u:1234:rwx,g:99:r", os.fsdecode(j(b"acl")))
    tool("setfacl", "-d", "-m", "u:1234:rx", os.fsdecode(j(b"acl")))
    write(j(b"acl/inherits"), b"acl\n")
    tool("setcap", "cap_net_raw+ep", os.fsdecode(j(b"usr/bin/tool")))


def small(root, rng):
    os.makedirs(os.path.join(root, b"etc/conf.d"))
    os.makedirs(os.path.join(root, b"usr/bin"))
    write(os.path.join(root, b"etc/hostname"), b"node\n")
    write(os.path.join(root, b"etc/conf.d/net"), rng.randbytes(300))
    write(os.path.join(root, b"usr/bin/a"), b"a\n")
    os.link(os.path.join(root, b"usr/bin/a"), os.path.join(root, b"usr/bin/b"))
    os.symlink(b"../etc/hostname", os.path.join(root, b"usr/host"))


def mutate(root, rng):
    j = lambda *p: os.path.join(root, *p)
    checksum_only = []

    def same_size_edit(p, keep_mtime):
        st = os.lstat(p)
        data = bytearray(open(p, "rb").read())
        if not data:
            return
        data[0] ^= 0xFF
        write(p, bytes(data))
        if keep_mtime:
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
            checksum_only.append(p)
        else:
            # Same second, other nanoseconds: rsync's quick check misses it.
            t = st.st_mtime_ns - st.st_mtime_ns % 10**9 + (st.st_mtime_ns + 1) % 10**9
            os.utime(p, ns=(t, t))

    files = sorted(p for p in all_entries(j(b"usr/lib")) if os.path.isfile(p))
    picked = rng.sample(files, 40)
    for p in picked[:10]:
        same_size_edit(p, keep_mtime=False)
    for p in picked[10:13]:
        same_size_edit(p, keep_mtime=True)
    for p in picked[13:20]:
        os.unlink(p)
    for p in picked[20:25]:
        os.chmod(p, 0o600)
    for p in picked[25:28]:
        os.chown(p, 1001, 1002)
    for p in picked[28:30]:
        os.setxattr(p, "user.changed", b"yes")
    # Type changes, both ways.
    os.unlink(picked[30])
    os.makedirs(picked[30])
    write(os.path.join(picked[30], b"now-a-dir"), b"x")
    os.unlink(picked[31])
    os.symlink(b"target", picked[31])
    shutil.rmtree(j(b"private"))
    write(j(b"private"), b"was a directory\n")
    shutil.rmtree(j(b"deep/d/d/d"))
    os.symlink(b"../..", j(b"deep/d/d/d"))
    os.unlink(j(b"links/to-dir"))
    os.makedirs(j(b"links/to-dir/sub"))
    os.unlink(j(b"dev/fifo"))
    write(j(b"dev/fifo"), b"now a file\n")
    # Hardlink groups: split one, form one.
    os.unlink(j(b"links/tool-copy"))
    shutil.copy2(j(b"usr/bin/tool"), j(b"links/tool-copy"))
    os.unlink(j(b"links/solo-pair2"))
    os.link(j(b"usr/lib/f050"), j(b"links/solo-pair2"))
    # Metadata-only on special entries.
    os.chown(j(b"links/abs"), 31337, 31338, follow_symlinks=False)
    os.chmod(j(b"dev/null"), 0o600)
    tool("setfacl", "-m", "u:4321:r", os.fsdecode(j(b"acl")))
    # Renamed directory, new deep subtree, deletions.
    os.rename(j(b"names"), j(b"names-renamed"))
    os.makedirs(j(b"new/a/b/c/d"))
    write(j(b"new/a/b/c/d/leaf"), rng.randbytes(1000))
    os.unlink(j(b"sparse2"))
    # New mtimes on directories, deepest first.
    dirs = [p for p in all_entries(root) if os.path.isdir(p) and not os.path.islink(p)]
    for p in sorted(dirs, key=lambda p: -p.count(b"/")) + [root]:
        t = rng.randrange(1_000_000_000, 1_900_000_000) * 10**9 + rng.randrange(1, 10**9)
        os.utime(p, ns=(t, t), follow_symlinks=False)
    with open(os.path.join(os.path.dirname(root.rstrip(b"/")), b"mutate-checksum-only.txt"), "wb") as f:
        for p in checksum_only:
            f.write(os.path.relpath(p, root) + b"\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--profile", choices=["hostile", "small", "mutate"], required=True)
    a = ap.parse_args()
    root = os.fsencode(os.path.abspath(a.root))
    if root == b"/" or os.path.islink(root):
        die("refusing ROOT %r" % a.root)
    rng = random.Random(a.seed)
    if a.profile == "mutate":
        if not os.path.isdir(root):
            die("mutate needs an existing tree")
        mutate(root, rng)
        return
    if os.path.exists(root) and os.listdir(root):
        die("ROOT must be empty or missing")
    os.makedirs(root, exist_ok=True)
    (hostile if a.profile == "hostile" else small)(root, rng)
    set_times(root, rng)


if __name__ == "__main__":
    main()
