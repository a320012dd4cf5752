/**
 * The verification's report from its findings: the verdict sentence, per event type figures,
 * chain heads, and the findings in order (problems, explained gaps, information); rendered as
 * the human summary on stderr here, as JSON by `--json`, as HTML by lib/verify/html.ts.
 *
 * @example
 * ```ts
 * import type { CheckResult } from "./check.ts";
 * declare const result: CheckResult;
 * const report = buildReport(result, [], { archive: "logs", command: "verify logs", againstApi: false });
 * console.error(renderText(report));
 * ```
 */
import { VERSION } from "../version.ts";
import type { CheckResult } from "./check.ts";
import type { Finding, Interval, Severity, VerifyReport } from "./model.ts";

const ORDER: Record<Severity, number> = { problem: 0, explained: 1, info: 2 };

export function buildReport(
  result: CheckResult,
  extra: Finding[],
  context: { archive: string; command: string; againstApi: boolean; now?: Date },
): VerifyReport {
  const findings = [...result.findings, ...extra].sort((a, b) =>
    ORDER[a.severity] - ORDER[b.severity]
  );
  const counts: Record<Severity, number> = { problem: 0, explained: 0, info: 0 };
  for (const finding of findings) counts[finding.severity]++;
  const types = [...result.types.values()].sort((a, b) => a.eventType.localeCompare(b.eventType));
  const starts = types.flatMap((t) => t.covered.map((c) => c.from)).sort();
  const ends = types.flatMap((t) => t.covered.map((c) => c.to)).sort();
  const period: Interval | null = starts.length ? { from: starts[0], to: ends.at(-1)! } : null;
  const verifiedAt = (context.now ?? new Date()).toISOString();
  const intact = counts.problem === 0 && result.manifests > 0;
  const report: VerifyReport = {
    tool: { name: "oai-compliance-logs", version: VERSION },
    command: context.command,
    archive: context.archive,
    verifiedAt,
    intact,
    verdict: "",
    principals: result.principals,
    period,
    manifests: result.manifests,
    againstApi: context.againstApi,
    types,
    chains: result.chains,
    findings,
    counts,
  };
  report.verdict = verdictOf(report);
  return report;
}

/** The one sentence an auditor reads first. */
function verdictOf(report: VerifyReport): string {
  const files = report.types.reduce((n, t) => n + t.files, 0);
  const who = report.principals.length ? report.principals.join(", ") : "no principal";
  const period = report.period
    ? `from ${shortTime(report.period.from)} to ${shortTime(report.period.to)}`
    : "for no period";
  const when = `verified ${shortTime(report.verifiedAt)}`;
  if (report.manifests === 0) {
    return `Not verifiable: ${report.archive} holds no manifest (_manifest/ is empty or ` +
      `missing), ${when}.`;
  }
  const against = report.againstApi ? " and complete against the API's listing" : "";
  const explained = report.counts.explained
    ? `; ${report.counts.explained} explained gap${report.counts.explained === 1 ? "" : "s"}`
    : "";
  if (report.intact) {
    return `Intact${against}: all ${files} files of ${who} ${period} match their ` +
      `manifests, with no hole in the listed windows${explained}; ${when}.`;
  }
  const kinds = new Map<string, number>();
  for (const f of report.findings) {
    if (f.severity !== "problem") continue;
    kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  }
  const list = [...kinds].map(([kind, n]) => `${n} ${kind.replace("_", " ")}`).join(", ");
  const n = report.counts.problem;
  return `NOT intact: ${n} problem${n === 1 ? "" : "s"} found (${list}) in the archive of ` +
    `${who} ${period}${explained}; ${when}.`;
}

/** `2026-07-02 10:00 UTC` (seconds only when they are not zero). */
export function shortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const text = date.toISOString();
  const seconds = text.slice(16, 19) === ":00" ? "" : text.slice(16, 19);
  return `${text.slice(0, 10)} ${text.slice(11, 16)}${seconds} UTC`;
}

/** Bytes as people read them. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** The human summary for stderr: per event type, then every finding, then the verdict. */
export function renderText(report: VerifyReport): string {
  const lines: string[] = [];
  for (const t of report.types) {
    const range = t.firstEndTime
      ? `end_time ${shortTime(t.firstEndTime)} .. ${shortTime(t.lastEndTime!)}`
      : "no files";
    lines.push(
      `${t.eventType}: ${t.files} files, ${formatBytes(t.bytes)}, ${t.events} events, ` +
        `${range}; ${t.verified} verified, ${t.problems} problem${t.problems === 1 ? "" : "s"}`,
    );
  }
  for (const chain of report.chains) {
    lines.push(
      `chain ${chain.job}: ${chain.manifests} manifest${chain.manifests === 1 ? "" : "s"}, ` +
        `head ${chain.head}, signature ${chain.signature}`,
    );
  }
  const label: Record<Severity, string> = {
    problem: "problem",
    explained: "explained",
    info: "info",
  };
  for (const finding of report.findings) {
    lines.push(`${label[finding.severity]}: ${finding.kind}: ${finding.message}`);
    for (const consequence of finding.consequences ?? []) {
      lines.push(`    under it: ${consequence.message}`);
    }
  }
  lines.push(report.verdict);
  return lines.join("\n") + "\n";
}
