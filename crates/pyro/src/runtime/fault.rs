//! Fault points for crash tests: `PYRO_FAULT=<point>` makes the process SIGKILL itself
//! when it reaches `<point>`, as if the machine or an impatient user killed it there.
//!
//! Only tests set the variable; without it a fault point is one environment lookup.
//! The points are named `<operation>.<step>` (`create.recorded`, `reset.wiped`, ...); the
//! crash tests in `tests/guest_faults.rs` walk [`POINTS`] and check that after each kill
//! `status` tells the truth, the workspace can be used or deleted, and nothing is left.

/// Environment variable naming the fault point to die at.
pub const FAULT_ENV: &str = "PYRO_FAULT";

/// Every fault point, in the order the operations reach them.
pub const POINTS: &[&str] = &[
    "create.recorded",
    "create.volume",
    "create.booted",
    "create.seeded",
    "snapshot.frozen",
    "snapshot.layered",
    "reset.stopped",
    "reset.overlay",
    "reset.booted",
    "reset.restored",
    "stop.services",
    "stop.stopped",
    "start.booted",
    "delete.destroyed",
];

/// Die here (SIGKILL, no cleanup, no unwinding) when `PYRO_FAULT` names `name`.
pub fn point(name: &str) {
    if std::env::var_os(FAULT_ENV).is_some_and(|v| v == name) {
        tracing::warn!(point = name, "fault point reached: killing this process");
        // SIGKILL to ourselves: nothing runs after this, exactly like an outside kill -9.
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        // `kill` is gone or failed: still never continue past the fault point.
        std::process::abort();
    }
}
