/**
 * Failure-detection benchmark: how long after an agent dies does its node show Unreachable,
 * at the DEFAULT settings (45 s membership lease, the coordinator's 1.5 s stream grace and
 * 3 s TCP liveness)?
 *
 * Starts a real etcd, one coordinator and N agents (real processes, as in test/e2e), then K
 * times: SIGKILL one agent (round robin), time from the kill to the coordinator's write of
 * `reachable: false` on nodes/<id> (seen through an etcd watch, so no polling delay is added)
 * and note which signal fired (stream, lease, both); restart the agent and wait until the
 * node is Reachable again. With the default lease the signal is the stream: the lease would
 * take 30-45 s.
 *
 * With `--mode partition` each round cuts the coordinator's port in the kernel instead
 * (test/helpers/kernel-cut.ts, nftables: every packet to or from it dropped, so no FIN, no RST
 * and no ACK, the way a pulled cable or a dead switch looks); every agent's node must turn
 * Unreachable by the leader's TCP liveness, and the time to each is measured; then the cut
 * heals and the nodes come back (an agent finds its old connection gone when it next sends on
 * it: its own keepalive PING, every 15 s). Their etcd connections stay up: the lease never fires.
 *
 *   npm run build && node dist/bench/failure-detection.js [--agents N] [--kills K] [--ttl S] [--mode kill|partition]
 */
import { cpus, loadavg } from 'node:os';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { decodeNode, type UnreachableSignal } from '../shared/records';
import { DEFAULT_LEASE_TTL_SECONDS } from '../agent/lease-membership';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { KernelCut } from '../test/helpers/kernel-cut';
import { freePort } from '../scripts/lib/process-support';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  agents: { kind: 'int', default: 5, min: 1, placeholder: 'N', description: 'agent processes' },
  kills: { kind: 'int', default: 20, min: 1, placeholder: 'K', description: 'SIGKILLs to measure' },
  ttl: { kind: 'int', default: DEFAULT_LEASE_TTL_SECONDS, min: 2, placeholder: 'SECONDS', description: 'agent membership lease TTL (the agent\'s default)' },
  mode: { kind: 'string', default: 'kill', choices: ['kill', 'partition'], description: 'SIGKILL one agent per round, or cut every agent from the coordinator (no FIN)' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dir (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/failure-detection.js [--agents N] [--kills K] [--ttl SECONDS] [--mode kill|partition] [--json]';

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

interface Stats { min: number; p50: number; p90: number; p99: number; max: number; mean: number }

function stats(values: readonly number[]): Stats {
  const s = [...values].sort((a, b) => a - b);
  return {
    min: s[0], p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1],
    mean: Math.round(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/**
 * One watch over nodes/ for the whole run: records, per node, when the node record turned
 * unreachable (and by which signal) / reachable.
 */
class Timeline {
  private readonly waiters: { match: (e: TimelineEvent) => boolean; resolve: (at: number, e: TimelineEvent) => void }[] = [];
  private readonly watchers: Watcher[] = [];

  constructor(private readonly client: Etcd3, private readonly ks: Keyspace) {}

  async start(): Promise<void> {
    const nodes = await this.client.watch().prefix(this.ks.nodesPrefix()).create();
    nodes.on('put', (kv: IKeyValue) => {
      const key = kv.key.toString();
      const nodeId = this.ks.parseNode(key);
      if (!nodeId) return;
      const rec = decodeNode(key, kv.value.toString());
      this.emit({ kind: rec.reachable ? 'reachable' : 'unreachable', nodeId, signal: rec.unreachableSignal });
    });
    this.watchers.push(nodes);
  }

  /** A promise of the wall time (and event) of the next matching event (register BEFORE causing it). */
  next(kind: TimelineEvent['kind'], nodeId: string, timeoutMs: number): Promise<{ at: number; event: TimelineEvent }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} of ${nodeId} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match: (e) => e.kind === kind && e.nodeId === nodeId,
        resolve: (at, event) => { clearTimeout(timer); resolve({ at, event }); },
      });
    });
  }

  private emit(e: TimelineEvent): void {
    const at = Date.now();
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i].match(e)) this.waiters.splice(i, 1)[0].resolve(at, e);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.cancel()));
  }
}

interface TimelineEvent { kind: 'unreachable' | 'reachable'; nodeId: string; signal?: UnreachableSignal }

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`failure-detection: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const { agents: n, kills: k, ttl, json, keep } = parsed.values;
  const partition = parsed.values.mode === 'partition';
  const say = (s: string): void => { if (!json) process.stderr.write(`${s}\n`); };

  const started = Date.now();
  const etcd = await EtcdServer.start('bench');
  const cluster = new TestCluster(etcd, { name: 'bench-failure-detection', leaseTtlSec: ttl, keepDir: keep });
  const client = etcd.client();
  const ks = new Keyspace();
  const timeline = new Timeline(client, ks);
  const detection: number[] = [];
  const signals: Record<string, number> = {};
  const recovery: number[] = [];
  let cut: KernelCut | undefined;
  let port = 0;
  try {
    say(`starting etcd, a coordinator and ${n} agents (TTL ${ttl} s; ${partition ? 'partitions' : 'SIGKILLs'}); logs in ${cluster.logDir}`);
    if (partition) {
      port = await freePort();
      cut = await KernelCut.create();
      await cluster.startCoordinator({ port });
    } else {
      await cluster.startCoordinator();
    }
    const ids = Array.from({ length: n }, (_, i) => `bench-${String(i + 1).padStart(3, '0')}`);
    await Promise.all(ids.map((id) => cluster.startAgent(id)));
    await timeline.start();
    await cluster.waitForNodes(`${n} nodes reachable`, (ns) => ns.length === n && ns.every((x) => x.reachable), 120_000, 500);

    for (let i = 0; partition && cut && i < k; i++) {
      await new Promise((res) => setTimeout(res, 3000)); // streams idle and established
      const unreachable = ids.map((id) => timeline.next('unreachable', id, 60_000));
      const cutAt = Date.now();
      await cut.cut(port);
      const seen = await Promise.all(unreachable);
      for (const { at, event } of seen) {
        detection.push(at - cutAt);
        const signal = event.signal ?? 'lease';
        signals[signal] = (signals[signal] ?? 0) + 1;
      }
      const reachable = ids.map((id) => timeline.next('reachable', id, 60_000));
      const healAt = Date.now();
      await cut.heal();
      const back = await Promise.all(reachable);
      for (const { at } of back) recovery.push(at - healAt);
      say(`cut ${String(i + 1).padStart(3)}/${k}: all ${n} unreachable after ${Math.min(...seen.map((x) => x.at)) - cutAt}..${Math.max(...seen.map((x) => x.at)) - cutAt} ms; ` +
        `reachable ${Math.max(...back.map((x) => x.at)) - healAt} ms after the heal`);
    }
    for (let i = 0; !partition && i < k; i++) {
      const id = ids[i % n];
      const agent = cluster.agent(id);
      const unreachable = timeline.next('unreachable', id, (ttl + 30) * 1000);
      const killedAt = Date.now();
      await agent.kill();
      const { at: unreachableAt, event } = await unreachable;
      detection.push(unreachableAt - killedAt);
      const signal = event.signal ?? 'lease';
      signals[signal] = (signals[signal] ?? 0) + 1;

      const reachable = timeline.next('reachable', id, 60_000);
      const restartAt = Date.now();
      await agent.restart(false);
      const { at: reachableAt } = await reachable;
      recovery.push(reachableAt - restartAt);
      say(`kill ${String(i + 1).padStart(3)}/${k} ${id}: unreachable (signal ${signal}) after ${unreachableAt - killedAt} ms; reachable ${reachableAt - restartAt} ms after restart`);
    }
  } catch (err) {
    process.stderr.write(`failure-detection: ${errorMessage(err)}\n${cluster.logTails(20)}\n`);
    return 1;
  } finally {
    await timeline.stop().catch(() => undefined);
    await cut?.close().catch((err: unknown) => process.stderr.write(`failure-detection: could not delete the nftables table ${cut?.table ?? ''}: ${errorMessage(err)}\n`));
    await cluster.destroy();
    await etcd.destroy();
  }

  const result = {
    date: new Date().toISOString(),
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? '',
    loadavg1: Number(loadavg()[0].toFixed(2)),
    mode: partition ? 'partition' : 'kill',
    ttlSeconds: ttl,
    agents: n,
    kills: k,
    detectionMs: stats(detection),
    signals,
    recoveryMs: stats(recovery),
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const row = (name: string, s: Stats): string =>
    `${name.padEnd(34)}${[s.p50, s.p90, s.p99, s.min, s.max, s.mean].map((v) => String(v).padStart(7)).join('')}`;
  process.stdout.write([
    `failure detection: ${result.date}`,
    `machine: ${result.cores} cores (${result.cpuModel}), load ${result.loadavg1}`,
    `TTL ${ttl} s, N=${n} agents, K=${k} ${partition ? 'partitions of every agent (no FIN)' : 'kills'}, wall ${result.wallSeconds} s`,
    `${''.padEnd(34)}${['p50', 'p90', 'p99', 'min', 'max', 'mean'].map((h) => h.padStart(7)).join('')}   (ms)`,
    row(partition ? 'cut → Unreachable (detection)' : 'kill → Unreachable (detection)', result.detectionMs),
    row(partition ? 'heal → Reachable' : 'restart → Reachable', result.recoveryMs),
    `signal that fired: ${Object.entries(signals).map(([sig, count]) => `${sig} ${count}`).join(', ')}`,
    '',
  ].join('\n'));
  return 0;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`failure-detection: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
