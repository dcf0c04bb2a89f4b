//! QEMU command lines, start, adoption and stop.

use haneul_core::error::FileError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::qmp::{Qmp, QmpError};

pub const QEMU: &str = "qemu-system-x86_64";

#[derive(Debug, thiserror::Error)]
pub enum VirtError {
    #[error("could not run {QEMU}")]
    Spawn(#[source] std::io::Error),
    #[error("{QEMU} refused to start: {0}")]
    Start(String),
    #[error(transparent)]
    Io(#[from] haneul_core::error::FileError),
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("QEMU of instance {0} did not stop")]
    Unstoppable(String),
}

/// How guests are run: KVM where a real guest kernel boots with it, TCG otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// What an instance is, as QEMU needs it.
#[derive(Clone, Debug)]
pub struct Domain {
    pub uuid: String,
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// The root disk (a qcow2 overlay).
    pub disk: PathBuf,
    /// A config drive (ISO 9660, label config-2), attached read-only.
    pub config_drive: Option<PathBuf>,
    pub accel: Accel,
    /// The guest's nice value (see [`yield_cpu`]).
    pub nice: i32,
    /// The instance directory: pid file, sockets, console log.
    pub dir: PathBuf,
    /// A saved guest state (see [`save`]) to start from instead of booting.
    pub incoming: Option<PathBuf>,
    /// Rescue: the guest boots from this disk, with its own root disk attached second.
    pub rescue_disk: Option<PathBuf>,
    /// Network interfaces, virtio-net each.
    pub nics: Vec<Nic>,
    /// The network namespace QEMU runs in (where its taps are); none: the agent's.
    pub netns: Option<String>,
}

/// A guest network interface: the host's tap it is joined to, its MAC, its PCI slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub tap: String,
    pub mac: String,
    pub slot: Option<u8>,
}

impl Nic {
    /// QEMU's ids of the tap back end and of the guest device.
    fn netdev_id(&self) -> String {
        format!("net-{}", self.tap)
    }
    fn device_id(&self) -> String {
        format!("nic-{}", self.tap)
    }
    fn device_props(&self) -> serde_json::Value {
        let mut p = serde_json::json!({
            "driver": "virtio-net-pci",
            "netdev": self.netdev_id(),
            "id": self.device_id(),
            "mac": self.mac,
        });
        if let Some(slot) = self.slot {
            p["addr"] = format!("{slot:#x}").into();
        }
        p
    }
}

impl Domain {
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    /// Where the instance's sockets live: its directory, unless that makes a socket path too
    /// long for a Unix socket (108 bytes), then `/run/haneul/instances/<uuid>`.
    pub fn socket_dir(&self) -> PathBuf {
        if self.dir.join("console.sock").as_os_str().len() < 100 {
            self.dir.clone()
        } else {
            PathBuf::from("/run/haneul/instances").join(&self.uuid)
        }
    }
    pub fn qmp_socket(&self) -> PathBuf {
        self.socket_dir().join("qmp.sock")
    }
    /// The guest's display, for the console proxy.
    pub fn vnc_socket(&self) -> PathBuf {
        self.socket_dir().join("vnc.sock")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// The QEMU arguments: `pc` machine (so devices can be hot-plugged), virtio disk and
    /// rng, SMBIOS identity (so the guest can tell who it is), serial console logged to a
    /// file, QMP socket, VGA on a VNC Unix socket.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: String| a.push(OsString::from(s));
        push("-name".into());
        push(format!("guest={},debug-threads=on", self.name.replace(',', ",,")));
        push("-uuid".into());
        push(self.uuid.clone());
        push("-machine".into());
        push("pc".into());
        match self.accel {
            Accel::Kvm => {
                push("-accel".into());
                push("kvm".into());
                push("-cpu".into());
                push("host".into());
            }
            Accel::Tcg => {
                // A capped translation cache keeps QEMU's own memory small.
                push("-accel".into());
                push("tcg,tb-size=64".into());
                push("-cpu".into());
                push("max".into());
            }
        }
        push("-m".into());
        push(self.memory_mib.to_string());
        push("-smp".into());
        push(self.vcpus.to_string());
        push("-nodefaults".into());
        push("-no-user-config".into());
        // The display: VGA served over VNC on a Unix socket (the console proxy connects to it).
        push("-vga".into());
        push("std".into());
        push("-vnc".into());
        push(format!("unix:{}", path_arg(&self.vnc_socket())));
        push("-smbios".into());
        push(format!(
            "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,serial={0},uuid={0},family=Virtual Machine",
            self.uuid
        ));
        if let Some(rescue) = &self.rescue_disk {
            push("-drive".into());
            push(format!("file={},if=none,id=rescue,format=qcow2,cache=none,aio=threads", path_arg(rescue)));
            push("-device".into());
            push("virtio-blk-pci,drive=rescue,bootindex=1".into());
        }
        push("-drive".into());
        push(format!("file={},if=none,id=disk0,format=qcow2,cache=none,aio=threads", path_arg(&self.disk)));
        push("-device".into());
        push(
            if self.rescue_disk.is_some() {
                "virtio-blk-pci,drive=disk0"
            } else {
                "virtio-blk-pci,drive=disk0,bootindex=1"
            }
            .into(),
        );
        if let Some(cd) = &self.config_drive {
            push("-drive".into());
            push(format!("file={},if=none,id=config,format=raw,readonly=on", path_arg(cd)));
            push("-device".into());
            push("virtio-blk-pci,drive=config".into());
        }
        for nic in &self.nics {
            push("-netdev".into());
            push(format!("tap,id={},ifname={},script=no,downscript=no", nic.netdev_id(), nic.tap));
            push("-device".into());
            let props = nic.device_props();
            let mut dev = String::from("virtio-net-pci");
            for k in ["netdev", "id", "mac", "addr"] {
                if let Some(v) = props[k].as_str() {
                    dev.push_str(&format!(",{k}={v}"));
                }
            }
            push(dev);
        }
        push("-device".into());
        push("virtio-rng-pci".into());
        push("-chardev".into());
        push(format!(
            "socket,id=console,path={},server=on,wait=off,logfile={},logappend=on",
            path_arg(&self.socket_dir().join("console.sock")),
            path_arg(&self.console_log())
        ));
        push("-serial".into());
        push("chardev:console".into());
        push("-qmp".into());
        push(format!("unix:{},server=on,wait=off", path_arg(&self.qmp_socket())));
        if let Some(state) = &self.incoming {
            push("-incoming".into());
            push(format!("exec:cat {}", shell_quote(state)));
        }
        push("-pidfile".into());
        push(path_arg(&self.pidfile()));
        push("-daemonize".into());
        a
    }
}

/// A path as one `sh` word (QEMU runs `exec:` migration URIs with `/bin/sh -c`).
fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// A path inside a QEMU option value: commas are doubled.
fn path_arg(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// Starts the instance's QEMU, daemonized; its pid once it runs.
pub async fn start(d: &Domain) -> Result<u32, VirtError> {
    let _ = std::fs::remove_file(d.pidfile());
    let sockets = d.socket_dir();
    std::fs::create_dir_all(&sockets).map_err(FileError::at("create", &sockets))?;
    let mut cmd = tokio::process::Command::new(QEMU);
    cmd.args(d.args()).stdin(std::process::Stdio::null());
    let netns = match &d.netns {
        Some(ns) => Some(crate::netdp::sys::open_namespace(ns).map_err(VirtError::Spawn)?),
        None => None,
    };
    if let Some(f) = &netns {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: the child only calls setns(2), async-signal-safe, before exec.
        unsafe {
            cmd.pre_exec(move || crate::netdp::sys::enter(fd));
        }
    }
    let out = cmd.output().await.map_err(VirtError::Spawn)?;
    drop(netns);
    if !out.status.success() {
        return Err(VirtError::Start(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let pid = running_pid(d).ok_or_else(|| VirtError::Start("QEMU exited right after starting".into()))?;
    yield_cpu(pid, d.nice);
    Ok(pid)
}

/// Lowers a started QEMU's CPU priority to `nice`: each of its threads (threads it makes
/// later inherit it) and, where the kernel groups processes by session (autogroup, on by
/// default), its session's group: QEMU daemonizes into a session of its own, which would
/// otherwise weigh as much as all of the host's other work together. It is done once QEMU
/// has started, so its own start-up still runs at full priority. Best effort: a kernel
/// without autogroup simply has no file to write.
fn yield_cpu(pid: u32, nice: i32) {
    if nice == 0 {
        return;
    }
    let _ = std::fs::write(format!("/proc/{pid}/autogroup"), nice.to_string());
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for tid in tasks.flatten().filter_map(|t| t.file_name().to_str()?.parse::<libc::id_t>().ok()) {
        // SAFETY: setpriority(2) on a thread of the QEMU just started; no memory is shared.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
}

/// The pid of the instance's QEMU if it runs: the pid file names a live process whose
/// command line is QEMU with this instance's uuid (a recycled pid is not mistaken for it).
pub fn running_pid(d: &Domain) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(d.pidfile()).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_qemu = args.first().is_some_and(|a| a.ends_with(QEMU.as_bytes()));
    let is_ours = args.windows(2).any(|w| w[0] == b"-uuid" && w[1] == d.uuid.as_bytes());
    (is_qemu && is_ours && !has_exited(pid)).then_some(pid)
}

/// The process's start time (clock ticks after boot), which tells a reused pid apart.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is dead: exited (a zombie, or dead being reaped) or not there at all.
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(true)
}

/// How an instance was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopHow {
    /// It was not running.
    NotRunning,
    /// The guest powered off after the ACPI power button.
    Graceful,
    /// QEMU was told to quit.
    Quit,
    /// QEMU was killed.
    Killed,
}

/// Waits until QEMU `pid` has exited, all of it: a process on its way out loses its memory
/// (and with it the command line [`running_pid`] checks) before its open files are closed,
/// so the disk image locks outlive the pid file's answer by a moment. Gone means the pid is
/// no more, a zombie, or a different process now.
async fn wait_gone(d: &Domain, pid: u32, timeout: Duration) -> bool {
    let started = start_time(pid);
    let deadline = Instant::now() + timeout;
    loop {
        if running_pid(d) != Some(pid) && (has_exited(pid) || start_time(pid) != started) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How often the power button is pressed while a guest is given time to power off.
const POWERDOWN_RETRY: Duration = Duration::from_secs(10);

/// Stops the instance: the ACPI power button and up to `graceful` for the guest to power
/// off (zero skips it), then QMP `quit`, then SIGKILL.
pub async fn stop(d: &Domain, graceful: Duration) -> Result<StopHow, VirtError> {
    let Some(pid) = running_pid(d) else { return Ok(StopHow::NotRunning) };
    // The button is pressed again every few seconds, as Nova does: a guest still booting
    // misses a press that comes before it listens.
    let deadline = Instant::now() + graceful;
    while Instant::now() < deadline {
        let Ok(mut qmp) = Qmp::connect(&d.qmp_socket()).await else { break };
        if qmp.execute("system_powerdown", None).await.is_err() {
            break;
        }
        drop(qmp);
        let wait = POWERDOWN_RETRY.min(deadline.saturating_duration_since(Instant::now()));
        if wait_gone(d, pid, wait).await {
            return Ok(StopHow::Graceful);
        }
    }
    if let Ok(mut qmp) = Qmp::connect(&d.qmp_socket()).await {
        let _ = qmp.execute("quit", None).await;
        if wait_gone(d, pid, Duration::from_secs(5)).await {
            return Ok(StopHow::Quit);
        }
    }
    // SAFETY: a plain kill(2) of the pid verified above to be this instance's QEMU.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    if wait_gone(d, pid, Duration::from_secs(5)).await {
        Ok(StopHow::Killed)
    } else {
        Err(VirtError::Unstoppable(d.uuid.clone()))
    }
}

/// Removes what the instance left outside its directory (a socket directory under /run).
pub fn cleanup(d: &Domain) {
    let sockets = d.socket_dir();
    if sockets != d.dir {
        let _ = std::fs::remove_dir_all(sockets);
    }
}

/// A hard reset of the running guest (Nova's hard reboot of a running instance).
pub async fn reset(d: &Domain) -> Result<(), VirtError> {
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    qmp.execute("system_reset", None).await?;
    Ok(())
}

/// Whether the guest's vCPUs run (`running`), are paused, or the guest shut down.
pub async fn status(d: &Domain) -> Result<String, VirtError> {
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    let s = qmp.execute("query-status", None).await?;
    Ok(s.get("status").and_then(|v| v.as_str()).unwrap_or("unknown").to_string())
}

/// Saves the running guest's whole state (memory, devices) to `state` and stops its QEMU:
/// the vCPUs pause, QEMU migrates into the file, then quits. The file is complete only once
/// this returns; [`Domain::incoming`] starts the guest again from it.
pub async fn save(d: &Domain, state: &Path, timeout: Duration) -> Result<(), VirtError> {
    let tmp = state.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    qmp.execute("stop", None).await?;
    let uri = format!("exec:cat > {}", shell_quote(&tmp));
    qmp.execute("migrate", Some(serde_json::json!({"uri": uri}))).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let m = qmp.execute("query-migrate", None).await?;
        match m.get("status").and_then(|s| s.as_str()).unwrap_or("") {
            "completed" => break,
            "failed" | "cancelled" => {
                let why = m.get("error-desc").and_then(|e| e.as_str()).unwrap_or("migration failed").to_string();
                let _ = qmp.execute("cont", None).await;
                let _ = std::fs::remove_file(&tmp);
                return Err(VirtError::Start(format!("saving the guest's state: {why}")));
            }
            _ if Instant::now() >= deadline => {
                let _ = qmp.execute("migrate_cancel", None).await;
                let _ = qmp.execute("cont", None).await;
                let _ = std::fs::remove_file(&tmp);
                return Err(VirtError::Start("saving the guest's state took too long".into()));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    std::fs::rename(&tmp, state).map_err(FileError::at("place", state))?;
    drop(qmp);
    stop(d, Duration::ZERO).await?;
    Ok(())
}

/// Waits until a QEMU started with [`Domain::incoming`] has loaded the saved state; the
/// guest is then paused (it was saved paused).
pub async fn wait_incoming(d: &Domain, timeout: Duration) -> Result<(), VirtError> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status(d).await?;
        match status.as_str() {
            "inmigrate" | "prelaunch" if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            "inmigrate" | "prelaunch" => return Err(VirtError::Start("loading the saved state took too long".into())),
            "internal-error" | "shutdown" | "guest-panicked" => {
                return Err(VirtError::Start(format!("the saved state did not load (QEMU is {status})")))
            }
            _ => return Ok(()),
        }
    }
}

/// How long a guest gets to let go of an interface being unplugged (the ACPI eject).
pub const UNPLUG_TIMEOUT: Duration = Duration::from_secs(15);

/// Plugs a NIC into the running guest (PCI hot-plug: the tap back end, then the device).
pub async fn plug_nic(d: &Domain, nic: &Nic) -> Result<(), VirtError> {
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    let netdev = serde_json::json!({
        "type": "tap", "id": nic.netdev_id(), "ifname": nic.tap, "script": "no", "downscript": "no",
    });
    qmp.execute("netdev_add", Some(netdev)).await?;
    if let Err(e) = qmp.execute("device_add", Some(nic.device_props())).await {
        let _ = qmp.execute("netdev_del", Some(serde_json::json!({"id": nic.netdev_id()}))).await;
        return Err(e.into());
    }
    Ok(())
}

/// Takes a NIC out of the running guest: the device is ejected (the guest has
/// `UNPLUG_TIMEOUT` to let it go), then the tap back end goes in any case, so the host
/// side is free even when the guest never answers (a paused guest, one without ACPI
/// hot-plug); such a device stays, without a back end, until QEMU next starts. Whether the
/// guest let go.
pub async fn unplug_nic(d: &Domain, nic: &Nic) -> Result<bool, VirtError> {
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    let id = nic.device_id();
    let released = match qmp.execute("device_del", Some(serde_json::json!({"id": id}))).await {
        Ok(_) => {
            let deadline = Instant::now() + UNPLUG_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match qmp.wait_event("DEVICE_DELETED", left).await {
                    Some(e) if e["data"]["device"] == id.as_str() => break true,
                    Some(_) => continue,
                    None => break false,
                }
            }
        }
        // Not there (a guest started before NICs had ids): only the back end is left.
        Err(QmpError::Command { class, .. }) if class == "DeviceNotFound" => true,
        Err(e) => return Err(e.into()),
    };
    match qmp.execute("netdev_del", Some(serde_json::json!({"id": nic.netdev_id()}))).await {
        Ok(_) => Ok(released),
        Err(QmpError::Command { .. }) => Ok(released),
        Err(e) => Err(e.into()),
    }
}

/// Pauses or resumes the vCPUs.
pub async fn set_paused(d: &Domain, paused: bool) -> Result<(), VirtError> {
    let mut qmp = Qmp::connect(&d.qmp_socket()).await?;
    qmp.execute(if paused { "stop" } else { "cont" }, None).await?;
    Ok(())
}

/// [`probe_accel`], remembered in `cache` for the rest of this host boot (the probe boots a
/// guest, which takes seconds).
pub async fn probe_accel_cached(cache: &Path, kernel: &Path, initrd: &Path, marker: &str, timeout: Duration) -> Accel {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let boot_id = boot_id.trim();
    if let Ok(text) = std::fs::read_to_string(cache) {
        match text.split_once(' ') {
            Some((id, "kvm")) if id == boot_id => return Accel::Kvm,
            Some((id, "tcg")) if id == boot_id => return Accel::Tcg,
            _ => {}
        }
    }
    let work = cache.parent().unwrap_or(Path::new("/tmp"));
    let accel = probe_accel(work, kernel, initrd, marker, timeout).await;
    let name = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    if let Err(e) = std::fs::write(cache, format!("{boot_id} {name}")) {
        tracing::warn!(error = %e, path = %cache.display(), "could not remember the accelerator probe");
    }
    accel
}

/// Decides how to run guests: KVM only if a real Linux guest (`kernel`, `initrd`) prints
/// `marker` on its serial console within `timeout` under KVM; TCG otherwise. `/dev/kvm` alone
/// proves nothing: some hosts expose a KVM that cannot run stock guest kernels.
pub async fn probe_accel(work: &Path, kernel: &Path, initrd: &Path, marker: &str, timeout: Duration) -> Accel {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Accel::Tcg;
    }
    let log = work.join("kvm-probe.log");
    let _ = std::fs::remove_file(&log);
    let child = tokio::process::Command::new(QEMU)
        .args(["-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-device", "virtio-rng-pci"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 rdinit=/init panic=-1", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else { return Accel::Tcg };
    let deadline = Instant::now() + timeout;
    let booted = loop {
        if std::fs::read_to_string(&log).is_ok_and(|s| s.contains(marker)) {
            break true;
        }
        if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&log);
    if booted {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}
