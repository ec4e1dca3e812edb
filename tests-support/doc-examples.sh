#!/usr/bin/env bash
# Runs the examples of documentation pages, so they cannot go stale: every
# ```sh block of a page, in order, in one scratch directory per page (with
# this repository's conf/ beside it), `init-agent` on PATH; a block must exit
# 0, and where an ```output block follows it, print exactly that.
# Usage: doc-examples.sh BINARY PAGE.md...
set -euo pipefail
[ $# -ge 2 ] || {
    echo "usage: $0 BINARY PAGE.md..." >&2
    exit 2
}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "$1")
shift
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
ln -s "$bin" "$bindir/init-agent"

for page in "$@"; do
    page=$(realpath "$page")
    scratch=$(mktemp -d)
    ln -s "$repo/conf" "$scratch/conf"
    # Blocks as NUL-separated records: kind, then text.
    python3 - "$page" "$scratch" <<'PY'
import pathlib, re, sys
page, scratch = sys.argv[1], pathlib.Path(sys.argv[2])
text = open(page).read()
blocks = re.findall(r"^```(sh|output)\n(.*?)^```$", text, re.S | re.M)
n = 0
for i, (kind, body) in enumerate(blocks):
    if kind != "sh":
        continue
    n += 1
    (scratch / f".block{n:02}.sh").write_text(body)
    if i + 1 < len(blocks) and blocks[i + 1][0] == "output":
        (scratch / f".block{n:02}.out").write_text(blocks[i + 1][1])
PY
    count=0
    for block in "$scratch"/.block*.sh; do
        count=$((count + 1))
        got=$(cd "$scratch" && PATH="$bindir:$PATH" bash -euo pipefail "$block" 2>&1) || {
            echo "doc-examples: $page: example $count failed:" >&2
            sed 's/^/  | /' "$block" >&2
            echo "$got" | sed 's/^/  > /' >&2
            exit 1
        }
        want=${block%.sh}.out
        if [ -f "$want" ] && [ "$got" != "$(cat "$want")" ]; then
            echo "doc-examples: $page: example $count printed something else:" >&2
            diff <(cat "$want") <(echo "$got") >&2 || true
            exit 1
        fi
    done
    rm -rf "$scratch"
    echo "doc-examples: $(basename "$page"): $count examples ran as written"
done
