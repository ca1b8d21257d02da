/**
 * Desired vs applied in the operator's view of a node (coordinator/desired-state.ts): the
 * status by table, then WatchNodes through a real coordinator: a group variable changed in etcd
 * (no node record touched) makes the watcher receive the node again, now out of date.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { useEtcd, waitFor, testPki, type TestPki } from '../helpers';
import { Coordinator } from '../../coordinator';
import { createLogger, loadProto, type NodeRecord } from '../../shared';
import { validateBundle } from '../../shared/bundle';
import type { GroupRecord } from '../../shared/group';
import type { NodeEvent__Output } from '../../generated/cluster/v1/NodeEvent';
import { configStatus, type DesiredContext } from '../../coordinator/desired-state';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

const BUNDLE = validateBundle({
  name: 'web', version: '2', variables: { port: '80' },
  units: [{ id: 'conf', kind: 'file', path: '/etc/web.conf', content: 'listen {{ vars.listen }}:{{ vars.port }} on {{ facts.hostname }}' }],
});

function node(over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id: 'n1', state: 'Commissioned', stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '',
    group: 'web', appliedConfig: 'web@2', appliedInputs: { bundle: 'web@2', variables: { listen: '8080', port: '80', unused: 'x' }, facts: { hostname: 'h1' } }, ...over,
  };
}

function ctx(groupVars: Record<string, string>, globals: Record<string, string> = {}, version = '2'): DesiredContext {
  const g: GroupRecord = { name: 'web', bundle: 'web', version, variables: groupVars, repairPolicy: 'report' };
  return { groups: new Map([['web', g]]), globals, bundles: new Map([[`web@${version}`, BUNDLE]]) };
}

describe('desired state (table)', () => {
  const rows: [string, NodeRecord, DesiredContext, { desiredConfig: string; reasons: string[] }][] = [
    ['up to date', node(), ctx({ listen: '8080' }), { desiredConfig: 'web@2', reasons: [] }],
    ['a variable no template reads changed: still up to date', node(), ctx({ listen: '8080', unused: 'y' }), { desiredConfig: 'web@2', reasons: [] }],
    ['a group variable changed', node(), ctx({ listen: '9090' }), { desiredConfig: 'web@2', reasons: ['vars.listen "8080" → "9090"'] }],
    ['a global overrides a bundle default', node(), ctx({ listen: '8080' }, { port: '81' }), { desiredConfig: 'web@2', reasons: ['vars.port "80" → "81"'] }],
    ['a group variable wins over the global', node(), ctx({ listen: '8080', port: '80' }, { port: '81' }), { desiredConfig: 'web@2', reasons: [] }],
    ['applied with -e', node({ appliedInputs: { bundle: 'web@2', variables: { listen: '7777', port: '80' }, facts: { hostname: 'h1' }, extraVars: ['listen'] } }), ctx({ listen: '8080' }),
      { desiredConfig: 'web@2', reasons: ['vars.listen "7777" → "8080" (applied with -e)'] }],
    ['a fact the templates read changed', node({ appliedInputs: { bundle: 'web@2', variables: { listen: '8080', port: '80' }, facts: { hostname: 'old' } } }), ctx({ listen: '8080' }),
      { desiredConfig: 'web@2', reasons: ['facts.hostname "old" → "h1"'] }],
    ['another bundle version', node({ appliedConfig: 'web@1', appliedInputs: undefined }), ctx({ listen: '8080' }), { desiredConfig: 'web@2', reasons: ['bundle web@1 → web@2'] }],
    ['applied before inputs were recorded, same version: up to date', node({ appliedInputs: undefined }), ctx({ listen: '9090' }), { desiredConfig: 'web@2', reasons: [] }],
    ['nothing applied yet: not out of date', node({ state: 'Discovered', appliedConfig: undefined, appliedInputs: undefined }), ctx({ listen: '8080' }), { desiredConfig: 'web@2', reasons: [] }],
    ['no group', node({ group: undefined, desiredConfig: 'web@2' }), ctx({}), { desiredConfig: 'web@2', reasons: [] }],
  ];
  for (const [what, n, c, want] of rows) {
    it(what, () => {
      const s = configStatus(n, { hostname: 'h1' }, c);
      expect({ desiredConfig: s.desiredConfig, reasons: s.reasons }).to.deep.equal(want);
      expect(s.outOfDate).to.equal(want.reasons.length > 0);
    });
  }
});

describe('desired state in WatchNodes (real coordinator, etcd, gRPC)', function () {
  this.timeout(60_000);
  const env = useEtcd('desired');
  let pki: TestPki;
  let coord: Coordinator | undefined;
  let stream: grpc.ClientReadableStream<NodeEvent__Output> | undefined;

  before(async () => {
    pki = await testPki();
  });
  afterEach(async () => {
    stream?.cancel();
    await coord?.stop({ graceMs: 500 });
  });

  it('a group variable changed in etcd sends the node again, out of date, with the reason', async () => {
    await env.client.put(env.ks.config('web', '2')).value(JSON.stringify(BUNDLE)).exec();
    await env.client.put(env.ks.group('web')).value(JSON.stringify({ name: 'web', bundle: 'web', version: '2', variables: { listen: '8080' }, repairPolicy: 'report' })).exec();
    await env.client.put(env.ks.node('n1')).value(JSON.stringify(node())).exec();
    await env.client.put(env.ks.facts('n1')).value(JSON.stringify({ hostname: 'h1' })).exec();
    coord = new Coordinator({
      etcd: env.client, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(env.client, env.ks),
    });
    await coord.start();
    const { api } = loadProto();
    const cl = new api.cluster.v1.ClusterService(coord.address, await pki.credentials('viewer'));
    const seen: NodeEvent__Output[] = [];
    stream = cl.watchNodes({ labelSelector: '' });
    stream.on('data', (e: NodeEvent__Output) => seen.push(e));
    stream.on('error', () => undefined);
    await waitFor('the node ADDED, up to date', () => seen.find((e) => e.type === 'ADDED' && e.node?.id === 'n1' && !e.node.outOfDate), { timeoutMs: 15_000 });
    await env.client.put(env.ks.group('web')).value(JSON.stringify({ name: 'web', bundle: 'web', version: '2', variables: { listen: '9090' }, repairPolicy: 'report' })).exec();
    const changed = await waitFor('the node MODIFIED, out of date', () => seen.find((e) => e.type === 'MODIFIED' && e.node?.outOfDate), { timeoutMs: 15_000 });
    expect(changed.node?.outOfDateReasons).to.deep.equal(['vars.listen "8080" → "9090"']);
    cl.close();
  });
});
