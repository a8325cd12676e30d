// The data the Rust commands return (src-tauri/src/views.rs, commands.rs, exception_queue.rs).

export type Status = "approved" | "warn" | "blocked";
export type Action = "allow" | "warn" | "block";

export interface AssistantCard {
  name: string;
  url: string;
  runsCommand: boolean;
}

export interface ToolRow {
  id: string;
  name: string;
  vendor: string;
  kind: string;
  hosting: string;
  status: Status;
  reason: string;
  alternative?: string;
  link?: string;
  installed: boolean | null;
  requestable: boolean;
  isAssistant: boolean;
  /** What the Warden service writes into the tool's own managed settings ("bypass mode disabled"). */
  controls?: string[];
}

export interface CatalogView {
  policyName: string;
  assistant: AssistantCard | null;
  tools: ToolRow[];
}

export interface ActivityRow {
  id: string;
  atMs: number;
  tool: string | null;
  toolName: string;
  action: Action;
  outcome: string;
  reason: string;
  cwd: string | null;
  exe: string;
  pid: number;
}

/** The masking gateway's latest request of this developer's (activity window). */
export interface MaskingLine {
  summary: string;
  atMs: number;
  requests24h: number;
  masked24h: number;
}

export interface WindowContext {
  event?: string;
  tool?: string;
  repository?: string;
}

export interface FormTool {
  id: string;
  name: string;
  status: Status;
}

export interface FormRules {
  tools: FormTool[];
  minJustification: number;
  minDurationSeconds: number;
  maxDurationSeconds: number;
}

export type Scope = "repository" | "everywhere";

export interface ExceptionDraft {
  tool: string;
  justification: string;
  scope: Scope;
  repository: string | null;
  durationSeconds: number;
}

export type RequestStatus =
  | { state: "waiting-to-be-sent" }
  | { state: "pending" }
  /** `conditions`: what the approver attached, in words ("only through the company gateway"). */
  | { state: "approved"; untilMs: number; conditions?: string }
  | { state: "denied"; comment: string; by?: string }
  | { state: "expired" }
  | { state: "withdrawn" }
  | { state: "revoked"; comment: string; by?: string };

export interface ExceptionRequest {
  id: string;
  tool: string;
  toolName: string;
  justification: string;
  scope: Scope;
  repository?: string;
  durationSeconds: number;
  createdAtMs: number;
  status: RequestStatus;
}

export interface AboutView {
  version: string;
  policyName: string;
  policyVersion: string;
  policySource: string;
  policyProblem: string | null;
  server: string;
  device: string;
  status: string;
  eventSource: string;
}

export interface FieldProblem {
  field: "tool" | "justification" | "repository" | "duration";
  message: string;
}

/** A command error: `code` is stable, `message` is for people. */
export interface CommandError {
  code: "invalid-request" | "unknown-view" | "open-failed" | "storage-failed" | "window-failed" | string;
  message: string;
  problems?: FieldProblem[];
}
