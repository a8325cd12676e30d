// Words for times, durations and statuses, shared by the windows.
import type { RequestStatus, Status } from "./types";

const DAY = 86_400;
const HOUR = 3600;

/** "30 days", "1 day", "8 hours", "5 minutes". */
export function humanDuration(seconds: number): string {
  const [n, unit] =
    seconds % DAY === 0 ? [seconds / DAY, "day"] : seconds % HOUR === 0 ? [seconds / HOUR, "hour"] : [Math.ceil(seconds / 60), "minute"];
  return n === 1 ? `1 ${unit}` : `${n} ${unit}s`;
}

/** A local date and time, e.g. "22 Nov 2026, 14:05". */
export function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, {
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function statusLabel(status: Status): string {
  return { approved: "Approved", warn: "Warn", blocked: "Blocked" }[status];
}

/** A request's status in words. */
export function requestStatusText(status: RequestStatus): string {
  switch (status.state) {
    case "waiting-to-be-sent":
      return "Waiting to be sent (no connection to the governance server yet)";
    case "pending":
      return "Pending: waiting for an approver";
    case "approved":
      return status.conditions
        ? `Approved until ${when(status.untilMs)}: ${status.conditions}`
        : `Approved until ${when(status.untilMs)}`;
    case "denied":
    case "revoked": {
      const verb = status.state === "denied" ? "Denied" : "Revoked";
      const who = status.by ? ` by ${status.by}` : "";
      return status.comment ? `${verb}${who}: “${status.comment}”` : `${verb}${who}`;
    }
    case "expired":
      return "Expired";
    case "withdrawn":
      return "Withdrawn";
  }
}

export function outcomeLabel(outcome: string): string {
  const labels: Record<string, string> = {
    allowed: "Allowed",
    warned: "Warned",
    denied: "Blocked before start",
    killed: "Blocked (stopped)",
    "would-block": "Would block (monitor mode)",
    "not-permitted": "Not stopped (another user's process)",
    exited: "Exited before it could be stopped",
  };
  return labels[outcome] ?? outcome;
}
