//! A QMP client: JSON lines over QEMU's control socket.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}")]
    Connect {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("QMP I/O")]
    Io(#[from] std::io::Error),
    #[error("QMP sent something that is not JSON")]
    Json(#[from] serde_json::Error),
    #[error("QMP closed the connection")]
    Closed,
    #[error("QMP {command} failed: {class}: {desc}")]
    Command { command: String, class: String, desc: String },
    #[error("no answer from QMP within {0:?}")]
    Timeout(Duration),
}

/// One QMP connection. Commands run one at a time; events that arrive meanwhile are kept for
/// [`Qmp::wait_event`].
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    events: VecDeque<Value>,
}

/// How long one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl Qmp {
    /// Connects and leaves capabilities negotiation mode.
    pub async fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|err| QmpError::Connect { path: path.display().to_string(), err })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp { reader: BufReader::new(r), writer: w, events: VecDeque::new() };
        let greeting = tokio::time::timeout(COMMAND_TIMEOUT, qmp.read())
            .await
            .map_err(|_| QmpError::Timeout(COMMAND_TIMEOUT))??;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Closed);
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(QmpError::Closed);
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Runs a command; its `return` value.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({"execute": command});
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = serde_json::to_string(&msg)?;
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                let m = self.read().await?;
                if m.get("event").is_some() {
                    self.events.push_back(m);
                    continue;
                }
                return Ok::<Value, QmpError>(m);
            }
        })
        .await
        .map_err(|_| QmpError::Timeout(COMMAND_TIMEOUT))??;
        if let Some(e) = answer.get("error") {
            return Err(QmpError::Command {
                command: command.to_string(),
                class: e.get("class").and_then(Value::as_str).unwrap_or("").to_string(),
                desc: e.get("desc").and_then(Value::as_str).unwrap_or("").to_string(),
            });
        }
        Ok(answer.get("return").cloned().unwrap_or(Value::Null))
    }

    /// Waits for an event named `name` (also one that arrived earlier); `None` on timeout or
    /// when QEMU closed the connection (it exited).
    pub async fn wait_event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(pos);
        }
        tokio::time::timeout(timeout, async {
            loop {
                match self.read().await {
                    Ok(m) if m["event"] == name => return Some(m),
                    Ok(m) => {
                        if m.get("event").is_some() {
                            self.events.push_back(m);
                        }
                    }
                    Err(_) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}
