/**
 * clusterctl start-up benchmark: wall time of `clusterctl nodes` (a real process, against a
 * live coordinator with 3 agents on a real etcd) and of `clusterctl --help` (no network), the
 * median of N runs each. Also times `node -e ''` (the bare Node start) so the figure can be
 * split into "Node itself" and "clusterctl's own modules and call", and reports which module
 * loads cost the most in one `--help` run (through the CPU-free `require` hook below).
 *
 *   npm run build && node dist/bench/cli-startup.js [--runs N] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatHelp, parseOptions, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { BIN, run } from '../test/helpers/processes';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  runs: { kind: 'int', default: 20, min: 1, placeholder: 'N', description: 'runs of each command' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/cli-startup.js [--runs N] [--json]';

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

async function timeRuns(runs: number, command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ median: number; min: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = await run(command, args, { env, timeoutMs: 30_000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    times.push(ms);
  }
  return { median: Math.round(median(times)), min: Math.round(Math.min(...times)), max: Math.round(Math.max(...times)) };
}

/** Module load times of one `clusterctl --help`: a preload wraps Module._load and prints the slowest. */
async function heaviestModules(env: NodeJS.ProcessEnv, args: readonly string[]): Promise<{ module: string; ms: number }[]> {
  const preload = `
const M = require('module'); const orig = M._load; const seen = new Map(); let depth = 0;
M._load = function (request, parent, isMain) {
  const t0 = process.hrtime.bigint(); depth++;
  try { return orig.apply(this, arguments); } finally {
    depth--; const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (depth >= 1 && depth <= 2 && !seen.has(request)) seen.set(request, ms);
  }
};
process.on('exit', () => { process.stderr.write('\\n@@' + JSON.stringify([...seen].sort((a, b) => b[1] - a[1]).slice(0, 10)) + '\\n'); });`;
  const dir = mkdtempSync(join(tmpdir(), 'cli-startup-'));
  const file = join(dir, 'load-times.js');
  writeFileSync(file, preload);
  const r = await run(process.execPath, ['--require', file, BIN.clusterctl, ...args], { env });
  rmSync(dir, { recursive: true, force: true });
  const line = r.stderr.split('\n').find((l) => l.startsWith('@@'));
  if (!line) return [];
  return (JSON.parse(line.slice(2)) as [string, number][]).map(([module, ms]) => ({ module, ms: Math.round(ms) }));
}

async function main(): Promise<void> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), allowPositionals: false });
  } catch (err) {
    process.stderr.write(`cli-startup: ${errorMessage(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return;
  }
  const { runs } = parsed.values;
  const etcd = await EtcdServer.start('cli-startup');
  const cluster = new TestCluster(etcd, { name: 'cli-startup' });
  try {
    await cluster.startCoordinator();
    await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.startAgent(id)));
    await cluster.waitForNodes('3 nodes Discovered', (ns) => ns.length === 3 && ns.every((n) => n.state === 'Discovered'));
    const env = cluster.childEnv;
    const bare = await timeRuns(runs, process.execPath, ['-e', ''], env);
    const help = await timeRuns(runs, process.execPath, [BIN.clusterctl, '--help'], env);
    const nodes = await timeRuns(runs, process.execPath, [BIN.clusterctl, '--coordinator', cluster.coordinatorAddress, 'nodes'], env);
    const modulesHelp = await heaviestModules(env, ['--help']);
    const modulesNodes = await heaviestModules(env, ['--coordinator', cluster.coordinatorAddress, 'nodes']);
    const result = {
      runs, cpus: cpus().length, loadavg1: Number(loadavg()[0].toFixed(2)),
      nodeBareMs: bare, helpMs: help, nodesMs: nodes, heaviestModulesHelp: modulesHelp, heaviestModulesNodes: modulesNodes,
    };
    if (parsed.values.json) {
      process.stdout.write(JSON.stringify(result) + '\n');
    } else {
      const f = (x: { median: number; min: number; max: number }): string => `median ${x.median} ms (min ${x.min}, max ${x.max})`;
      process.stdout.write([
        `clusterctl start-up, ${runs} runs each, ${result.cpus} CPUs, load ${result.loadavg1}`,
        `  node -e ''                 ${f(bare)}`,
        `  clusterctl --help          ${f(help)}`,
        `  clusterctl nodes (3 nodes) ${f(nodes)}`,
        `  slowest loads (--help):    ${modulesHelp.map((m) => `${m.module} ${m.ms} ms`).join(', ')}`,
        `  slowest loads (nodes):     ${modulesNodes.map((m) => `${m.module} ${m.ms} ms`).join(', ')}`,
      ].join('\n') + '\n');
    }
  } finally {
    await cluster.destroy();
    await etcd.destroy();
  }
}

exitOnSignals();
main().catch((err: unknown) => {
  process.stderr.write(`cli-startup: ${errorMessage(err)}\n`);
  process.exit(1);
});
