//! "My requests": the runtime's answer (`GET /v1/exception-requests`: the server's records,
//! live or as the sync last fetched them, and the device's outbox) as the exception window's
//! list. Pure: the caller passes the answer and the clock.

use crate::request_form::ScopeChoice;
use serde::{Deserialize, Serialize};
use warden_api::local::QueuedRequest;
use warden_api::{ExceptionRecord, ExceptionState};

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RequestStatus {
    /// In the device's outbox: the server has not accepted it yet.
    WaitingToBeSent,
    /// The server has it; an approver has not decided.
    Pending,
    #[serde(rename_all = "camelCase")]
    Approved {
        until_ms: i64,
        /// The conditions the approver attached, in words (`only through the company gateway;
        /// no risky modes`); empty for none.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        conditions: String,
    },
    #[serde(rename_all = "camelCase")]
    Denied {
        comment: String,
        /// The approver who decided.
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

/// A server record as the list shows it. An approval whose time ran out reads as expired
/// even before the server's sweep records it.
pub fn from_server(record: &ExceptionRecord, tool_name: String, now_ms: i64) -> ExceptionRequest {
    let comment = || record.comment.clone().unwrap_or_default();
    let status = match record.state {
        ExceptionState::Pending => RequestStatus::Pending,
        ExceptionState::Approved => match record.expires_at {
            Some(expires) if expires * 1000 <= now_ms => RequestStatus::Expired,
            Some(expires) => {
                RequestStatus::Approved { until_ms: expires * 1000, conditions: record.guardrails.describe() }
            }
            None => RequestStatus::Pending,
        },
        ExceptionState::Denied => RequestStatus::Denied { comment: comment(), by: record.decided_by.clone() },
        ExceptionState::Withdrawn => RequestStatus::Withdrawn,
        ExceptionState::Expired => RequestStatus::Expired,
        ExceptionState::Revoked => RequestStatus::Revoked { comment: comment(), by: record.decided_by.clone() },
    };
    ExceptionRequest {
        id: record.id.clone(),
        tool: record.tool.clone(),
        tool_name,
        justification: record.justification.clone(),
        scope: if record.scope.is_some() { ScopeChoice::Repository } else { ScopeChoice::Everywhere },
        repository: record.scope.clone(),
        duration_seconds: record.granted_seconds.unwrap_or(record.requested_seconds),
        created_at_ms: record.created_at * 1000,
        status,
    }
}

/// A request still in the device's outbox.
pub fn from_outbox(queued: &QueuedRequest, name_of: impl Fn(&str) -> String) -> ExceptionRequest {
    let request = &queued.request;
    ExceptionRequest {
        id: queued.id.clone(),
        tool_name: name_of(&request.tool),
        tool: request.tool.clone(),
        justification: request.justification.clone(),
        scope: if request.scope.is_some() { ScopeChoice::Repository } else { ScopeChoice::Everywhere },
        repository: request.scope.clone(),
        duration_seconds: request.duration_seconds,
        created_at_ms: queued.created_ms,
        status: RequestStatus::WaitingToBeSent,
    }
}

/// The merged list, newest first: the outbox, then the server's records.
pub fn merge(
    outbox: &[QueuedRequest],
    server: &[ExceptionRecord],
    now_ms: i64,
    name_of: impl Fn(&str) -> String,
) -> Vec<ExceptionRequest> {
    let mut list: Vec<ExceptionRequest> = outbox.iter().map(|q| from_outbox(q, &name_of)).collect();
    list.extend(server.iter().map(|r| from_server(r, name_of(&r.tool), now_ms)));
    list.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::ExceptionRequestCreate;

    fn record(id: &str, created: i64, state: ExceptionState) -> ExceptionRecord {
        ExceptionRecord {
            id: id.into(),
            device_id: "d1".into(),
            user: "dev".into(),
            tool: "claude-code".into(),
            scope: Some("/src/app".into()),
            justification: "reproduce a customer bug".into(),
            requested_seconds: 3600,
            state,
            created_at: created,
            decided_at: None,
            decided_by: None,
            comment: None,
            granted_seconds: None,
            starts_at: None,
            expires_at: None,
            guardrails: Default::default(),
            conditions: String::new(),
        }
    }

    #[test]
    fn server_states_become_list_statuses() {
        let now_ms = 10_000_000;
        let decided = |state, expires: Option<i64>, comment: Option<&str>| ExceptionRecord {
            decided_by: Some("lead@example.com".into()),
            comment: comment.map(str::to_owned),
            expires_at: expires,
            granted_seconds: Some(1800),
            ..record("r", 1, state)
        };
        let by = Some("lead@example.com".to_owned());
        let cases = [
            (record("r", 1, ExceptionState::Pending), RequestStatus::Pending),
            (
                decided(ExceptionState::Approved, Some(20_000), None),
                RequestStatus::Approved { until_ms: 20_000_000, conditions: String::new() },
            ),
            (
                ExceptionRecord {
                    guardrails: warden_policy::Guardrails { through_gateway: true, ..Default::default() },
                    ..decided(ExceptionState::Approved, Some(20_000), None)
                },
                RequestStatus::Approved { until_ms: 20_000_000, conditions: "only through the company gateway".into() },
            ),
            (decided(ExceptionState::Approved, Some(10_000), None), RequestStatus::Expired),
            (
                decided(ExceptionState::Denied, None, Some("use the assistant")),
                RequestStatus::Denied { comment: "use the assistant".into(), by: by.clone() },
            ),
            (
                decided(ExceptionState::Denied, None, None),
                RequestStatus::Denied { comment: String::new(), by: by.clone() },
            ),
            (record("r", 1, ExceptionState::Withdrawn), RequestStatus::Withdrawn),
            (decided(ExceptionState::Expired, Some(5_000), None), RequestStatus::Expired),
            (
                decided(ExceptionState::Revoked, Some(20_000), Some("incident")),
                RequestStatus::Revoked { comment: "incident".into(), by: by.clone() },
            ),
        ];
        for (record, status) in cases {
            let shown = from_server(&record, "Claude Code".into(), now_ms);
            assert_eq!(shown.status, status, "{:?}", record.state);
            assert_eq!((shown.tool_name.as_str(), shown.created_at_ms), ("Claude Code", 1000));
            assert_eq!(shown.repository.as_deref(), Some("/src/app"));
        }
        let approved = from_server(&decided(ExceptionState::Approved, Some(20_000), None), "C".into(), now_ms);
        assert_eq!(approved.duration_seconds, 1800, "the granted duration, not the requested one");
    }

    #[test]
    fn merges_outbox_and_server_newest_first() {
        let queued = |id: &str, at: i64, scope: Option<&str>| QueuedRequest {
            id: id.into(),
            created_ms: at,
            request: ExceptionRequestCreate {
                tool: "cursor".into(),
                justification: "try the new tool".into(),
                scope: scope.map(str::to_owned),
                duration_seconds: 600,
                client_id: Some(id.into()),
            },
        };
        let outbox = [queued("q1", 9_000, None), queued("q2", 1_000, Some("/src/web"))];
        let server = [record("s1", 5, ExceptionState::Pending), record("s2", 7, ExceptionState::Withdrawn)];
        let merged = merge(&outbox, &server, 10_000, |id| id.to_uppercase());
        let shown: Vec<_> = merged.iter().map(|r| (r.id.as_str(), r.tool_name.as_str(), &r.status)).collect();
        assert_eq!(
            shown,
            [
                ("q1", "CURSOR", &RequestStatus::WaitingToBeSent),
                ("s2", "CLAUDE-CODE", &RequestStatus::Withdrawn),
                ("s1", "CLAUDE-CODE", &RequestStatus::Pending),
                ("q2", "CURSOR", &RequestStatus::WaitingToBeSent),
            ]
        );
        assert_eq!((merged[0].duration_seconds, &merged[0].scope), (600, &ScopeChoice::Everywhere));
        assert_eq!(
            (merged[3].scope.clone(), merged[3].repository.as_deref()),
            (ScopeChoice::Repository, Some("/src/web"))
        );
    }
}
