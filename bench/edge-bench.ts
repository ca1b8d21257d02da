#!/usr/bin/env node
/**
 * How long the worst requests the coordinator accepts for parsing hold its event loop: each
 * input below is at (or just over) a bound of shared/input-limits.ts, parsed by the same code
 * the services run (parseBundle for PushBundle, parseClusterFile for Plan/Apply), timed
 * synchronously — the time is the event loop's, since nothing else can run meanwhile.
 *
 *   npm run build && node dist/bench/edge-bench.js [--runs N] [--json]
 *
 * Prints, per input, what was done with it (accepted, or the refusal), the byte size and the
 * median and maximum of N runs (default 5). Then the same input through the parse worker the
 * coordinator uses (shared/parse-worker.ts, a worker thread running dist/coordinator/main.js):
 * the longest the event loop went without running a 1 ms timer while the worker parsed
 * (median of N runs) — what a request costs the coordinator's loop today.
 */
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseBundleOffLoop, parseClusterFileOffLoop, startParseWorker, stopParseWorker } from '../shared/parse-worker';
import { parseBundle } from '../shared/bundle';
import { parseClusterFile } from '../shared/cluster-file';
import { INPUT_LIMITS as L } from '../shared/input-limits';
import { exitOnSignals } from '../test/helpers/children';

const unit = (i: number): string => `  - { id: u${i}, kind: file, path: /etc/u${i}.conf, content: "value {{ vars.v${i % 100} }}", mode: "0644" }`;
const header = 'name: big\nversion: 1\n';
const fill = (prefix: string, bytes: number): string => prefix + 'x'.repeat(Math.max(0, bytes - prefix.length - 2)) + '"\n';

const INPUTS: { name: string; kind: 'bundle' | 'cluster'; text: () => string }[] = [
  { name: `${L.unitsPerBundle} units (the unit limit)`, kind: 'bundle', text: () => `${header}units:\n${Array.from({ length: L.unitsPerBundle }, (_, i) => unit(i)).join('\n')}\n` },
  { name: `${L.mapKeys} variables (the key limit)`, kind: 'bundle', text: () => `${header}variables:\n${Array.from({ length: L.mapKeys }, (_, i) => `  v${i}: "value number ${i}"`).join('\n')}\nunits: []\n` },
  { name: `one ${Math.round(L.bundleBytes / 1024)} KiB string (the size limit)`, kind: 'bundle', text: () => fill(`${header}units: []\ndescription: "`, L.bundleBytes - 64) },
  { name: `nested ${L.yamlDepth} flow levels, repeated to the size limit`, kind: 'bundle', text: () => { const one = `${'['.repeat(L.yamlDepth - 2)}1${']'.repeat(L.yamlDepth - 2)}`; return `${header}units: []\nvariables:\n${Array.from({ length: Math.floor((L.bundleBytes - 200) / (one.length + 12)) }, (_, i) => `  v${i}: ${one}`).slice(0, L.mapKeys).join('\n')}\n`; } },
  { name: 'block content at the column limit, to the size limit', kind: 'bundle', text: () => { const line = `${'- '.repeat(L.yamlIndentColumns / 2 - 1)}x\n`; return `${header}units: []\nverify:\n${line.repeat(Math.floor((L.bundleBytes - 100) / line.length))}`; } },
  { name: 'over the size limit (refused)', kind: 'bundle', text: () => fill(`${header}units: []\ndescription: "`, L.bundleBytes + 1024) },
  { name: '2 MB of nested [ (refused: depth)', kind: 'bundle', text: () => '['.repeat(2_000_000) },
  { name: 'a map of 26,000 keys (refused: keys)', kind: 'bundle', text: () => `${header}units: []\nvariables:\n${Array.from({ length: 26_000 }, (_, i) => `  v${i}: 1`).join('\n')}\n`.slice(0, L.bundleBytes - 10) },
  { name: 'alias bomb (refused)', kind: 'bundle', text: () => `a: &a [${'x,'.repeat(9)}x]\nb: &b [${'*a,'.repeat(9)}*a]\nc: &c [${'*b,'.repeat(9)}*b]\nd: &d [${'*c,'.repeat(9)}*c]\ne: [${'*d,'.repeat(9)}*d]\n` },
  { name: '1,124 bytes of unclosed sequence (refused: syntax)', kind: 'bundle', text: () => `[${'a,'.repeat(561)}` },
  { name: '80,000 variables, 1.9 MiB (refused: size)', kind: 'bundle', text: () => `${header}units: []\nvariables:\n${Array.from({ length: 80_000 }, (_, i) => `  variable_${i}: "v${i}"`).join('\n')}\n` },
  { name: '2 MB of nested block sequences (refused: size)', kind: 'bundle', text: () => `${header}units: []\nverify:\n${'- '.repeat(1_000_000)}x\n` },
  { name: 'nested block sequences to the size limit (refused: depth)', kind: 'bundle', text: () => `${header}units: []\nverify:\n${'- '.repeat((L.bundleBytes - 100) / 2)}x\n` },
  { name: 'deep block mappings, 500 KiB (refused: depth)', kind: 'bundle', text: () => { const lines: string[] = []; for (let d = 0; lines.join('\n').length < 500_000 && d < 4000; d++) lines.push(`${' '.repeat(d % 120)}k${d}:`); return `${header}units: []\nvariables:\n${lines.map((l) => `  ${l}`).join('\n')}\n`; } },
  { name: 'a flow map of 26,000 keys (refused: keys)', kind: 'bundle', text: () => `${header}units: []\nvariables: {${Array.from({ length: 26_000 }, (_, i) => `v${i}: 1`).join(', ')}}\n` },
  { name: 'cluster file of 660 KiB: 8 inline bundles of 400 units', kind: 'cluster', text: () => {
    const bundles = Array.from({ length: 8 }, (_, b) => `  - name: b${b}\n    version: 1\n    units:\n${Array.from({ length: 400 }, (_, i) => `      - { id: u${i}, kind: file, path: /etc/u${i}, content: "${'c'.repeat(150)}" }`).join('\n')}`).join('\n');
    const groups = Array.from({ length: 50 }, (_, g) => `  g${g}:\n    bundle: b${g % 8}@1\n    variables: { a: "1", b: "2" }`).join('\n');
    return `bundles:\n${bundles}\ngroups:\n${groups}\n`;
  } },
  { name: `cluster file: 50 groups, ${Math.floor(L.clusterFileBytes / 1024 / 3)} KiB of inline bundles`, kind: 'cluster', text: () => {
    const bundles = Array.from({ length: 4 }, (_, b) => `  - name: b${b}\n    version: 1\n    units:\n${Array.from({ length: 400 }, (_, i) => `      - { id: u${i}, kind: file, path: /etc/u${i}, content: "${'c'.repeat(150)}" }`).join('\n')}`).join('\n');
    const groups = Array.from({ length: 50 }, (_, g) => `  g${g}:\n    bundle: b${g % 4}@1\n    variables: { a: "1", b: "2" }`).join('\n');
    return `bundles:\n${bundles}\ngroups:\n${groups}\n`;
  } },
];

function timeOnce(fn: () => void): { ms: number; outcome: string } {
  const t0 = process.hrtime.bigint();
  let outcome = 'accepted';
  try {
    fn();
  } catch (err) {
    outcome = `refused: ${(err as Error).message.slice(0, 90)}`;
  }
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, outcome };
}

/** The longest gap between ticks of a 1 ms timer while `work` runs (ms). */
async function loopBlockDuring(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let max = 0;
  const tick = (): void => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  };
  const timer = setInterval(tick, 1);
  await work().catch(() => undefined);
  tick();
  clearInterval(timer);
  return max;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--runs');
  const runs = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const json = process.argv.includes('--json');
  startParseWorker(join(__dirname, '../coordinator/main.js'), 60_000);
  await parseBundleOffLoop('name: warm\nversion: 1\nunits: []\n');
  const rows = [];
  for (const input of INPUTS) {
    const text = input.text();
    const parse = input.kind === 'bundle' ? () => { parseBundle(text, 'b.yaml'); } : () => { parseClusterFile(text, { source: 'c.yaml' }); };
    timeOnce(parse); // warm-up: the first run compiles the parser's code paths
    const times: number[] = [];
    let outcome = '';
    for (let r = 0; r < runs; r++) {
      const t = timeOnce(parse);
      times.push(t.ms);
      outcome = t.outcome;
    }
    times.sort((a, b) => a - b);
    const viaWorker = input.kind === 'bundle' ? () => parseBundleOffLoop(text, 'b.yaml') : () => parseClusterFileOffLoop(text, 'c.yaml');
    const blocks: number[] = [];
    for (let r = 0; r < runs; r++) blocks.push(await loopBlockDuring(viaWorker));
    blocks.sort((a, b) => a - b);
    rows.push({
      input: input.name, bytes: Buffer.byteLength(text), outcome, medianMs: Math.round(times[Math.floor(times.length / 2)]), maxMs: Math.round(times[times.length - 1]),
      workerLoopBlockMs: Math.round(blocks[Math.floor(blocks.length / 2)]),
    });
  }
  await stopParseWorker();
  const machine = { cores: cpus().length, load: loadavg().map((x) => x.toFixed(1)).join(' '), node: process.version };
  if (json) {
    process.stdout.write(`${JSON.stringify({ machine, runs, rows }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`edge-bench: ${machine.cores} cores, load ${machine.load}, ${machine.node}, ${runs} runs each; on the loop: the parse timed on the calling thread; worker: the loop's longest block while the parse worker parsed\n`);
  for (const r of rows) process.stdout.write(`${r.input.padEnd(58)} ${String(r.bytes).padStart(9)} B  on the loop: median ${String(r.medianMs).padStart(5)} ms, max ${String(r.maxMs).padStart(5)} ms  worker: ${String(r.workerLoopBlockMs).padStart(4)} ms  ${r.outcome}\n`);
}

exitOnSignals();
main().catch((err: unknown) => {
  process.stderr.write(`edge-bench: ${(err as Error).message}\n`);
  process.exit(1);
});
