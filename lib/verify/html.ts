/**
 * `verify --report FILE.html`: the report as one self-contained HTML page (no scripts, fonts,
 * images or links to fetch; it works offline and prints to PDF cleanly). The verdict sentence
 * comes first and largest; a damaged archive's problems follow it at once, above the fold; then
 * the per event type table, a coverage timeline per type (inline SVG, marked with shapes and
 * hatching as well as colour, so that it reads in greyscale), the explained gaps, each chain's
 * head hash and signature status, the tool version and the exact command.
 *
 * @example
 * ```ts
 * import type { VerifyReport } from "./model.ts";
 * declare const report: VerifyReport;
 * const html = renderHtml(report);
 * ```
 */
import { formatBytes, shortTime } from "./report.ts";
import type { Finding, TypeFigures, VerifyReport } from "./model.ts";
import { toMicros } from "../time.ts";

const TIMELINE_WIDTH = 920;
const BAND_TOP = 18;
const BAND_HEIGHT = 26;

function escape(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const STYLE = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#111;margin:0;padding:24px 32px;max-width:1040px}
h1.verdict{font-size:26px;line-height:1.3;margin:0 0 10px;padding:14px 18px;border-left:10px solid;border-radius:4px}
h1.intact{background:#e8f5e9;border-color:#1b5e20}
h1.broken{background:#fdecea;border-color:#b71c1c}
h1 .badge{display:inline-block;font-size:15px;letter-spacing:.06em;border:2px solid currentColor;padding:0 6px;margin-right:10px;vertical-align:3px}
p.meta{margin:0 0 18px;color:#333;font-size:13px}
h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px;margin-bottom:6px}
th,td{border:1px solid #999;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.problem td:first-child{font-weight:700}
td.sub{padding-left:26px;color:#333}
code,.hash{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.legend{font-size:12px;color:#333;margin:2px 0 10px}
.legend svg{vertical-align:middle;margin:0 3px 0 12px}
svg.timeline{display:block;width:100%;height:auto}
footer{margin-top:26px;font-size:12px;color:#333;border-top:1px solid #999;padding-top:8px}
@media print{body{padding:0;max-width:none}tr,svg{break-inside:avoid}h2{break-after:avoid}}
@page{margin:14mm}
`;

export function renderHtml(report: VerifyReport): string {
  const problems = report.findings.filter((f) => f.severity === "problem");
  const others = report.findings.filter((f) => f.severity !== "problem");
  const badge = report.intact ? "INTACT" : "NOT INTACT";
  const meta = [
    `Archive <code>${escape(report.archive)}</code>`,
    `principal ${escape(report.principals.join(", ") || "none")}`,
    report.period
      ? `period ${escape(shortTime(report.period.from))} to ${escape(shortTime(report.period.to))}`
      : "no period",
    `${report.manifests} manifest${report.manifests === 1 ? "" : "s"}`,
    `verified ${escape(shortTime(report.verifiedAt))}`,
    report.againstApi ? "checked against the API's listing" : "not checked against the API",
  ].join(" · ");
  const parts: string[] = [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Evidence report: ${escape(report.archive)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1 class="verdict ${report.intact ? "intact" : "broken"}" id="verdict">` +
    `<span class="badge">${badge}</span>${escape(report.verdict)}</h1>`,
    `<p class="meta">${meta}</p>`,
  ];
  if (problems.length > 0) {
    parts.push(`<h2 id="problems">Problems (${problems.length})</h2>`);
    parts.push(findingsTable(problems));
  }
  parts.push('<h2 id="types">Per event type</h2>', typesTable(report.types));
  parts.push('<h2 id="coverage">Coverage</h2>', legend());
  report.types.forEach((type, index) => parts.push(timeline(type, report, index)));
  if (problems.length === 0) parts.push('<h2 id="problems">Problems</h2><p>None found.</p>');
  parts.push(
    `<h2 id="explained">Explained gaps and information (${others.length})</h2>`,
    others.length ? findingsTable(others) : "<p>None.</p>",
  );
  parts.push('<h2 id="chains">Manifest chains</h2>', chainsTable(report));
  parts.push(
    `<footer>Produced by ${escape(report.tool.name)} ${escape(report.tool.version)} with ` +
      `<code>${escape(report.command)}</code> at ${escape(report.verifiedAt)}.</footer>`,
    "</body></html>",
  );
  return parts.join("\n") + "\n";
}

function findingsTable(findings: Finding[]): string {
  const rows = findings.flatMap((f) => [
    `<tr class="${f.severity}"><td>${escape(f.kind.replace("_", " "))}</td>` +
    `<td>${escape(f.severity)}</td><td>${escape(f.eventType ?? "")}</td>` +
    `<td>${escape(f.message)}</td></tr>`,
    ...(f.consequences ?? []).map((c) =>
      `<tr class="consequence"><td class="sub">under it: ${escape(c.kind.replace("_", " "))}</td>` +
      `<td>${escape(c.severity)}</td><td>${escape(c.eventType ?? "")}</td>` +
      `<td>${escape(c.message)}</td></tr>`
    ),
  ]);
  return `<table class="findings"><thead><tr><th>Finding</th><th>Severity</th>` +
    `<th>Event type</th><th>What and where</th></tr></thead><tbody>${
      rows.join("")
    }</tbody></table>`;
}

function typesTable(types: TypeFigures[]): string {
  const rows = types.map((t) =>
    `<tr><td>${escape(t.eventType)}</td><td class="n">${t.files}</td>` +
    `<td class="n">${escape(formatBytes(t.bytes))}</td><td class="n">${t.events}</td>` +
    `<td>${t.covered.length ? escape(shortTime(t.covered[0].from)) : ""}</td>` +
    `<td>${t.covered.length ? escape(shortTime(t.covered.at(-1)!.to)) : ""}</td>` +
    `<td class="n">${t.verified}</td><td class="n">${t.problems}</td></tr>`
  );
  return `<table class="types"><thead><tr><th>Event type</th><th>Files</th><th>Bytes</th>` +
    `<th>Events</th><th>Listed from</th><th>Listed to</th><th>Verified</th><th>Problems</th>` +
    `</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function chainsTable(report: VerifyReport): string {
  const rows = report.chains.map((c) =>
    `<tr><td>${escape(c.job)}</td><td class="n">${c.manifests}</td>` +
    `<td class="hash">${escape(c.head)}</td><td>${escape(c.signature)}` +
    `${
      c.keyId ? ` (key <span class="hash">${escape(c.keyId.slice(0, 16))}</span>…)` : ""
    }</td></tr>`
  );
  return `<table class="chains"><thead><tr><th>Job</th><th>Manifests</th>` +
    `<th>Chain head (SHA-256 of its last line)</th><th>Signature</th></tr></thead>` +
    `<tbody>${rows.join("")}</tbody></table>`;
}

/** Shapes shared by the legend and the timelines. */
function patterns(prefix: string): string {
  return `<defs><pattern id="${prefix}hatch" patternUnits="userSpaceOnUse" width="6" height="6">` +
    `<rect width="6" height="6" fill="#fff"/><path d="M0,6 L6,0 M-1,1 L1,-1 M5,7 L7,5" ` +
    `stroke="#000" stroke-width="1.2"/></pattern></defs>`;
}

function legend(): string {
  const item = (shape: string, label: string) =>
    `<svg width="22" height="14" aria-hidden="true">${patterns("lg")}${shape}</svg>${label}`;
  return `<div class="legend">` +
    item('<rect x="1" y="2" width="20" height="10" fill="#9e9e9e" stroke="#000"/>', "listed") +
    item('<rect x="1" y="2" width="20" height="10" fill="url(#lghatch)" stroke="#000"/>', "hole") +
    item('<rect x="4" y="6" width="14" height="6" fill="#000"/>', "hours with files") +
    item('<circle cx="11" cy="7" r="4.5" fill="#fff" stroke="#000" stroke-width="1.6"/>', "gone") +
    item(
      '<path d="M6,2 L16,12 M16,2 L6,12" stroke="#b71c1c" stroke-width="2.6"/>',
      "altered or missing",
    ) + `</div>`;
}

function timeline(type: TypeFigures, report: VerifyReport, index: number): string {
  const prefix = `t${index}`;
  const period = report.period;
  const width = TIMELINE_WIDTH;
  const height = BAND_TOP + BAND_HEIGHT + 22;
  const title = `<text x="0" y="12" font-size="12" font-weight="700">${
    escape(type.eventType)
  }</text>`;
  if (!period) {
    return `<svg class="timeline" viewBox="0 0 ${width} ${height}">${title}</svg>`;
  }
  const start = Number(toMicros(period.from)!);
  const end = Math.max(Number(toMicros(period.to)!), start + 1);
  const x = (iso: string) => {
    const t = Number(toMicros(iso) ?? BigInt(start));
    return Math.max(0, Math.min(width, ((t - start) / (end - start)) * width));
  };
  const shapes: string[] = [
    `<rect x="0" y="${BAND_TOP}" width="${width}" height="${BAND_HEIGHT}" fill="#fff" ` +
    `stroke="#000" stroke-width="1"/>`,
  ];
  for (const c of type.covered) {
    const left = x(c.from);
    shapes.push(
      `<rect x="${left.toFixed(1)}" y="${BAND_TOP}" width="${
        Math.max(1, x(c.to) - left).toFixed(1)
      }" height="${BAND_HEIGHT}" fill="#9e9e9e"/>`,
    );
  }
  for (const h of type.holes) {
    const left = x(h.from);
    shapes.push(
      `<rect x="${left.toFixed(1)}" y="${BAND_TOP}" width="${
        Math.max(3, x(h.to) - left).toFixed(1)
      }" height="${BAND_HEIGHT}" fill="url(#${prefix}hatch)" stroke="#000"/>`,
    );
  }
  // A black mark along the band's foot per hour that has files (at least 2 px wide).
  for (const hour of Object.keys(type.archivedHours)) {
    const left = x(`${hour}:00:00Z`);
    const right = x(`${hour}:59:59.999999Z`);
    shapes.push(
      `<rect x="${Math.min(width - 2, left).toFixed(1)}" y="${BAND_TOP + BAND_HEIGHT - 9}" ` +
        `width="${Math.max(2, right - left).toFixed(1)}" height="7" fill="#000"/>`,
    );
  }
  for (const t of type.gone) {
    shapes.push(
      `<circle cx="${x(t).toFixed(1)}" cy="${BAND_TOP + BAND_HEIGHT / 2}" r="6" fill="#fff" ` +
        `stroke="#000" stroke-width="2"/>`,
    );
  }
  for (const t of type.damaged) {
    const cx = x(t);
    const cy = BAND_TOP + BAND_HEIGHT / 2;
    shapes.push(
      `<path d="M${cx - 7},${cy - 7} L${cx + 7},${cy + 7} M${cx + 7},${cy - 7} L${cx - 7},${
        cy + 7
      }" stroke="#b71c1c" stroke-width="3"/>`,
    );
  }
  const axisY = BAND_TOP + BAND_HEIGHT + 15;
  const axis = `<text x="0" y="${axisY}" font-size="11">${escape(shortTime(period.from))}</text>` +
    `<text x="${width}" y="${axisY}" font-size="11" text-anchor="end">${
      escape(shortTime(period.to))
    }</text>`;
  const label = `${type.eventType}: listed ${type.covered.length} stretch(es), ` +
    `${type.holes.length} hole(s), ${type.gone.length} gone, ${type.damaged.length} damaged`;
  return `<svg class="timeline" viewBox="-8 0 ${width + 16} ${height}" role="img" ` +
    `aria-label="${escape(label)}">${patterns(prefix)}${title}${shapes.join("")}${axis}</svg>`;
}
