// Browser-test harness: installed before a built page's own script, it answers the
// page's Tauri commands from `window.__WARDEN_FIXTURES__` through the official
// `@tauri-apps/api/mocks`, records every call, and lets a test emit Tauri events.
import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";

type Answer = { ok: unknown } | { error: unknown };
interface Fixtures {
  window: string;
  answers: Record<string, Answer | Answer[]>;
}

declare global {
  interface Window {
    __WARDEN_FIXTURES__?: Fixtures;
    __wardenCalls: { cmd: string; args: unknown }[];
    __wardenEmit: (event: string, payload?: unknown) => Promise<void>;
    __wardenSetAnswer: (cmd: string, answer: Answer) => void;
  }
}

const fixtures: Fixtures = window.__WARDEN_FIXTURES__ ?? { window: "catalog", answers: {} };
window.__wardenCalls = [];
clearMocks();
mockWindows(fixtures.window);
mockIPC(
  (cmd, args) => {
    window.__wardenCalls.push({ cmd, args });
    const answer = fixtures.answers[cmd];
    if (answer === undefined) throw { code: "unexpected", message: `no fixture for ${cmd}` };
    // A list answers successive calls, repeating its last entry.
    const next = Array.isArray(answer) ? (answer.length > 1 ? answer.shift()! : answer[0]) : answer;
    if ("error" in next) throw next.error;
    return next.ok;
  },
  { shouldMockEvents: true },
);
window.__wardenEmit = (event, payload) => emit(event, payload);
window.__wardenSetAnswer = (cmd, answer) => {
  fixtures.answers[cmd] = answer;
};
