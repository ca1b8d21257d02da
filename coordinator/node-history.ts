/**
 * Reads a node's history (issue 15 §4, §5): its entries for `node history`, the record and facts
 * at a past moment for `node describe --at`, and the two sides of `node diff`. Entries are
 * written by the change's own transaction (node-store.ts → event-log.ts), live under keys of
 * their own (history/<id>/<seq>-<ms>, history-facts/<id>/...) and never depend on old etcd
 * revisions, so a compaction leaves them whole. Served by every replica, straight from etcd.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import {
  decodeHistoryEntry, decodeNode, diffNodes, FailedPreconditionError, InvalidArgumentError, isValidSegment, NotFoundError, parseAtTime, recordChanges,
  type Clock, type DiffSide, type Difference as DiffEntry, type HistoryEntry, type HistoryKey, type Keyspace, type NodeRecord,
} from '../shared';
import { digestOf, renderBundle, type Bundle } from '../shared/bundle';
import { comparableBundle } from './secrets/secret-content';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { Difference } from '../generated/cluster/v1/Difference';
import type { NodeDetail } from '../generated/cluster/v1/NodeDetail';
import type { NodeDiffSide } from '../generated/cluster/v1/NodeDiffSide';
import type { NodeHistoryEntry } from '../generated/cluster/v1/NodeHistoryEntry';
import { readKeys } from './etcd-txn';
import { parseFacts, toNodeView } from './node-view';
import { unary } from './unary-handler';

/** A node at a past moment: the entry in effect then and the facts recorded last before it. */
export interface NodeAt {
  entry: HistoryEntry;
  factsJson: string;
  factsAtMs?: number;
}

const RETENTION_HINT = 'history is kept for --history-retention-age and at most --history-retention entries per node';

export class NodeHistoryReader {
  constructor(private readonly client: Etcd3, private readonly keyspace: Keyspace, private readonly clock: Clock) {}

  /** `--at` text → epoch ms (InvalidArgumentError naming what is accepted). */
  parseAt(text: string): number {
    return parseAtTime(text, this.clock.now());
  }

  async exists(nodeId: string): Promise<boolean> {
    const { kvs } = await readKeys(this.client, [this.keyspace.node(nodeId)]);
    return kvs[0] !== undefined;
  }

  /** The node's history keys, oldest first (keys only: no value is read). */
  async keys(nodeId: string): Promise<{ records: HistoryKey[]; facts: HistoryKey[] }> {
    const ks = this.keyspace;
    const [records, facts] = await Promise.all([
      this.client.getAll().prefix(ks.historyPrefix(nodeId)).keys(),
      this.client.getAll().prefix(ks.historyFactsPrefix(nodeId)).keys(),
    ]);
    const parse = (keys: string[], of: (k: string) => HistoryKey | undefined): HistoryKey[] =>
      keys.map(of).filter((k): k is HistoryKey => k !== undefined).sort((a, b) => a.seq - b.seq);
    return { records: parse(records, (k) => ks.parseHistory(k)), facts: parse(facts, (k) => ks.parseHistoryFacts(k)) };
  }

  /** The newest `limit` entries (0 = all), oldest first, each with what changed since the one before. */
  async list(nodeId: string, limit = 0): Promise<{ entries: { entry: HistoryEntry; changes: string[]; factsRecorded: boolean }[]; total: number }> {
    const { records, facts } = await this.keys(nodeId);
    // One more than asked: the first shown entry's changes are against the one before it.
    const wanted = limit > 0 ? records.slice(-(limit + 1)) : records;
    const read = await this.readEntries(nodeId, wanted);
    const factsSeqs = new Set(facts.map((f) => f.seq));
    const out = read.map((entry, i) => {
      const prev = i > 0 ? read[i - 1] : undefined;
      let changes: string[];
      if (entry.type === 'node.deleted') changes = ['deleted'];
      else if (prev || entry.type === 'node.created') changes = recordChanges(prev?.record, entry.record);
      else changes = ['(oldest entry kept: changes before it were trimmed)'];
      return { entry, changes, factsRecorded: factsSeqs.has(entry.seq) };
    });
    return { entries: limit > 0 && records.length > limit ? out.slice(1) : out, total: records.length };
  }

  /** The node as it was at `atMs` (refusals say why: before it existed, before retention, deleted). */
  async at(nodeId: string, atMs: number): Promise<NodeAt> {
    const when = new Date(atMs).toISOString();
    const { records, facts } = await this.keys(nodeId);
    if (records.length === 0) {
      if (!(await this.exists(nodeId))) throw new NotFoundError(`node ${nodeId} not found and no history is kept for it (list nodes with \`clusterctl nodes\`)`);
      throw new FailedPreconditionError(`no history is kept for node ${nodeId} (its last change predates history, or it was trimmed); ${RETENTION_HINT}`);
    }
    let pick: HistoryKey | undefined;
    for (const r of records) if (r.atMs <= atMs) pick = r;
    if (!pick) {
      const [oldest] = await this.readEntries(nodeId, [records[0]]);
      if (oldest?.type === 'node.created') {
        throw new FailedPreconditionError(`node ${nodeId} did not exist yet at ${when}: it was created at ${oldest.at}`);
      }
      throw new FailedPreconditionError(`${when} is before the oldest history kept for node ${nodeId} (${new Date(records[0].atMs).toISOString()}); ${RETENTION_HINT}`);
    }
    const [entry] = await this.readEntries(nodeId, [pick]);
    if (!entry) throw new FailedPreconditionError(`the history entry of node ${nodeId} for ${when} is unreadable`);
    if (entry.type === 'node.deleted') throw new FailedPreconditionError(`node ${nodeId} did not exist at ${when}: it was deleted at ${entry.at}`);
    let factsKey: HistoryKey | undefined;
    for (const f of facts) if (f.seq <= pick.seq) factsKey = f;
    if (!factsKey) return { entry, factsJson: '' };
    const { kvs } = await readKeys(this.client, [this.keyspace.historyFacts(nodeId, factsKey.seq, factsKey.atMs)]);
    return { entry, factsJson: kvs[0]?.value.toString() ?? '', factsAtMs: factsKey.atMs };
  }

  private async readEntries(nodeId: string, keys: readonly HistoryKey[]): Promise<HistoryEntry[]> {
    if (keys.length === 0) return [];
    const { kvs } = await readKeys(this.client, keys.map((k) => this.keyspace.history(nodeId, k.seq, k.atMs)));
    return kvs.filter((kv): kv is IKeyValue => kv !== undefined).map((kv) => decodeHistoryEntry(kv.key.toString(), kv.value.toString()));
  }

  /** NodeDetail of the node at `at` (GetNode with `at`): the record then, the facts then, no judgement against today's groups. */
  async detailAt(nodeId: string, at: string): Promise<NodeDetail> {
    const found = await this.at(nodeId, this.parseAt(at));
    return {
      node: toNodeView(found.entry.record, '', parseFacts(found.factsJson)),
      factsJson: found.factsJson,
      historyAt: found.entry.at,
      historySeq: found.entry.seq,
      historyType: found.entry.type,
      factsRecordedAt: found.factsAtMs !== undefined ? new Date(found.factsAtMs).toISOString() : '',
    };
  }

  /** One side of a diff: the node now (nodes/, facts/) or at a moment (its history). */
  async side(nodeId: string, at: string): Promise<{ side: DiffSide; view: NodeDiffSide }> {
    if (at) {
      const atMs = this.parseAt(at);
      const found = await this.at(nodeId, atMs);
      const facts = parseFacts(found.factsJson);
      return {
        side: { record: found.entry.record, facts, units: await this.unitDigests(found.entry.record) },
        view: { nodeId, at: new Date(atMs).toISOString(), recordedAt: found.entry.at, state: found.entry.record.state, appliedConfig: found.entry.record.appliedConfig ?? '' },
      };
    }
    const { kvs } = await readKeys(this.client, [this.keyspace.node(nodeId), this.keyspace.facts(nodeId)]);
    if (!kvs[0]) throw new NotFoundError(`node ${nodeId} not found (list nodes with \`clusterctl nodes\`)`);
    const record = decodeNode(kvs[0].key.toString(), kvs[0].value.toString());
    return {
      side: { record, facts: parseFacts(kvs[1]?.value.toString()), units: await this.unitDigests(record) },
      view: { nodeId, at: '', recordedAt: record.updatedAt, state: record.state, appliedConfig: record.appliedConfig ?? '' },
    };
  }

  /**
   * The applied bundle's units, each with the digest of the unit as rendered with the inputs the
   * node's last apply recorded (appliedInputs: variables and the fact values its templates read).
   * Bundle versions are immutable, so this is what was applied then.
   */
  async unitDigests(record: NodeRecord): Promise<Record<string, string>> {
    const inputs = record.appliedInputs;
    const ref = inputs?.bundle ?? record.appliedConfig;
    const at = ref?.lastIndexOf('@') ?? -1;
    if (!ref || at <= 0) return {};
    const { kvs } = await readKeys(this.client, [this.keyspace.config(ref.slice(0, at), ref.slice(at + 1))]);
    if (!kvs[0]) return { '(bundle)': `${ref} is no longer stored` };
    const bundle = JSON.parse(kvs[0].value.toString()) as Bundle;
    if (!inputs) return Object.fromEntries(bundle.units.map((u) => [u.id, 'applied inputs not recorded']));
    try {
      // A secret content by its fingerprint: the same secret re-sealed (a key rotation) is the same unit.
      const rendered = renderBundle(comparableBundle(bundle), { facts: nestFacts(inputs.facts), extraVars: inputs.variables });
      return Object.fromEntries(rendered.units.map((u) => [u.id, digestOf(u)]));
    } catch (err) {
      return Object.fromEntries(bundle.units.map((u) => [u.id, `not renderable: ${err instanceof Error ? err.message.slice(0, 120) : 'error'}`]));
    }
  }
}

/** {"cpu.cores": "4"} → {cpu: {cores: "4"}}: the recorded fact inputs as the templates read them. */
function nestFacts(flat: Readonly<Record<string, string>>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [path, value] of Object.entries(flat)) {
    const parts = path.split('.');
    let cur = root;
    for (const p of parts.slice(0, -1)) {
      const next = cur[p];
      cur = (next && typeof next === 'object' ? next : (cur[p] = {})) as Record<string, unknown>;
    }
    cur[parts[parts.length - 1]] = value;
  }
  return root;
}

function nodeIdOf(text: string, rpc: string): string {
  const id = text.trim();
  if (!id) throw new InvalidArgumentError(`${rpc} needs a node id (list nodes with \`clusterctl nodes\`)`);
  if (!isValidSegment(id)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(id.slice(0, 64))}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
  return id;
}

function toDifferences(list: readonly DiffEntry[]): Difference[] {
  return list.map((d) => ({ key: d.key, a: d.a ?? '', b: d.b ?? '', presentA: d.a !== undefined, presentB: d.b !== undefined }));
}

/** GetNodeHistory and DiffNodes (coordinator.ts composes them into ClusterService). */
export function createNodeHistoryHandlers(reader: NodeHistoryReader): Pick<ClusterServiceHandlers, 'GetNodeHistory' | 'DiffNodes'> {
  const getNodeHistory = unary(async (req: { id: string; limit: number }) => {
    const id = nodeIdOf(req.id, 'GetNodeHistory');
    const { entries, total } = await reader.list(id, req.limit);
    if (total === 0 && !(await reader.exists(id))) throw new NotFoundError(`node ${id} not found and no history is kept for it (list nodes with \`clusterctl nodes\`)`);
    return {
      nodeId: id, total,
      entries: entries.map(({ entry, changes, factsRecorded }): NodeHistoryEntry => ({
        seq: entry.seq, at: entry.at, type: entry.type, actor: entry.actor, jobId: entry.jobId ?? entry.record.currentJob ?? '', message: entry.message,
        changes, state: entry.record.state, factsRecorded,
      })),
    };
  });

  const diff = unary(async (req: { a: string; aAt: string; b: string; bAt: string }) => {
    const a = nodeIdOf(req.a, 'DiffNodes');
    const b = req.b.trim() ? nodeIdOf(req.b, 'DiffNodes') : a;
    if (a === b && req.aAt.trim() === req.bAt.trim()) throw new InvalidArgumentError(`node diff compares two nodes (node diff A B) or two moments (node diff ${a} --at TIME); both sides are ${a} ${req.aAt.trim() ? `at ${req.aAt.trim()}` : 'now'}`);
    const [sa, sb] = await Promise.all([reader.side(a, req.aAt.trim()), reader.side(b, req.bAt.trim())]);
    const d = diffNodes(sa.side, sb.side);
    return { a: sa.view, b: sb.view, facts: toDifferences(d.facts), labels: toDifferences(d.labels), units: toDifferences(d.units), record: toDifferences(d.record) };
  });

  return { GetNodeHistory: getNodeHistory, DiffNodes: diff };
}
