//! The privileged edge of the data plane: `ip`, `iptables-restore`, `sysctl` and dnsmasq, run
//! in the right network namespace. Nothing else in the agent changes the host's network.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Why a command on the host did not do what it was run for.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("could not run {prog}")]
    Spawn {
        prog: String,
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed: what it printed on its standard error.
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    /// Feeding the command its input, or waiting for it, failed.
    #[error("`{command}` failed")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The command's JSON output (`ip -j ...`) did not read as expected.
    #[error("reading `{what}`")]
    Output {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = SysError> = std::result::Result<T, E>;

/// Where named network namespaces live (`ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

/// Runs `prog args` inside namespace `ns` (none: where the agent runs), with `input` on its
/// standard input; its standard output.
pub async fn run_in(ns: Option<&str>, prog: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, prog]);
            c
        }
        None => tokio::process::Command::new(prog),
    };
    cmd.args(args).stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = || {
        let mut s = format!("{}{prog} {}", ns.map(|n| format!("[{n}] ")).unwrap_or_default(), args.join(" "));
        s.truncate(300);
        s
    };
    let mut child = cmd.spawn().map_err(|source| SysError::Spawn { prog: prog.to_string(), source })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await.map_err(|source| SysError::Io { command: shown(), source })?;
    }
    let out = child.wait_with_output().await.map_err(|source| SysError::Io { command: shown(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(SysError::Failed { command: shown(), stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip [-n ns] args`.
pub async fn ip(ns: Option<&str>, args: &[&str]) -> Result<String> {
    let mut all: Vec<&str> = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = ns {
        all.extend(["-n", ns]);
    }
    all.extend_from_slice(args);
    run_in(None, "ip", &all, None).await
}

/// `ip [-n ns] -batch -`: many changes in one process; stops at the first that fails.
pub async fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    run_in(None, "ip", &args, Some(&(lines.join("\n") + "\n"))).await.map(|_| ())
}

/// A link as `ip -j -d link show` describes it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Link {
    pub ifname: String,
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
}

impl Link {
    pub fn kind(&self) -> &str {
        self.linkinfo.as_ref().and_then(|i| i.info_kind.as_deref()).unwrap_or("")
    }
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// The links of namespace `ns`.
pub async fn links(ns: Option<&str>) -> Result<Vec<Link>> {
    let out = ip(ns, &["-j", "-d", "link", "show"]).await?;
    serde_json::from_str(&out).map_err(|source| SysError::Output { what: "ip -j link", source })
}

/// An address as `ip -j addr show` describes it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct AddrInfo {
    pub ifname: String,
    #[serde(default)]
    pub addr_info: Vec<Addr>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Addr {
    pub local: String,
    pub prefixlen: u8,
    #[serde(default)]
    pub scope: String,
}

pub async fn addresses(ns: Option<&str>, dev: &str) -> Result<Vec<Addr>> {
    let out = ip(ns, &["-j", "addr", "show", "dev", dev]).await?;
    let infos: Vec<AddrInfo> =
        serde_json::from_str(&out).map_err(|source| SysError::Output { what: "ip -j addr", source })?;
    Ok(infos.into_iter().flat_map(|i| i.addr_info).filter(|a| a.scope != "link").collect())
}

/// The named network namespaces.
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

pub async fn add_namespace(name: &str) -> Result<()> {
    if Path::new(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    ip(None, &["netns", "add", name]).await?;
    ip(Some(name), &["link", "set", "lo", "up"]).await.map(|_| ())
}

pub async fn delete_namespace(name: &str) -> Result<()> {
    if !Path::new(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    ip(None, &["netns", "del", name]).await.map(|_| ())
}

/// Sets a sysctl (`net.ipv4.ip_forward`, ...) inside `ns`: its file under /proc/sys as seen
/// from there.
pub async fn sysctl(ns: Option<&str>, key: &str, value: &str) -> Result<()> {
    run_in(ns, "sysctl", &["-q", "-w", &format!("{key}={value}")], None).await.map(|_| ())
}

/// A socket made inside namespace `ns` (none: here): a thread enters it, binds, and ends;
/// the socket stays in that namespace for its life.
pub fn listen_in(ns: Option<&str>, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let Some(ns) = ns else { return std::net::TcpListener::bind(addr) };
    let path = Path::new(NETNS_DIR).join(ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path)?;
            // SAFETY: setns(2) on this short-lived thread only, with an fd we own.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
    })
}

/// The fd of namespace `ns`, for a child to enter ([`enter`]) before it runs.
pub fn open_namespace(ns: &str) -> std::io::Result<std::fs::File> {
    std::fs::File::open(Path::new(NETNS_DIR).join(ns))
}

/// Enters the namespace open as `fd`; for `pre_exec` (setns is async-signal-safe).
pub fn enter(fd: i32) -> std::io::Result<()> {
    // SAFETY: setns(2) with an fd the caller keeps open.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to the process whose pid is in `pidfile` if it runs `prog`.
pub fn signal_pidfile(pidfile: &Path, prog: &str, sig: i32) -> bool {
    let Some(pid) = pid_running(pidfile, prog) else { return false };
    // SAFETY: kill(2) on a pid just checked to run `prog`.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}

/// The pid in `pidfile` if that process runs `prog`.
pub fn pid_running(pidfile: &Path, prog: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == prog).then_some(pid)
}
