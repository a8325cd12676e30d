// The only place the windows talk to the Rust side: typed wrappers around Tauri's invoke
// and events, so a page never spells a command name itself.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AboutView,
  ActivityRow,
  CatalogView,
  MaskingLine,
  CommandError,
  ExceptionDraft,
  ExceptionRequest,
  FormRules,
  WindowContext,
} from "./types";

export const ipc = {
  catalogView: () => invoke<CatalogView>("catalog_view"),
  recentActivity: () => invoke<ActivityRow[]>("recent_activity"),
  maskingLine: () => invoke<MaskingLine | null>("masking_line"),
  windowContext: () => invoke<WindowContext>("window_context"),
  exceptionForm: () => invoke<FormRules>("exception_form"),
  exceptionRequests: () => invoke<ExceptionRequest[]>("exception_requests"),
  submitException: (draft: ExceptionDraft) => invoke<ExceptionRequest>("submit_exception", { draft }),
  openView: (view: "catalog" | "activity" | "exceptions" | "about", context?: WindowContext) =>
    invoke<void>("open_view", { view, context: context ?? null }),
  openAssistant: (cwd?: string | null) => invoke<void>("open_assistant", { cwd: cwd ?? null }),
  about: () => invoke<AboutView>("about"),
};

export const events = {
  /** Fired when a launch event arrives. */
  onActivity: (handler: () => void): Promise<UnlistenFn> => listen("warden://activity", () => handler()),
  /** Fired when my requests changed. */
  onRequests: (handler: () => void): Promise<UnlistenFn> => listen("warden://requests", () => handler()),
  /** Fired when an open window is asked to show something else. */
  onContext: (handler: (context: WindowContext) => void): Promise<UnlistenFn> =>
    listen<WindowContext>("warden://context", (event) => handler(event.payload)),
};

/** Turns whatever a failed invoke threw into a CommandError. */
export function asCommandError(thrown: unknown): CommandError {
  if (thrown && typeof thrown === "object" && "code" in thrown && "message" in thrown) {
    return thrown as CommandError;
  }
  return { code: "unexpected", message: thrown instanceof Error ? thrown.message : String(thrown) };
}
