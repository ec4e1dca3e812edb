#!/usr/bin/env python3
"""Canonical listing of a tree, one line per entry, so two trees compare with diff.

    treelist.py ROOT [--exclude-root-name NAME]... [--no-sockets] [--no-root] [--no-xattrs]

Independent of init-agent's own walker: stdlib only, never follows a symlink
(lstat, scandir entries without following, l*xattr, O_NOFOLLOW opens).
One line per entry, sorted by the raw bytes of the path, ROOT itself first as ".":

    PATH TYPE MODE UID:GID MTIME_NS [DETAIL...] nlink=N link=GROUP [xattr:NAME=HEX]...

PATH     relative to ROOT, bytes escaped: printable ASCII but space and backslash
         as is, backslash as \\\\, every other byte as \\xHH (newline, invalid UTF-8...)
TYPE     f d l c b p s (file, dir, symlink, char dev, block dev, fifo, socket)
MODE     S_IMODE in 4 octal digits (setuid/setgid/sticky included)
MTIME_NS st_mtime_ns, for every type (directories and symlinks too)
DETAIL   f: size=BYTES sha256=HEX sparse|dense (sparse: st_blocks*512 < size-4096)
         c, b: rdev=MAJOR:MINOR      l: ->TARGET (escaped like paths)
nlink=N  paths in the listed tree sharing this inode ('-' for directories)
link=G   hardlink group: the smallest path in the tree sharing (st_dev, st_ino)
         when N >= 2, '-' otherwise (a link outside the tree does not count)
xattr:   every xattr but security.selinux, sorted by name, value in hex: ACLs
         (system.posix_acl_access/_default) and security.capability included
"""
import argparse
import hashlib
import os
import stat
import sys

SKIP_XATTRS = {"security.selinux"}


def esc(b: bytes) -> str:
    """Unambiguous ASCII for any bytes: no space, newline or lone backslash survives."""
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x21 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


KINDS = ((stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
         (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s"))


def kind(mode: int) -> str:
    for test, letter in KINDS:
        if test(mode):
            return letter
    return "?"


def walk(root: bytes, skip_top, no_sockets):
    """(relative path, lstat) of ROOT (as b"") and everything below it, unsorted."""
    st = os.lstat(root)
    out = [(b"", st)]
    if not stat.S_ISDIR(st.st_mode):
        return out
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                if not rel and e.name in skip_top:
                    continue
                st = e.stat(follow_symlinks=False)  # an lstat
                if no_sockets and stat.S_ISSOCK(st.st_mode):
                    continue
                r = os.path.join(rel, e.name) if rel else e.name
                out.append((r, st))
                if stat.S_ISDIR(st.st_mode):
                    stack.append(r)
    return out


def sha256_of(path: bytes, st) -> str:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, flags)
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise RuntimeError("%s changed while listing" % esc(path))
        h = hashlib.sha256()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def xattrs(path: bytes):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (95,):  # EOPNOTSUPP: the file system has none
            return []
        raise
    out = []
    for n in sorted(names, key=os.fsencode):
        if n in SKIP_XATTRS:
            continue
        v = os.getxattr(path, n, follow_symlinks=False)
        out.append("xattr:%s=%s" % (esc(os.fsencode(n)), v.hex()))
    return out


def listing(root: bytes, skip_top=(), no_sockets=False, with_root=True, with_xattrs=True):
    entries = walk(root, set(skip_top), no_sockets)
    entries.sort(key=lambda e: e[0])
    if not with_root:
        entries = entries[1:]
    groups = {}
    for r, st in entries:
        if not stat.S_ISDIR(st.st_mode):
            groups.setdefault((st.st_dev, st.st_ino), []).append(r)
    lines = []
    for r, st in entries:
        full = os.path.join(root, r) if r else root
        k = kind(st.st_mode)
        f = [esc(r) if r else ".", k, "%04o" % stat.S_IMODE(st.st_mode),
             "%d:%d" % (st.st_uid, st.st_gid), str(st.st_mtime_ns)]
        if k == "f":
            sparse = "sparse" if st.st_blocks * 512 < st.st_size - 4096 else "dense"
            f += ["size=%d" % st.st_size, "sha256=" + sha256_of(full, st), sparse]
        elif k in "cb":
            f.append("rdev=%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif k == "l":
            f.append("->" + esc(os.readlink(full)))
        if k == "d":
            f += ["nlink=-", "link=-"]
        else:
            g = groups[(st.st_dev, st.st_ino)]
            f += ["nlink=%d" % len(g), "link=" + (esc(g[0]) if len(g) > 1 else "-")]
        if with_xattrs:
            f += xattrs(full)
        lines.append(" ".join(f))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--exclude-root-name", action="append", default=[], metavar="NAME",
                    help="skip the top-level entry NAME (and all below it); repeatable")
    ap.add_argument("--no-sockets", action="store_true",
                    help="leave sockets out (for a copier that skips them)")
    ap.add_argument("--no-root", action="store_true",
                    help="leave out the line of ROOT itself ('.')")
    ap.add_argument("--no-xattrs", action="store_true",
                    help="leave every xattr: field out (for a copy made over NFSv3)")
    a = ap.parse_args()
    try:
        lines = listing(os.fsencode(a.root), [os.fsencode(n) for n in a.exclude_root_name],
                        a.no_sockets, not a.no_root, not a.no_xattrs)
    except (OSError, RuntimeError) as e:
        sys.exit("treelist: %s" % e)
    sys.stdout.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    main()
