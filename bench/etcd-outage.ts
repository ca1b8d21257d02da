/**
 * Coming back after an etcd outage (issue 12 §4): how long after etcd answers again is every
 * agent back — its member key re-written on its lease, its stream to the leader attached
 * again, its node Reachable — at the DEFAULT settings (45 s lease, the agent's 250 ms..5 s
 * reconnect backoff)? Before the fix agents re-attached 14.6, 19.0 and 27.0 s after a 30 s
 * outage: their backoff had grown to 30 s and nothing woke it.
 *
 * Real processes, as in test/e2e: a real etcd (TLS, client certificates, auth), one
 * coordinator and N `cluster-agent` processes joined with the cluster's token (mutual TLS to
 * the coordinator, their own etcd certificates), all through test/helpers' TestCluster. Real
 * agents rather than bench/sim-fleet.ts: the figure is about each agent's own reconnect
 * timers and its etcd client's redial, and 20 processes each with its own event loop and etcd
 * connection is what an outage hits; sim-fleet's agents share one process and one loop.
 *
 * Each round: SIGTERM etcd, wait `--outage-seconds`, start it again (same data dir) and take
 * the moment its health check first answers as zero. Per agent, from its own log (ISO
 * timestamps, same host clock): "re-registered" (its member key written again on its lease)
 * and "connected to coordinator" (the leader's Welcome on a new stream); per node, from etcd
 * polled every 100 ms: the first time after its member key that its record, written since
 * etcd is back (or with a hello since the outage began), says reachable and connected. Also counted over the whole run (a watch on nodes/): writes of reachable=false
 * and of a different lifecycle state (must be 0: an etcd outage is not a node's problem).
 *
 *   npm run build && node dist/bench/etcd-outage.js [--agents 20] [--outage-seconds 30] [--rounds 3] [--json]
 */
import { loadavg } from 'node:os';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { decodeNode, type NodeRecord } from '../shared/records';
import { DEFAULT_LEASE_TTL_SECONDS } from '../agent/lease-membership';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { machine, stats, type Stats } from './sim-fleet';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  agents: { kind: 'int', default: 20, min: 1, placeholder: 'N', description: 'agent processes' },
  outageSeconds: { kind: 'int', default: 30, min: 1, placeholder: 'S', description: 'how long etcd stays down each round' },
  rounds: { kind: 'int', default: 3, min: 1, placeholder: 'K', description: 'outages to measure' },
  ttl: { kind: 'int', default: DEFAULT_LEASE_TTL_SECONDS, min: 2, placeholder: 'SECONDS', description: 'agent membership lease TTL (the agent\'s default)' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dir (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/etcd-outage.js [--agents N] [--outage-seconds S] [--rounds K] [--ttl SECONDS] [--json] [--keep]';

/** How long to wait, after etcd answers, for every agent to be back before the round counts as failed. */
const BACK_TIMEOUT_MS = 120_000;
const POLL_MS = 100;
const START_AT_ONCE = 4;

export interface EtcdOutageRound {
  /** SIGTERM → process gone, and start → health check answering (ms). */
  etcdStopMs: number;
  etcdStartMs: number;
  /** Per agent, ms after etcd answered (agent order as `ids`). */
  memberMs: number[];
  streamMs: number[];
  reachableMs: number[];
  /** Agents that did not log a new Welcome (stream never dropped): counted as 0 in streamMs. */
  streamsKept: number;
  /** The last agent's figures (max over agents). */
  lastMemberMs: number;
  lastStreamMs: number;
  lastReachableMs: number;
}

export interface EtcdOutageResult {
  date: string;
  cores: number;
  cpuModel: string;
  loadavg1: number;
  agents: number;
  outageSeconds: number;
  ttlSeconds: number;
  rounds: number;
  perRound: EtcdOutageRound[];
  /** Pooled over agents and rounds, ms after etcd answered. */
  memberMs: Stats;
  streamMs: Stats;
  reachableMs: Stats;
  /** Writes of reachable=false to a node record during the run (outage and comeback). */
  unreachableWrites: { nodeId: string; signal: string }[];
  /** Node records whose lifecycle state differs from before the first outage (watch + final read). */
  stateChanges: { nodeId: string; from: string; to: string }[];
  wallSeconds: number;
}

/** `msg` log lines of one process at or after `sinceMs`: their timestamps (ms). */
function logTimes(logs: string, msg: string, sinceMs: number): number[] {
  const out: number[] = [];
  const needle = `"msg":${JSON.stringify(msg)}`;
  for (const line of logs.split('\n')) {
    if (!line.includes(needle)) continue;
    try {
      const rec = JSON.parse(line) as { ts?: unknown };
      const at = typeof rec.ts === 'string' ? Date.parse(rec.ts) : NaN;
      if (at >= sinceMs) out.push(at);
    } catch {
      // a partial line (the process is still writing it): read next poll
    }
  }
  return out;
}

async function readNodes(client: Etcd3, ks: Keyspace): Promise<Map<string, NodeRecord>> {
  const all = await client.getAll().prefix(ks.nodesPrefix()).strings();
  const out = new Map<string, NodeRecord>();
  for (const [key, value] of Object.entries(all)) {
    const id = ks.parseNode(key);
    if (id) out.set(id, decodeNode(key, value));
  }
  return out;
}

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`etcd-outage: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const { agents: n, outageSeconds, rounds, ttl, json, keep } = parsed.values;
  const say = (s: string): void => { process.stderr.write(`${s}\n`); };

  const started = Date.now();
  const etcd = await EtcdServer.start('bench-outage');
  const cluster = new TestCluster(etcd, { name: 'bench-etcd-outage', leaseTtlSec: ttl, keepDir: keep });
  const ks = new Keyspace();
  const ids = Array.from({ length: n }, (_, i) => `outage-${String(i + 1).padStart(3, '0')}`);
  const perRound: EtcdOutageRound[] = [];
  const unreachableWrites: EtcdOutageResult['unreachableWrites'] = [];
  const stateChanges: EtcdOutageResult['stateChanges'] = [];
  let watcher: Watcher | undefined;
  try {
    say(`etcd-outage: etcd, a coordinator and ${n} agents (lease ${ttl} s); ${rounds} outages of ${outageSeconds} s; logs in ${cluster.logDir}`);
    await cluster.startCoordinator();
    // A few at a time: 20 joins at once on a loaded 2-core box exceed the 30 s registration wait.
    for (let i = 0; i < ids.length; i += START_AT_ONCE) await Promise.all(ids.slice(i, i + START_AT_ONCE).map((id) => cluster.startAgent(id)));
    let client = etcd.client();
    let nodes = new Map<string, NodeRecord>();
    const t0 = Date.now();
    while (Date.now() - t0 < BACK_TIMEOUT_MS) {
      nodes = await readNodes(client, ks);
      if (nodes.size === n && [...nodes.values()].every((r) => r.reachable && r.connected && r.state === 'Discovered')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (nodes.size !== n || ![...nodes.values()].every((r) => r.reachable && r.connected)) throw new Error(`only ${[...nodes.values()].filter((r) => r.reachable && r.connected).length}/${n} nodes reachable and connected`);
    const statesBefore = new Map([...nodes].map(([id, r]) => [id, r.state]));
    // One watch for the whole run (etcd3 resumes it from its last revision after each outage):
    // every write of reachable=false or of another state is counted, however brief.
    watcher = await client.watch().prefix(ks.nodesPrefix()).create();
    watcher.on('put', (kv: IKeyValue) => {
      const key = kv.key.toString();
      const id = ks.parseNode(key);
      if (!id) return;
      const rec = decodeNode(key, kv.value.toString());
      if (!rec.reachable) unreachableWrites.push({ nodeId: id, signal: rec.unreachableSignal ?? 'lease' });
      const before = statesBefore.get(id);
      if (before !== undefined && rec.state !== before) stateChanges.push({ nodeId: id, from: before, to: rec.state });
    });
    say(`etcd-outage: ${n} nodes Discovered, reachable and connected after ${Math.round((Date.now() - started) / 1000)} s`);

    for (let round = 1; round <= rounds; round++) {
      await new Promise((r) => setTimeout(r, 5000)); // streams and keepalives settled
      const stopAt = Date.now();
      await etcd.stop();
      const stoppedAt = Date.now();
      await new Promise((r) => setTimeout(r, outageSeconds * 1000));
      const startAt = Date.now();
      await etcd.start();
      const answeredAt = Date.now();
      client = etcd.client();
      const memberAt = new Map<string, number>();
      const streamAt = new Map<string, number>();
      const reachableAt = new Map<string, number>();
      while (reachableAt.size < n) {
        if (Date.now() - answeredAt > BACK_TIMEOUT_MS) {
          throw new Error(`round ${round}: ${reachableAt.size}/${n} nodes back within ${BACK_TIMEOUT_MS} ms (member keys ${memberAt.size}, streams ${streamAt.size})`);
        }
        const now = Date.now();
        for (const id of ids) {
          const logs = cluster.agent(id).proc.logs;
          if (!memberAt.has(id)) {
            const t = logTimes(logs, 're-registered', stoppedAt)[0];
            if (t !== undefined) memberAt.set(id, t);
          }
          if (!streamAt.has(id)) {
            const t = logTimes(logs, 'connected to coordinator', stopAt)[0];
            if (t !== undefined) streamAt.set(id, t);
          }
        }
        const records = await readNodes(client, ks).catch(() => new Map<string, NodeRecord>());
        for (const id of ids) {
          if (reachableAt.has(id) || !memberAt.has(id)) continue;
          // Written by the coordinator since etcd is back (a record from before the outage
          // still says connected: the leader could not write the closed streams down).
          const r = records.get(id);
          const fresh = r !== undefined && (Date.parse(r.connectedAt ?? '') >= stopAt || Date.parse(r.updatedAt) >= answeredAt);
          if (r?.reachable && r.connected && fresh) reachableAt.set(id, now);
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      // An agent whose stream survived the outage logged no Welcome: it was attached all along.
      const streamsKept = ids.filter((id) => !streamAt.has(id)).length;
      const since = (m: Map<string, number>, id: string): number => Math.max(0, (m.get(id) ?? answeredAt) - answeredAt);
      const r: EtcdOutageRound = {
        etcdStopMs: stoppedAt - stopAt, etcdStartMs: answeredAt - startAt,
        memberMs: ids.map((id) => since(memberAt, id)), streamMs: ids.map((id) => since(streamAt, id)), reachableMs: ids.map((id) => since(reachableAt, id)),
        streamsKept, lastMemberMs: 0, lastStreamMs: 0, lastReachableMs: 0,
      };
      r.lastMemberMs = Math.max(...r.memberMs);
      r.lastStreamMs = Math.max(...r.streamMs);
      r.lastReachableMs = Math.max(...r.reachableMs);
      perRound.push(r);
      say(`round ${round}/${rounds}: etcd answered ${r.etcdStartMs} ms after its start; last agent: member key ${r.lastMemberMs} ms, stream ${r.lastStreamMs} ms` +
        `${streamsKept ? ` (${streamsKept} kept theirs)` : ''}, Reachable ${r.lastReachableMs} ms after etcd answered`);
    }
    const after = await readNodes(client, ks);
    for (const [id, before] of statesBefore) {
      const now = after.get(id)?.state ?? '(gone)';
      if (now !== before && !stateChanges.some((c) => c.nodeId === id && c.to === now)) stateChanges.push({ nodeId: id, from: before, to: now });
    }
  } catch (err) {
    process.stderr.write(`etcd-outage: ${errorMessage(err)}\n${cluster.logTails(20)}\n`);
    return 1;
  } finally {
    await watcher?.cancel().catch(() => undefined);
    await cluster.destroy();
    await etcd.destroy();
  }

  const pooled = (f: (r: EtcdOutageRound) => number[]): Stats => stats(perRound.flatMap(f));
  const result: EtcdOutageResult = {
    date: new Date().toISOString(), ...machine(), loadavg1: Number(loadavg()[0].toFixed(2)),
    agents: n, outageSeconds, ttlSeconds: ttl, rounds,
    perRound, memberMs: pooled((r) => r.memberMs), streamMs: pooled((r) => r.streamMs), reachableMs: pooled((r) => r.reachableMs),
    unreachableWrites, stateChanges, wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const row = (name: string, s: Stats, last: number[]): string =>
    `${name.padEnd(36)}${[s.p50, s.p99, s.max].map((v) => String(v).padStart(7)).join('')}   ${last.join(' / ')}`;
  process.stdout.write([
    `etcd outage: ${result.date}`,
    `machine: ${result.cores} cores (${result.cpuModel}), load ${result.loadavg1}`,
    `${n} agents, lease ${ttl} s, ${rounds} outages of ${outageSeconds} s, wall ${result.wallSeconds} s`,
    `ms after etcd answered again           p50    p99    max   last agent per round`,
    row('member key re-written (re-registered)', result.memberMs, perRound.map((r) => r.lastMemberMs)),
    row('stream attached again (Welcome)', result.streamMs, perRound.map((r) => r.lastStreamMs)),
    row('node Reachable and connected', result.reachableMs, perRound.map((r) => r.lastReachableMs)),
    `streams that survived an outage: ${perRound.map((r) => r.streamsKept).join(' / ')}`,
    `writes of reachable=false: ${unreachableWrites.length}${unreachableWrites.length ? ` (${unreachableWrites.slice(0, 10).map((u) => `${u.nodeId}:${u.signal}`).join(', ')}${unreachableWrites.length > 10 ? ', …' : ''})` : ''}`,
    `lifecycle state changes: ${stateChanges.length}${stateChanges.length ? ` (${stateChanges.map((c) => `${c.nodeId} ${c.from}→${c.to}`).join(', ')})` : ''}`,
    '',
  ].join('\n'));
  return 0;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`etcd-outage: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
