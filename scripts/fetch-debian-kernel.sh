#!/bin/sh
# Fetches Debian's cloud kernel (linux-image-6.1.0-NN-cloud-amd64) with apt-get download,
# unpacks it with dpkg -x into a cache outside the repository and prints the path of its
# bzImage (boot/vmlinuz-*). Quick and offline once cached.
#
#   scripts/fetch-debian-kernel.sh            # prints e.g. ~/.cache/nodevisor/debian-kernel/6.1.0-56-cloud-amd64/boot/vmlinuz-6.1.0-56-cloud-amd64
#   NODEVISOR_DEBIAN_KERNEL_REFRESH=1 ...     # ask apt which version is current even when one is cached
#
# Needs: apt-get, apt-cache, dpkg (Debian or Ubuntu), network the first time.
# Everything but the final path goes to stderr.
set -eu

cache="${XDG_CACHE_HOME:-$HOME/.cache}/nodevisor/debian-kernel"
meta=linux-image-cloud-amd64

die() { echo "fetch-debian-kernel: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (this script needs a Debian-based host)"
done
mkdir -p "$cache" || die "cannot create $cache"

# A kernel fetched before, when no refresh is asked for: no apt at all.
if [ -z "${NODEVISOR_DEBIAN_KERNEL_REFRESH:-}" ] && [ -f "$cache/current" ]; then
  cur=$(cat "$cache/current")
  img="$cache/$cur/boot/vmlinuz-$cur"
  if [ -f "$img" ]; then echo "$img"; exit 0; fi
fi

# Which linux-image-6.1.0-NN-cloud-amd64 the meta-package points at now.
find_pkg() {
  apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1
}
pkg=$(find_pkg)
if [ -z "$pkg" ]; then
  echo "fetch-debian-kernel: $meta unknown to apt-cache, running apt-get update" >&2
  apt-get update >&2 || die "apt-get update failed (run it as root, or with network)"
  pkg=$(find_pkg)
  [ -n "$pkg" ] || die "apt-cache knows no $meta (is Debian's main archive in sources.list?)"
fi
ver=${pkg#linux-image-}
dest="$cache/$ver"
img="$dest/boot/vmlinuz-$ver"

if [ ! -f "$img" ]; then
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-debian-kernel: downloading $pkg" >&2
  # apt-get download writes into the current directory; as root it drops to _apt, which must
  # be able to write there.
  chmod 0777 "$tmp"
  (cd "$tmp" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed (network? apt-get update?)"
  deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || die "apt-get download $pkg left no .deb"
  mkdir -p "$tmp/x"
  dpkg -x "$deb" "$tmp/x" || die "dpkg -x $deb failed"
  [ -f "$tmp/x/boot/vmlinuz-$ver" ] || die "$pkg has no boot/vmlinuz-$ver"
  mkdir -p "$dest/boot"
  # Only the bzImage (and its config, for reference) is kept: the modules are not needed.
  cp "$tmp/x/boot/vmlinuz-$ver" "$img.part"
  cp "$tmp/x/boot/config-$ver" "$dest/boot/" 2>/dev/null || true
  mv "$img.part" "$img"
  rm -rf "$tmp"
  trap - EXIT
fi
echo "$ver" > "$cache/current"
echo "$img"
