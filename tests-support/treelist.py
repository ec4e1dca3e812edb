#!/usr/bin/env python3
"""Canonical listing of a tree, one line per entry, for diffing two trees.

Independent of init-agent's own walker: stdlib only, never follows symlinks.
Each line: escaped path, type, mode, uid:gid, mtime ns, then per type size +
sha256 + sparse/dense, rdev, or link target; sorted xattrs (ACLs and
security.capability included, security.selinux skipped); hardlink group named by
its smallest path with its in-tree link count.

    treelist.py ROOT [--exclude-root-name NAME]... [--no-sockets]
"""
import argparse
import hashlib
import os
import stat
import sys


def esc(b: bytes) -> str:
    out = []
    for c in b:
        if c < 0x20 or c >= 0x7F or c == 0x5C:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def kind(m):
    for test, letter in ((stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"),
                         (stat.S_ISCHR, "c"), (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"),
                         (stat.S_ISSOCK, "s")):
        if test(m):
            return letter
    return "?"


def walk(root: bytes, skip):
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        with os.scandir(full) as it:
            names = sorted(e.name for e in it)
        for n in names:
            if not rel and n in skip:
                continue
            r = os.path.join(rel, n) if rel else n
            st = os.lstat(os.path.join(root, r))
            yield r, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--exclude-root-name", action="append", default=[])
    ap.add_argument("--no-sockets", action="store_true", help="leave sockets out (sync skips them)")
    a = ap.parse_args()
    root = os.fsencode(a.root)
    skip = {os.fsencode(n) for n in a.exclude_root_name}
    entries = [e for e in walk(root, skip) if not (a.no_sockets and stat.S_ISSOCK(e[1].st_mode))]
    groups = {}
    for r, st in entries:
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(r)
    lines = []
    for r, st in entries:
        full = os.path.join(root, r)
        k = kind(st.st_mode)
        f = [esc(r), k, "%04o" % stat.S_IMODE(st.st_mode) if k != "l" else "-",
             "%d:%d" % (st.st_uid, st.st_gid), str(st.st_mtime_ns)]
        if k == "f":
            h = hashlib.sha256()
            with open(full, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            sparse = "sparse" if st.st_blocks * 512 < st.st_size - 4096 else "dense"
            f += [str(st.st_size), h.hexdigest(), sparse]
        elif k in "cb":
            f.append("%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif k == "l":
            f.append("->" + esc(os.readlink(full)))
        try:
            names = sorted(os.listxattr(full, follow_symlinks=False))
        except OSError:
            names = []
        for n in names:
            if n == "security.selinux":
                continue
            try:
                v = os.getxattr(full, n, follow_symlinks=False)
            except OSError:
                continue
            f.append("x:%s=%s" % (n, v.hex()))
        g = groups.get((st.st_dev, st.st_ino))
        if g:
            f.append("link:%s/%d" % (esc(min(g)), len(g)))
        lines.append((r, " ".join(f)))
    lines.sort()
    out = sys.stdout
    for _, line in lines:
        out.write(line + "\n")


if __name__ == "__main__":
    main()
