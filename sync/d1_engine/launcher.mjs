// Starts the local D1 engine: miniflare running worker.mjs with a D1 binding.
// Usage: node launcher.mjs --port 0 [--persist DIR] [--watch-stdin]
// Prints one JSON line {"url": ...} once the engine accepts requests, then
// runs until SIGTERM/SIGINT, or with --watch-stdin until stdin closes (so a
// crashed parent never leaves an engine behind).
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const here = path.dirname(fileURLToPath(import.meta.url));
const persist = opt("persist", "");

const mf = new Miniflare({
  modules: true,
  scriptPath: path.join(here, "worker.mjs"),
  compatibilityDate: "2025-04-01",
  d1Databases: { DB: "estateflow-local" },
  d1Persist: persist ? persist : false,
  host: "127.0.0.1",
  port: Number(opt("port", "0")),
});

const url = await mf.ready;
process.stdout.write(JSON.stringify({ url: url.href.replace(/\/$/, "") }) + "\n");

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (args.includes("--watch-stdin")) {
  process.stdin.on("end", stop);
  process.stdin.resume();
}
