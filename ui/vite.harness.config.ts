// Builds the browser-test harness: one script, injected before the pages' own code,
// that installs `@tauri-apps/api/mocks` so the built pages run outside Tauri.
import { defineConfig } from "vite";
import { resolve } from "node:path";

export default defineConfig({
  build: {
    outDir: "dist-test",
    emptyOutDir: true,
    lib: {
      entry: resolve(import.meta.dirname, "tests/harness/harness.ts"),
      formats: ["iife"],
      name: "wardenHarness",
      fileName: () => "harness.js",
    },
  },
});
