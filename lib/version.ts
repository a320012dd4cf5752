/** The tool's version: `deno.json` is the one place it is written; bundlers inline it at build time. */
import denoConfig from "../deno.json" with { type: "json" };

export const VERSION: string = denoConfig.version;
