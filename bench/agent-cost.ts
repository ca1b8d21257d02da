/**
 * The agent's own cost at idle (issue 12 §7): one real `cluster-agent` process at the default
 * settings (45 s lease, the coordinator's 10 s stream pings) attached to a real coordinator and
 * etcd, left alone for a warm-up, then sampled: RSS (VmRSS) and CPU (utime + stime from
 * /proc/<pid>/stat over the wall time of the window). Targets: RSS ≤ 60 MB, CPU ≤ 0.2 %.
 * Node runs with the packaged launcher's flags (packaging/bin/cluster-agent), as under systemd;
 * `--node-flags ''` measures Node's defaults.
 *
 *   npm run build && node dist/bench/agent-cost.js [--warmup S] [--window S] [--node-flags FLAGS] [--json]
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { formatHelp, parseOptions, type OptionSpecs } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { packagedAgentNodeFlags } from '../test/helpers/launcher';
import { rssMiB } from './sim-fleet';

const OPTIONS = {
  warmup: { kind: 'int', default: 20, min: 0, placeholder: 'SECONDS', description: 'idle time before sampling (start-up work excluded)' },
  window: { kind: 'int', default: 60, min: 5, placeholder: 'SECONDS', description: 'sampling window' },
  'node-flags': { kind: 'string', placeholder: 'FLAGS', description: "node's flags for the agent, space-separated (default: the packaged launcher's; '' for none)" },
  json: { kind: 'boolean', description: 'print one JSON object' },
} as const satisfies OptionSpecs;

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid: number): number {
  // Fields after the command (which may contain spaces) start after the last ')'.
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

export interface AgentCost {
  rssMiB: { median: number; max: number };
  cpuPercent: number;
  /** Node's flags the agent ran with. */
  nodeFlags: string[];
  windowSeconds: number;
  cores: number;
  load1: number;
}

export async function measureAgentCost(warmupS: number, windowS: number, nodeFlags: readonly string[] = packagedAgentNodeFlags()): Promise<AgentCost> {
  const etcd = await EtcdServer.start('bench-agent-cost');
  const cluster = new TestCluster(etcd, { name: 'bench-agent-cost', leaseTtlSec: 45 });
  try {
    await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const agent = await cluster.startAgent('idle-1', { nodeArgs: nodeFlags });
    const pid = agent.proc.pid;
    await new Promise((r) => setTimeout(r, warmupS * 1000));
    const rss: number[] = [];
    const c0 = cpuSeconds(pid);
    const t0 = Date.now();
    while (Date.now() - t0 < windowS * 1000) {
      rss.push(rssMiB(pid));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cpu = cpuSeconds(pid) - c0;
    const wall = (Date.now() - t0) / 1000;
    const sorted = [...rss].sort((a, b) => a - b);
    return {
      rssMiB: { median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] },
      cpuPercent: Math.round((10_000 * cpu) / wall) / 100,
      nodeFlags: [...nodeFlags],
      windowSeconds: Math.round(wall), cores: cpus().length, load1: Math.round(loadavg()[0] * 10) / 10,
    };
  } finally {
    await cluster.destroy();
    await etcd.destroy();
  }
}

async function main(): Promise<number> {
  const parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  if (parsed.help) {
    process.stdout.write(formatHelp('Usage: node dist/bench/agent-cost.js [--warmup S] [--window S] [--node-flags FLAGS] [--json]', OPTIONS));
    return 0;
  }
  const given = parsed.values['node-flags'];
  const r = await measureAgentCost(parsed.values.warmup, parsed.values.window, given === undefined ? undefined : given.split(' ').filter((f) => f !== ''));
  if (parsed.values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else process.stdout.write(`idle agent: RSS median ${r.rssMiB.median} MiB (max ${r.rssMiB.max}), CPU ${r.cpuPercent}% over ${r.windowSeconds} s; node flags: ${r.nodeFlags.join(' ') || 'none'}; ${r.cores} cores, load ${r.load1}\n`);
  return 0;
}

if (require.main === module) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`agent-cost: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
