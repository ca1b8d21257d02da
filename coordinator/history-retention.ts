/**
 * Node history retention (issue 15 §4): history/<id>/ and history-facts/<id>/ grow by one key per
 * change of a node's record. The leader keeps, per node, the newest `keep` entries and none older
 * than `maxAgeMs`, except the entry still in effect at that age (so `describe --at` answers for
 * the whole window) and the facts in effect at the oldest kept entry (shared/node-history.ts
 * `historyToTrim`). A deleted node's history goes entirely once it is older than the window.
 *
 * The pass decides from a keys-only scan (the sequence and time are in each key), read in pages
 * so a large fleet's history never has to fit in one response, and deletes in fenced
 * transactions; one `history.trimmed` event says how many went. A pass runs on leadership gain
 * and on a timer; nothing on the hot path waits for it.
 */
import type { Etcd3 } from 'etcd3';
import { Range } from 'etcd3';
import { historyToTrim, ReconcileLoop, type Clock, type HistoryKey, type HistoryPolicy, type Keyspace, type Logger } from '../shared';
import type { EventLog } from './event-log';
import type { Fence } from './node-store';
import { runTxn, type TxnOp } from './etcd-txn';

/** Keys read per page of the keys-only scan. */
const SCAN_PAGE = 5_000;

export interface HistoryRetentionOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  fence: Fence;
  policy: HistoryPolicy;
  /** The policy in force at each pass (`clusterctl config set historyRetention=...`); without it, `policy`. */
  policyNow?: () => Promise<HistoryPolicy>;
  /** Period of the timer pass. */
  intervalMs: number;
  /** Most operations of one transaction (etcd's --max-txn-ops). */
  maxOps: number;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
}

export class HistoryRetention {
  private readonly log: Logger;
  private readonly loop: ReconcileLoop;

  constructor(private readonly o: HistoryRetentionOptions) {
    this.log = o.logger.child({ component: 'history-retention' });
    this.loop = new ReconcileLoop({
      name: 'history retention', pass: async () => { await this.trim(); }, clock: o.clock, logger: this.log, intervalMs: o.intervalMs, when: o.isLeader,
    });
  }

  start(): void {
    void this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One pass: deletes what the policy says; returns how many record and facts entries went. */
  async trim(): Promise<{ records: number; facts: number; nodes: number }> {
    const ks = this.o.keyspace;
    const policy = this.o.policyNow ? await this.o.policyNow() : this.o.policy;
    const [records, facts, nodeKeys] = await Promise.all([
      this.scan(ks.historyPrefix(), (k) => ks.parseHistory(k)),
      this.scan(ks.historyFactsPrefix(), (k) => ks.parseHistoryFacts(k)),
      this.scan(ks.nodesPrefix(), (k) => ks.parseNode(k)),
    ]);
    const existing = new Set(nodeKeys);
    const byNode = new Map<string, { records: HistoryKey[]; facts: HistoryKey[] }>();
    const slot = (id: string): { records: HistoryKey[]; facts: HistoryKey[] } => {
      let s = byNode.get(id);
      if (!s) byNode.set(id, (s = { records: [], facts: [] }));
      return s;
    };
    for (const r of records) slot(r.nodeId).records.push(r);
    for (const f of facts) slot(f.nodeId).facts.push(f);
    const now = this.o.clock.now();
    const deletes: string[] = [];
    let recordCount = 0;
    let factsCount = 0;
    let nodes = 0;
    for (const [id, s] of byNode) {
      const t = historyToTrim(s.records, s.facts, policy, now, existing.has(id));
      if (t.records.length + t.facts.length === 0) continue;
      nodes++;
      recordCount += t.records.length;
      factsCount += t.facts.length;
      for (const r of t.records) deletes.push(ks.history(id, r.seq, r.atMs));
      for (const f of t.facts) deletes.push(ks.historyFacts(id, f.seq, f.atMs));
    }
    if (deletes.length === 0) return { records: 0, facts: 0, nodes: 0 };
    const perTxn = Math.max(1, this.o.maxOps);
    for (let i = 0; i < deletes.length; i += perTxn) {
      const ops: TxnOp[] = deletes.slice(i, i + perTxn).map((key) => ({ kind: 'delete', key }));
      // Not guarded per key: an entry never changes once written, and deleting one twice is harmless.
      const fence = this.o.fence.fenceCompare(); // throws NotLeaderError when not leading
      const outcome = await runTxn(this.o.client, [fence], ops);
      if (!outcome.succeeded) throw this.o.fence.fenceFailed();
    }
    const { keep, maxAgeMs } = policy;
    const message = `trimmed ${recordCount} history entr${recordCount === 1 ? 'y' : 'ies'} and ${factsCount} facts entr${factsCount === 1 ? 'y' : 'ies'} of ${nodes} node(s) ` +
      `(keeping the newest ${keep} per node, none older than ${Math.round(maxAgeMs / 3_600_000)} h but the one in effect then)`;
    await this.o.events.commit({ compares: [this.o.fence.fenceCompare()], ops: [], event: { type: 'history.trimmed', message } });
    this.log.info('trimmed node history', { records: recordCount, facts: factsCount, nodes });
    return { records: recordCount, facts: factsCount, nodes };
  }

  /** Every key under `prefix` (keys only), parsed, read in pages. */
  private async scan<T>(prefix: string, parse: (key: string) => T | undefined): Promise<T[]> {
    const end = Range.prefix(prefix).end;
    const out: T[] = [];
    let start: Buffer = Buffer.from(prefix);
    for (;;) {
      const keys = await this.o.client.getAll().inRange(new Range(start, end)).limit(SCAN_PAGE).keys();
      for (const k of keys) {
        const v = parse(k);
        if (v !== undefined) out.push(v);
      }
      if (keys.length < SCAN_PAGE) return out;
      start = Buffer.concat([Buffer.from(keys[keys.length - 1]), Buffer.from([0])]);
    }
  }
}
