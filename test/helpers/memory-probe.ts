/**
 * Preloaded into an agent (`node -r dist/test/helpers/memory-probe.js`) by `bench/agent-cost.ts
 * --breakdown` and by test/agent/agent-footprint.test.ts:
 * on SIGUSR2 it writes where the process's memory is to the file named by AGENT_MEMORY_PROBE_OUT —
 * `process.memoryUsage()`, V8's heap spaces and code statistics, the kernel's view (smaps_rollup:
 * anonymous vs file-backed pages), the thread count, and the modules loaded (require.cache) per
 * package with their source size. With AGENT_MEMORY_PROBE_SNAPSHOT=FILE (in the benchmark's
 * environment, which the agent inherits) it also writes a heap snapshot there. Nothing here runs
 * unless the benchmark asks for it.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { sep } from 'node:path';
import { getHeapCodeStatistics, getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';

/** This file, compiled: what `node -r` is given. It imports node's own modules only, so it adds nothing to what it measures. */
export const MEMORY_PROBE = __filename;

export interface PackageLoad { modules: number; sourceBytes: number }

export interface MemoryBreakdown {
  memoryUsage: NodeJS.MemoryUsage;
  heapSpaces: Record<string, { size: number; used: number }>;
  code: { bytecodeAndMetadata: number; code: number; externalScriptSource: number };
  /** /proc/self/smaps_rollup fields in kB (Rss, Anonymous, Pss_File...). */
  smapsKb: Record<string, number>;
  threads: number;
  /** require.cache by package (`own:<dir>` for this project's files), largest first. */
  packages: Record<string, PackageLoad>;
  snapshot?: string;
}

/** `…/node_modules/@grpc/grpc-js/build/src/x.js` → `@grpc/grpc-js`; a project file → `own:agent`. */
export function packageOfModule(file: string): string {
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at < 0) {
    const dist = file.lastIndexOf(`${sep}dist${sep}`);
    return `own:${dist >= 0 ? file.slice(dist + 6).split(sep)[0] : file}`;
  }
  const parts = file.slice(at + marker.length).split(sep);
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

function smapsRollup(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB$/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
  } catch {
    // not Linux, or no smaps_rollup (kernel < 4.14): the rest still says enough
  }
  return out;
}

export function memoryBreakdown(snapshotPath?: string): MemoryBreakdown {
  const packages: Record<string, PackageLoad> = {};
  for (const file of Object.keys(require.cache)) {
    const p = (packages[packageOfModule(file)] ??= { modules: 0, sourceBytes: 0 });
    p.modules++;
    try { p.sourceBytes += statSync(file).size; } catch { /* a built-in or a removed file */ }
  }
  const sorted = Object.fromEntries(Object.entries(packages).sort((a, b) => b[1].sourceBytes - a[1].sourceBytes));
  const code = getHeapCodeStatistics();
  const threads = Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
  return {
    memoryUsage: process.memoryUsage(),
    heapSpaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }])),
    code: { bytecodeAndMetadata: code.bytecode_and_metadata_size, code: code.code_and_metadata_size, externalScriptSource: code.external_script_source_size },
    smapsKb: smapsRollup(),
    threads,
    packages: sorted,
    ...(snapshotPath ? { snapshot: writeHeapSnapshot(snapshotPath) } : {}),
  };
}

const out = process.env.AGENT_MEMORY_PROBE_OUT;
if (out) {
  process.on('SIGUSR2', () => {
    const b = memoryBreakdown(process.env.AGENT_MEMORY_PROBE_SNAPSHOT || undefined);
    // Written whole, then renamed: the benchmark reads it as soon as it exists.
    writeFileSync(`${out}.tmp`, JSON.stringify(b));
    renameSync(`${out}.tmp`, out);
  });
}
