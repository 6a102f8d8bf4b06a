//! Addresses of QEMU's user-mode network ("slirp"), which pyro gives a guest whose
//! network is enabled: no TAP device, no host configuration, outbound only (plus the
//! ports published on the host's 127.0.0.1). The guest side is configured by the
//! initramfs (`pyro.net=1` on the kernel command line).

pub use super::launch::GUEST_IP;

/// The guest's gateway; QEMU answers for it, and it reaches the host's 127.0.0.1.
pub const GATEWAY_IP: &str = "10.0.2.2";
/// QEMU's built-in DNS forwarder (written to the guest's /etc/resolv.conf).
pub const DNS_SERVER: &str = "10.0.2.3";
/// The user network.
pub const SUBNET_CIDR: &str = "10.0.2.0/24";
/// The MAC address QEMU gives the first NIC when none is set (pyro sets none).
pub const GUEST_MAC: &str = "52:54:00:12:34:56";
/// Name of the network mode, as shown in results.
pub const MODE: &str = "user";
