#!/bin/sh
# /init of pyro's guest initramfs, run by the kernel as PID 1 under busybox (built by guest-build.sh boot).
#
# Initramfs layout: /bin/busybox (+ applet links), /lib/modules/NAME.ko and /lib/modules/order (load order,
# dependencies first), /pyro-guest-agent, this file as /init.
#
# Steps: mount proc/sysfs/devtmpfs; insmod the virtio modules; mount /dev/vda (ext4, rw) on /newroot;
# networking per the kernel command line; agent copied to /newroot/run/pyro/; /dev /proc /sys moved into
# /newroot; then `switch_root /newroot /run/pyro/pyro-guest-agent --init`.
#
# Kernel command line options read here:
#   pyro.net=1        configure eth0 for QEMU user-mode networking (10.0.2.15/24 via 10.0.2.2, DNS 10.0.2.3);
#                     otherwise only lo is brought up
#   pyro.root=DEV     root block device (default /dev/vda)
#
# Console markers for the host: "PYRO-INIT stage=<name> uptime=<secs>" at each stage, and
# "PYRO-INIT-FATAL <reason>" followed by an immediate power-off on any fatal error.

export PATH=/bin
NEWROOT=/newroot
ROOTDEV=/dev/vda
NET=0
AGENT=/run/pyro/pyro-guest-agent

mark() {
	# /proc lives at $NEWROOT/proc once moved there
	{ read -r up _ </proc/uptime || read -r up _ <"$NEWROOT/proc/uptime"; } 2>/dev/null
	echo "PYRO-INIT stage=$1 uptime=$up"
}

fatal() {
	echo "PYRO-INIT-FATAL $*"
	sync
	poweroff -f
	# poweroff should not return; if it does, make sure the VM still goes away
	echo o >/proc/sysrq-trigger || echo o >"$NEWROOT/proc/sysrq-trigger"
	sleep 5
	exit 1
}

mount_early() {
	mount -t proc -o nosuid,nodev,noexec proc /proc || fatal "mount /proc failed"
	mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fatal "mount /sys failed"
	mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || fatal "mount /dev (devtmpfs) failed"
}

parse_cmdline() {
	set -f # no globbing of command-line words
	for arg in $(cat /proc/cmdline); do
		case "$arg" in
		pyro.net=1) NET=1 ;;
		pyro.net=*) NET=0 ;;
		pyro.root=?*) ROOTDEV=${arg#pyro.root=} ;;
		--) break ;;
		esac
	done
	set +f
}

load_modules() {
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "/lib/modules/$m.ko" || fatal "insmod $m failed"
	done </lib/modules/order
}

# wait_for PATH TRIES: poll every 10 ms until PATH exists
wait_for() {
	n=0
	while [ ! -e "$1" ]; do
		n=$((n + 1))
		[ "$n" -le "$2" ] || return 1
		usleep 10000
	done
	return 0
}

mount_root() {
	mkdir -p "$NEWROOT"
	wait_for "$ROOTDEV" 500 || fatal "root device $ROOTDEV did not appear within 5 s"
	mount -t ext4 -o rw "$ROOTDEV" "$NEWROOT" || fatal "mount $ROOTDEV on $NEWROOT failed"
}

setup_network() {
	ip link set lo up || fatal "cannot bring up lo"
	hostname pyro
	[ "$NET" = 1 ] || return 0
	wait_for /sys/class/net/eth0 300 || fatal "pyro.net=1 but no eth0 appeared"
	ip link set eth0 up || fatal "cannot bring up eth0"
	ip addr add 10.0.2.15/24 dev eth0 || fatal "cannot set the eth0 address"
	ip route add default via 10.0.2.2 dev eth0 || fatal "cannot add the default route"
	rm -f "$NEWROOT/etc/resolv.conf"
	echo "nameserver 10.0.2.3" >"$NEWROOT/etc/resolv.conf" || fatal "cannot write /etc/resolv.conf"
}

prepare_newroot() {
	mkdir -p "$NEWROOT/run" "$NEWROOT/dev" "$NEWROOT/proc" "$NEWROOT/sys"
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$NEWROOT/run" || fatal "mount tmpfs on /run failed"
	mkdir -p "$NEWROOT/run/pyro"
	cp /pyro-guest-agent "$NEWROOT$AGENT" || fatal "cannot copy the agent"
	chmod 0755 "$NEWROOT$AGENT"
	for fs in dev proc sys; do
		mount --move "/$fs" "$NEWROOT/$fs" || fatal "mount --move /$fs failed"
	done
	mkdir -p "$NEWROOT/dev/pts" "$NEWROOT/dev/shm"
	mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts "$NEWROOT/dev/pts" ||
		fatal "mount devpts failed"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$NEWROOT/dev/shm" || fatal "mount /dev/shm failed"
	# what udev/systemd would normally provide
	# (-L: these resolve only inside the new root, where /proc now is)
	for l in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
		[ -L "$NEWROOT/dev/${l%%:*}" ] || ln -s "${l#*:}" "$NEWROOT/dev/${l%%:*}"
	done
}

mount_early
mark modules-start
parse_cmdline
load_modules
mark modules-done
mount_root
mark root-mounted
setup_network
prepare_newroot
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=linux
mark switch-root
exec switch_root "$NEWROOT" "$AGENT" --init
fatal "switch_root to $AGENT failed"
