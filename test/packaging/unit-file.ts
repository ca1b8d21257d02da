/**
 * Reads a systemd unit file into sections of repeated keys, the way systemd does for the
 * directives the packaging tests check (no line continuations in our units; comments and blank
 * lines skipped; a key may repeat, e.g. SystemCallFilter=, and an empty value is kept).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../helpers';

export type UnitFile = Map<string, Map<string, string[]>>;

export function parseUnitFile(text: string): UnitFile {
  const sections: UnitFile = new Map();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit file line: ${JSON.stringify(raw)}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

export function readUnitFile(path: string): UnitFile {
  return parseUnitFile(readFileSync(path, 'utf8'));
}

/** All values of `key` in `section` (empty when absent). */
export function values(unit: UnitFile, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** The last value of `key` (systemd: the last assignment wins for scalar settings). */
export function value(unit: UnitFile, section: string, key: string): string | undefined {
  const all = values(unit, section, key);
  return all.length > 0 ? all[all.length - 1] : undefined;
}

/** systemd time span (`30s`, `2min`, `1min 30s`, bare seconds) in ms. */
export function timeSpanMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)\s*([a-z]*)/g;
  let matched = false;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const factor = units[m[2] || 's'];
    if (factor === undefined) throw new Error(`unknown time unit in ${JSON.stringify(text)}`);
    total += Number(m[1]) * factor;
    matched = true;
  }
  if (!matched) throw new Error(`not a time span: ${JSON.stringify(text)}`);
  return total;
}

/** Copies `unitPath` into `dir` with its ExecStart binary replaced by `exec`; returns the copy. */
export function unitWithExecStart(unitPath: string, dir: string, exec: string): string {
  const name = unitPath.split('/').pop() as string;
  const text = readFileSync(unitPath, 'utf8').replace(/^ExecStart=(\S+)/m, `ExecStart=${exec}`);
  const copy = join(dir, name);
  writeFileSync(copy, text);
  return copy;
}

/** `systemd-analyze verify` of one unit file: its exit code and everything it printed. */
export async function verifyUnit(path: string): Promise<{ code: number | null; output: string }> {
  const r = await run('systemd-analyze', ['verify', '--man=no', path], { timeoutMs: 30_000 });
  return { code: r.code, output: (r.stdout + r.stderr).trim() };
}
