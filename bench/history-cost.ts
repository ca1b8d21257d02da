/**
 * What node history costs in etcd (issue 15 §4): bytes per node per day at a realistic change
 * rate, measured on a real etcd through the coordinator's own NodeStore and EventLog (so the
 * history entries are exactly what production writes), with a clock that makes the day pass.
 *
 * Workload per node and day (a busy production node): 10 state or reachability changes (an
 * upgrade Commissioned → Upgrading → Upgraded, a reboot: unreachable/reachable with a new boot
 * id, a verify job claiming and releasing it, ...), 2 label changes, 1 facts change (this
 * machine's real facts, collected once). The node record carries realistic applied inputs
 * (12 variables, 4 facts) and 6 labels.
 *
 * Two runs on two fresh etcds, the same workload: with history (NodeStore.mutate) and without
 * (the same record puts and events through EventLog.commit with no history). Each run then
 * compacts to its revision and defragments, as a production etcd does, and the difference of
 * the db sizes is history's cost; the logical bytes (keys + values under history/ and
 * history-facts/) are read as well.
 *
 *   npm run build && node dist/bench/history-cost.js [--nodes N] [--days D] [--json]
 */
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { collectFacts } from '../agent/facts-collector';
import { EventLog } from '../coordinator/event-log';
import { NodeStore, newNodeRecord } from '../coordinator/node-store';
import { createLogger, factsDigest, Keyspace, ManualClock, type Facts, type NodeRecord } from '../shared';
import { errorMessage } from '../shared/errors';
import { formatHelp, parseOptions, type OptionSpecs } from '../shared/options';
import { EtcdServer } from '../test/helpers/etcd-server';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  nodes: { kind: 'int', default: 200, min: 1, placeholder: 'N', description: 'nodes changed side by side' },
  days: { kind: 'int', default: 2, min: 1, placeholder: 'D', description: 'days of changes' },
  json: { kind: 'boolean', description: 'print one JSON object' },
} as const satisfies OptionSpecs;

const logger = createLogger({ level: 'silent' });
const DAY = 24 * 3_600_000;

export interface HistoryCost {
  nodes: number;
  days: number;
  changesPerNodePerDay: { state: number; labels: number; facts: number };
  /** Bytes of keys and values under history/ and history-facts/, per node per day. */
  logicalBytesPerNodePerDay: number;
  /** Of which facts entries. */
  factsBytesPerNodePerDay: number;
  /** Mean size of one record entry (key + value). */
  recordEntryBytes: number;
  /** etcd db size after compaction and defragmentation: with history minus without, per node per day. */
  dbBytesPerNodePerDay: number;
  dbBytes: { withHistory: number; without: number };
}

function baseRecord(id: string, now: string): NodeRecord {
  const variables: Record<string, string> = {};
  for (let i = 0; i < 12; i++) variables[`setting_${i}`] = `value-${i}-${'x'.repeat(8)}`;
  return {
    ...newNodeRecord(id, now), state: 'Commissioned', reachable: true, connected: true, connectedAt: now, lastSeenAt: now,
    hostname: `${id}.dc1.example.com`, address: '10.20.30.40', agentVersion: '1.4.2', bootId: 'b0000000-0000-4000-8000-000000000000',
    instanceId: 'i-0123456789abcdef', group: 'worker', desiredConfig: 'base@7', appliedConfig: 'base@7',
    appliedDigest: 'sha256:3f0c1e7a9b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6',
    labels: { rack: 'r12', row: 'b', zone: 'dc1-b', role: 'worker', gpu: 'none', tier: 'prod' },
    appliedInputs: { bundle: 'base@7', variables, facts: { 'cpu.cores': '32', 'memory.totalBytes': '274877906944', 'os.release': '9.3', hostname: `${id}.dc1.example.com` } },
    verifiedBootId: 'b0000000-0000-4000-8000-000000000000', driftSummary: '',
  };
}

/** One day's changes of one node: 10 state/reachability, 2 labels, 1 facts. */
function dayChanges(day: number, facts: Facts): { patch: (r: NodeRecord) => NodeRecord; type: string; facts?: Facts }[] {
  const f = { ...facts, memory: { ...facts.memory, totalBytes: facts.memory.totalBytes + day } };
  return [
    { type: 'job.claimed', patch: (r) => ({ ...r, currentJob: `j-${day}-upgrade` }) },
    { type: 'node.state', patch: (r) => ({ ...r, state: 'Upgrading' }) },
    { type: 'node.state', patch: (r) => ({ ...r, state: 'Upgraded', currentJob: undefined, appliedConfig: `base@${8 + day}`, desiredConfig: `base@${8 + day}` }) },
    { type: 'node.unreachable', patch: (r) => ({ ...r, reachable: false, connected: false, unreachableSince: new Date().toISOString(), unreachableSignal: 'lease' }) },
    { type: 'node.reachable', patch: (r) => ({ ...r, reachable: true, unreachableSince: undefined, unreachableSignal: undefined, bootId: `b-${day}` }) },
    { type: 'node.hello', patch: (r) => ({ ...r, connected: true }) },
    { type: 'job.claimed', patch: (r) => ({ ...r, currentJob: `j-${day}-verify` }) },
    { type: 'node.verified', patch: (r) => ({ ...r, currentJob: undefined, verifiedBootId: `b-${day}`, driftSummary: '' }) },
    { type: 'node.maintenance', patch: (r) => ({ ...r, maintenance: true, maintenanceReason: 'disk swap' }) },
    { type: 'node.maintenance', patch: (r) => ({ ...r, maintenance: false, maintenanceReason: undefined }) },
    { type: 'node.labels', patch: (r) => ({ ...r, labels: { ...r.labels, rack: `r${day}` } }) },
    { type: 'node.labels', patch: (r) => ({ ...r, labels: { ...r.labels, tier: day % 2 ? 'canary' : 'prod' } }) },
    { type: 'node.facts-changed', patch: (r) => ({ ...r, factsDigest: factsDigest(f) }), facts: f },
  ];
}

async function dbSize(client: Etcd3): Promise<number> {
  const rev = (await client.get('/').exec()).header.revision;
  await client.kv.compact({ revision: rev, physical: true });
  await client.maintenance.defragment();
  return Number((await client.maintenance.status()).dbSize);
}

async function run(withHistory: boolean, nodes: number, days: number, facts: Facts): Promise<{ db: number; logical: number; factsBytes: number; recordEntries: number; recordBytes: number }> {
  const etcd = await EtcdServer.start(`bench-history-${withHistory ? 'on' : 'off'}`);
  try {
    const client = etcd.client();
    const keyspace = new Keyspace();
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    const events = new EventLog({ client, keyspace, clock, logger, actor: 'coordinator/bench', retention: 1_000_000_000 });
    const store = new NodeStore({ client, keyspace, events, clock });
    const ids = Array.from({ length: nodes }, (_, i) => `node-${String(i).padStart(5, '0')}`);
    const records = new Map(ids.map((id) => [id, baseRecord(id, clock.iso())]));
    // The starting records (and their first facts) are not part of a day's cost.
    await Promise.all(ids.map((id) => client.put(keyspace.node(id)).value(JSON.stringify(records.get(id))).exec()));
    const before = await dbSize(client);
    for (let day = 0; day < days; day++) {
      const changes = dayChanges(day, facts);
      for (const c of changes) {
        await clock.advance(DAY / changes.length);
        await Promise.all(ids.map(async (id) => {
          if (withHistory) {
            const res = await store.mutate(id, (cur) => cur && { next: c.patch(cur), event: { type: c.type, message: c.type } }, c.facts ? { facts: c.facts } : {});
            if (!res.changed) throw new Error(`${id}: not changed`);
          } else {
            const next = { ...c.patch(records.get(id) as NodeRecord), updatedAt: clock.iso() };
            records.set(id, next);
            const out = await events.commit({ compares: [], ops: [{ kind: 'put', key: keyspace.node(id), value: JSON.stringify(next) }], event: { type: c.type, message: c.type, nodeId: id } });
            if (!out.succeeded) throw new Error(`${id}: not written`);
          }
        }));
      }
    }
    const db = (await dbSize(client)) - before;
    const sum = async (prefix: string): Promise<{ bytes: number; count: number }> => {
      const res = await client.getAll().prefix(prefix).exec();
      return { bytes: res.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0), count: res.kvs.length };
    };
    const rec = await sum(keyspace.historyPrefix());
    const fac = await sum(keyspace.historyFactsPrefix());
    await events.stop();
    return { db, logical: rec.bytes + fac.bytes, factsBytes: fac.bytes, recordEntries: rec.count, recordBytes: rec.bytes };
  } finally {
    await etcd.destroy();
  }
}

export async function measureHistoryCost(nodes: number, days: number): Promise<HistoryCost> {
  const facts = await collectFacts({ hostname: hostname() });
  const on = await run(true, nodes, days, facts);
  const off = await run(false, nodes, days, facts);
  const perNodeDay = (bytes: number): number => Math.round(bytes / nodes / days);
  return {
    nodes, days, changesPerNodePerDay: { state: 10, labels: 2, facts: 1 },
    logicalBytesPerNodePerDay: perNodeDay(on.logical),
    factsBytesPerNodePerDay: perNodeDay(on.factsBytes),
    recordEntryBytes: Math.round(on.recordBytes / Math.max(1, on.recordEntries)),
    dbBytesPerNodePerDay: perNodeDay(on.db - off.db),
    dbBytes: { withHistory: on.db, without: off.db },
  };
}

async function main(): Promise<number> {
  const parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  if (parsed.help) {
    process.stdout.write(formatHelp('Usage: node dist/bench/history-cost.js [--nodes N] [--days D] [--json]', OPTIONS));
    return 0;
  }
  const v = parsed.values;
  const r = await measureHistoryCost(v.nodes, v.days);
  if (v.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return 0;
  }
  const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;
  process.stdout.write([
    `node history cost: ${r.nodes} nodes × ${r.days} day(s), per node per day ${r.changesPerNodePerDay.state} state/reachability, ${r.changesPerNodePerDay.labels} label, ${r.changesPerNodePerDay.facts} facts change(s)`,
    `  logical (keys + values under history/ and history-facts/): ${kib(r.logicalBytesPerNodePerDay)} per node per day (facts ${kib(r.factsBytesPerNodePerDay)}; one record entry ${r.recordEntryBytes} B)`,
    `  etcd db after compaction + defrag, with minus without history: ${kib(r.dbBytesPerNodePerDay)} per node per day (db delta ${kib(r.dbBytes.withHistory)} vs ${kib(r.dbBytes.without)})`,
    `  so 7 days (the default --history-retention-age) of 1,000 nodes ≈ ${((7 * 1000 * Math.max(r.logicalBytesPerNodePerDay, r.dbBytesPerNodePerDay)) / 1024 ** 2).toFixed(0)} MiB`,
    '',
  ].join('\n'));
  return 0;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => { process.exitCode = code; }, (err: unknown) => {
    process.stderr.write(`history-cost: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  });
}
