/**
 * The one reader of the cluster state a pass decides from: the prefixes it needs in ONE etcd
 * read (one revision, so nodes, jobs and groups agree with each other), each record decoded
 * once, here. A record that does not decode, a key under a prefix that is not one of its
 * records, or a record whose own id names another key than the one it is stored under, is
 * skipped and counted in `skipped` (and logged once per read by `readSnapshot`):
 * a pass decides from the records it can read, and one bad record never stops it.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { decodeMember, decodeNode, errorMessage, type Facts, type Keyspace, type Logger, type MemberRecord, type NodeRecord } from '../shared';
import { readPrefixes } from './etcd-txn';
import { parseFacts } from './node-view';
import { decodeGroup, type GroupRecord } from '../shared/group';
import { decodeJob, decodeJobNode, type JobNodeRecord, type JobRecord } from './jobs/job-record';
import { scanJobRecords } from './jobs/job-record-scan';

/**
 * `factKeys` reads only which nodes have facts (keys, not values: facts are large). `jobRecords`
 * reads the job records without their per-node records (jobs/<id>/nodes/...: one per node a
 * kept job ran on, with its output), stepping over those in one small read per job
 * (jobs/job-record-scan.ts); `jobs` reads both. A reader that decides from jobs' kind and state
 * alone asks for `jobRecords`: a pass during a fan-out to 10,000 nodes then reads no 10,000
 * node records of that job.
 */
export type SnapshotPart = 'nodes' | 'jobs' | 'jobRecords' | 'groups' | 'facts' | 'factKeys' | 'members';

export interface Versioned<T> {
  record: T;
  modRevision: string;
  createRevision?: string;
}

export interface Snapshot {
  /** The etcd revision every part was read at. */
  revision: string;
  nodes: Map<string, Versioned<NodeRecord>>;
  jobs: Map<string, Versioned<JobRecord>>;
  /** Keyed `<jobId>/<nodeId>`. */
  jobNodes: Map<string, Versioned<JobNodeRecord>>;
  groups: Map<string, Versioned<GroupRecord>>;
  facts: Map<string, Partial<Facts>>;
  /** Nodes with a facts key (read by `facts` or `factKeys`), readable or not. */
  factsPresent: Set<string>;
  /** The mod revision of each node's facts key (read by `facts` or `factKeys`). */
  factsRevisions: Map<string, string>;
  members: Map<string, Versioned<MemberRecord>>;
  /** Keys skipped: not a record of their prefix, or unreadable; with why. */
  skipped: { key: string; reason: string }[];
}

/** Keys of the job node record map. */
export function jobNodeKey(jobId: string, nodeId: string): string {
  return `${jobId}/${nodeId}`;
}

function emptySnapshot(revision: string): Snapshot {
  return { revision, nodes: new Map(), jobs: new Map(), jobNodes: new Map(), groups: new Map(), facts: new Map(), factsPresent: new Set(), factsRevisions: new Map(), members: new Map(), skipped: [] };
}

function prefixOf(ks: Keyspace, part: SnapshotPart): string {
  switch (part) {
    case 'nodes': return ks.nodesPrefix();
    case 'jobs':
    case 'jobRecords': return ks.jobsPrefix();
    case 'groups': return ks.groupsPrefix();
    case 'facts':
    case 'factKeys': return ks.factsPrefix();
    case 'members': return ks.membersPrefix();
  }
}

/** Pure: decodes the key/values read for `parts` (same order) into a snapshot. */
export function decodeSnapshot(ks: Keyspace, revision: string, parts: readonly SnapshotPart[], kvs: readonly (readonly (Pick<IKeyValue, 'key' | 'value' | 'mod_revision'> & { create_revision?: string })[])[]): Snapshot {
  const s = emptySnapshot(revision);
  parts.forEach((part, i) => {
    for (const kv of kvs[i] ?? []) {
      const key = kv.key.toString();
      const text = kv.value.toString();
      const modRevision = kv.mod_revision;
      const createRevision = kv.create_revision;
      const skip = (reason: string): void => { s.skipped.push({ key, reason }); };
      // A record stored under its own name: the key must name one, and the record the same one.
      const named = <R>(what: string, name: string | undefined, decode: (k: string, t: string) => R, nameOf: (r: R) => string): { name: string; record: R } | undefined => {
        if (name === undefined) { skip(`not a ${what} key`); return undefined; }
        const record = decode(key, text);
        if (nameOf(record) !== name) { skip(`record of ${what} ${nameOf(record)} under the key of ${name}`); return undefined; }
        return { name, record };
      };
      try {
        switch (part) {
          case 'nodes': {
            const node = named('node', ks.parseNode(key), decodeNode, (r) => r.id);
            if (node) s.nodes.set(node.name, { record: node.record, modRevision });
            break;
          }
          case 'jobs':
          case 'jobRecords': {
            const parsed = ks.parseJobKey(key);
            if (!parsed) {
              skip('not a job key');
            } else if (parsed.nodeId === undefined) {
              const job = named('job', parsed.jobId, decodeJob, (r) => r.id);
              if (job) s.jobs.set(job.name, { record: job.record, modRevision, ...(createRevision ? { createRevision } : {}) });
            } else if (part === 'jobs') {
              const jobNode = named('node', parsed.nodeId, decodeJobNode, (r) => r.nodeId);
              if (jobNode) s.jobNodes.set(jobNodeKey(parsed.jobId, jobNode.name), { record: jobNode.record, modRevision });
            }
            break;
          }
          case 'groups': {
            const group = named('group', ks.parseGroup(key), decodeGroup, (r) => r.name);
            if (group) s.groups.set(group.name, { record: group.record, modRevision });
            break;
          }
          case 'facts': {
            const id = ks.parseFacts(key);
            const facts = id === undefined ? undefined : parseFacts(text);
            if (id === undefined) skip('not a facts key');
            else if (!facts) { s.factsPresent.add(id); s.factsRevisions.set(id, modRevision); skip('unreadable facts'); }
            else { s.factsPresent.add(id); s.factsRevisions.set(id, modRevision); s.facts.set(id, facts); }
            break;
          }
          case 'factKeys': {
            const id = ks.parseFacts(key);
            if (id === undefined) skip('not a facts key');
            else { s.factsPresent.add(id); s.factsRevisions.set(id, modRevision); }
            break;
          }
          case 'members': {
            const id = ks.parseMember(key);
            if (id === undefined) skip('not a member key');
            else s.members.set(id, { record: { ...decodeMember(key, text), nodeId: id }, modRevision });
            break;
          }
        }
      } catch (err) {
        skip(errorMessage(err));
      }
    }
  });
  return s;
}

/** One node key/value (a watch event, a point read) decoded as a snapshot would; undefined when skipped. */
export function decodeNodeKv(ks: Keyspace, kv: Pick<IKeyValue, 'key' | 'value' | 'mod_revision'>, logger?: Logger): Versioned<NodeRecord> | undefined {
  const s = decodeSnapshot(ks, '0', ['nodes'], [[kv]]);
  if (s.skipped.length > 0) logger?.warn('unreadable node record skipped', { key: s.skipped[0].key, reason: s.skipped[0].reason });
  return [...s.nodes.values()][0];
}

/** Reads `parts` at one revision and decodes them; skipped records are logged once per read. */
export async function readSnapshot(client: Etcd3, ks: Keyspace, parts: readonly SnapshotPart[], logger?: Logger): Promise<Snapshot> {
  let s: Snapshot;
  if (parts.includes('jobRecords')) {
    // The other parts are read in the scan's first transaction: the same revision.
    const others = parts.filter((p) => p !== 'jobRecords' && p !== 'jobs');
    const scan = await scanJobRecords(client, ks, others.map((p) => ({ prefix: prefixOf(ks, p), keysOnly: p === 'factKeys' })));
    s = decodeSnapshot(ks, scan.revision, others, scan.alongside);
    for (const [id, record] of scan.jobs) {
      const v = scan.revisions.get(id);
      s.jobs.set(id, { record, modRevision: v?.modRevision ?? '0', ...(v ? { createRevision: v.createRevision } : {}) });
    }
    s.skipped.push(...scan.skipped);
  } else {
    const { revision, kvs } = await readPrefixes(client, parts.map((p) => ({ prefix: prefixOf(ks, p), keysOnly: p === 'factKeys' })));
    s = decodeSnapshot(ks, revision, parts, kvs);
  }
  if (s.skipped.length > 0) {
    logger?.warn('unreadable records skipped', { count: s.skipped.length, first: s.skipped[0].key, reason: s.skipped[0].reason });
  }
  return s;
}

/** The records of a versioned map, in key order. */
export function recordsOf<T>(m: ReadonlyMap<string, Versioned<T>>): T[] {
  return [...m.values()].map((v) => v.record);
}
