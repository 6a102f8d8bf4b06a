#!/usr/bin/env bash
# guest-build.sh: builds pyro's guest assets (kernel, initramfs, root filesystems) from Debian packages only.
#
# Embedded into the `pyro` binary (include_str!) and run by `pyro env pull`; also run by scripts/setup.
#
# Usage:
#   guest-build.sh host-deps                     install the host packages needed below (apt; no-op when present)
#   guest-build.sh boot CACHE_DIR AGENT_BIN      kernel + initramfs (with AGENT_BIN as the guest agent)
#   guest-build.sh rootfs CACHE_DIR ENV_NAME     root filesystem image for ENV_NAME:
#                                                  debian:12-base | debian:12 | debian:12-build
#
# Layout produced under CACHE_DIR (normally $PYRO_CACHE_DIR or ~/.cache/pyro):
#   boot/vmlinux              raw ELF kernel from linux-image-*-cloud-amd64 (bookworm), for PVH direct boot
#   boot/initrd.img           busybox-static initramfs: /init, virtio modules, /pyro-guest-agent
#   boot/boot.json            {"kernel_package","kernel_release","agent_sha256","built_at",...}
#   boot/modules/             the decompressed virtio modules + load order, kept so the initrd rebuilds fast
#   boot/config-<release>     the kernel's build config (for reference)
#   environments/<ENV_NAME with ':' -> '_'>/
#     rootfs.ext4             sparse ext4 image (label pyro-root), content + 2 GiB headroom, made without mounting
#     packages.txt            "name version" per installed package
#     environment.json        {"name","debian_suite","packages","package_count","size_bytes","built_at","builder_version"}
#
# Every subcommand is idempotent and cached, prints "[pyro-build] phase=... detail" progress lines to stderr,
# exits non-zero with a one-line "[pyro-build] error: ..." message on failure, holds a lock so concurrent runs
# wait for each other, and builds into a ".partial-*" directory next to the target that is renamed into place
# at the end (an interrupted run never leaves a half-built target behind).
#
# The initramfs /init script is taken from $PYRO_INITRAMFS_INIT, else from initramfs-init.sh next to this file.
#
# Environment knobs (all optional):
#   PYRO_INITRAMFS_INIT     path of the initramfs init script
#   PYRO_KERNEL_META        meta package whose dependency is the kernel (default linux-image-cloud-amd64)
#   PYRO_INITRD_COMPRESS    none | lz4 | gzip (default none: fastest to unpack under TCG; the image is small)
#   PYRO_ROOTFS_HEADROOM_MB free space added to a root filesystem image (default 2048)
#   PYRO_HOST_DEPS_HINT     the command named in "missing host tools" errors (default: this script's host-deps)

set -euo pipefail
shopt -s nullglob

readonly BUILDER_VERSION=1
readonly DEBIAN_SUITE=bookworm
readonly HOST_PACKAGES=(qemu-system-x86 qemu-utils busybox-static cpio lz4 zstd xz-utils mmdebstrap e2fsprogs
  ca-certificates)
# Wanted guest modules, in load order. Their modinfo "depends=" are resolved too (dependencies first).
readonly GUEST_MODULES=(virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci virtio_console
  failover net_failover virtio_net virtio_blk virtio_balloon)
KERNEL_META=${PYRO_KERNEL_META:-linux-image-cloud-amd64}
INITRD_COMPRESS=${PYRO_INITRD_COMPRESS:-none}
HEADROOM_MB=${PYRO_ROOTFS_HEADROOM_MB:-2048}
HOST_DEPS_HINT=${PYRO_HOST_DEPS_HINT:-"$0 host-deps"}
SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" 2>/dev/null && pwd || echo .)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# ---------------------------------------------------------------------------------------------------------------
# helpers

log() { echo "[pyro-build] phase=$1${2:+ ${*:2}}" >&2; }
die() { echo "[pyro-build] error: $*" >&2; exit 1; }

# remove_tree DIR: rm -rf that first detaches anything still mounted below DIR (a killed mmdebstrap can
# leave /proc, /sys, /dev mounts in its tree) and never crosses into another file system.
remove_tree() {
  local d=$1 m
  [ -e "$d" ] || return 0
  d=$(cd "$d" && pwd -P)
  for m in $(awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system -- "$d"
}

# Directories to remove if we exit before renaming them into place (see atomic_swap).
CLEANUP=()
cleanup() {
  local d
  for d in "${CLEANUP[@]}"; do remove_tree "$d" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s; }
elapsed() { echo "$(( $(now) - $1 ))s"; }

need_cmds() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || die "missing host tools: ${missing[*]} (run: $HOST_DEPS_HINT)"
}

# lock FILE: take an exclusive lock held until this process exits
lock() {
  local fd
  exec {fd}>"$1" || die "cannot create lock file $1"
  if ! flock -n "$fd"; then
    log lock "waiting for another build holding $1"
    flock "$fd"
  fi
}

# make_partial TARGET: sets PARTIAL to a fresh ".partial-<name>-XXXX" dir next to TARGET, removed again if
# we fail. Stale ones from dead runs are removed first (callers hold the target's lock, so any are stale).
make_partial() {
  local target=$1 parent base d
  parent=$(dirname "$target"); base=$(basename "$target")
  mkdir -p "$parent"
  for d in "$parent/.partial-$base-"* "$parent/.old-$base-"*; do
    log cleanup "removing stale $d"
    remove_tree "$d" || die "cannot remove stale $d"
  done
  PARTIAL=$(mktemp -d "$parent/.partial-$base-XXXXXX") || die "cannot create a directory in $parent"
  chmod 0755 "$PARTIAL"
  CLEANUP+=("$PARTIAL")
}

# atomic_swap PARTIAL TARGET: rename PARTIAL to TARGET, replacing an existing TARGET
atomic_swap() {
  local partial=$1 target=$2 old=""
  if [ -e "$target" ]; then
    old="$(dirname "$target")/.old-$(basename "$target")-$$"
    mv -T -- "$target" "$old"
  fi
  mv -T -- "$partial" "$target"
  [ -z "$old" ] || remove_tree "$old"
}

# json_get FILE KEY: the scalar value of a top-level key in our own flat JSON files (no jq on the host)
json_get() {
  [ -f "$1" ] || return 0
  sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *$/\1/p" "$1" | head -n1
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------------------------------------------------------
# host-deps

pkg_installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

cmd_host_deps() {
  local p missing=()
  for p in "${HOST_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then
    log host-deps "all ${#HOST_PACKAGES[@]} host packages already installed"
    return 0
  fi
  is_root || die "host packages missing (${missing[*]}); run as root: $0 host-deps"
  log host-deps "installing: ${missing[*]}"
  local t0; t0=$(now)
  # A stale or missing package list is the common reason for install failure: refresh it once and retry.
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    log host-deps "apt-get install failed; running apt-get update and retrying"
    apt-get update -q >&2 || log host-deps "warning: apt-get update reported errors"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
      || die "apt-get install of ${missing[*]} failed"
  fi
  # Installing one package can remove another (e.g. bookworm's qemu-system-x86 breaks a backported
  # qemu-utils, which apt then removes): check the whole list again and install what went missing.
  missing=()
  for p in "${HOST_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log host-deps "installing (second round): ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || die "apt-get install of ${missing[*]} failed"
  fi
  for p in "${HOST_PACKAGES[@]}"; do pkg_installed "$p" || die "package $p still not installed after apt-get"; done
  log host-deps "done in $(elapsed "$t0")"
}

# ---------------------------------------------------------------------------------------------------------------
# boot: kernel

# Prints "PACKAGE VERSION" of the kernel image package the meta package currently points to, or nothing.
# Debian's meta package pins its image package with "(= VERSION)", so one apt-cache call usually answers
# (apt-cache can take ~1 s per call on hosts that keep no binary package cache).
kernel_candidate() {
  local dep pkg ver
  dep=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null | sed -n 's/^Depends: //p' | head -n1 \
    | tr ',' '\n' | sed -n 's/^ *\(linux-image-[^ ]*\)\( *(\(.*\)).*\)\{0,1\}$/\1 \3/p' | head -n1)
  pkg=${dep%% *}
  [ -n "$pkg" ] || return 0
  case "$dep" in
    *" = "*) ver=${dep##*= } ;;
    *) ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1) ;;
  esac
  [ -n "$ver" ] && echo "$pkg $ver"
}

# extract_vmlinux BZIMAGE OUT: pull the ELF vmlinux out of a bzImage by finding its compressed payload
# (same idea as linux/scripts/extract-vmlinux). PVH direct boot needs the raw ELF.
extract_vmlinux() {
  local in=$1 out=$2 magic tool pos
  for spec in '\x02\x21\x4c\x18|lz4 -dc' '\x28\xb5\x2f\xfd|zstd -dcq' '\xfd\x37\x7a\x58\x5a\x00|xz -dc' \
              '\x1f\x8b\x08|gzip -dc'; do
    magic=${spec%%|*}; tool=${spec#*|}
    for pos in $(grep -obUaP "$magic" "$in" | cut -d: -f1 | head -n5); do
      # decompressors complain about the trailing data after the payload: judge by the output instead
      tail -c "+$((pos + 1))" "$in" | $tool >"$out" 2>/dev/null || true
      if [ "$(head -c4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] && [ "$(stat -c %s "$out")" -gt 1000000 ]; then
        log kernel "vmlinux extracted ($tool payload at offset $pos, $(( $(stat -c %s "$out") / 1048576 )) MiB)"
        return 0
      fi
    done
  done
  rm -f "$out"
  return 1
}

# decompress_ko FILE: a module's bytes on stdout, whatever its compression
decompress_ko() {
  case "$1" in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -dcq "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
  esac
}

# collect_modules MODDIR OUTDIR: copy GUEST_MODULES and their dependencies (decompressed, flat as NAME.ko) to
# OUTDIR and write OUTDIR/order (dependencies first). Built-in modules are skipped; unknown ones are fatal.
collect_modules() {
  local moddir=$1 outdir=$2
  declare -A seen=() path=()
  local order=() f n
  while IFS= read -r f; do
    n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
    path[$n]=$f
  done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
  add_module() {
    local m=${1//-/_} d deps
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    if [ -z "${path[$m]:-}" ]; then
      if grep -qE "/${m//_/[-_]}\.ko\$" "$moddir/modules.builtin" 2>/dev/null; then
        log modules "$m is built into the kernel"
        return 0
      fi
      die "kernel module $m not found in $moddir (and not built in)"
    fi
    deps=$(decompress_ko "${path[$m]}" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')
    for d in $deps; do add_module "$d"; done
    decompress_ko "${path[$m]}" >"$outdir/$m.ko"
    order+=("$m")
  }
  for n in "${GUEST_MODULES[@]}"; do add_module "$n"; done
  printf '%s\n' "${order[@]}" >"$outdir/order"
  printf '%s\n' "${GUEST_MODULES[@]}" >"$outdir/requested"
  log modules "load order: ${order[*]}"
}

# fetch_kernel PKG VERSION DESTDIR: download + unpack the kernel package, leave vmlinux, modules/, config-* in DESTDIR
fetch_kernel() {
  local pkg=$1 ver=$2 dest=$3 work deb kver t0
  t0=$(now)
  work="$dest/.kernel-work"
  mkdir -p "$work/root"
  log kernel "downloading $pkg $ver"
  # as root apt drops privileges to _apt for downloads, which cannot reach a private cache dir: don't
  local aptopt=()
  if is_root; then aptopt=(-o APT::Sandbox::User=root); fi
  (cd "$work" && apt-get download -q "${aptopt[@]}" "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
  deb=$(echo "$work"/*.deb)
  [ -f "$deb" ] || die "apt-get download produced no .deb for $pkg"
  log kernel "unpacking $(basename "$deb") ($(( $(stat -c %s "$deb") / 1048576 )) MiB)"
  dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"
  kver=$(basename "$(echo "$work/root/lib/modules/"*)")
  [ -n "$kver" ] && [ -d "$work/root/lib/modules/$kver" ] || die "no /lib/modules/<release> in $pkg"
  [ -f "$work/root/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-$kver in $pkg"
  extract_vmlinux "$work/root/boot/vmlinuz-$kver" "$dest/vmlinux" \
    || die "could not find an ELF kernel inside /boot/vmlinuz-$kver"
  cp "$work/root/boot/config-$kver" "$dest/config-$kver" 2>/dev/null || true
  mkdir -p "$dest/modules"
  collect_modules "$work/root/lib/modules/$kver" "$dest/modules"
  echo "$kver" >"$dest/modules/kernel_release"
  echo "${pkg}_${ver}" >"$dest/modules/kernel_package"
  rm -rf "$work"
  log kernel "done in $(elapsed "$t0")"
}

# ---------------------------------------------------------------------------------------------------------------
# boot: initramfs

# cpio_console: a tiny newc archive holding the /dev/console node. The kernel opens /dev/console on the
# initramfs before running /init (without it /init has no stdout); writing the header by hand avoids mknod,
# so no root is needed. The kernel unpacks concatenated archives.
cpio_console() {
  local name=dev/console
  # magic ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    1 $((8#20600)) 0 0 1 0 0 0 0 5 1 $(( ${#name} + 1 )) 0
  printf '%s\0' "$name"
  # header (110 bytes) + name + NUL padded to a multiple of 4
  local pad=$(( (4 - (110 + ${#name} + 1) % 4) % 4 ))
  head -c "$pad" /dev/zero
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' 0 0 0 0 1 0 0 0 0 0 0 11 0
  printf 'TRAILER!!!\0'
  pad=$(( (4 - (110 + 11) % 4) % 4 ))
  head -c "$pad" /dev/zero
}

# build_initrd BOOTDIR(with modules/) AGENT_BIN INIT_SCRIPT OUT
build_initrd() {
  local bootdir=$1 agent=$2 init=$3 out=$4 tree a m
  tree="$bootdir/.initrd-tree"
  rm -rf "$tree"
  mkdir -p "$tree"/{bin,dev,proc,sys,newroot,tmp,run,etc,lib/modules}
  ln -s bin "$tree/sbin"
  mkdir -p "$tree/usr"; ln -s ../bin "$tree/usr/bin"; ln -s ../bin "$tree/usr/sbin"
  cp "$BUSYBOX" "$tree/bin/busybox"
  # one symlink per applet; perl (Essential on Debian) makes the ~270 links in one process instead of ~270 ln forks
  "$BUSYBOX" --list | grep -vx busybox \
    | D="$tree/bin" perl -ne 'chomp; symlink("busybox", "$ENV{D}/$_") or die "$_: $!\n"' \
    || die "cannot create the busybox applet links"
  while IFS= read -r m; do
    [ -n "$m" ] && cp "$bootdir/modules/$m.ko" "$tree/lib/modules/$m.ko"
  done <"$bootdir/modules/order"
  cp "$bootdir/modules/order" "$tree/lib/modules/order"
  install -m 0755 "$init" "$tree/init"
  install -m 0755 "$agent" "$tree/pyro-guest-agent"
  {
    cpio_console
    (cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) || exit 1
  } >"$out.cpio" || die "cpio failed"
  case "$INITRD_COMPRESS" in
    none) mv "$out.cpio" "$out" ;;
    lz4) lz4 -l -9 -q -f "$out.cpio" "$out" && rm -f "$out.cpio" ;;
    gzip) gzip -6 -n -c "$out.cpio" >"$out" && rm -f "$out.cpio" ;;
    *) die "unknown PYRO_INITRD_COMPRESS=$INITRD_COMPRESS (none|lz4|gzip)" ;;
  esac
  rm -rf "$tree"
}

write_boot_json() {
  local out=$1 pkg=$2 kver=$3 agent_sha=$4 init_sha=$5 mods
  mods=$(sed 's/.*/"&"/' "$(dirname "$out")/modules/order" | paste -sd, | sed 's/,/, /g')
  cat >"$out" <<EOF
{
  "kernel_package": "$pkg",
  "kernel_release": "$kver",
  "agent_sha256": "$agent_sha",
  "init_sha256": "$init_sha",
  "initrd_compression": "$INITRD_COMPRESS",
  "modules": [$mods],
  "builder_version": $BUILDER_VERSION,
  "built_at": $(now)
}
EOF
}

find_init_script() {
  local f=${PYRO_INITRAMFS_INIT:-$SELF_DIR/initramfs-init.sh}
  [ -f "$f" ] || die "initramfs init script not found at $f (set PYRO_INITRAMFS_INIT)"
  echo "$f"
}

find_busybox() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    # a dynamically linked busybox names its loader; the initramfs has no libc, so insist on busybox-static
    if [ -x "$b" ] && ! grep -q '/lib64/ld-linux' "$b"; then echo "$b"; return 0; fi
  done
  die "no statically linked busybox found (run: $HOST_DEPS_HINT, which installs busybox-static)"
}

cmd_boot() {
  [ $# -eq 2 ] || die "usage: $0 boot CACHE_DIR AGENT_BIN"
  local cache=$1 agent=$2 target init agent_sha init_sha cand want_pkg have_pkg partial kver f t0
  t0=$(now)
  [ -f "$agent" ] || die "agent binary not found: $agent"
  need_cmds apt-get apt-cache dpkg-deb cpio lz4 zstd xz gzip sha256sum flock grep od
  init=$(find_init_script)
  BUSYBOX=$(find_busybox)
  mkdir -p "$cache" || die "cannot create cache dir $cache"
  cache=$(cd "$cache" && pwd)
  target="$cache/boot"
  lock "$cache/.lock-boot"

  agent_sha=$(sha256 "$agent")
  init_sha=$(sha256 "$init")
  have_pkg=$(json_get "$target/boot.json" kernel_package)

  cand=$(kernel_candidate)
  if [ -z "$cand" ] && is_root && [ ! -f "$target/vmlinux" ]; then
    log kernel "no candidate for $KERNEL_META in the apt lists; running apt-get update"
    apt-get update -q >&2 || log kernel "warning: apt-get update reported errors"
    cand=$(kernel_candidate)
  fi
  if [ -n "$cand" ]; then
    want_pkg="${cand% *}_${cand#* }"
  elif [ -f "$target/vmlinux" ] && [ -n "$have_pkg" ]; then
    log kernel "warning: cannot resolve $KERNEL_META from apt; keeping cached $have_pkg"
    want_pkg=$have_pkg
  else
    die "cannot resolve $KERNEL_META with apt-cache (run apt-get update as root, then retry)"
  fi

  local kernel_ok=0 initrd_ok=0
  if [ -f "$target/vmlinux" ] && [ "$have_pkg" = "$want_pkg" ] && [ -f "$target/modules/order" ] \
    && [ "$(cat "$target/modules/requested" 2>/dev/null)" = "$(printf '%s\n' "${GUEST_MODULES[@]}")" ]; then
    kernel_ok=1
  fi
  if [ $kernel_ok = 1 ] && [ -f "$target/initrd.img" ] \
    && [ "$(json_get "$target/boot.json" agent_sha256)" = "$agent_sha" ] \
    && [ "$(json_get "$target/boot.json" init_sha256)" = "$init_sha" ] \
    && [ "$(json_get "$target/boot.json" initrd_compression)" = "$INITRD_COMPRESS" ] \
    && [ "$(json_get "$target/boot.json" builder_version)" = "$BUILDER_VERSION" ]; then
    initrd_ok=1
  fi
  if [ $initrd_ok = 1 ]; then
    log boot "up to date ($want_pkg, agent ${agent_sha:0:12}) in $target"
    return 0
  fi

  make_partial "$target"; partial=$PARTIAL
  if [ $kernel_ok = 1 ]; then
    log kernel "reusing cached $want_pkg"
    # hard links: no copy of the (large) vmlinux, and the old files are never modified in place
    ln "$target/vmlinux" "$partial/vmlinux"
    cp -al "$target/modules" "$partial/modules"
    for f in "$target"/config-*; do ln "$f" "$partial/"; done
  else
    fetch_kernel "${want_pkg%%_*}" "${want_pkg#*_}" "$partial"
  fi
  kver=$(cat "$partial/modules/kernel_release")

  local t1; t1=$(now)
  log initrd "building (agent $(basename "$agent") sha256 ${agent_sha:0:12}, compression $INITRD_COMPRESS)"
  build_initrd "$partial" "$agent" "$init" "$partial/initrd.img"
  log initrd "built $(( $(stat -c %s "$partial/initrd.img") / 1024 )) KiB in $(elapsed "$t1")"
  write_boot_json "$partial/boot.json" "$want_pkg" "$kver" "$agent_sha" "$init_sha"
  atomic_swap "$partial" "$target"
  log boot "done in $(elapsed "$t0"): $target (kernel $kver)"
}

# ---------------------------------------------------------------------------------------------------------------
# rootfs

# env_packages ENV_NAME: the packages added on top of mmdebstrap's minbase. The catalog lives in pyro
# (crates/pyro/src/runtime/environments.rs), which passes the list in PYRO_ENV_PACKAGES; this script keeps
# no second copy of it.
env_packages() {
  [ -n "${PYRO_ENV_PACKAGES+set}" ] || return 1
  echo "$PYRO_ENV_PACKAGES"
}

# host_sources FILE: the host's own apt sources for the Debian archive (third-party repositories and
# disabled files left out), as the guest's sources.list: the guest reaches the same mirrors the host does.
host_sources() {
  local out=$1 f
  : >"$out"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E "^[[:space:]]*deb[[:space:]].*[[:space:]]$DEBIAN_SUITE(-updates|-security|/updates)?[[:space:]]" "$f" \
      | awk '!/signed-by=/ || /debian-archive-keyring/' >>"$out" || true
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    # deb822 stanzas: keep those that name our suite and rely on the Debian archive keyring
    awk -v suite="$DEBIAN_SUITE" '
      function flush() {
        if (st != "" && st ~ ("Suites:[^\n]*[ \t]" suite "([ \t\n-]|$)") && (st !~ /Signed-By:/ || st ~ /debian-archive-keyring/) && st ~ /Types:[^\n]*deb([ \t\n]|$)/ && st !~ /Enabled: *no/)
          printf "%s\n", st
        st = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      { st = st $0 "\n" }
      END { flush() }' "$f" >>"$out.sources"
  done
  if [ -s "$out.sources" ]; then
    # mmdebstrap wants a single format per argument: turn deb822 stanzas into one-line entries
    awk '
      function emit(   u, s, i, j, nu, ns, uu, ss) {
        if (types == "") return
        nu = split(uris, uu, /[ \t]+/); ns = split(suites, ss, /[ \t]+/)
        for (i = 1; i <= nu; i++) if (uu[i] != "") for (j = 1; j <= ns; j++) if (ss[j] != "")
          printf "deb %s %s %s\n", uu[i], ss[j], comps
        types = uris = suites = comps = ""
      }
      /^[ \t]*$/ { emit(); next }
      /^Types:/ { types = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
      END { emit() }' "$out.sources" >>"$out"
  fi
  rm -f "$out.sources"
  # keep only entries for our suite family
  grep -E "[[:space:]]$DEBIAN_SUITE(-updates|-security|/updates)?[[:space:]]" "$out" | awk '!seen[$0]++' >"$out.tmp" || true
  mv "$out.tmp" "$out"
  [ -s "$out" ]
}

# configure_tree DIR: the pyro-specific bits of the guest filesystem
configure_tree() {
  local d=$1
  install -d -m 0755 "$d/workspace"
  echo pyro >"$d/etc/hostname"
  cat >"$d/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	pyro
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
  # the initramfs init writes it when networking is on
  rm -f "$d/etc/resolv.conf"; : >"$d/etc/resolv.conf"
  if [ ! -e "$d/bin/sh" ]; then
    [ -e "$d/bin/dash" ] || [ -e "$d/usr/bin/dash" ] || die "the built tree has neither /bin/sh nor dash"
    ln -sf dash "$d/bin/sh"
  fi
  # no systemd in the guest: these would only confuse tools
  rm -f "$d/etc/machine-id" "$d/var/lib/dbus/machine-id"
  # apt caches and lists: the guest runs apt-get update itself when it needs packages
  rm -rf "$d"/var/cache/apt/*.bin "$d"/var/cache/apt/archives/*.deb "$d"/var/cache/apt/archives/partial/* \
    "$d"/var/cache/debconf/*-old "$d"/var/lib/dpkg/*-old "$d"/var/log/apt/* "$d"/var/log/*.log
  find "$d/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} + 2>/dev/null || true
  find "$d/tmp" "$d/var/tmp" -mindepth 1 -delete 2>/dev/null || true
}

cmd_rootfs() {
  [ $# -eq 2 ] || die "usage: $0 rootfs CACHE_DIR ENV_NAME"
  local cache=$1 name=$2 pkgs dirname target partial tree t0 t1 inc used size_mb count sources
  env_packages "$name" >/dev/null || die "no package list for '$name': build environments with \`pyro env pull $name\`, which passes PYRO_ENV_PACKAGES"
  pkgs=$(env_packages "$name")
  need_cmds mmdebstrap mkfs.ext4 dpkg-query flock du
  mkdir -p "$cache/environments" || die "cannot create cache dir $cache"
  cache=$(cd "$cache" && pwd)
  dirname=${name//:/_}
  target="$cache/environments/$dirname"
  lock "$cache/environments/.lock-$dirname"

  if [ -f "$target/rootfs.ext4" ] \
    && [ "$(json_get "$target/environment.json" builder_version)" = "$BUILDER_VERSION" ]; then
    log rootfs "up to date: $target"
    return 0
  fi
  is_root || die "building a root filesystem needs root (mmdebstrap root mode, file ownership)"

  t0=$(now)
  make_partial "$target"; partial=$PARTIAL
  tree="$partial/tree"
  sources="$partial/sources.list"
  local mirror=()
  if host_sources "$sources"; then
    mirror=("$sources")
    log rootfs "mmdebstrap $DEBIAN_SUITE minbase + ${pkgs// /,} ($(wc -l <"$sources") apt sources from the host)"
  else
    log rootfs "mmdebstrap $DEBIAN_SUITE minbase + ${pkgs// /,} (no Debian source in /etc/apt: mmdebstrap's default mirror)"
  fi
  inc=${pkgs// /,}
  # stdin from /dev/null: mmdebstrap reads sources from a non-tty stdin when given no mirror argument
  mmdebstrap --quiet --mode=root --variant=minbase --format=directory \
    --include="$inc" \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='APT::Install-Suggests "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "$DEBIAN_SUITE" "$tree" "${mirror[@]}" </dev/null >&2 \
    || die "mmdebstrap failed for $name (see the messages above)"
  log rootfs "debootstrapped in $(elapsed "$t0")"

  configure_tree "$tree"
  dpkg-query --admindir="$tree/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' \
    | awk '$1 == "ii" { print $2, $3 }' | LC_ALL=C sort >"$partial/packages.txt"
  count=$(wc -l <"$partial/packages.txt")

  t1=$(now)
  used=$(du -s -x --block-size=1M "$tree" | cut -f1)
  # content + ~10% for ext4 metadata (inode tables, journal) + headroom, rounded up to 64 MiB
  size_mb=$(( (used + used / 10 + 64 + HEADROOM_MB + 63) / 64 * 64 ))
  log rootfs "mkfs.ext4: ${used} MiB of files, image ${size_mb} MiB"
  # a fresh sparse file reads as zeros, so the journal need not be written out (saves 64 MiB of real blocks);
  # -m 0: no blocks reserved for root, the guest's user is root anyway
  truncate -s "${size_mb}M" "$partial/rootfs.ext4"
  mkfs.ext4 -q -F -L pyro-root -m 0 -E lazy_journal_init=1 -d "$tree" "$partial/rootfs.ext4" >&2 \
    || die "mkfs.ext4 -d failed for $name"
  remove_tree "$tree"; rm -f "$sources"
  log rootfs "image made in $(elapsed "$t1") ($(( $(du -s --block-size=1M "$partial/rootfs.ext4" | cut -f1) )) MiB allocated)"

  local pkg_json
  pkg_json=$(printf '"%s", ' $pkgs); pkg_json=${pkg_json%, }
  cat >"$partial/environment.json" <<EOF
{
  "name": "$name",
  "debian_suite": "$DEBIAN_SUITE",
  "packages": [$pkg_json],
  "package_count": $count,
  "size_bytes": $(stat -c %s "$partial/rootfs.ext4"),
  "built_at": $(now),
  "builder_version": $BUILDER_VERSION
}
EOF
  atomic_swap "$partial" "$target"
  log rootfs "done in $(elapsed "$t0"): $target ($count packages)"
}

# ---------------------------------------------------------------------------------------------------------------

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    host-deps) [ $# -eq 0 ] || die "usage: $0 host-deps"; cmd_host_deps ;;
    boot) cmd_boot "$@" ;;
    rootfs) cmd_rootfs "$@" ;;
    -h | --help | help) [ -f "${BASH_SOURCE[0]}" ] && sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2 ;;
    *) die "usage: $0 host-deps | boot CACHE_DIR AGENT_BIN | rootfs CACHE_DIR ENV_NAME" ;;
  esac
}

# on one line: bash must not read past this point, even if this file is replaced while it runs
main "$@"; exit
