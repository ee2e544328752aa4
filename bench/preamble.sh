# Sourced by the VM benchmark commands (bench/*/run.sh) after `set -euo
# pipefail`: sets $repo (and cds there) and $results (bench/results,
# created), refuses to run without root (guests, virtiofsd, FUSE,
# drop_caches), and installs matplotlib for the plots if it is missing.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
results="$repo/bench/results"
mkdir -p "$results"

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: run as root (guests, virtiofsd, FUSE, drop_caches)" >&2
  exit 2
fi
if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  echo "run.sh: installing matplotlib (scripts/install-bench-deps.sh)" >&2
  "$repo/scripts/install-bench-deps.sh"
fi
