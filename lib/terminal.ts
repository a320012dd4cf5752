/**
 * Text from outside (server bodies, state files, ids) made safe to show on a terminal: control
 * characters become visible `\x1b`-style escapes, so an error body cannot clear the screen, set
 * the window title or move the cursor.
 */

/** C0 controls, DEL and C1 controls (U+0080–U+009F, which some terminals also obey). */
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;
// deno-lint-ignore no-control-regex
const HAS_CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/**
 * `text` with every control character except those in `keep` (by default newline and tab)
 * written as `\xNN`.
 *
 * @example
 * ```ts
 * escapeControls("a\x1b[2Jb\n") // "a\\x1b[2Jb\n"
 * escapeControls("id\n1", "")  // "id\\x0a1"
 * ```
 */
export function escapeControls(text: string, keep = "\n\t"): string {
  // The common case, a line with nothing to escape, costs one regex test and no allocation.
  if (!HAS_CONTROL.test(text)) return text;
  return text.replace(
    CONTROLS,
    (c) => keep.includes(c) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * A JSON text with DEL and C1 controls written as `\u007f`..`\u009f`: `JSON.stringify` escapes
 * only C0, and these can appear only inside strings, so the value is unchanged.
 *
 * @example
 * ```ts
 * escapeJsonControls(JSON.stringify({ m: "\x9b2J" })) // '{"m":"\\u009b2J"}'
 * ```
 */
export function escapeJsonControls(json: string): string {
  return json.replace(/[\x7f-\x9f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}
