/**
 * `clusterctl node history`, `node describe --at` and `node diff` end to end, real processes
 * (the built clusterctl, a real coordinator, etcd and two agents with sandbox roots): history
 * lists the commission's transitions with actor and job; describe --at a moment between two
 * changes shows the old state, config and facts; both survive an etcd compaction to the current
 * revision; a diff of two nodes that differ in one label and one fact shows exactly those; bad
 * --at input is refused before any call, a time before the node existed says so.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Keyspace } from '../../shared';
import { delay, waitFor, type TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { expectExit, expectOneLineError, runContext } from '../helpers/cli-results';

const BUNDLE = `name: demo
version: 1
variables:
  greeting: hi
units:
  - id: conf
    kind: file
    path: /etc/demo.conf
    content: |
      greeting={{ vars.greeting }}
    mode: "0644"
`;

interface HistoryJson { nodeId: string; total: number; entries: { seq: number; at: string; type: string; state: string; actor: string; jobId: string; changes: string[]; factsRecorded: boolean }[] }
interface DescribeJson { node: { state: string; appliedConfig: string; labels: Record<string, string> }; facts: { memory: { totalBytes: number } } | null; history?: { at: string; type: string } }
interface DiffJson { facts: { key: string; a?: string; b?: string }[]; labels: { key: string; a?: string; b?: string }[]; units: { key: string; a?: string; b?: string }[]; record: { key: string; a?: string; b?: string }[] }

describe('cli-e2e: node history, describe --at, diff', function () {
  this.timeout(300_000);
  const suite = e2eSuite('cli-history');

  it('history of a commission with actor and job; describe --at; survives compaction; diff; bad --at refused', async () => {
    const cluster: TestCluster = suite.cluster({ name: 'cli-history', leaseTtlSec: 3 });
    const beforeAll = new Date(Date.now() - 1000).toISOString();
    await cluster.startCoordinator();
    for (const id of ['n1', 'n2']) {
      const root = join(cluster.baseDir, 'roots', id);
      mkdirSync(root, { recursive: true });
      await cluster.startAgent(id, { extraArgs: ['--root', root] });
    }
    await cluster.waitForNodes('both Discovered', (ns) => ns.length === 2 && ns.every((n) => n.state === 'Discovered' && n.reachable));
    const file = join(cluster.baseDir, 'demo.yaml');
    writeFileSync(file, BUNDLE);
    expectExit(await cluster.ctl(['bundle', 'push', '-f', file]), 0);
    expectExit(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'demo']), 0);

    // A moment between discovery and the commission (ms resolution: step clear of both).
    await delay(50);
    const between = new Date().toISOString();
    await delay(50);
    const com = expectExit(await cluster.ctl(['node', 'commission', 'n1', 'n2', '-g', 'worker', '--wait'], 180_000), 0);
    const jobId = /job (\S+) Succeeded/.exec(com.stdout)?.[1];
    expect(jobId, runContext(com)).to.be.a('string');
    expectExit(await cluster.ctl(['node', 'label', 'n1', 'rack=r1']), 0);

    const history = async (): Promise<HistoryJson> => JSON.parse(expectExit(await cluster.ctl(['node', 'history', 'n1', '-o', 'json']), 0).stdout) as HistoryJson;
    const h = await history();
    const states = h.entries.filter((e) => e.type === 'node.state').map((e) => [e.state, e.jobId]);
    expect(states, JSON.stringify(h)).to.deep.include.members([['Commissioning', jobId], ['Commissioned', jobId]]);
    expect(h.entries[0]).to.deep.include({ type: 'node.created', state: 'New', changes: ['created as New'] });
    expect(h.entries.find((e) => e.type === 'node.discovered')).to.deep.include({ state: 'Discovered', factsRecorded: true });
    const commissioned = h.entries.find((e) => e.state === 'Commissioned' && e.type === 'node.state');
    expect(commissioned?.changes, JSON.stringify(commissioned)).to.include('state Commissioning → Commissioned');
    expect(commissioned?.actor).to.match(/^coordinator\//);
    const labelled = h.entries[h.entries.length - 1];
    expect(labelled).to.deep.include({ type: 'node.labels', actor: 'user:admin', changes: ['label +rack=r1'] });
    const table = expectExit(await cluster.ctl(['node', 'history', 'n1']), 0).stdout;
    expect(table).to.match(/^SEQ +AT +TYPE +STATE +ACTOR +JOB +CHANGES\n/);
    expect(table).to.match(/node\.labels +Commissioned +user:admin +- +label \+rack=r1/);

    const describeAt = async (at: string): Promise<DescribeJson> => JSON.parse(expectExit(await cluster.ctl(['node', 'describe', 'n1', '--at', at, '-o', 'json']), 0).stdout) as DescribeJson;
    const then = await describeAt(between);
    expect(then.node).to.deep.include({ state: 'Discovered', appliedConfig: '', labels: {} });
    expect(then.facts?.memory.totalBytes).to.be.greaterThan(1);
    expect(then.history?.type).to.equal('node.discovered');
    const nowDoc = await describeAt('-0s');
    expect(nowDoc.node).to.deep.include({ state: 'Commissioned', appliedConfig: 'demo@1', labels: { rack: 'r1' } });
    expect(expectExit(await cluster.ctl(['node', 'describe', 'n1', '--at', between]), 0).stdout).to.match(/^As of .*: the record written at .* \(node\.discovered, event \d+\); facts recorded at /);

    // Compaction to the current revision removes every old revision; history does not use them.
    const client = suite.etcd.client();
    const revision = (await client.get(new Keyspace().node('n1')).exec()).header.revision;
    await client.kv.compact({ revision, physical: true });
    expect((await history()).entries, 'history after compaction').to.deep.equal(h.entries);
    expect((await describeAt(between)).node.state).to.equal('Discovered');

    // Diff of two nodes: n1 has the label, n2's facts say 1 byte more memory; nothing else differs but their hostnames.
    const factsKey = new Keyspace().facts('n2');
    const real = JSON.parse((await client.get(factsKey).string()) ?? '{}') as { memory: { totalBytes: number } };
    const more = real.memory.totalBytes + 1;
    await client.put(factsKey).value(JSON.stringify({ ...real, memory: { ...real.memory, totalBytes: more } })).exec();
    const diff = async (args: string[]): Promise<DiffJson> => JSON.parse(expectExit(await cluster.ctl(['node', 'diff', ...args, '-o', 'json']), 0).stdout) as DiffJson;
    await waitFor('n2 facts seen different', async () => (await diff(['n1', 'n2'])).facts.length > 0, { timeoutMs: 30_000, intervalMs: 300 });
    const d = await diff(['n1', 'n2']);
    expect(d.labels).to.deep.equal([{ key: 'rack', a: 'r1' }]);
    // The two agents of this box report their own hostnames; the memory is the difference made here.
    expect(d.facts.map((f) => f.key)).to.deep.equal(['hostname', 'memory.totalBytes']);
    expect(d.facts[1]).to.deep.equal({ key: 'memory.totalBytes', a: String(real.memory.totalBytes), b: String(more) });
    expect(d.units, 'same bundle, same inputs: same rendered units').to.deep.equal([]);
    expect(d.record).to.deep.equal([]);
    expect(expectExit(await cluster.ctl(['node', 'diff', 'n1', 'n2']), 0).stdout).to.match(/^A: n1 now .*\nB: n2 now .*\nWHAT +KEY +A +B\n(.*\n)*label +rack +r1 +\(absent\)/);

    // n1 then and now: the commission's state and unit, the label.
    const td = await diff(['n1', '--at', between]);
    expect(td.record.find((r) => r.key === 'state')).to.deep.equal({ key: 'state', a: 'Discovered', b: 'Commissioned' });
    expect(td.labels).to.deep.equal([{ key: 'rack', b: 'r1' }]);
    expect(td.units.map((u) => [u.key, u.a, u.b?.slice(0, 7)])).to.deep.equal([['conf', undefined, 'sha256:']]);

    // Bad input: refused with what is accepted; before the node existed: says so.
    expectOneLineError(await cluster.ctl(['node', 'describe', 'n1', '--at', 'yesterday']), /--at "yesterday" is not a time: give an RFC 3339 time/);
    expectOneLineError(await cluster.ctl(['node', 'describe', 'n1', '--at', '2999-01-01T00:00:00Z']), /is in the future/);
    expectOneLineError(await cluster.ctl(['node', 'diff', 'n1', '--at', '-5000w']), /more than ten years ago/);
    expectOneLineError(await cluster.ctl(['node', 'diff', 'n1']), /needs a second node .* or a moment/);
    expectOneLineError(await cluster.ctl(['node', 'describe', 'n1', '--at', beforeAll]), /node n1 did not exist yet at .*: it was created at /);
    expectOneLineError(await cluster.ctl(['node', 'history', 'n9']), /node n9 not found/);
  });
});
