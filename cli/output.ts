/**
 * Printers for every clusterctl command: aligned tables (plain when not a terminal, so
 * `| grep` and `| awk` see no escape codes), JSON (pretty, keys in the order the caller built
 * them — callers build objects in a fixed order, so output is stable between runs) and YAML.
 * Plus the human formats used in tables: bytes, ages, booleans, durations.
 */
import { stringify as yamlStringify } from 'yaml';
import { safeText } from '../shared/errors';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function isOutputFormat(s: string): s is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(s);
}

/** Where a command writes; stdout in the program, a buffer in tests. */
export interface OutputSink {
  write(text: string): void;
  /** A terminal: colour is allowed and watch output may redraw. */
  readonly isTTY: boolean;
}

export type Colour = 'red' | 'green' | 'yellow' | 'dim' | 'bold';

/** One table cell: text plus an optional colour, applied only on a terminal. */
export interface Cell {
  text: string;
  colour?: Colour;
}

export type Row = readonly (string | Cell)[];

const ANSI: Record<Colour, [string, string]> = {
  red: ['\x1b[31m', '\x1b[39m'],
  green: ['\x1b[32m', '\x1b[39m'],
  yellow: ['\x1b[33m', '\x1b[39m'],
  dim: ['\x1b[2m', '\x1b[22m'],
  bold: ['\x1b[1m', '\x1b[22m'],
};

function cell(c: string | Cell): Cell {
  // Received text is made safe before a colour goes around it, so its own escapes never pass as ours.
  return typeof c === 'string' ? { text: safeText(c, Infinity) } : { ...c, text: safeText(c.text, Infinity) };
}

/** Back to the start of the line and clear it (a progress bar redrawn in place). */
export const CLEAR_LINE = '\r\x1b[2K';

/** The escape sequences clusterctl itself writes (the colours above, CLEAR_LINE): the only ones that reach a terminal. */
const OWN_ESCAPES = new Set([...Object.values(ANSI).flat(), CLEAR_LINE]);

/**
 * The one sanitizer every line clusterctl prints passes (main.ts wraps stdout and stderr with
 * it): control characters that came from the coordinator, an agent or a file name — a terminal
 * escape in an agent version, a carriage return that overprints a line — are printed escaped
 * (\u001b), as shared/errors safeText does for status messages. Newlines and tabs stay; so do
 * our own colour codes, and table cells were made safe before those were put around them.
 * Bytes (a downloaded file sent to stdout) are what the operator asked for and pass unchanged.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (m) => (OWN_ESCAPES.has(m) ? m : safeText(m, Infinity)));
}

// Our colour codes (kept when they are ours), control characters but \n and \t, lone surrogates.
// eslint-disable-next-line no-control-regex
const UNSAFE = /\r\x1b\[2K|\x1b\[\d{1,2}m|[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Column gap, as kubectl: three spaces keep columns apart even when a value is long. */
const GAP = '   ';

/**
 * Widths are measured on the plain text (escape codes take no column), so coloured and plain
 * output align identically. `minWidths` lets a streaming table keep the widths it printed.
 */
export function columnWidths(header: readonly string[], rows: readonly Row[], minWidths: readonly number[] = []): number[] {
  return header.map((h, i) => Math.max(h.length, minWidths[i] ?? 0, ...rows.map((r) => cell(r[i] ?? '').text.length)));
}

export function formatRow(row: Row, widths: readonly number[], colour: boolean): string {
  const parts = row.map((raw, i) => {
    const c = cell(raw);
    // The last column is not padded: no trailing blanks in the output.
    const padded = i === row.length - 1 ? c.text : c.text.padEnd(widths[i] ?? 0);
    if (!colour || !c.colour) return padded;
    const [on, off] = ANSI[c.colour];
    return on + c.text + off + padded.slice(c.text.length);
  });
  return parts.join(GAP);
}

/** An aligned table: header, then rows, each line ending in a newline. */
export function formatTable(header: readonly string[], rows: readonly Row[], options: { colour?: boolean } = {}): string {
  const widths = columnWidths(header, rows);
  const colour = options.colour ?? false;
  const lines = [formatRow(header, widths, false), ...rows.map((r) => formatRow(r, widths, colour))];
  return lines.map((l) => l + '\n').join('');
}

/** Pretty JSON, two spaces, trailing newline; key order is the order the caller built. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** One line of JSON, for streams (`--watch -o json`): one object per line, easy to pipe to jq. */
export function formatJsonLine(value: unknown): string {
  return JSON.stringify(value) + '\n';
}

export function formatYaml(value: unknown): string {
  // lineWidth 0: never fold long strings (a kernel version or a last error stays on one line).
  return yamlStringify(value, { lineWidth: 0 });
}

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function useColour(sink: OutputSink, env: NodeJS.ProcessEnv): boolean {
  return sink.isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * Bytes in binary units, one decimal below 100 (`15.6 GiB`, `512 MiB`, `1.8 TiB`). Accepts the
 * decimal text the proto uses for uint64. Unknown or zero is shown as `-` (no facts yet).
 */
export function formatBytes(value: number | string | undefined): string {
  const n = typeof value === 'string' ? Number(value) : value;
  if (n === undefined || !Number.isFinite(n) || n <= 0) return '-';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${n} B`;
  const text = v >= 100 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, '');
  return `${text} ${UNITS[u]}`;
}

/**
 * An age as kubectl prints it: `45s`, `5m`, `2h`, `3d`, `2y`; with a second unit while the first
 * is small (`2m30s`, `5h10m`) because those are the ages an operator compares at a glance.
 */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Age of an RFC 3339 time relative to `nowMs`; `-` when the time is empty or unreadable. */
export function ageSince(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '-' : formatAge(nowMs - t);
}

export function formatBool(b: boolean | undefined): string {
  return b ? 'yes' : 'no';
}

/** A duration for messages (`5s`, `500ms`, `2m`, `1.5s`). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** `-` for empty strings: a blank cell would shift the columns a reader counts by eye. */
export function orDash(s: string | undefined | null): string {
  return s === undefined || s === null || s === '' ? '-' : s;
}
