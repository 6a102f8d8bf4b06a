//! Starting a service: spawn it in its own session, reap it in a waiter thread, and
//! wait for its readiness probe (or its exit, or the deadline).

use super::group::terminate_group;
use super::probe::{http_probe, is_ready_status, tcp_probe};
use super::*;

impl Services {
    fn spawn(
        &self,
        req: &ServiceStartRequest,
        cwd: &Path,
    ) -> ServiceResult<(Child, ServiceRecord)> {
        let inner = &self.inner;
        let stdout_path = inner.log_path(&req.name, "stdout");
        let stderr_path = inner.log_path(&req.name, "stderr");
        let open_log = |path: &Path| -> io::Result<File> {
            File::create(path)?; // a new start replaces the old logs
            OpenOptions::new().append(true).open(path)
        };
        let stdout = open_log(&stdout_path).map_err(|e| io_err("create service log", e))?;
        let stderr = open_log(&stderr_path).map_err(|e| io_err("create service log", e))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-lc")
            .arg(&req.command)
            .current_dir(cwd)
            .envs(&req.env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // `sys::new_session`, i.e. setsid(2), which is async-signal-safe and allocates
        // nothing.
        // JUSTIFICATION: a service and everything it starts must share one process
        // group of their own, so stop and the readiness timeout reach the whole tree.
        unsafe {
            cmd.pre_exec(sys::new_session);
        }
        let child =
            cmd.spawn().map_err(|e| (ErrorKind::Io, format!("failed to start /bin/sh: {e}")))?;
        let started_at = now();
        let rec = ServiceRecord {
            name: req.name.clone(),
            command: req.command.clone(),
            cwd: req.cwd.clone(),
            state: ServiceState::Running,
            pid: Some(child.id()),
            exit_code: None,
            started_at,
            ended_at: None,
            ready_at: if req.readiness.is_none() { Some(started_at) } else { None },
            stop_reason: None,
            readiness: req.readiness.clone(),
            published_ports: req.published_ports.clone(),
        };
        Ok((child, rec))
    }

    fn start_waiter(&self, name: String, live: Arc<Live>, mut child: Child) {
        let inner = Arc::clone(&self.inner);
        let waiter = move || {
            let code = match child.wait() {
                Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                Err(_) => -1,
            };
            let stopping = live.stopping.load(Ordering::SeqCst);
            let _ = inner.update(&name, live.pid, |rec| {
                rec.exit_code.get_or_insert(code);
                rec.ended_at.get_or_insert_with(now);
                if rec.is_running() && !stopping {
                    if rec.ready_at.is_some() {
                        rec.state = ServiceState::Exited;
                    } else {
                        rec.state = ServiceState::Failed;
                        rec.stop_reason = Some(stop_reason::PROCESS_EXITED_BEFORE_READY.to_owned());
                        rec.published_ports.clear();
                    }
                }
            });
            *lock(&live.exit) = Some(code);
            live.exited.notify_all();
        };
        if let Err(e) = thread::Builder::new().name("pyro-service-wait".into()).spawn(waiter) {
            // The child is lost with the closure; init reaps it. Report it as gone.
            eprintln!("pyro-guest-agent: cannot start a service waiter thread: {e}");
        }
    }

    /// Start a service and wait for readiness (see the module docs). `cwd` is the
    /// resolved working directory, `workspace_dir` the directory backing `/workspace`.
    pub fn start(
        &self,
        req: &ServiceStartRequest,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> ServiceResult<ServiceRecord> {
        check_name(&req.name)?;
        if req.ready_timeout_ms == 0 || req.ready_interval_ms == 0 {
            return Err((
                ErrorKind::Invalid,
                "ready_timeout and ready_interval must be positive".to_owned(),
            ));
        }
        if let Some(Readiness::File { path }) = &req.readiness {
            WorkspacePath::parse(path).map_err(|e| (e.kind(), e.to_string()))?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.inner.dir)
            .map_err(|e| io_err("create the services directory", e))?;
        let live = {
            let mut table = lock(&self.inner.table);
            if let Some(old) = self.inner.refreshed(&table, &req.name)? {
                if old.is_running() {
                    return Err((
                        ErrorKind::Invalid,
                        format!("service '{}' is already running", req.name),
                    ));
                }
            }
            let (child, rec) = self.spawn(req, cwd)?;
            let live = Arc::new(Live {
                pid: child.id(),
                exit: Mutex::new(None),
                exited: Condvar::new(),
                stopping: AtomicBool::new(false),
            });
            if let Err(e) = self.inner.write_record(&rec) {
                let _ = sys::kill_process_group(child.id(), libc::SIGKILL);
                let mut child = child;
                let _ = child.wait();
                return Err(e);
            }
            table.insert(req.name.clone(), Arc::clone(&live));
            self.start_waiter(req.name.clone(), Arc::clone(&live), child);
            live
        };
        match &req.readiness {
            None => self.current(&req.name),
            Some(readiness) => self.await_ready(req, readiness, &live, cwd, workspace_dir),
        }
    }

    fn probe(
        req: &ServiceStartRequest,
        readiness: &Readiness,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> bool {
        match readiness {
            Readiness::File { path } => WorkspacePath::parse(path)
                .map(|p| p.host_path(workspace_dir).symlink_metadata().is_ok())
                .unwrap_or(false),
            Readiness::Tcp { address } => tcp_probe(address, TCP_PROBE_TIMEOUT),
            Readiness::Http { url } => {
                http_probe(url, HTTP_PROBE_TIMEOUT).is_ok_and(is_ready_status)
            }
            Readiness::Command { command } => {
                let plan = ExecPlan {
                    command,
                    cwd,
                    base_env: BaseEnv::Inherit,
                    env: &req.env,
                    timeout: COMMAND_PROBE_TIMEOUT,
                    max_output_bytes: 4096,
                };
                exec::run(&plan).is_ok_and(|out| out.exit_code == 0 && !out.timed_out)
            }
        }
    }

    fn await_ready(
        &self,
        req: &ServiceStartRequest,
        readiness: &Readiness,
        live: &Live,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> ServiceResult<ServiceRecord> {
        let deadline = Instant::now() + Duration::from_millis(req.ready_timeout_ms);
        let interval = Duration::from_millis(req.ready_interval_ms);
        loop {
            if live.has_exited() {
                // The waiter already marked it failed (or exited after a race).
                return self.current(&req.name);
            }
            if Self::probe(req, readiness, cwd, workspace_dir) {
                let ready = self.inner.update(&req.name, live.pid, |rec| {
                    if rec.is_running() && rec.ready_at.is_none() {
                        rec.ready_at = Some(now());
                    }
                })?;
                return ready.ok_or_else(|| not_found(&req.name));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.fail_start(&req.name, live, stop_reason::READINESS_TIMEOUT);
            }
            live.wait_exit(interval.min(left));
        }
    }

    /// End a service that is still starting and mark it failed with `reason`.
    fn fail_start(&self, name: &str, live: &Live, reason: &str) -> ServiceResult<ServiceRecord> {
        live.stopping.store(true, Ordering::SeqCst);
        let current = self.current(name)?;
        if !current.is_running() {
            return Ok(current);
        }
        terminate_group(live.pid, self.stop_grace);
        live.wait_exit(REAP_WAIT);
        let exit = *lock(&live.exit);
        let rec = self.inner.update(name, live.pid, |rec| {
            rec.state = ServiceState::Failed;
            rec.stop_reason = Some(reason.to_owned());
            rec.ended_at.get_or_insert_with(now);
            if rec.exit_code.is_none() {
                rec.exit_code = exit;
            }
            rec.published_ports.clear();
        })?;
        rec.ok_or_else(|| not_found(name))
    }
}
