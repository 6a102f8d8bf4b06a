//! Process groups of services: whether one still has members, and ending one
//! (SIGTERM, a grace period, then SIGKILL).

use super::*;

/// Whether process group `pgid` still has a member that is not a zombie. Reads
/// `/proc/<pid>/stat`; without `/proc` falls back to `kill(-pgid, 0)`.
pub(super) fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return sys::kill_process_group(pgid, 0).is_ok();
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// Whether process `pid` exists and is not a zombie.
pub(super) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub(super) fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(GROUP_POLL);
    }
}

/// SIGTERM to the group, SIGKILL after `grace`; returns the stop reason.
pub(super) fn terminate_group(pgid: u32, grace: Duration) -> &'static str {
    let _ = sys::kill_process_group(pgid, libc::SIGTERM);
    if wait_group_gone(pgid, grace) {
        return stop_reason::SIGTERM;
    }
    let _ = sys::kill_process_group(pgid, libc::SIGKILL);
    wait_group_gone(pgid, REAP_WAIT);
    stop_reason::SIGKILL
}
