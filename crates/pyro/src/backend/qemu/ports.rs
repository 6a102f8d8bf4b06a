//! Published ports of a running guest: TCP forwards from the host's `127.0.0.1` to a
//! guest port on the user-mode network (`n0`), added and removed over QMP while the
//! guest runs, and read back from QEMU itself (`info usernet`), which is the only
//! record of them: they end with the QEMU process.
//!
//! Forwards bind `127.0.0.1` only, never another host address.

use super::super::BackendError;
use super::layout::SandboxPaths;
use super::{process, QmpClient, QMP_TIMEOUT};
use std::net::{Ipv4Addr, TcpListener};

/// Lowest host port a caller may ask for (no privileged ports).
pub const MIN_HOST_PORT: u16 = 1025;

/// Free ports tried when the caller lets pyro pick one.
const PICK_ATTEMPTS: usize = 5;

fn qmp(paths: &SandboxPaths) -> Result<QmpClient, BackendError> {
    if process::qemu_pid(paths).is_none() {
        return Err(BackendError::NotRunning);
    }
    Ok(QmpClient::connect(&paths.qmp_socket(), QMP_TIMEOUT)?)
}

/// A port on 127.0.0.1 that nothing listens on right now (at least 1025).
fn free_loopback_port() -> Result<u16, BackendError> {
    for _ in 0..16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| BackendError::io("cannot find a free port on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BackendError::io("cannot find a free port on 127.0.0.1", e))?
            .port();
        if port >= MIN_HOST_PORT {
            return Ok(port);
        }
    }
    Err(BackendError::io(
        "cannot find a free port on 127.0.0.1",
        std::io::Error::other("only privileged ports were offered"),
    ))
}

/// Forward `127.0.0.1:<host_port>` (a free one when `None`) to `guest_port`; returns the
/// host port.
pub fn publish(
    paths: &SandboxPaths,
    host_port: Option<u16>,
    guest_port: u16,
) -> Result<u16, BackendError> {
    if guest_port == 0 || host_port.is_some_and(|p| p < MIN_HOST_PORT) {
        return Err(BackendError::Protocol(format!(
            "cannot publish host port {host_port:?} to guest port {guest_port}: host ports must be \
             {MIN_HOST_PORT}-65535 and guest ports 1-65535"
        )));
    }
    let mut client = qmp(paths)?;
    if let Some(port) = host_port {
        client.hostfwd_add(port, guest_port)?;
        return Ok(port);
    }
    // The port is free when picked but QEMU binds it a moment later: retry on a race.
    let mut last = None;
    for _ in 0..PICK_ATTEMPTS {
        let port = free_loopback_port()?;
        match client.hostfwd_add(port, guest_port) {
            Ok(()) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(BackendError::from).unwrap_or_else(|| {
        BackendError::Protocol("could not publish a port: no attempt was made".into())
    }))
}

/// Remove the forward of `127.0.0.1:<host_port>`.
pub fn unpublish(paths: &SandboxPaths, host_port: u16) -> Result<(), BackendError> {
    Ok(qmp(paths)?.hostfwd_remove(host_port)?)
}

/// The forwards QEMU has now, as `(host_port, guest_port)` pairs (127.0.0.1 only).
pub fn list(paths: &SandboxPaths) -> Result<Vec<(u16, u16)>, BackendError> {
    let text = qmp(paths)?.human_monitor_command("info usernet")?;
    Ok(parse_usernet(&text))
}

/// Parse `info usernet`: the `TCP[HOST_FORWARD]` rows from `127.0.0.1`.
///
/// ```text
/// Hub -1 (n0):
///   Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
///   TCP[HOST_FORWARD]   3       127.0.0.1 18233       10.0.2.15  8080     0     0
/// ```
pub fn parse_usernet(text: &str) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() != Some(&"TCP[HOST_FORWARD]") || fields.len() < 6 {
                return None;
            }
            if fields[2] != "127.0.0.1" {
                return None;
            }
            Some((fields[3].parse().ok()?, fields[5].parse().ok()?))
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernet_rows_become_port_pairs() {
        // Captured from QEMU 7.2 (`info usernet` after a boot-time and a runtime forward).
        let text = "Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  \
                    Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   8       127.0.0.1 18234       \
                    10.0.2.15    80     0     0\r\n  TCP[HOST_FORWARD]   3       127.0.0.1 18233       \
                    10.0.2.15  8080     0     0\r\n  TCP[ESTABLISHED]   12       10.0.2.15 40000  \
                    93.184.216.34    80     0     0\r\n  TCP[HOST_FORWARD]   9         0.0.0.0  2222  \
                    10.0.2.15    22     0     0\r\n";
        assert_eq!(parse_usernet(text), vec![(18233, 8080), (18234, 80)]);
        assert!(parse_usernet("").is_empty());
    }

    #[test]
    fn picked_ports_are_unprivileged() {
        let port = free_loopback_port().expect("port");
        assert!(port >= MIN_HOST_PORT);
    }
}
