/**
 * The pure parts of node history (shared/node-history.ts), by table: `--at` parsing and its
 * refusals, what retention trims, what changed between two records, what differs between two
 * nodes, and the history keys (keyspace.ts).
 */
import { expect } from 'chai';
import {
  decodeHistoryEntry, diffNodes, encodeHistoryEntry, historyToTrim, InvalidArgumentError, Keyspace, parseAtTime, recordChanges, type NodeRecord,
} from '../../shared';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const H = 3_600_000;
const D = 24 * H;

function record(over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id: 'n1', state: 'Discovered', stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true,
    createdAt: '2026-12-01T00:00:00.000Z', updatedAt: '2026-12-01T00:00:00.000Z', ...over,
  };
}

describe('node history: --at', () => {
  const accepted: [string, number][] = [
    ['2026-12-01T10:00:00Z', Date.parse('2026-12-01T10:00:00Z')],
    ['2026-12-01T10:00:00.250Z', Date.parse('2026-12-01T10:00:00.250Z')],
    ['2026-12-01T11:00:00+01:00', Date.parse('2026-12-01T10:00:00Z')],
    ['-2h', NOW - 2 * H],
    ['-30m', NOW - 30 * 60_000],
    ['-7d', NOW - 7 * D],
    ['-1h30m', NOW - 90 * 60_000],
    ['-2w', NOW - 14 * D],
    ['  -45s  ', NOW - 45_000],
  ];
  for (const [text, ms] of accepted) {
    it(`${JSON.stringify(text)} → ${new Date(ms).toISOString()}`, () => {
      expect(parseAtTime(text, NOW)).to.equal(ms);
    });
  }
  const refused: [string, RegExp][] = [
    ['', /needs a time/],
    ['yesterday', /is not a time: give an RFC 3339 time/],
    ['2h', /is not a time/],
    ['+2h', /is not a time/],
    ['-2', /is not a time/],
    ['-2x', /is not a time/],
    ['2026-12-01', /is not a time/],
    ['2026-12-01T10:00:00', /is not a time/],
    ['2026-13-45T10:00:00Z', /is not a valid date/],
    ['2026-12-03T00:00:00Z', /is in the future/],
    ['-0h5', /is not a time/],
    ['-600w', /more than ten years ago/],
    ['x'.repeat(500), /^--at the value is not a time \(too long\)/],
    [`-${'1h'.repeat(30)}`, /^--at the value is not a time \(too long\)/],
  ];
  for (const [text, message] of refused) {
    it(`refuses ${JSON.stringify(text.slice(0, 30))}`, () => {
      expect(() => parseAtTime(text, NOW)).to.throw(InvalidArgumentError, message);
    });
  }
});

describe('node history: retention (historyToTrim)', () => {
  const at = (daysAgo: number): number => NOW - daysAgo * D;
  const keys = (...daysAgo: number[]): { seq: number; atMs: number }[] => daysAgo.map((d, i) => ({ seq: (i + 1) * 10, atMs: at(d) }));
  const seqs = (list: { seq: number }[]): number[] => list.map((k) => k.seq);
  const cases: { name: string; records: number[]; facts: number[]; keep: number; maxAgeDays: number; exists: boolean; trimRecords: number[]; trimFacts: number[] }[] = [
    { name: 'nothing old, under the count: nothing', records: [3, 2, 1], facts: [3], keep: 10, maxAgeDays: 7, exists: true, trimRecords: [], trimFacts: [] },
    { name: 'over the count: the oldest go', records: [3, 2, 1, 0.5], facts: [], keep: 2, maxAgeDays: 7, exists: true, trimRecords: [10, 20], trimFacts: [] },
    { name: 'older than the age: go, but the one in effect at the cutoff stays', records: [20, 15, 9, 5, 1], facts: [], keep: 10, maxAgeDays: 7, exists: true, trimRecords: [10, 20], trimFacts: [] },
    { name: 'a node unchanged for longer than the age keeps its newest entry', records: [40, 30], facts: [40], keep: 10, maxAgeDays: 7, exists: true, trimRecords: [10], trimFacts: [] },
    { name: 'a deleted node loses everything older than the age', records: [40, 30], facts: [40], keep: 10, maxAgeDays: 7, exists: false, trimRecords: [10, 20], trimFacts: [10] },
    // facts seqs are 10 (20 d), 20 (9 d), 30 (1 d); records kept from seq 30 (9 d) on: facts 20 is in effect then, 10 goes.
    { name: 'facts: the one in effect at the oldest kept entry stays, older ones go', records: [20, 15, 9, 5, 1], facts: [20, 9, 1], keep: 10, maxAgeDays: 7, exists: true, trimRecords: [10, 20], trimFacts: [10] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const t = historyToTrim(keys(...c.records), keys(...c.facts), { keep: c.keep, maxAgeMs: c.maxAgeDays * D }, NOW, c.exists);
      expect(seqs(t.records)).to.deep.equal(c.trimRecords);
      expect(seqs(t.facts)).to.deep.equal(c.trimFacts);
    });
  }
});

describe('node history: what changed (recordChanges)', () => {
  const cases: [string, NodeRecord | undefined, NodeRecord, string[]][] = [
    ['first entry', undefined, record({ state: 'New' }), ['created as New']],
    ['state and job', record({ state: 'Discovered' }), record({ state: 'Commissioning', currentJob: 'j1' }), ['state Discovered → Commissioning', 'job (none) → j1']],
    ['applied config', record({ state: 'Commissioning', currentJob: 'j1' }), record({ state: 'Commissioned', appliedConfig: 'demo@1', appliedDigest: 'abcdef0123456789' }),
      ['state Commissioning → Commissioned', 'applied (none) → demo@1', 'applied-digest (none) → abcdef012345', 'job j1 → (none)']],
    ['labels', record({ labels: { a: '1', b: '2' } }), record({ labels: { b: '3', c: '4' } }), ['label -a', 'label b 2 → 3', 'label +c=4']],
    ['reachability', record(), record({ reachable: false, unreachableSignal: 'lease' }), ['unreachable (lease)']],
    ['variables are named, never shown', record({ appliedInputs: { bundle: 'd@1', variables: { pw: 'secret1', x: '1' }, facts: {} } }),
      record({ appliedInputs: { bundle: 'd@1', variables: { pw: 'secret2', x: '1' }, facts: {} } }), ['applied variables changed: pw']],
    ['bookkeeping only: nothing', record(), record({ updatedAt: '2026-12-02T00:00:00Z', lastSeenAt: 'x' }), []],
  ];
  for (const [name, prev, next, changes] of cases) {
    it(name, () => {
      expect(recordChanges(prev, next)).to.deep.equal(changes);
    });
  }
});

describe('node history: diffNodes', () => {
  it('reports exactly the facts, labels, units and record fields that differ', () => {
    const facts = { collectedAt: 'a', hostname: 'h', memory: { totalBytes: 1024 }, disks: [{ name: 'sda' }] };
    const d = diffNodes(
      { record: record({ labels: { rack: 'r1', role: 'w' } }), facts, units: { conf: 'sha256:1', dir: 'sha256:2' } },
      { record: record({ labels: { role: 'w' }, state: 'Failed' }), facts: { ...facts, collectedAt: 'b', memory: { totalBytes: 2048 }, disks: [{ name: 'sda' }, { name: 'sdb' }] }, units: { conf: 'sha256:9', dir: 'sha256:2' } },
    );
    expect(d.facts).to.deep.equal([{ key: 'disks[1].name', b: 'sdb' }, { key: 'memory.totalBytes', a: '1024', b: '2048' }]);
    expect(d.labels).to.deep.equal([{ key: 'rack', a: 'r1' }]);
    expect(d.units).to.deep.equal([{ key: 'conf', a: 'sha256:1', b: 'sha256:9' }]);
    expect(d.record).to.deep.equal([{ key: 'state', a: 'Discovered', b: 'Failed' }]);
  });
});

describe('node history: entries and keys', () => {
  it('an entry round-trips, its record the exact JSON written to nodes/<id>', () => {
    const r = record({ labels: { a: 'b' }, appliedConfig: 'demo@1' });
    const text = encodeHistoryEntry({ seq: 7, at: '2026-12-01T00:00:00.000Z', type: 'node.labels', actor: 'user:admin', jobId: 'j1', message: 'labels +a=b' }, JSON.stringify(r));
    const e = decodeHistoryEntry('k', text);
    expect(e).to.deep.include({ seq: 7, type: 'node.labels', actor: 'user:admin', jobId: 'j1', message: 'labels +a=b' });
    expect(JSON.parse(JSON.stringify(e.record))).to.deep.equal(r);
  });
  it('history keys sort by sequence and carry their time; foreign keys do not parse', () => {
    const ks = new Keyspace('/p/');
    const ms = Date.parse('2026-12-01T00:00:00Z');
    const key = ks.history('n1', 42, ms);
    expect(key).to.equal(`/p/history/n1/0000000000000042-${ms}`);
    expect(ks.parseHistory(key)).to.deep.equal({ nodeId: 'n1', seq: 42, atMs: ms });
    expect(ks.parseHistoryFacts(ks.historyFacts('n1', 42, 5))).to.deep.equal({ nodeId: 'n1', seq: 42, atMs: 5 });
    expect(ks.history('n1', 9, 0) < ks.history('n1', 10, 0)).to.equal(true);
    expect(ks.parseHistory('/p/history/n1/42')).to.equal(undefined);
    expect(ks.parseHistory(ks.historyFacts('n1', 1, 1))).to.equal(undefined);
    expect(() => ks.history('bad/id', 1, 1)).to.throw(InvalidArgumentError);
  });
});
