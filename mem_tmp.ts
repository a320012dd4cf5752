import { runCli } from "./tests/helpers/cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./tests/helpers/fixtures.ts";
import { startElasticEmulator } from "./tests/siem/elastic_emulator.ts";
import { readFile, mkdtemp } from "node:fs/promises";
const files = [{ id: "eclf_big_2g", eventType: "AUTH_LOG", endTime: "2026-07-02T00:00:00Z", size: Number(process.env.SIZE ?? 2*1024**3) }];
await withEmulator({ files }, async (emulator) => {
  const es = await startElasticEmulator({ apiKeys: ["k"], countOnly: true });
  const dir = await mkdtemp("/tmp/memtmp-");
  const out = process.env.MODE === "dir" ? ["--output-dir", dir] : ["-o", es.target, ...(process.env.EXTRA_ARGS ?? "").split(" ").filter(Boolean)];
  const r = await runCli([PRINCIPAL, "AUTH_LOG", "1", AFTER, ...out], { env: envFor(emulator, { ELASTIC_API_KEY: "k", ...(process.env.CHILD_ENV ? JSON.parse(process.env.CHILD_ENV) : {}) }), wrapper: ["/usr/bin/time", "-v", "-o", dir + "/time.txt"], timeoutMs: 880000 });
  const text = await readFile(dir + "/time.txt", "utf8");
  console.log(process.env.MODE ?? "es", r.code, r.ms, "ms", /Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1], "KiB", es.documentCount());
  await es.close();
});
