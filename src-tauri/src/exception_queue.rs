//! Exception requests made on this device, kept in a small JSON file in the state
//! directory until the device-to-server client sends them.
//!
//! Writes go to a temporary file that is then renamed over the old one, so a crash
//! mid-write never loses the requests already made. A corrupt file is kept aside
//! (`.corrupt`) instead of being overwritten.

use crate::request_form::{ExceptionDraft, ScopeChoice};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RequestStatus {
    /// Still on this device: no server client has sent it yet.
    WaitingToBeSent,
    /// The server has it; an approver has not decided.
    Pending,
    #[serde(rename_all = "camelCase")]
    Approved {
        until_ms: i64,
    },
    #[serde(rename_all = "camelCase")]
    Denied {
        comment: String,
        /// The approver who decided (server requests only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    Expired,
    /// The developer withdrew it before a decision.
    Withdrawn,
    /// An approver ended it before its time ran out.
    #[serde(rename_all = "camelCase")]
    Revoked {
        comment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// One request, as the "my requests" list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRequest {
    pub id: String,
    pub tool: String,
    pub tool_name: String,
    pub justification: String,
    pub scope: ScopeChoice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub duration_seconds: u64,
    pub created_at_ms: i64,
    pub status: RequestStatus,
}

/// Problems with the queue file.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The queue file and its contents.
#[derive(Debug)]
pub struct ExceptionQueue {
    path: PathBuf,
    requests: Vec<ExceptionRequest>,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueFile {
    requests: Vec<ExceptionRequest>,
}

impl ExceptionQueue {
    /// Opens (or starts) the queue in `state_dir/exception-requests.json`.
    pub fn open(state_dir: &Path) -> Result<ExceptionQueue, QueueError> {
        let path = state_dir.join("exception-requests.json");
        let requests = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<QueueFile>(&text) {
                Ok(file) => file.requests,
                Err(_) => {
                    // Keep the unreadable file for a human to look at; start a new queue.
                    let aside = path.with_extension("json.corrupt");
                    std::fs::rename(&path, &aside).map_err(|source| QueueError::Write { path: aside, source })?;
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(QueueError::Read { path, source }),
        };
        Ok(ExceptionQueue { path, requests })
    }

    /// Every request, newest first.
    pub fn requests(&self) -> Vec<ExceptionRequest> {
        let mut list = self.requests.clone();
        list.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
        list
    }

    /// Adds a checked draft; it waits to be sent.
    pub fn add(
        &mut self,
        draft: ExceptionDraft,
        tool_name: String,
        now_ms: i64,
    ) -> Result<ExceptionRequest, QueueError> {
        let id = format!("req-{now_ms}-{}", self.requests.len() + 1);
        let request = ExceptionRequest {
            id,
            tool: draft.tool,
            tool_name,
            justification: draft.justification.trim().to_owned(),
            repository: if draft.scope == ScopeChoice::Repository { draft.repository } else { None },
            scope: draft.scope,
            duration_seconds: draft.duration_seconds,
            created_at_ms: now_ms,
            status: RequestStatus::WaitingToBeSent,
        };
        self.requests.push(request.clone());
        if let Err(e) = self.save() {
            self.requests.pop();
            return Err(e);
        }
        Ok(request)
    }

    /// Marks approved requests whose time ran out as expired (status shown live).
    pub fn expire(&mut self, now_ms: i64) -> Result<bool, QueueError> {
        let mut changed = false;
        for request in &mut self.requests {
            if let RequestStatus::Approved { until_ms } = request.status
                && until_ms <= now_ms
            {
                request.status = RequestStatus::Expired;
                changed = true;
            }
        }
        if changed {
            self.save()?;
        }
        Ok(changed)
    }

    fn save(&self) -> Result<(), QueueError> {
        let write_error = |source| QueueError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let text = serde_json::to_string_pretty(&QueueFile { requests: self.requests.clone() })
            .expect("requests always serialize");
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(write_error)?;
        std::fs::rename(&temporary, &self.path).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warden-tray-queue-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn draft(tool: &str) -> ExceptionDraft {
        ExceptionDraft {
            tool: tool.into(),
            justification: "  reproduce a customer bug report  ".into(),
            scope: ScopeChoice::Repository,
            repository: Some("/src/app".into()),
            duration_seconds: 86_400,
        }
    }

    #[test]
    fn requests_survive_a_restart_newest_first() {
        let dir = scratch("restart");
        let mut queue = ExceptionQueue::open(&dir).unwrap();
        assert!(queue.requests().is_empty());
        queue.add(draft("claude-code"), "Claude Code".into(), 1000).unwrap();
        queue.add(draft("cursor"), "Cursor".into(), 2000).unwrap();
        let reopened = ExceptionQueue::open(&dir).unwrap();
        let tools: Vec<_> = reopened.requests().into_iter().map(|r| (r.tool, r.status, r.justification)).collect();
        assert_eq!(
            tools,
            [
                ("cursor".into(), RequestStatus::WaitingToBeSent, "reproduce a customer bug report".into()),
                ("claude-code".into(), RequestStatus::WaitingToBeSent, "reproduce a customer bug report".into())
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_not_overwritten() {
        let dir = scratch("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("exception-requests.json"), "{not json").unwrap();
        let mut queue = ExceptionQueue::open(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("exception-requests.json.corrupt")).unwrap(), "{not json");
        queue.add(draft("cursor"), "Cursor".into(), 5).unwrap();
        assert_eq!(ExceptionQueue::open(&dir).unwrap().requests().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn approved_requests_expire() {
        let dir = scratch("expire");
        let mut queue = ExceptionQueue::open(&dir).unwrap();
        queue.add(draft("cursor"), "Cursor".into(), 5).unwrap();
        queue.requests[0].status = RequestStatus::Approved { until_ms: 100 };
        assert!(!queue.expire(99).unwrap());
        assert!(queue.expire(100).unwrap());
        assert_eq!(ExceptionQueue::open(&dir).unwrap().requests()[0].status, RequestStatus::Expired);
        let wire = serde_json::to_value(RequestStatus::Approved { until_ms: 7 }).unwrap();
        assert_eq!(wire, serde_json::json!({"state": "approved", "untilMs": 7}));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
