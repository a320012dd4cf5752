/**
 * Hostile input, black-box: a server that echoes the key in any form, keys that cannot be real,
 * a key file that never ends, terminal escape sequences in error bodies and state files, and
 * arguments beyond what the runtime can hold. Each ends in one clear line (or is made harmless),
 * never in a leak, a hang, a tight loop or an `unexpected failure`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Fault } from "./emulator/mod.ts";
import { lines, runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";

/** Bun's default of 5 s per test is too short on a busy 2-core CI machine or an emulated CPU. */
const decoder = new TextDecoder();

const KEY = "sk-proj-Hx7Qm2Lw9Rt4Vb8Nc3Kd6Fg1Jz5Ps0Ty";
/** The rule: no run of 16 or more consecutive characters of the key in any output. */
const RUN = 16;

/** The first 16-character run of the key found in `text`, if any. */
function keyRunIn(text: string): string | undefined {
  for (let i = 0; i + RUN <= KEY.length; i++) {
    if (text.includes(KEY.slice(i, i + RUN))) return KEY.slice(i, i + RUN);
  }
  return undefined;
}

/** `s` with every character written as a JSON `\uXXXX` escape: JSON.parse gives `s` back. */
function unicodeEscaped(s: string): string {
  return [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
}

/** Bodies that carry the key (or enough of it) the ways a server or a proxy might echo it. */
const ECHOES: Array<[string, string]> = [
  [
    "JSON-escaped, twice",
    JSON.stringify({
      error: { message: `Incorrect API key provided: ${KEY}`, raw: JSON.stringify({ key: KEY }) },
    }),
  ],
  ["as \\u escapes that a JSON parser decodes", `{"error":{"message":"${unicodeEscaped(KEY)}"}}`],
  ["percent-encoded in a URL", `forbidden: https://x.test/auth?key=${encodeURIComponent(KEY)}`],
  [
    "truncated and sliced",
    `key ${KEY.slice(0, 20)}... or ...${KEY.slice(-17)} or ${KEY.slice(7, 24)}`,
  ],
];

const FORMATS: string[][] = [[], ["-v"], ["--log-format", "json"], ["-v", "--log-format", "json"]];

test(
  "no 16-character run of the key appears when the server echoes it, in any form or format",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2), key: KEY }, async (emulator) => {
      for (const [name, body] of ECHOES) {
        for (const format of FORMATS) {
          // A retried 503 (its reason is printed) and then a 401 that ends the run.
          emulator.inject({ target: "list", status: 503, body });
          emulator.inject({ target: "list", status: 401, body });
          const r = await runCli([
            PRINCIPAL,
            "AUTH_LOG",
            "10",
            AFTER,
            "--backoff",
            "0.01",
            ...format,
          ], {
            env: { ...envFor(emulator), OAI_COMPLIANCE_DEBUG: "1" },
            timeoutMs: 30_000,
          });
          const what = `${name}, ${format.join(" ") || "plain"}`;
          assert.equal(r.code, 1, `${what}: ${r.stderr}`);
          assert.equal(keyRunIn(decoder.decode(r.stdout)), undefined, `${what}: stdout`);
          assert.equal(keyRunIn(r.stderr), undefined, `${what}: stderr\n${r.stderr}`);
        }
      }
      // The key did reach the API, so the scans above would have seen it had it been copied.
      assert.ok(emulator.requests.some((q) => q.headers.authorization === `Bearer ${KEY}`));
    });
  },
);

test(
  "a key with a character no key has, or shorter than 20, is refused with exit 2, never echoed",
  SLOW,
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "oai-hostile-"));
    try {
      await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
        const bad: Array<[string, RegExp]> = [
          ['sk-proj-"quoted"-0123456789abcdef', /characters a key cannot hold/],
          ["sk-proj-Hx7Qm2Lw9Rt4 Vb8Nc3Kd6Fg1Jz5", /characters a key cannot hold/],
          ["sk-proj-%2FHx7Qm2Lw9Rt4Vb8Nc3Kd6F", /characters a key cannot hold/],
          ["sk-proj-Hx7Qm2Lw9Rt4\\Vb8Nc3Kd6F", /characters a key cannot hold/],
          ["sk-proj-Hx7Qm2Lw9Rt4\u00e9Vb8Nc3Kd6F", /characters a key cannot hold/],
          ["sk-Trunc8x", /shorter than 20 characters.*truncated/],
          ["sk-Hx7Qm2Lw9Rt4Vb8N", /shorter than 20 characters.*truncated/],
        ];
        for (const [key, message] of bad) {
          const path = join(dir, "key");
          await writeFile(path, `${key}\n`);
          for (
            const [source, env] of [
              ["COMPLIANCE_API_KEY", { COMPLIANCE_API_KEY: key }],
              [path, { COMPLIANCE_API_KEY: undefined, COMPLIANCE_API_KEY_FILE: path }],
            ] as const
          ) {
            const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], {
              env: { ...envFor(emulator), ...env },
              timeoutMs: 20_000,
            });
            assert.equal(r.code, 2, `${JSON.stringify(key)} from ${source}: ${r.stderr}`);
            assert.equal(lines(r.stderr).length, 1, r.stderr);
            assert.match(r.stderr, message);
            assert.ok(r.stderr.includes(source), `names where the key came from: ${r.stderr}`);
            assert.ok(!r.stderr.includes(key), `echoes the key: ${r.stderr}`);
          }
        }
        assert.equal(emulator.requests.length, 0, "no request with a refused key");
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test("COMPLIANCE_API_KEY_FILE=/dev/zero fails fast with exit 2: not a key file", {
  ...SLOW,
  skip: RUNS_WINDOWS,
}, async () => {
  const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], {
    env: { COMPLIANCE_API_KEY_FILE: "/dev/zero", COMPLIANCE_API_BASE: "http://127.0.0.1:9/v1" },
    timeoutMs: 15_000,
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /COMPLIANCE_API_KEY_FILE '\/dev\/zero' is not a key file: too large or binary/,
  );
  assert.equal(lines(r.stderr).length, 1, r.stderr);
  assert.ok(r.ms < 5_000, `took ${r.ms} ms`);
});

/** Control characters a terminal obeys: ESC, BEL, CR, C1 CSI. */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;
const ESCAPES = "boom \x1b[2J\x1b]0;title\x07 and \x9b31m\r done";

test(
  "terminal escape sequences in error bodies never reach stderr raw; JSON logs stay JSON",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const bodies = [
        // As JSON (the tool pretty-prints it, decoding the \u001b escapes) and as raw text.
        JSON.stringify({ error: { message: ESCAPES } }),
        ESCAPES,
      ];
      for (const body of bodies) {
        for (const format of FORMATS) {
          const faults: Fault[] = [
            { target: "list", status: 503, body },
            { target: "list", status: 401, body },
          ];
          for (const fault of faults) emulator.inject(fault);
          const r = await runCli([
            PRINCIPAL,
            "AUTH_LOG",
            "10",
            AFTER,
            "--backoff",
            "0.01",
            ...format,
          ], {
            env: envFor(emulator),
            timeoutMs: 30_000,
          });
          const what = `${JSON.stringify(body).slice(0, 30)}, ${format.join(" ") || "plain"}`;
          assert.equal(r.code, 1, `${what}: ${r.stderr}`);
          assert.doesNotMatch(r.stderr, RAW_CONTROL, `${what}: ${JSON.stringify(r.stderr)}`);
          if (format.includes("json")) {
            for (const line of lines(r.stderr)) JSON.parse(line);
            assert.ok(r.stderr.includes("title"), r.stderr);
          } else {
            // Visible as `\x1b[2J` (escaped here) or `\u001b[2J` (a re-printed JSON body).
            assert.match(r.stderr, /\\(x1b|u001b)\[2J/, r.stderr);
          }
        }
      }
    });
  },
);

test("state show escapes control characters from the state file", SLOW, async () => {
  const dir = await mkdtemp(join(tmpdir(), "oai-hostile-"));
  try {
    const state = join(dir, "state.json");
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--state", state], {
        env: envFor(emulator),
      });
      assert.equal(r.code, 0, r.stderr);
    });
    const data = JSON.parse(await readFile(state, "utf8"));
    data.cursors.AUTH_LOG.seen.push("eclf_\x1b]0;pwned\x07\x1b[2J_\x9b1m");
    await writeFile(state, JSON.stringify(data));
    const r = await runCli(["state", "show", state]);
    const out = decoder.decode(r.stdout);
    assert.doesNotMatch(out + r.stderr, RAW_CONTROL, JSON.stringify(out + r.stderr));
    // Shown escaped, or refused as a corrupt file: either way nothing raw reaches the terminal.
    if (r.code === 0) assert.ok(out.includes("eclf_\\x1b]0;pwned\\x07\\x1b[2J_\\x9b1m"), out);
    else assert.equal(r.code, 1, r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Arguments beyond what timers, dates or URL paths hold: each one usage line, quickly. */
const BAD_ARGUMENTS: Array<[string, string[]]> = [
  ["--follow --interval 25d (a tight loop before)", [
    "--follow",
    "--state",
    "STATE",
    "--interval",
    "25d",
  ]],
  ["--max-retry-wait 25d (retried at once before)", ["--max-retry-wait", "25d"]],
  ["--timeout 2147484 (timed out at once before)", ["--timeout", "2147484"]],
  ["--backoff 30d", ["--backoff", "30d"]],
  ["--settle 99999999w", ["--settle", "99999999w"]],
  ["--timeout of 400 digits", ["--timeout", "9".repeat(400)]],
  ["--before 99999999w", ["--before", "99999999w"]],
  ["--before in year 99999", ["--before", "99999-01-01T00:00:00Z"]],
  ["--before in year +275760", ["--before", "+275760-09-13T00:00:00Z"]],
  ["--limit of 30 digits", ["--limit", "1".repeat(30)]],
];
const BAD_POSITIONALS: Array<[string, string[]]> = [
  ["<after> of 99999999w", [PRINCIPAL, "AUTH_LOG", "10", "99999999w"]],
  ["a principal of '.'", [".", "AUTH_LOG", "10", AFTER]],
  ["a principal of '..'", ["..", "AUTH_LOG", "10", AFTER]],
  ["a principal with an escape sequence", ["ws-\x1b[2J", "AUTH_LOG", "10", AFTER]],
  ["a principal with a percent sign", ["ws%2F..", "AUTH_LOG", "10", AFTER]],
];

test(
  "arguments beyond timer, date or path limits are one usage line each, exit 2, fast",
  SLOW,
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "oai-hostile-"));
    try {
      await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
        const cases = [
          ...BAD_ARGUMENTS.map(([name, args]): [string, string[]] => [
            name,
            [PRINCIPAL, "AUTH_LOG", "--after", AFTER, ...args],
          ]),
          ...BAD_POSITIONALS,
        ];
        for (const [name, rawArgs] of cases) {
          const args = rawArgs.map((a) => a === "STATE" ? join(dir, "s.json") : a);
          const r = await runCli(args, { env: envFor(emulator), timeoutMs: 15_000 });
          assert.equal(r.code, 2, `${name}: ${r.stderr}`);
          assert.equal(lines(r.stderr).length, 1, `${name}: ${r.stderr}`);
          assert.doesNotMatch(r.stderr, /unexpected failure|Warning|overflow/i, name);
          assert.doesNotMatch(r.stderr, RAW_CONTROL, name);
          assert.ok(r.ms < 5_000, `${name}: took ${r.ms} ms`);
        }
        assert.equal(emulator.requests.length, 0, "no request for a refused argument");
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test(
  "a fractional --settle is rounded to whole milliseconds and the run succeeds",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      for (const settle of ["1.0005", "0.0001", "1.5"]) {
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--settle", settle], {
          env: envFor(emulator),
        });
        assert.equal(r.code, 0, `--settle ${settle}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /unexpected failure/);
      }
    });
  },
);
