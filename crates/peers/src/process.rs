//! One peer process and the framed protocol spoken with it (see `peers/harness.py`).
//!
//! A frame is `b"TPH1"`, a little-endian u32 header length, a JSON header, and `header.payload_bytes` bytes
//! of payload (little-endian f32 rows). A reader thread turns the child's stdout into frames on a channel,
//! so every request can time out; a hung, crashed or babbling child is killed and waited for, and every
//! later request fails with the first reason. Dropping a [`PeerProcess`] always kills and reaps the child.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::PeersError;

const MAGIC: &[u8; 4] = b"TPH1";
const MAX_HEADER_BYTES: u32 = 1 << 20;
const MAX_PAYLOAD_BYTES: u64 = 1 << 32;
const STDERR_LINES_KEPT: usize = 20;

/// One answer: its JSON header and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header (always an object).
    pub header: Map<String, Value>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A header field as an unsigned integer.
    pub fn u64_field(&self, field: &str) -> Option<u64> {
        self.header.get(field).and_then(Value::as_u64)
    }
}

fn read_frame(reader: &mut impl Read) -> Result<Option<Frame>, String> {
    let mut prefix = [0u8; 8];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(format!(
                    "stdout ended inside a frame prefix ({filled} of 8 bytes)"
                ))
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("reading stdout: {error}")),
        }
    }
    if &prefix[..4] != MAGIC {
        return Err(format!(
            "garbage on stdout instead of a frame: {:?}",
            String::from_utf8_lossy(&prefix)
        ));
    }
    let header_length = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if header_length > MAX_HEADER_BYTES {
        return Err(format!("header of {header_length} bytes"));
    }
    let mut header_bytes = vec![0u8; header_length as usize];
    reader
        .read_exact(&mut header_bytes)
        .map_err(|error| format!("reading a header: {error}"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|error| format!("header is not a JSON object: {error}"))?;
    let payload_bytes = header
        .get("payload_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if payload_bytes > MAX_PAYLOAD_BYTES {
        return Err(format!("payload of {payload_bytes} bytes"));
    }
    let mut payload = vec![0u8; payload_bytes as usize];
    reader
        .read_exact(&mut payload)
        .map_err(|error| format!("reading a payload: {error}"))?;
    Ok(Some(Frame { header, payload }))
}

fn encode_frame(header: &Value, payload: &[u8]) -> Vec<u8> {
    let mut header = header.clone();
    if let Some(object) = header.as_object_mut() {
        object.insert("payload_bytes".into(), json!(payload.len()));
    }
    let encoded = header.to_string().into_bytes();
    let mut frame = Vec::with_capacity(8 + encoded.len() + payload.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    frame.extend_from_slice(&encoded);
    frame.extend_from_slice(payload);
    frame
}

/// A running peer process.
#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Result<Frame, String>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    threads: Vec<JoinHandle<()>>,
    broken: Option<String>,
}

impl PeerProcess {
    /// Starts `command` (its environment already set) with piped stdin / stdout / stderr.
    ///
    /// # Errors
    /// [`PeersError::Io`] when the process cannot be started.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self, PeersError> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| PeersError::Io {
            peer: name.into(),
            what: "starting the harness".into(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (sender, replies) = mpsc::channel();
        let mut threads = Vec::new();
        if let Some(mut stdout) = stdout {
            threads.push(std::thread::spawn(move || loop {
                match read_frame(&mut stdout) {
                    Ok(Some(frame)) => {
                        if sender.send(Ok(frame)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = sender.send(Err("stdout closed".into()));
                        return;
                    }
                    Err(reason) => {
                        let _ = sender.send(Err(reason));
                        return;
                    }
                }
            }));
        }
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = stderr {
            let tail = Arc::clone(&stderr_tail);
            threads.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == STDERR_LINES_KEPT {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            }));
        }
        Ok(PeerProcess {
            name: name.into(),
            child,
            stdin,
            replies,
            stderr_tail,
            threads,
            broken: None,
        })
    }

    /// The operating system's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }

    /// Kills and reaps the child (idempotent); returns its exit status in words.
    fn kill(&mut self) -> String {
        self.stdin = None;
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(error) => format!("wait failed: {error}"),
        };
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        status
    }

    /// Marks the peer broken with `error` after killing it, and returns `error`.
    fn fail(&mut self, error: PeersError) -> PeersError {
        self.kill();
        self.broken = Some(error.to_string());
        error
    }

    /// Sends `header` (an object) with `payload` and waits up to `timeout` for the answer. An answer with
    /// `ok: false` is [`PeersError::Peer`] and leaves the process usable; a timeout, an exit or a protocol
    /// violation kills it.
    ///
    /// # Errors
    /// As above; [`PeersError::Broken`] after an earlier fatal failure.
    pub fn request(
        &mut self,
        header: &Value,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Frame, PeersError> {
        let request = header
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("request")
            .to_string();
        if let Some(reason) = &self.broken {
            return Err(PeersError::Broken {
                peer: self.name.clone(),
                reason: reason.clone(),
            });
        }
        let frame = encode_frame(header, payload);
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&frame).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin closed",
            )),
        };
        if written.is_err() {
            // A closed pipe means the child is gone: report how it ended.
            return Err(self.exited(&request));
        }
        match self.replies.recv_timeout(timeout) {
            Ok(Ok(frame)) => {
                if frame.header.get("ok").and_then(Value::as_bool) == Some(true) {
                    return Ok(frame);
                }
                let reason = frame
                    .header
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("answer without ok: true")
                    .to_string();
                Err(PeersError::Peer {
                    peer: self.name.clone(),
                    request,
                    reason,
                })
            }
            Ok(Err(reason)) if reason == "stdout closed" => Err(self.exited(&request)),
            Ok(Err(reason)) => {
                let error = PeersError::Protocol {
                    peer: self.name.clone(),
                    reason,
                };
                Err(self.fail(error))
            }
            Err(RecvTimeoutError::Timeout) => {
                let error = PeersError::Timeout {
                    peer: self.name.clone(),
                    request,
                    seconds: timeout.as_secs_f64(),
                };
                Err(self.fail(error))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.exited(&request)),
        }
    }

    fn exited(&mut self, request: &str) -> PeersError {
        let status = self.kill();
        let error = PeersError::Exited {
            peer: self.name.clone(),
            request: request.into(),
            status,
            stderr_tail: self.stderr_tail(),
        };
        self.broken = Some(error.to_string());
        error
    }

    /// Asks the peer to quit, waits briefly, then kills and reaps it.
    pub fn shutdown(&mut self) {
        if self.broken.is_none() {
            let _ = self.request(&json!({"op": "quit"}), &[], Duration::from_secs(2));
        }
        self.kill();
        self.broken.get_or_insert_with(|| "shut down".to_string());
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Little-endian f32 bytes of a matrix, row-major.
pub fn matrix_bytes(matrix: ndarray::ArrayView2<'_, f32>) -> Vec<u8> {
    matrix
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// The f32 matrix of a frame with `rows` and `cols` in its header.
///
/// # Errors
/// [`PeersError::Protocol`] when the header lacks them or the payload length differs.
pub fn frame_matrix(peer: &str, frame: &Frame) -> Result<ndarray::Array2<f32>, PeersError> {
    let protocol = |reason: String| PeersError::Protocol {
        peer: peer.into(),
        reason,
    };
    let (Some(rows), Some(cols)) = (frame.u64_field("rows"), frame.u64_field("cols")) else {
        return Err(protocol("an output without rows and cols".into()));
    };
    let (rows, cols) = (rows as usize, cols as usize);
    if frame.payload.len() != rows * cols * 4 {
        return Err(protocol(format!(
            "{} payload bytes for {rows} × {cols} f32",
            frame.payload.len()
        )));
    }
    let values: Vec<f32> = frame
        .payload
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect();
    ndarray::Array2::from_shape_vec((rows, cols), values)
        .map_err(|error| protocol(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_named() {
        let encoded = encode_frame(&json!({"ok": true, "rows": 1, "cols": 2}), &[0u8; 8]);
        let frame = read_frame(&mut encoded.as_slice()).unwrap().unwrap();
        assert_eq!(frame.u64_field("payload_bytes"), Some(8));
        assert_eq!(frame_matrix("p", &frame).unwrap().dim(), (1, 2));
        let garbage = b"hello world, not a frame".to_vec();
        let error = read_frame(&mut garbage.as_slice()).unwrap_err();
        assert!(error.contains("garbage"), "{error}");
        assert_eq!(read_frame(&mut [].as_slice()).unwrap(), None);
        let mut truncated = encoded.clone();
        truncated.truncate(encoded.len() - 3);
        assert!(read_frame(&mut truncated.as_slice()).is_err());
    }

    #[test]
    fn a_payload_of_the_wrong_length_is_a_protocol_error() {
        let frame = Frame {
            header: json!({"rows": 2, "cols": 2}).as_object().unwrap().clone(),
            payload: vec![0u8; 12],
        };
        assert!(matches!(
            frame_matrix("p", &frame),
            Err(PeersError::Protocol { .. })
        ));
    }
}
