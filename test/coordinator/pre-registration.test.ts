/**
 * Pre-registered nodes (`clusterctl discover`): the identifiers and the match rules by table,
 * then through a real coordinator on real etcd and gRPC: Discover makes New records that name
 * what they expect, an agent whose facts match takes the record (labels carried over, the
 * pre-registration deleted, one event), one that matches nothing leaves it waiting, and
 * DeletePreRegistered removes only pre-registrations.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { Lease } from 'etcd3';
import { useEtcd, waitFor, testPki, type TestPki } from '../helpers';
import { Coordinator } from '../../coordinator';
import { createLogger, decodeNode, fromGrpcError, loadProto, type Facts, type NodeRecord } from '../../shared';
import type { ClusterServiceClient } from '../../generated/cluster/v1/ClusterService';
import { adoptPreRegistrations, factsMatch, parseIdentifier, planPreRegistrationMatches } from '../../coordinator/pre-registration';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

function facts(serial: string, mac: string, ip: string): Partial<Facts> {
  return {
    hostname: 'h', system: { manufacturer: 'Dell Inc.', model: 'R650', serial, uuid: 'u', sku: '', virtual: false },
    network: [{ iface: 'eno1', mac, ipv4: [ip], ipv6: [], speedMbps: 1000, type: 'wired', virtual: false, operstate: 'up', isDefault: true }],
  };
}

function rec(id: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return { id, state: 'New', stateChangedAt: '', reachable: false, labels: {}, maintenance: false, connected: false, createdAt: '', updatedAt: '', ...over };
}

describe('pre-registration (table)', () => {
  const ids: [string, string | RegExp][] = [
    ['10.0.0.21', 'ip-10.0.0.21'],
    ['fd00::21', 'ip-fd00::21'],
    ['52-54-00-AB-CD-EF', 'mac-52:54:00:ab:cd:ef'],
    ['SN-4711', 'serial-SN-4711'],
    ['has space', /is not an IP address, a MAC address .* or a serial number/],
    ['', /is not an IP address/],
  ];
  for (const [text, want] of ids) {
    it(`${JSON.stringify(text)} → ${String(want)}`, () => {
      if (typeof want === 'string') expect(parseIdentifier(text).id).to.equal(want);
      else expect(() => parseIdentifier(text)).to.throw(want);
    });
  }

  const f = facts('SN-4711', '52:54:00:ab:cd:ef', '10.0.0.21');
  const matchRows: [string, boolean][] = [['SN-4711', true], ['SN-0000', false], ['52:54:00:AB:CD:EF', true], ['10.0.0.21', true], ['10.0.0.22', false]];
  for (const [text, want] of matchRows) {
    it(`facts match ${text}: ${want}`, () => expect(factsMatch(parseIdentifier(text), f)).to.equal(want));
  }
  it('no facts match nothing', () => expect(factsMatch(parseIdentifier('SN-4711'), undefined)).to.equal(false));

  it('plans: one node takes every pre-registration it alone matches; an ambiguous one is left alone; labels carry over under the node\'s own', () => {
    const nodes = [
      rec('serial-SN-4711', { expected: { kind: 'serial', value: 'SN-4711' }, labels: { rack: 'r1', role: 'db' } }),
      rec('mac-52:54:00:ab:cd:ef', { expected: { kind: 'mac', value: '52:54:00:ab:cd:ef' }, labels: { row: '7' } }),
      rec('ip-10.9.9.9', { expected: { kind: 'ip', value: '10.9.9.9' } }),
      rec('serial-TWIN', { expected: { kind: 'serial', value: 'TWIN' } }),
      rec('agent-a', { state: 'Discovered', labels: { role: 'web' } }),
      rec('agent-b', { state: 'Discovered' }),
      rec('agent-c', { state: 'Discovered' }),
    ];
    const byId = new Map<string, Partial<Facts>>([
      ['agent-a', facts('SN-4711', '52:54:00:ab:cd:ef', '10.0.0.21')], ['agent-b', facts('TWIN', 'aa:aa:aa:aa:aa:aa', '10.0.0.2')], ['agent-c', facts('TWIN', 'bb:bb:bb:bb:bb:bb', '10.0.0.3')],
    ]);
    const plan = planPreRegistrationMatches(nodes, byId);
    expect(plan.matches).to.deep.equal([{ nodeId: 'agent-a', expectedIds: ['mac-52:54:00:ab:cd:ef', 'serial-SN-4711'] }]);
    expect(plan.ambiguous).to.deep.equal([{ expectedId: 'serial-TWIN', nodeIds: ['agent-b', 'agent-c'] }]);
    const adopted = adoptPreRegistrations(nodes[4], [nodes[0], nodes[1]]);
    expect(adopted.labels).to.deep.equal({ rack: 'r1', role: 'web', row: '7' });
    expect(adopted.preRegistrations).to.deep.equal(['serial SN-4711', 'mac 52:54:00:ab:cd:ef']);
  });
});

describe('pre-registration (real coordinator, etcd, gRPC)', function () {
  this.timeout(60_000);
  const env = useEtcd('prereg');
  let pki: TestPki;
  let coord: Coordinator | undefined;
  let client: ClusterServiceClient | undefined;
  const leases: Lease[] = [];

  before(async () => {
    pki = await testPki();
  });
  afterEach(async () => {
    client?.close();
    for (const l of leases.splice(0)) await l.revoke().catch(() => undefined);
    await coord?.stop({ graceMs: 500 });
  });

  function call<Req, Res>(fn: (req: Req, cb: grpc.requestCallback<Res>) => unknown, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => { fn(req, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res))); });
  }

  async function readNode(id: string): Promise<NodeRecord | undefined> {
    const text = await env.client.get(env.ks.node(id)).string();
    return text === null ? undefined : decodeNode(env.ks.node(id), text);
  }

  async function join(id: string, f: Partial<Facts>): Promise<void> {
    const lease = env.client.lease(3, { autoKeepAlive: true });
    lease.on('lost', () => undefined);
    leases.push(lease);
    await lease.put(env.ks.member(id)).value(JSON.stringify({
      nodeId: id, hostname: `${id}.lab`, agentVersion: '0.1.0', bootId: 'b-1', instanceId: 'i-1', address: '198.18.0.7', appliedDigest: '', registeredAt: new Date().toISOString(),
    })).exec();
    await env.client.put(env.ks.facts(id)).value(JSON.stringify({ collectedAt: new Date().toISOString(), ...f })).exec();
  }

  /** A leading coordinator at the default settings, and an operator's client of it. */
  async function leader(): Promise<ClusterServiceClient> {
    coord = new Coordinator({
      etcd: env.client, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(env.client, env.ks),
    });
    await coord.start();
    const { api } = loadProto();
    const cl = new api.cluster.v1.ClusterService(coord.address, await pki.credentials('operator'));
    client = cl;
    await waitFor('r1 to lead', () => coord?.isLeader() ?? false, { timeoutMs: 15_000 });
    return cl;
  }

  it('Discover → New records naming what they expect; a matching agent takes the record (labels, event), others wait; delete removes only pre-registrations', async () => {
    const cl = await leader();

    const bad = await call(cl.discover.bind(cl), { identifiers: ['SN-4711', 'not valid!'], labels: {} }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(bad?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(await readNode('serial-SN-4711'), 'nothing written on a refusal').to.equal(undefined);

    const made = await call(cl.discover.bind(cl), { identifiers: ['SN-4711', '10.9.9.9'], labels: { rack: 'r1' } });
    expect(made.nodes?.map((n) => [n.id, n.state, n.preRegisteredBy, n.labels])).to.deep.equal([
      ['serial-SN-4711', 'New', 'serial SN-4711', { rack: 'r1' }], ['ip-10.9.9.9', 'New', 'ip 10.9.9.9', { rack: 'r1' }],
    ]);
    // Idempotent: asking again changes nothing.
    const again = await call(cl.discover.bind(cl), { identifiers: ['SN-4711'], labels: {} });
    expect(again.nodes?.[0]?.revision).to.equal(made.nodes?.[0]?.revision);

    await join('agent-a', facts('SN-4711', '52:54:00:ab:cd:ef', '10.0.0.21'));
    const a = await waitFor('agent-a to take the pre-registration', async () => {
      const n = await readNode('agent-a');
      return n?.preRegistrations?.length ? n : undefined;
    }, { timeoutMs: 20_000 });
    expect(a.labels).to.deep.equal({ rack: 'r1' });
    expect(a.preRegistrations).to.deep.equal(['serial SN-4711']);
    expect(a.state).to.equal('Discovered');
    expect(await readNode('serial-SN-4711'), 'the pre-registration is gone').to.equal(undefined);
    expect((await readNode('ip-10.9.9.9'))?.state, 'no agent matches it: it waits').to.equal('New');

    const refused = await call(cl.deletePreRegistered.bind(cl), { ids: ['agent-a'] }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(refused?.code).to.equal(grpc.status.NOT_FOUND);
    const deleted = await call(cl.deletePreRegistered.bind(cl), { ids: ['10.9.9.9'] });
    expect(deleted.nodes?.map((n) => n.id)).to.deep.equal(['ip-10.9.9.9']);
    expect(await readNode('ip-10.9.9.9')).to.equal(undefined);
    expect(await readNode('agent-a'), 'an agent\'s node is not touched').to.not.equal(undefined);
  });

  it('DeletePreRegistered of more than one transaction holds (126 at etcd\'s default 128 operations) is refused naming the limit, and deletes nothing', async () => {
    const cl = await leader();
    const ips = Array.from({ length: 127 }, (_, i) => `10.7.${Math.floor(i / 100)}.${i % 100}`);
    expect((await call(cl.discover.bind(cl), { identifiers: ips, labels: {} })).nodes).to.have.length(127);
    const countKept = async (): Promise<number> => Object.keys(await env.client.getAll().prefix(env.ks.nodesPrefix()).strings()).length;

    const refused = await call(cl.deletePreRegistered.bind(cl), { ids: ips }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(refused?.code, refused?.message).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(refused?.message).to.equal('DeletePreRegistered: at most 126 at a time (got 127): they are deleted in one etcd transaction, and etcd takes 128 operations in one (--etcd-max-txn-ops); delete them in parts');
    expect(await countKept(), 'nothing deleted').to.equal(127);

    // As many as fit: deleted together.
    const deleted = await call(cl.deletePreRegistered.bind(cl), { ids: ips.slice(0, 126) });
    expect(deleted.nodes).to.have.length(126);
    expect(await countKept()).to.equal(1);
  });
});
