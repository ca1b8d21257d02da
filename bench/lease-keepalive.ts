/**
 * What the agents' lease keepalives cost etcd and the client: one short LeaseKeepAlive stream
 * per keepalive (what agent/lease-membership.ts does today: open, write, read, half-close) against
 * one long-lived stream per lease carrying every keepalive. At 10,000 agents with the default 45 s
 * lease (a keepalive every 15 s: 667 a second) etcd spent 36 % of a core with the fleet idle
 * (bench/README, fanout "Measured 2026-12-03"); this isolates that cost.
 *
 *   npm run build && node dist/bench/lease-keepalive.js [--leases N] [--period-ms MS] [--seconds S] [--rounds R] [--json]
 *
 * Starts a real etcd (TLS, client certificates: test/helpers/etcd-server.ts), grants N leases on
 * 4 clients (as bench/sim-fleet.ts shares 4 among its agents), and keeps each alive every
 * period, spread evenly, in each mode in turn (R rounds of both); measures etcd's CPU
 * (/proc/PID/stat) and this process's over S seconds after a 3 s warm-up.
 */
import { loadavg } from 'node:os';
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { EtcdServer } from '../test/helpers/etcd-server';
import { positiveIntArg } from './cli-args';
import { cpuMs, etcdPid } from './proc-cpu';
import { machine } from './sim-fleet';
import { exitOnSignals } from '../test/helpers/children';

const USAGE = 'Usage: node dist/bench/lease-keepalive.js [--leases N] [--period-ms MS] [--seconds S] [--rounds R] [--json]';

const arg = (name: string, fallback: number): number => positiveIntArg(name, fallback, USAGE);

type KeepaliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;
type Mode = 'short' | 'long';

/** One keepalive on its own stream, as the agent sends it. */
async function shortKeepalive(client: Etcd3, id: string): Promise<void> {
  const stream = await client.leaseClient.leaseKeepAlive();
  await new Promise<void>((resolve, reject) => {
    stream.on('data', () => resolve());
    stream.on('error', reject);
    stream.write({ ID: id });
  });
  stream.end();
}

/** A lease's long-lived stream: each keepalive is a write, answered in order. */
class LongStream {
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly stream: KeepaliveStream) {
    stream.on('data', () => this.waiting.shift()?.());
  }
  keepalive(id: string): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      this.stream.write({ ID: id });
    });
  }
  end(): void {
    this.stream.end();
  }
}

interface Result { mode: Mode; leases: number; keepalivesPerSecond: number; etcdCorePct: number; clientCorePct: number }

async function measure(mode: Mode, clients: Etcd3[], ids: string[], pid: number, periodMs: number, seconds: number): Promise<Result> {
  const n = ids.length;
  const longs: LongStream[] = [];
  if (mode === 'long') for (let i = 0; i < n; i++) longs.push(new LongStream(await clients[i % clients.length].leaseClient.leaseKeepAlive()));
  let answered = 0;
  let failed = 0;
  const timers: NodeJS.Timeout[] = [];
  const one = (i: number): void => {
    const p = mode === 'short' ? shortKeepalive(clients[i % clients.length], ids[i]) : longs[i].keepalive(ids[i]);
    p.then(() => { answered++; }, () => { failed++; });
  };
  for (let i = 0; i < n; i++) {
    timers.push(setTimeout(() => { one(i); timers.push(setInterval(() => one(i), periodMs)); }, (i * periodMs) / n));
  }
  await new Promise((r) => setTimeout(r, 3000));
  const e0 = cpuMs(pid);
  const c0 = process.cpuUsage();
  const a0 = answered;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const e1 = cpuMs(pid);
  const c1 = process.cpuUsage(c0);
  const a1 = answered;
  for (const t of timers) clearTimeout(t);
  for (const s of longs) s.end();
  await new Promise((r) => setTimeout(r, 2000));
  if (failed > 0) throw new Error(`${failed} keepalives failed in mode ${mode}`);
  return {
    mode, leases: n, keepalivesPerSecond: Math.round((a1 - a0) / seconds),
    etcdCorePct: Math.round(((e1 - e0) / seconds / 10) * 10) / 10,
    clientCorePct: Math.round(((c1.user + c1.system) / 1000 / seconds / 10) * 10) / 10,
  };
}

async function main(): Promise<void> {
  if (process.argv.includes('-h') || process.argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const leases = arg('--leases', 2000);
  const periodMs = arg('--period-ms', 3000);
  const seconds = arg('--seconds', 20);
  const rounds = arg('--rounds', 2);
  const etcd = await EtcdServer.start('bench-lease-keepalive');
  const clients = [etcd.client(), etcd.client(), etcd.client(), etcd.client()];
  const results: Result[] = [];
  try {
    const pid = etcdPid(etcd.dataDir);
    if (pid < 0) throw new Error('etcd process not found');
    const ids: string[] = [];
    for (let i = 0; i < leases; i++) ids.push((await clients[i % clients.length].leaseClient.leaseGrant({ TTL: 45 })).ID);
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['short', 'long'] as const) results.push(await measure(mode, clients, ids, pid, periodMs, seconds));
    }
  } finally {
    for (const c of clients) c.close();
    await etcd.destroy();
  }
  const { cores, cpuModel } = machine();
  const box = `${cores} cores (${cpuModel.trim() || '?'}), load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ machine: box, periodMs, seconds, results }));
    return;
  }
  console.log(`lease keepalives: ${leases} leases on 4 clients, one every ${periodMs} ms each, ${seconds} s measured per mode; ${box}`);
  console.log('mode   keepalives/s  etcd % of a core  client % of a core');
  for (const r of results) console.log(`${r.mode.padEnd(6)} ${String(r.keepalivesPerSecond).padStart(12)} ${r.etcdCorePct.toFixed(1).padStart(17)} ${r.clientCorePct.toFixed(1).padStart(19)}`);
}

exitOnSignals();
main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
