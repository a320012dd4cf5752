import { test } from "node:test";
import assert from "node:assert/strict";
import type { ListPage } from "../../lib/log_file.ts";
import { parseListPage } from "../../lib/api.ts";
import { CliError } from "../../lib/errors.ts";
import { checkPage } from "../../lib/listing.ts";

const NOW = Date.parse("2026-07-10T00:00:00Z");
const AFTER = "2026-07-01T00:00:00Z";

function apiError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof CliError && e.kind === "api" && pattern.test(e.message),
  );
}

function pageOf(
  files: Array<{ event_type?: string; end_time: string }>,
  last: string | null,
): ListPage {
  return {
    data: files.map((f, i) => ({
      id: `f${i}`,
      event_type: f.event_type ?? "",
      end_time: f.end_time,
    })),
    has_more: false,
    last_end_time: last,
  };
}

test("parseListPage refuses has_more with a null last_end_time", () => {
  apiError(
    () => parseListPage('{"data":[],"has_more":true,"last_end_time":null}', "listing"),
    /has_more.*null/,
  );
  apiError(() => parseListPage('{"data":[],"has_more":true}', "listing"), /has_more.*null/);
  assert.equal(
    parseListPage('{"data":[],"has_more":false,"last_end_time":null}', "l").has_more,
    false,
  );
});

test("checkPage refuses a file of another event type; a missing one counts as asked", () => {
  checkPage(pageOf([{ end_time: "2026-07-02T00:00:00Z" }], null), "AUTH_LOG", NOW, AFTER);
  checkPage(
    pageOf([{ event_type: "AUTH_LOG", end_time: "2026-07-02T00:00:00Z" }], null),
    "AUTH_LOG",
    NOW,
    AFTER,
  );
  apiError(
    () =>
      checkPage(
        pageOf([{ event_type: "OTHER", end_time: "2026-07-02T00:00:00Z" }], null),
        "AUTH_LOG",
        NOW,
        AFTER,
      ),
    /f0 of event type "OTHER"/,
  );
});

test("checkPage refuses times more than a day ahead of the clock, in files or the cursor", () => {
  checkPage(
    pageOf([{ end_time: "2026-07-10T23:59:59Z" }], "2026-07-10T23:59:59Z"),
    "A",
    NOW,
    AFTER,
  );
  apiError(
    () => checkPage(pageOf([{ end_time: "2026-07-11T00:00:01Z" }], null), "A", NOW, AFTER),
    /end_time .* ahead/,
  );
  apiError(
    () => checkPage(pageOf([], "2027-01-01T00:00:00Z"), "A", NOW, AFTER),
    /last_end_time .* ahead/,
  );
});
