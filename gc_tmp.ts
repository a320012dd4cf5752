import { runCli } from "./tests/helpers/cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./tests/helpers/fixtures.ts";
import { startElasticEmulator } from "./tests/siem/elastic_emulator.ts";
const files = [{ id: "eclf_big_2g", eventType: "AUTH_LOG", endTime: "2026-07-02T00:00:00Z", size: 268435456 }];
await withEmulator({ files }, async (emulator) => {
  const es = await startElasticEmulator({ apiKeys: ["k"], countOnly: true });
  const r = await runCli([PRINCIPAL, "AUTH_LOG", "1", AFTER, "-o", es.target, "--quiet"], { env: envFor(emulator, { ELASTIC_API_KEY: "k", DENO_V8_FLAGS: "--trace-gc" }), timeoutMs: 880000 });
  console.log(new TextDecoder().decode(r.stdout).split("\n").filter(l => /Mark-Compact|Scavenge/.test(l)).map(l => l.replace(/^.*?ms: /, "").slice(0, 60)).filter((_, i, a) => i % Math.ceil(a.length / 15) === 0).join("\n"));
  await es.close();
});
