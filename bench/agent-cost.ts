/**
 * The agent's own cost at idle (issue 12 §7): one real `cluster-agent` process at the default
 * settings (45 s lease, the coordinator's 10 s stream pings) attached to a real coordinator and
 * etcd, left alone for a warm-up, then sampled: RSS (VmRSS) and CPU (utime + stime from
 * /proc/<pid>/stat over the wall time of the window). Targets: RSS ≤ 60 MB, CPU ≤ 0.2 %.
 * Node runs with the packaged launcher's flags and environment (packaging/bin/cluster-agent: V8
 * flags, glibc malloc settings), as under systemd; `--node-flags ''` measures Node's defaults,
 * `--no-launcher-env` glibc's.
 *
 * `--bundle` measures the program the packages ship: the agent bundled by scripts/rpm/bundle.mjs
 * (as scripts/build-rpm does) into a temp dir with proto/ beside it. `--tree DIR` measures another
 * build (e.g. a base commit built elsewhere): its dist/, its bundler and its launcher's flags.
 * `--breakdown` preloads test/helpers/memory-probe.js and adds where the memory is at the end of
 * the window (heap spaces, code, threads, modules per package).
 *
 *   npm run build && node dist/bench/agent-cost.js [--warmup S] [--window S] [--node-flags FLAGS]
 *     [--no-launcher-env] [--bundle] [--tree DIR] [--breakdown] [--json]
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatHelp, parseOptions, type OptionSpecs } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { packagedAgentEnv, packagedAgentNodeFlags } from '../test/helpers/launcher';
import { MEMORY_PROBE, type MemoryBreakdown } from '../test/helpers/memory-probe';
import { REPO_ROOT, run } from '../test/helpers/processes';
import { waitFor } from '../test/helpers/wait';
import { cpuSeconds, rssMiB } from './sim-fleet';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  warmup: { kind: 'int', default: 20, min: 0, placeholder: 'SECONDS', description: 'idle time before sampling (start-up work excluded)' },
  window: { kind: 'int', default: 60, min: 5, placeholder: 'SECONDS', description: 'sampling window' },
  'node-flags': { kind: 'string', placeholder: 'FLAGS', description: "node's flags for the agent, space-separated (default: the packaged launcher's; '' for none)" },
  'launcher-env': { kind: 'boolean', default: true, description: "the launcher's environment for the agent (glibc malloc settings; --no-launcher-env: none)" },
  bundle: { kind: 'boolean', description: 'run the agent as packaged: bundled by scripts/rpm/bundle.mjs, proto/ beside it' },
  tree: { kind: 'string', placeholder: 'DIR', description: 'the built tree to measure (its dist/, bundler and launcher flags; default this one)' },
  breakdown: { kind: 'boolean', description: 'also report where the memory is at the end of the window (test/helpers/memory-probe)' },
  json: { kind: 'boolean', description: 'print one JSON object' },
} as const satisfies OptionSpecs;

export interface AgentCost {
  rssMiB: { median: number; max: number };
  cpuPercent: number;
  /** Node's flags the agent ran with. */
  nodeFlags: string[];
  /** The launcher's environment the agent ran with. */
  launcherEnv: Record<string, string>;
  /** `dist` (the compiled tree) or `bundle` (the packaged program). */
  program: 'dist' | 'bundle';
  tree: string;
  windowSeconds: number;
  cores: number;
  load1: number;
  breakdown?: MemoryBreakdown;
}

export interface AgentCostOptions {
  warmupS: number;
  windowS: number;
  /** Default: the tree's packaged launcher's flags. */
  nodeFlags?: readonly string[];
  /** The tree's launcher's environment (glibc malloc settings). @default true */
  launcherEnv?: boolean;
  bundle?: boolean;
  /** Default: this repository. */
  tree?: string;
  breakdown?: boolean;
}

/**
 * The tree's agent bundled as scripts/build-rpm does it: DIR/agent.js with DIR/proto beside it,
 * and DIR/facts-child.js (the facts collection process) when the tree has one.
 */
async function bundleAgent(tree: string, dir: string): Promise<string> {
  const bundle = async (entry: string, out: string): Promise<void> => {
    const r = await run(process.execPath, [join(tree, 'scripts', 'rpm', 'bundle.mjs'), entry, out], { cwd: tree, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`bundling ${entry} failed: ${r.stderr.trim()}`);
  };
  const out = join(dir, 'agent.js');
  await bundle(join(tree, 'dist', 'agent', 'main.js'), out);
  const factsChild = join(tree, 'dist', 'agent', 'facts-child.js');
  if (existsSync(factsChild)) await bundle(factsChild, join(dir, 'facts-child.js'));
  cpSync(join(tree, 'proto'), join(dir, 'proto'), { recursive: true });
  return out;
}

export async function measureAgentCost(o: AgentCostOptions): Promise<AgentCost> {
  const tree = resolve(o.tree ?? REPO_ROOT);
  const launcher = join(tree, 'packaging', 'bin', 'cluster-agent');
  const nodeFlags = o.nodeFlags ?? packagedAgentNodeFlags(launcher);
  const launcherEnv = o.launcherEnv === false ? {} : packagedAgentEnv(launcher);
  const work = mkdtempSync(join(tmpdir(), 'bench-agent-cost-'));
  const etcd = await EtcdServer.start('bench-agent-cost');
  const cluster = new TestCluster(etcd, { name: 'bench-agent-cost', leaseTtlSec: 45 });
  try {
    const script = o.bundle ? await bundleAgent(tree, work) : join(tree, 'dist', 'agent', 'main.js');
    const probeOut = join(work, 'breakdown.json');
    const probe = o.breakdown ? ['-r', MEMORY_PROBE] : [];
    await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const agent = await cluster.startAgent('idle-1', {
      script, nodeArgs: [...nodeFlags, ...probe],
      env: { ...launcherEnv, ...(o.breakdown ? { AGENT_MEMORY_PROBE_OUT: probeOut } : {}) },
    });
    const pid = agent.proc.pid;
    await new Promise((r) => setTimeout(r, o.warmupS * 1000));
    const rss: number[] = [];
    const c0 = cpuSeconds(pid);
    const t0 = Date.now();
    while (Date.now() - t0 < o.windowS * 1000) {
      rss.push(rssMiB(pid));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cpu = cpuSeconds(pid) - c0;
    const wall = (Date.now() - t0) / 1000;
    let breakdown: MemoryBreakdown | undefined;
    if (o.breakdown) {
      process.kill(pid, 'SIGUSR2');
      await waitFor('the agent\'s memory breakdown', () => existsSync(probeOut), { timeoutMs: 60_000 });
      breakdown = JSON.parse(readFileSync(probeOut, 'utf8')) as MemoryBreakdown;
    }
    const sorted = [...rss].sort((a, b) => a - b);
    return {
      rssMiB: { median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] },
      cpuPercent: Math.round((10_000 * cpu) / wall) / 100,
      nodeFlags: [...nodeFlags], launcherEnv, program: o.bundle ? 'bundle' : 'dist', tree,
      windowSeconds: Math.round(wall), cores: cpus().length, load1: Math.round(loadavg()[0] * 10) / 10,
      ...(breakdown ? { breakdown } : {}),
    };
  } finally {
    await cluster.destroy();
    await etcd.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  if (parsed.help) {
    process.stdout.write(formatHelp('Usage: node dist/bench/agent-cost.js [--warmup S] [--window S] [--node-flags FLAGS] [--no-launcher-env] [--bundle] [--tree DIR] [--breakdown] [--json]', OPTIONS));
    return 0;
  }
  const given = parsed.values['node-flags'];
  const v = parsed.values;
  const r = await measureAgentCost({
    warmupS: v.warmup, windowS: v.window, nodeFlags: given === undefined ? undefined : given.split(' ').filter((f) => f !== ''),
    launcherEnv: v['launcher-env'], bundle: v.bundle === true, tree: v.tree, breakdown: v.breakdown === true,
  });
  if (v.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    process.stdout.write(`idle agent (${r.program}): RSS median ${r.rssMiB.median} MiB (max ${r.rssMiB.max}), CPU ${r.cpuPercent}% over ${r.windowSeconds} s; node flags: ${r.nodeFlags.join(' ') || 'none'}; env: ${Object.entries(r.launcherEnv).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}; ${r.cores} cores, load ${r.load1}\n`);
    if (r.breakdown) process.stdout.write(`${JSON.stringify(r.breakdown, null, 2)}\n`);
  }
  return 0;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`agent-cost: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
