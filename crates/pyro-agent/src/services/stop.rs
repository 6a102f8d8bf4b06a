//! Stopping services: one (SIGTERM to its group, SIGKILL after the grace) or all at
//! once with one shared grace period.

use super::group::{group_alive, terminate_group, wait_group_gone};
use super::*;

impl Services {
    /// Stop a running service (see the module docs); a service that is not running is
    /// returned unchanged. With `fail_reason` it ends `failed` with that reason and
    /// without published ports.
    pub fn stop(&self, name: &str, fail_reason: Option<&str>) -> ServiceResult<ServiceRecord> {
        check_name(name)?;
        let (rec, live) = {
            let table = lock(&self.inner.table);
            let rec = self.inner.refreshed(&table, name)?.ok_or_else(|| not_found(name))?;
            let live = table.get(name).filter(|l| Some(l.pid) == rec.pid).cloned();
            (rec, live)
        };
        let Some(pid) = rec.pid.filter(|_| rec.is_running()) else { return Ok(rec) };
        if let Some(live) = &live {
            live.stopping.store(true, Ordering::SeqCst);
        }
        let reason = terminate_group(pid, self.stop_grace);
        let exit = match &live {
            Some(live) => {
                live.wait_exit(REAP_WAIT);
                *lock(&live.exit)
            }
            None => None,
        };
        let rec = self.inner.update(name, pid, |rec| {
            rec.state =
                if fail_reason.is_some() { ServiceState::Failed } else { ServiceState::Stopped };
            rec.stop_reason = Some(fail_reason.unwrap_or(reason).to_owned());
            rec.ended_at = Some(now());
            if rec.exit_code.is_none() {
                rec.exit_code = exit;
            }
            if fail_reason.is_some() {
                // A failed service has no published ports (the host removes its forwards
                // before it asks for this).
                rec.published_ports.clear();
            }
        })?;
        rec.ok_or_else(|| not_found(name))
    }

    /// Stop every running service at once (SIGTERM to all, one shared grace period,
    /// SIGKILL for the rest); returns every record.
    pub fn stop_all(&self) -> ServiceResult<Vec<ServiceRecord>> {
        let all = self.list()?;
        let running: Vec<(String, u32, Option<Arc<Live>>)> = {
            let table = lock(&self.inner.table);
            all.into_iter()
                .filter(|r| r.is_running())
                .filter_map(|r| {
                    let pid = r.pid?;
                    let live = table.get(&r.name).filter(|l| l.pid == pid).cloned();
                    Some((r.name, pid, live))
                })
                .collect()
        };
        for (_, pid, live) in &running {
            if let Some(live) = live {
                live.stopping.store(true, Ordering::SeqCst);
            }
            let _ = sys::kill_process_group(*pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.stop_grace;
        while running.iter().any(|(_, pid, _)| group_alive(*pid)) && Instant::now() < deadline {
            thread::sleep(GROUP_POLL);
        }
        for (name, pid, live) in &running {
            let reason = if group_alive(*pid) {
                let _ = sys::kill_process_group(*pid, libc::SIGKILL);
                wait_group_gone(*pid, REAP_WAIT);
                stop_reason::SIGKILL
            } else {
                stop_reason::SIGTERM
            };
            let exit = live.as_ref().and_then(|l| {
                l.wait_exit(REAP_WAIT);
                *lock(&l.exit)
            });
            self.inner.update(name, *pid, |rec| {
                rec.state = ServiceState::Stopped;
                rec.stop_reason = Some(reason.to_owned());
                rec.ended_at = Some(now());
                if rec.exit_code.is_none() {
                    rec.exit_code = exit;
                }
            })?;
        }
        self.list()
    }
}
