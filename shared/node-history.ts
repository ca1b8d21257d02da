/**
 * A node's history (issue 15 §4, §5): what one entry holds, how `--at` is read, what changed
 * between two records, and what differs between two nodes or two moments. Pure; the store is
 * coordinator/node-history.ts and the keyspace is history/<nodeId>/<seq>-<ms> (keyspace.ts).
 *
 * An entry holds the WHOLE record after the change (as nodes/<id> held it), not a diff: a
 * record is ~1 KB, and a self-contained entry survives the retention trimming the entries
 * before it, so `describe --at` reads exactly one entry. Facts change rarely and are larger,
 * so they are entries of their own (history-facts/), written only when the facts digest moved.
 */
import { InvalidArgumentError } from './errors';
import { decodeNode, parseRecordObject, type NodeRecord } from './records';

export interface HistoryEntry {
  /** The sequence number of the change's event (events/<seq>), shared by the two. */
  seq: number;
  at: string;
  /** The event type (node.state, node.labels, node.unreachable, ...). */
  type: string;
  actor: string;
  jobId?: string;
  message: string;
  /** The record as it was right after this change. */
  record: NodeRecord;
}

/**
 * The stored JSON of an entry. `recordJson` is the record exactly as written to nodes/<id> in
 * the same transaction (its serialisation is reused, not redone, on the hot path).
 */
export function encodeHistoryEntry(head: Omit<HistoryEntry, 'record'>, recordJson: string): string {
  const { seq, at, type, actor, jobId, message } = head;
  const meta = JSON.stringify({ seq, at, type, actor, ...(jobId ? { jobId } : {}), message });
  return `${meta.slice(0, -1)},"record":${recordJson}}`;
}

export function decodeHistoryEntry(key: string, text: string): HistoryEntry {
  const o = parseRecordObject(key, text);
  if (typeof o.seq !== 'number' || typeof o.at !== 'string' || typeof o.type !== 'string') {
    throw new InvalidArgumentError(`etcd value at ${key}: a history entry needs seq, at and type`);
  }
  return {
    seq: o.seq, at: o.at, type: o.type,
    actor: typeof o.actor === 'string' ? o.actor : '',
    ...(typeof o.jobId === 'string' && o.jobId ? { jobId: o.jobId } : {}),
    message: typeof o.message === 'string' ? o.message : '',
    record: decodeNode(key, JSON.stringify(o.record ?? null)),
  };
}

/** How far back `--at` may reach: ten years (a typo such as -2000d is refused, not read as 1920). */
export const MAX_AT_AGE_MS = 10 * 365 * 24 * 3_600_000;

const RELATIVE_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 24 * 3_600_000, w: 7 * 24 * 3_600_000 };
/** RFC 3339 with a zone (Z or ±hh:mm), seconds required, fraction optional. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * `--at`: an RFC 3339 time (2026-12-01T10:00:00Z) or a time relative to now: -30m, -2h, -7d,
 * -1h30m (units s, m, h, d, w). Not in the future, not more than ten years back. Errors say
 * what is accepted; the input is echoed only when short.
 */
export function parseAtTime(text: string, nowMs: number): number {
  const t = text.trim();
  const shown = t.length <= 40 ? JSON.stringify(t) : 'the value';
  const accepted = 'give an RFC 3339 time (2026-12-01T10:00:00Z) or a time before now (-30m, -2h, -7d, -1h30m)';
  if (!t) throw new InvalidArgumentError(`--at needs a time: ${accepted}`);
  // Bounded before it is parsed: the longest accepted form is an RFC 3339 time with nanoseconds and a zone (35).
  if (t.length > 40) throw new InvalidArgumentError(`--at ${shown} is not a time (too long): ${accepted}`);
  let ms: number;
  if (t.startsWith('-')) {
    const parts = /^-((?:\d{1,6}[smhdw])+)$/.exec(t);
    if (!parts) throw new InvalidArgumentError(`--at ${shown} is not a time: ${accepted}`);
    let back = 0;
    for (const m of parts[1].matchAll(/(\d{1,6})([smhdw])/g)) back += Number(m[1]) * RELATIVE_UNITS[m[2]];
    ms = nowMs - back;
  } else {
    if (!RFC3339.test(t)) throw new InvalidArgumentError(`--at ${shown} is not a time: ${accepted}`);
    ms = Date.parse(t.replace(' ', 'T'));
    if (!Number.isFinite(ms)) throw new InvalidArgumentError(`--at ${shown} is not a valid date: ${accepted}`);
  }
  if (ms > nowMs) throw new InvalidArgumentError(`--at ${shown} is in the future (${new Date(ms).toISOString()}); history only knows the past`);
  if (nowMs - ms > MAX_AT_AGE_MS) throw new InvalidArgumentError(`--at ${shown} is more than ten years ago (${new Date(ms).toISOString()})`);
  return ms;
}

function show(v: string | undefined): string {
  return v ? v : '(none)';
}

/**
 * What changed from `prev` to `next`, one line each, for `node history` ("state Commissioning →
 * Commissioned", "label +rack=r1"). Variables are named, never shown: a value may be a secret's.
 * Bookkeeping (updatedAt, lastSeenAt, connectedAt, stateChangedAt) is not listed.
 */
export function recordChanges(prev: NodeRecord | undefined, next: NodeRecord): string[] {
  if (!prev) return [`created as ${next.state}`];
  const out: string[] = [];
  const scalar = (name: string, a: string | undefined, b: string | undefined): void => {
    if ((a ?? '') !== (b ?? '')) out.push(`${name} ${show(a)} → ${show(b)}`);
  };
  scalar('state', prev.state, next.state);
  scalar('group', prev.group, next.group);
  scalar('desired', prev.desiredConfig, next.desiredConfig);
  scalar('applied', prev.appliedConfig, next.appliedConfig);
  scalar('applied-digest', prev.appliedDigest?.slice(0, 12), next.appliedDigest?.slice(0, 12));
  if (prev.reachable !== next.reachable || (!next.reachable && prev.unreachableSignal !== next.unreachableSignal)) {
    out.push(next.reachable ? 'reachable' : `unreachable (${next.unreachableSignal ?? 'lease'})`);
  }
  if (prev.connected !== next.connected) out.push(next.connected ? 'stream connected' : 'stream disconnected');
  for (const c of mapChanges(prev.labels, next.labels)) out.push(`label ${c}`);
  if (prev.maintenance !== next.maintenance) out.push(next.maintenance ? `maintenance on${next.maintenanceReason ? ` (${next.maintenanceReason})` : ''}` : 'maintenance off');
  scalar('job', prev.currentJob, next.currentJob);
  scalar('error', prev.lastError, next.lastError);
  scalar('drift', prev.driftSummary, next.driftSummary);
  scalar('boot', prev.bootId, next.bootId);
  scalar('agent', prev.agentVersion, next.agentVersion);
  scalar('address', prev.address, next.address);
  scalar('hostname', prev.hostname, next.hostname);
  if (JSON.stringify(prev.factsDigest ?? null) !== JSON.stringify(next.factsDigest ?? null)) out.push('facts changed');
  const pv = prev.appliedInputs?.variables ?? {};
  const nv = next.appliedInputs?.variables ?? {};
  const varNames = [...new Set([...Object.keys(pv), ...Object.keys(nv)])].filter((k) => pv[k] !== nv[k]).sort();
  if (varNames.length > 0) out.push(`applied variables changed: ${varNames.join(', ')}`);
  return out;
}

/** "+k=v", "-k", "k a → b" for two string maps, sorted by key. */
function mapChanges(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (!(k in a)) out.push(`+${k}=${b[k]}`);
    else if (!(k in b)) out.push(`-${k}`);
    else if (a[k] !== b[k]) out.push(`${k} ${a[k]} → ${b[k]}`);
  }
  return out;
}

/** One side of a diff: a node now or at a moment. */
export interface DiffSide {
  record: NodeRecord;
  /** The full facts (parsed), undefined when none were recorded. */
  facts: unknown;
  /** The applied bundle's units: unit id → digest of the unit as rendered with the applied inputs. */
  units: Record<string, string>;
}

export interface Difference {
  /** A fact path ("memory.totalBytes", "disks[1].name"), a label key, a unit id or a record field. */
  key: string;
  /** undefined: absent on that side. */
  a?: string;
  b?: string;
}

export interface NodeDifferences {
  facts: Difference[];
  labels: Difference[];
  units: Difference[];
  record: Difference[];
}

/** Facts that change with every collection, not with the machine. */
const VOLATILE_FACTS = new Set(['collectedAt', 'uptimeSec', 'uptime']);

/** Scalar leaves of a JSON value by path ("cpu.cores", "disks[0].name"). */
export function flattenFacts(value: unknown, path = '', out: Map<string, string> = new Map()): Map<string, string> {
  if (value === null || value === undefined) return out;
  if (Array.isArray(value)) {
    value.forEach((v, i) => flattenFacts(v, `${path}[${i}]`, out));
  } else if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (!path && VOLATILE_FACTS.has(k)) continue;
      flattenFacts(v, path ? `${path}.${k}` : k, out);
    }
  } else if (path && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')) {
    out.set(path, String(value));
  }
  return out;
}

function mapDiff(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): Difference[] {
  const out: Difference[] = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const av = a.get(key);
    const bv = b.get(key);
    if (av !== bv) out.push({ key, ...(av !== undefined ? { a: av } : {}), ...(bv !== undefined ? { b: bv } : {}) });
  }
  return out;
}

/** Record fields compared by a diff (what an operator compares between nodes of one group). */
const DIFF_FIELDS = ['state', 'group', 'desiredConfig', 'appliedConfig', 'appliedDigest', 'reachable', 'maintenance', 'agentVersion', 'driftSummary', 'lastError'] as const;

/** What differs between two sides: facts, labels, applied units and the main record fields. */
export function diffNodes(a: DiffSide, b: DiffSide): NodeDifferences {
  const field = (r: NodeRecord): Map<string, string> => {
    const m = new Map<string, string>();
    for (const f of DIFF_FIELDS) {
      const v = r[f];
      if (v !== undefined && v !== '') m.set(f, String(v));
    }
    return m;
  };
  return {
    facts: mapDiff(flattenFacts(a.facts), flattenFacts(b.facts)),
    labels: mapDiff(new Map(Object.entries(a.record.labels)), new Map(Object.entries(b.record.labels))),
    units: mapDiff(new Map(Object.entries(a.units)), new Map(Object.entries(b.units))),
    record: mapDiff(field(a.record), field(b.record)),
  };
}

/** Retention of a node's history (history-retention.ts). */
export interface HistoryPolicy {
  /** Entries kept per node, newest first. */
  keep: number;
  /** Entries older than this go, except the one that still describes the node at the cutoff. */
  maxAgeMs: number;
}

export interface HistoryKeyRef {
  seq: number;
  atMs: number;
}

/**
 * Which of one node's entries to delete (pure; tested by table). Record entries: all but the
 * newest `keep`, and those older than the cutoff, except (while the node exists) the newest one
 * at or before the cutoff, which is what the node was from the cutoff on, so `--at` anywhere in
 * the retention window still has its answer. Facts entries: those older than the oldest record
 * entry kept, except the newest of them (the facts in effect then).
 */
export function historyToTrim<T extends HistoryKeyRef>(records: readonly T[], facts: readonly T[], policy: HistoryPolicy, nowMs: number, nodeExists: boolean): { records: T[]; facts: T[] } {
  const sorted = [...records].sort((x, y) => x.seq - y.seq);
  const cutoff = nowMs - policy.maxAgeMs;
  const overCount = sorted.length - policy.keep;
  let base = -1;
  if (nodeExists) sorted.forEach((r, i) => { if (r.atMs <= cutoff) base = i; });
  const trimRecords = sorted.filter((r, i) => i < overCount || (r.atMs <= cutoff && i !== base));
  const trimmedSet = new Set(trimRecords);
  const kept = sorted.filter((r) => !trimmedSet.has(r));
  const oldestKept = kept.length > 0 ? kept[0].seq : Infinity;
  const factsSorted = [...facts].sort((x, y) => x.seq - y.seq);
  const before = factsSorted.filter((f) => f.seq < oldestKept);
  const inEffect = kept.length > 0 ? before[before.length - 1] : undefined;
  return { records: trimRecords, facts: before.filter((f) => f !== inEffect) };
}
