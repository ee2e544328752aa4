#!/usr/bin/env bash
# Fetches the guest kernel for the VM end-to-end tests into DEST:
#   DEST/vmlinux          uncompressed kernel (QEMU boots it through PVH,
#                         about twice as fast under TCG as the bzImage)
#   DEST/modules/*.ko     virtio, virtiofs (and uio, if the kernel has it)
#   DEST/modules.load     those modules in dependency order, one per line
#   DEST/KERNEL           the package name the files came from
#
# The kernel is Debian's: the one linux-image-6.1.0-NN-amd64 package that
# linux-image-amd64 depends on, fetched with `apt-get download` (needs the
# apt lists that scripts/install-deps.sh refreshes). Nothing else is
# downloaded. Idempotent: when DEST already holds that package's files it
# only says so.
#
# Usage: scripts/fetch-guest-kernel.sh [DEST]   (default tests/vm/.cache)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/tests/vm/.cache}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

# Modules the guest needs, in load order as far as we know it; the real
# order is recomputed from each module's `depends=` below. Optional ones are
# copied only if this kernel builds them as modules.
required=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
          virtio_pci fuse virtiofs)
optional=(uio uio_pci_generic)

log() { echo "fetch-guest-kernel: $*"; }

pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
if [ -z "$pkg" ]; then
  log "cannot resolve linux-image-amd64's kernel package;" \
      "run scripts/install-deps.sh (apt-get update) first" >&2
  exit 1
fi
kver="${pkg#linux-image-}"

if [ -f "$dest/KERNEL" ] && [ "$(cat "$dest/KERNEL")" = "$pkg" ] &&
   [ -s "$dest/vmlinux" ] && [ -s "$dest/modules.load" ]; then
  log "cached: $pkg in $dest ($(wc -l < "$dest/modules.load") modules)"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/fetch-guest-kernel.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "downloading $pkg (Debian archive, apt-get download)"
# apt drops privileges to _apt for downloads; let it write the work dir.
chmod 0777 "$work"
(cd "$work" && apt-get download -q "$pkg" >/dev/null)
deb="$(ls "$work"/*.deb)"
log "unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg-deb -x "$deb" "$work/root"

moddir="$work/root/lib/modules/$kver"
bzimage="$work/root/boot/vmlinuz-$kver"
[ -f "$bzimage" ] || { log "no $bzimage in $pkg" >&2; exit 1; }

rm -rf "$dest/modules" "$dest/modules.load" "$dest/KERNEL"
mkdir -p "$dest/modules"

vmlinux_tmp="$work/vmlinux"
python3 - "$bzimage" "$vmlinux_tmp" "$moddir" "$dest/modules" \
    "${#required[@]}" "${required[@]}" "${optional[@]}" <<'EOF'
import lzma, os, shutil, sys

bzimage, out, moddir, modout, nreq = sys.argv[1:6]
names = sys.argv[6:]
required, optional = names[:int(nreq)], names[int(nreq):]

# The bzImage carries the ELF vmlinux as an xz stream after its setup code.
data = open(bzimage, "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit("no xz stream in " + bzimage)
vmlinux = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
if vmlinux[:4] != b"\x7fELF":
    sys.exit("decompressed kernel is not an ELF image")
open(out, "wb").write(vmlinux)
print(f"fetch-guest-kernel: vmlinux {len(vmlinux) >> 20} MiB from "
      f"{os.path.basename(bzimage)} ({len(data) >> 20} MiB)")

found = {}
for root, _, files in os.walk(moddir):
    for f in files:
        for suffix in (".ko", ".ko.xz"):
            if f.endswith(suffix):
                found[f[: -len(suffix)].replace("-", "_")] = os.path.join(root, f)

def depends(blob):
    # .modinfo holds NUL-separated key=value strings; depends= lists the
    # modules this one needs loaded first.
    i = blob.find(b"\0depends=")
    if i < 0:
        return []
    val = blob[i + 9 : blob.index(b"\0", i + 1)].decode()
    return [d.replace("-", "_") for d in val.split(",") if d]

blobs = {}
for name in required + optional:
    if name not in found:
        if name in required:
            sys.exit(f"module {name} not in the kernel package")
        print(f"fetch-guest-kernel: optional module {name} absent, skipped")
        continue
    path = found[name]
    blob = open(path, "rb").read()
    if path.endswith(".xz"):
        blob = lzma.decompress(blob)
    blobs[name] = blob

# Pull in any dependency we did not list, then order dependencies first.
pending = list(blobs)
while pending:
    for dep in depends(blobs[pending.pop()]):
        if dep not in blobs:
            if dep not in found:
                sys.exit(f"dependency {dep} missing")
            blob = open(found[dep], "rb").read()
            if found[dep].endswith(".xz"):
                blob = lzma.decompress(blob)
            blobs[dep] = blob
            pending.append(dep)

order, seen = [], set()
def visit(name):
    if name in seen:
        return
    seen.add(name)
    for dep in depends(blobs[name]):
        visit(dep)
    order.append(name)
for name in required + optional + sorted(blobs):
    if name in blobs:
        visit(name)

for name in order:
    open(os.path.join(modout, name + ".ko"), "wb").write(blobs[name])
with open(os.path.join(os.path.dirname(modout), "modules.load"), "w") as f:
    f.write("".join(n + "\n" for n in order))
print("fetch-guest-kernel: modules " + " ".join(order))
EOF

mv -f "$vmlinux_tmp" "$dest/vmlinux"
echo "$pkg" > "$dest/KERNEL"
log "done: $pkg -> $dest"
