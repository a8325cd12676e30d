// Builds the four window pages into dist/ (Tauri embeds dist/ into the binary) and runs
// the Vitest unit tests.
import { defineConfig } from "vitest/config";
import { resolve } from "node:path";

const pages = ["catalog", "activity", "exceptions", "about"];

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: Object.fromEntries(pages.map((p) => [p, resolve(import.meta.dirname, `${p}.html`)])),
    },
  },
  test: {
    include: ["tests/unit/**/*.test.ts"],
    environment: "jsdom",
  },
});
