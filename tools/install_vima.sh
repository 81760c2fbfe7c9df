#!/usr/bin/env bash
# Install VIMA-Bench (not on PyPI) into .venv without touching a pinned package (`make vima`).
#   tools/install_vima.sh [SOURCE]      SOURCE: a VIMABench clone (folder) or its .tar.xz archive;
#                                       default: ../shared/vimabench/VIMABench-*.tar.xz
#   tools/install_vima.sh --if-available  what `make test` runs: install from the shared archive
#                                       when it exists and vima_bench is not importable yet
# Steps (facts measured in ../shared/vimabench/README.md):
#   1. gym 0.21.0 and antlr4-python3-runtime 4.9.3 (sdists only) are built as wheels in a
#      throwaway venv with pip 24.0, setuptools 65.5.0, wheel 0.38.4 (current ones refuse gym),
#   2. those wheels and tools/requirements/vima.txt go into .venv with --no-deps (VIMA-Bench's
#      own requirements would replace our torch with a CUDA build),
#   3. the tree is copied to .venv/vima/VIMABench (writable: VIMA-Bench's setup.py has no
#      MANIFEST.in, so only an editable install finds its assets) and installed editable with
#      --no-deps --no-build-isolation,
#   4. `pip freeze` before and after must agree on every package of constraints.txt.
# Idempotent: a stamp of the source, vima.txt and this script makes a second run a no-op.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
req="$root/tools/requirements"
dest="$venv/vima/VIMABench"
stamp="$venv/vima/.llara-vima"
shared_glob="$root/../shared/vimabench/VIMABench-*.tar.xz"
say() { printf '\033[1m[vima]\033[0m %s\n' "$*"; }
die() { printf '\033[1m[vima]\033[0m error: %s\n' "$*" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
  die "$venv does not exist; run 'make setup' first"
fi
py="$venv/bin/python"
importable() { "$py" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("vima_bench") is None)'; }

# shellcheck disable=SC2086
shared=$(ls -1 $shared_glob 2>/dev/null | sort | tail -n 1 || true)
if [[ "${1:-}" == --if-available ]]; then
  if [[ -z "$shared" ]]; then
    say "no archive at ${shared_glob%/*}/: VIMA-Bench not installed (its tests skip)"
    exit 0
  fi
  if importable && [[ ! -f "$stamp" ]]; then
    say "vima_bench is already importable (installed outside this script); leaving it"
    exit 0
  fi
  if [[ -f "$stamp" ]] && importable; then
    say "VIMA-Bench already installed from $(sed -n 2p "$stamp") (make vima VIMA=... to change it)"
    exit 0
  fi
  src="$shared"
elif [[ $# -gt 1 ]]; then
  die "usage: tools/install_vima.sh [PATH_TO_VIMABENCH_CLONE_OR_ARCHIVE | --if-available]"
else
  src="${1:-$shared}"
  [[ -n "$src" ]] || die "no source given and no archive at ${shared_glob}; run" \
    "'make vima VIMA=/path/to/VIMABench' (a clone of github.com/vimalabs/VIMABench or its .tar.xz)"
fi
[[ -e "$src" ]] || die "VIMA-Bench source '$src' does not exist (want a VIMABench clone or its .tar.xz)"
src=$(realpath "$src")

# --- identity of what would be installed (source content, pins, this script) ---------------
if [[ -d "$src" ]]; then
  [[ -f "$src/setup.py" && -d "$src/vima_bench" ]] || \
    die "'$src' is not a VIMABench tree (no setup.py and vima_bench/ in it)"
  src_id=$(find "$src" -path "$src/.git" -prune -o -type f -printf '%P %s %T@\n' | sort | sha256sum)
elif [[ -f "$src" && "$src" == *.tar.xz ]]; then
  src_id=$(sha256sum < "$src")
else
  die "'$src' is neither a folder nor a .tar.xz archive"
fi
want=$(printf '%s\n' "$src_id" | cat - "$req/vima.txt" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ "$(sed -n 1p "$stamp" 2>/dev/null)" == "$want" ]] && importable; then
  say "VIMA-Bench from $src is installed and up to date"
  exit 0
fi

# vima.txt must not name a package the workspace pins (installing it would change that pin).
overlap=$("$py" - "$req/vima.txt" "$req/constraints.txt" <<'EOF'
import re, sys
def names(path):
    out = set()
    for line in open(path):
        line = line.split('#')[0].strip()
        if line:
            out.add(re.sub(r'[-_.]+', '-', re.split(r'[=<>!~;\[ ]', line)[0]).lower())
    return out
print(' '.join(sorted(names(sys.argv[1]) & names(sys.argv[2]))))
EOF
)
[[ -z "$overlap" ]] || die "tools/requirements/vima.txt names pinned packages: $overlap"

start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip_q=(--disable-pip-version-check --quiet)
# pip with its known noise filtered out; returns pip's status.
run_pip() {
  "$@" 2>&1 | { grep -v -E 'is ignored: it is neither|DEPRECATION|pkg_resources is deprecated' || true; }
  return "${PIPESTATUS[0]}"
}
"$py" -m pip freeze --exclude-editable > "$tmp/before.txt"

# --- 1. gym and antlr4 wheels from a throwaway build venv -----------------------------------
say "building gym 0.21.0 and antlr4-python3-runtime 4.9.3 wheels in a throwaway venv"
"$py" -m venv "$tmp/build"
run_pip "$tmp/build/bin/python" -m pip install "${pip_q[@]}" 'pip==24.0' 'setuptools==65.5.0' \
  'wheel==0.38.4' || die "installing the build tools into the throwaway venv failed"
run_pip "$tmp/build/bin/python" -m pip wheel "${pip_q[@]}" --no-deps --no-build-isolation \
  -w "$tmp/wheels" "$(grep -E '^gym==' "$req/vima.txt")" \
  "$(grep -E '^antlr4-python3-runtime==' "$req/vima.txt")" \
  || die "building the gym/antlr4 wheels failed (see pip's output above)"

# --- 2. VIMA-Bench's packages, exact pins, no dependency resolution -------------------------
say "installing tools/requirements/vima.txt with --no-deps (wheels only)"
run_pip "$py" -m pip install "${pip_q[@]}" --no-deps --only-binary :all: \
  --find-links "$tmp/wheels" -r "$req/vima.txt" \
  || die "pip install -r tools/requirements/vima.txt failed"

# --- 3. a writable copy of the tree, installed editable -------------------------------------
say "copying $src to ${dest#"$root"/}"
rm -rf "$dest"
mkdir -p "$dest"
if [[ -d "$src" ]]; then
  tar -C "$src" --exclude=./.git -cf - . | tar -C "$dest" -xf -
else
  tar -C "$dest" -xJf "$src"
  if [[ ! -f "$dest/setup.py" ]]; then  # an archive with one top-level folder
    inner=$(find "$dest" -mindepth 2 -maxdepth 2 -name setup.py -printf '%h\n' | head -n 1)
    [[ -n "$inner" ]] || die "archive '$src' holds no VIMABench tree (no setup.py)"
    mv "$inner" "$dest.tmp" && rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
fi
chmod -R u+w "$dest"
say "pip install --no-deps --no-build-isolation -e ${dest#"$root"/}"
run_pip "$py" -m pip install "${pip_q[@]}" --no-deps --no-build-isolation -e "$dest" \
  || die "the editable install of $dest failed"

# --- 4. no pinned package changed ---------------------------------------------------------
"$py" -m pip freeze --exclude-editable > "$tmp/after.txt"
"$py" - "$req/constraints.txt" "$tmp/before.txt" "$tmp/after.txt" <<'EOF' \
  || die "installing VIMA-Bench changed pinned packages (listed above); run 'make setup' to restore them"
import re, sys
def pins(path):
    out = {}
    for line in open(path):
        line = line.split('#')[0].strip()
        if '==' in line:
            name, version = line.split('==', 1)
            out[re.sub(r'[-_.]+', '-', name).lower()] = version.strip()
    return out
pinned, before, after = (pins(path) for path in sys.argv[1:])
changed = [f'{n}: {before.get(n)} -> {after.get(n)}' for n in sorted(pinned)
           if before.get(n) != after.get(n)]
for line in changed:
    print(f'[vima] pinned package changed: {line}', file=sys.stderr)
sys.exit(1 if changed else 0)
EOF
(cd "$tmp" && "$py" -c 'import vima_bench' > /dev/null) || die "'import vima_bench' fails after the install"
printf '%s\n%s\n' "$want" "$src" > "$stamp"
say "VIMA-Bench installed from $src in $((SECONDS - start)) s (no pinned package changed)"
