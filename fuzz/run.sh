#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while: fuzz/run.sh TARGET [SECONDS | --runs N]
#   TARGET   cmdline | config | xcat | manifest | dhcp | disk | signature
#   SECONDS  libFuzzer's -max_total_time, default 60 (AddressSanitizer build)
#   --runs N exactly N executions, built optimised with debug assertions and
#            overflow checks but no sanitizer: the fuzzed code is safe Rust, so
#            ASan finds nothing there and only costs speed (10x+ for 10 M runs)
# Works with the stable toolchain alone (RUSTC_BOOTSTRAP=1 unlocks -Zsanitizer).
# Crashes land in fuzz/artifacts/TARGET/; the growing corpus in fuzz/corpus/TARGET/.
set -euo pipefail

usage() { echo "usage: $0 cmdline|config|xcat|manifest|dhcp|disk|signature [SECONDS | --runs N]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage
target=$1
build=()
if [[ ${2:-} == --runs ]]; then
  [[ ${3:-} =~ ^[0-9]+$ ]] || usage
  limit=(-runs="$3"); what="$3 runs"; build=(-O -a -s none)
else
  [[ $# -le 2 ]] || usage
  seconds=${2:-60}
  [[ $seconds =~ ^[0-9]+$ ]] || usage
  limit=(-max_total_time="$seconds"); what="${seconds}s"
fi
case $target in
  cmdline) max_len=4096 ;;    # the kernel's COMMAND_LINE_SIZE is 2048 on x86
  config)  max_len=16384 ;;   # room for a full site file plus mutations
  xcat)    max_len=16384 ;;   # three tabdump tables
  manifest) max_len=65536 ;;  # a few hundred records
  # -O: as the binary that boots, without debug assertions: dhcproto 0.14
  # debug_asserts on some malformed options (found here; in debug builds
  # the agent catches it, see net/dhcp.rs), which libFuzzer would stop on.
  dhcp)    max_len=1500                # one Ethernet frame
           if [[ ${#build[@]} -gt 0 ]]; then build=(-O -s none); else build=(-O); fi ;;
  disk)    max_len=8192 ;;    # sfdisk JSON of a disk with many partitions
  signature) max_len=65536 ;; # a signature and a small manifest
  *) usage ;;
esac
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Sanitizer flags are nightly-only; let the stable compiler accept them.
export RUSTC_BOOTSTRAP=1
# No override of the repo's `+crt-static` (.cargo/config.toml) is needed, and one
# would have no effect: cargo-fuzz passes its flags in the RUSTFLAGS environment
# variable, and Cargo then ignores every [target.*].rustflags (checked with
# `cargo fuzz build -v`: no crt-static on the rustc lines, the binary is dynamic).

# corpus/ is not in git: start it from the checked-in seeds every time.
mkdir -p "corpus/$target"
[ -d "seeds/$target" ] && cp -f seeds/"$target"/* "corpus/$target/"

log=$(mktemp "${TMPDIR:-/tmp}/fuzz-$target.XXXXXX.log")
echo "== cargo fuzz run ${build[*]} $target for $what (max_len $max_len); log: $log" >&2
status=0
cargo fuzz run "${build[@]}" "$target" --target x86_64-unknown-linux-gnu -- \
  "${limit[@]}" -rss_limit_mb=2048 -max_len="$max_len" \
  -print_final_stats=1 2>&1 | tee "$log" || status=$?

echo "== final libFuzzer stats ($target)"
grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|Done [0-9]+ runs)' "$log" || true
# A slow-unit artifact is a note, not a failure (a run paused with SIGSTOP
# writes one); crash-, leak-, timeout- and oom- ones are failures.
if grep -qE '^(==[0-9]+== ?ERROR|thread .* panicked)|deadly signal|Test unit written to .*/(crash|leak|timeout|oom)-' "$log"; then
  echo "== CRASH found: see fuzz/artifacts/$target/ and $log" >&2
  [[ $status -ne 0 ]] || status=1
fi
exit "$status"
