import { expect } from 'chai';
import { decodeSnapshot, jobNodeKey, readSnapshot, type SnapshotPart } from '../../coordinator/snapshot';
import { useEtcd } from '../helpers';
import { Keyspace } from '../../shared';

const ks = new Keyspace('/c/');
const kv = (key: string, value: unknown, rev = '7'): { key: Buffer; value: Buffer; mod_revision: string } => ({
  key: Buffer.from(key), value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), mod_revision: rev,
});
const NODE = (id: string): object => ({ id, state: 'Discovered', labels: { rack: 'r1' }, reachable: true, connected: true, maintenance: false });
const JOB = (id: string): object => ({ id, kind: 'verify', state: 'Running', nodeIds: ['n1'] });
const JOB_NODE = (nodeId: string): object => ({ nodeId, state: 'running', batch: 0, attempt: 1, units: [] });
const MEMBER = { nodeId: 'n1', hostname: 'h1', bootId: 'b1' };

interface Row {
  name: string;
  parts: SnapshotPart[];
  kvs: ReturnType<typeof kv>[][];
  /** What the snapshot holds, as `<part>:<key>` lines. */
  holds: string[];
  skipped: RegExp[];
}

const TABLE: Row[] = [
  { name: 'a node', parts: ['nodes'], kvs: [[kv(ks.node('n1'), NODE('n1'), '9')]], holds: ['nodes:n1@9'], skipped: [] },
  { name: 'a node that is not JSON', parts: ['nodes'], kvs: [[kv(ks.node('n1'), '{nope'), kv(ks.node('n2'), NODE('n2'))]], holds: ['nodes:n2@7'], skipped: [/n1/] },
  { name: 'a node in an unknown state', parts: ['nodes'], kvs: [[kv(ks.node('n1'), { ...NODE('n1'), state: 'Sleeping' })]], holds: [], skipped: [/unknown lifecycle state/] },
  { name: 'a key below a node key', parts: ['nodes'], kvs: [[kv(`${ks.node('n1')}/extra`, NODE('n1'))]], holds: [], skipped: [/not a node key/] },
  { name: 'a node record under another node\'s key', parts: ['nodes'], kvs: [[kv(ks.node('n1'), NODE('n2'))]], holds: [], skipped: [/node n2 under the key of n1/] },
  {
    name: 'a job and its node record', parts: ['jobs'],
    kvs: [[kv(ks.job('j1'), JOB('j1')), kv(ks.jobNode('j1', 'n1'), JOB_NODE('n1'))]],
    holds: ['jobs:j1@7', `jobNodes:${jobNodeKey('j1', 'n1')}@7`], skipped: [],
  },
  { name: 'a job of an unknown kind', parts: ['jobs'], kvs: [[kv(ks.job('j1'), { ...JOB('j1'), kind: 'dance' })]], holds: [], skipped: [/unknown job kind/] },
  { name: 'a job record under another job\'s key', parts: ['jobs'], kvs: [[kv(ks.job('j1'), JOB('j2'))]], holds: [], skipped: [/job j2 under the key of j1/] },
  { name: 'a job node record of another node', parts: ['jobs'], kvs: [[kv(ks.jobNode('j1', 'n1'), JOB_NODE('n2'))]], holds: [], skipped: [/node n2 under the key of n1/] },
  { name: 'a group', parts: ['groups'], kvs: [[kv(ks.group('web'), { name: 'web', bundle: 'b', version: '1' })]], holds: ['groups:web@7'], skipped: [] },
  { name: 'a group that is not a group', parts: ['groups'], kvs: [[kv(ks.group('web'), { bundle: 'b' })]], holds: [], skipped: [/not a group record/] },
  { name: 'facts, and facts that are not an object', parts: ['facts'], kvs: [[kv(ks.facts('n1'), { hostname: 'h' }), kv(ks.facts('n2'), '[1]')]], holds: ['facts:n1', 'factsPresent:n1', 'factsPresent:n2'], skipped: [/unreadable facts/] },
  { name: 'fact keys only', parts: ['factKeys'], kvs: [[kv(ks.facts('n1'), '')]], holds: ['factsPresent:n1'], skipped: [] },
  { name: 'a member (its id is the key\'s)', parts: ['members'], kvs: [[kv(ks.member('n1'), MEMBER)]], holds: ['members:n1@7'], skipped: [] },
  { name: 'a member without a node id', parts: ['members'], kvs: [[kv(ks.member('n1'), { hostname: 'h' })]], holds: [], skipped: [/nodeId/] },
  {
    name: 'several parts, in the order asked', parts: ['groups', 'nodes'],
    kvs: [[kv(ks.group('web'), { name: 'web', bundle: 'b', version: '1' })], [kv(ks.node('n1'), NODE('n1'))]],
    holds: ['groups:web@7', 'nodes:n1@7'], skipped: [],
  },
];

describe('snapshot decoding (table)', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const s = decodeSnapshot(ks, '42', row.parts, row.kvs);
      expect(s.revision).to.equal('42');
      const holds: string[] = [];
      for (const part of ['nodes', 'jobs', 'jobNodes', 'groups', 'members'] as const) {
        for (const [k, v] of s[part]) holds.push(`${part}:${k}@${v.modRevision}`);
      }
      for (const k of s.facts.keys()) holds.push(`facts:${k}`);
      for (const k of s.factsPresent) holds.push(`factsPresent:${k}`);
      expect(holds.sort()).to.deep.equal([...row.holds].sort());
      expect(s.skipped).to.have.length(row.skipped.length);
      row.skipped.forEach((re, i) => expect(`${s.skipped[i].key} ${s.skipped[i].reason}`).to.match(re));
    });
  }

  it('a member record takes its node id from the key', () => {
    const s = decodeSnapshot(ks, '1', ['members'], [[kv(ks.member('n1'), { ...MEMBER, nodeId: 'other' })]]);
    expect(s.members.get('n1')?.record.nodeId).to.equal('n1');
  });
});

describe('snapshot: job records without their per-node records (real etcd)', function () {
  this.timeout(30_000);
  const etcd = useEtcd('snapshot-job-records');

  it('reads each job record with its revisions, no per-node record, and the other parts at the same revision', async () => {
    const { client, ks: k } = etcd;
    const put = async (key: string, value: object): Promise<void> => { await client.put(key).value(JSON.stringify(value)).exec(); };
    await put(k.job('j1'), JOB('j1'));
    for (const n of ['n1', 'n2', 'n3']) await put(k.jobNode('j1', n), JOB_NODE(n));
    // A job whose id extends another's sorts between j1 and j1's node records.
    await put(k.job('j1-2'), JOB('j1-2'));
    await put(k.jobNode('j1-2', 'n1'), JOB_NODE('n1'));
    await put(k.job('j2'), { ...JOB('j2'), state: 'Succeeded' });
    await put(k.job('j2'), { ...JOB('j2'), state: 'Failed' }); // modRevision moves, createRevision stays
    await put(k.node('n1'), NODE('n1'));

    const full = await readSnapshot(client, k, ['nodes', 'jobs']);
    const s = await readSnapshot(client, k, ['nodes', 'jobRecords']);
    expect([...s.jobs.keys()].sort()).to.deep.equal(['j1', 'j1-2', 'j2']);
    expect(s.jobNodes.size, 'per-node records read').to.equal(0);
    expect(full.jobNodes.size).to.equal(4);
    for (const [id, v] of full.jobs) {
      expect(s.jobs.get(id)?.modRevision, `${id} mod revision`).to.equal(v.modRevision);
      expect(s.jobs.get(id)?.createRevision, `${id} create revision`).to.equal(v.createRevision);
      expect(s.jobs.get(id)?.record).to.deep.equal(v.record);
    }
    expect(s.jobs.get('j2')?.record.state).to.equal('Failed');
    expect(s.nodes.get('n1')?.modRevision).to.equal(full.nodes.get('n1')?.modRevision);
    expect(s.revision).to.equal(full.revision);
    expect(s.skipped).to.deep.equal([]);
  });
});
