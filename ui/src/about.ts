// The About window: version, policy, server, device, and what the tray is doing.
import { asCommandError, ipc } from "./ipc";
import { errorBanner, h, mainRegion, replace } from "./dom";
import type { AboutView } from "./types";

export function renderAbout(about: AboutView): (HTMLElement | null)[] {
  const pair = (term: string, value: string) => [h("dt", {}, term), h("dd", {}, value)];
  return [
    h("h1", {}, "About Warden"),
    h("p", { class: "lead", role: "status" }, about.status),
    about.policyProblem ? errorBanner(`The newest policy could not be loaded: ${about.policyProblem}`) : null,
    h(
      "dl",
      { class: "facts" },
      pair("Version", about.version),
      pair("Policy", about.policyName),
      pair("Policy version", about.policyVersion),
      pair("Policy source", about.policySource),
      pair("Server", about.server),
      pair("Device", about.device),
      pair("Launch events", about.eventSource),
    ),
  ];
}

export async function mountAbout(): Promise<void> {
  try {
    replace(mainRegion(), renderAbout(await ipc.about()));
  } catch (thrown) {
    const error = asCommandError(thrown);
    replace(mainRegion(), h("h1", {}, "About Warden"), errorBanner(`${error.message} (${error.code})`));
  }
}

if (!import.meta.env?.VITEST) void mountAbout();
