/**
 * The coordinator in-process against a real etcd and real gRPC on 127.0.0.1: inventory from
 * membership (as an agent writes it), reachability, restart, the ClusterService API, health,
 * the agent stream, and fencing.
 */
import { expect } from 'chai';
import { dirname, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { Lease } from 'etcd3';
import { useEtcd, waitFor, expectReject, delay, testPki, type TestPki } from '../helpers';
import { Coordinator, newNodeRecord, type CoordinatorOptions } from '../../coordinator';
import {
  createLogger, decodeNode, loadProto, NotLeaderError, systemClock, type Clock, type Timer, type EventRecord, type MemberRecord, type NodeRecord,
} from '../../shared';
import type { ClusterServiceClient } from '../../generated/cluster/v1/ClusterService';
import type { AgentServiceClient } from '../../generated/cluster/v1/AgentService';
import type { CoordinatorMessage__Output } from '../../generated/cluster/v1/CoordinatorMessage';
import type { AgentMessage } from '../../generated/cluster/v1/AgentMessage';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

/** A clock the test can push forward (to see leadership lapse without waiting). */
class OffsetClock implements Clock {
  offsetMs = 0;
  now(): number { return Date.now() + this.offsetMs; }
  iso(): string { return new Date(this.now()).toISOString(); }
  setTimeout(fn: () => void, ms: number): Timer { return systemClock.setTimeout(fn, ms); }
}

interface Agentish {
  lease: Lease;
}

describe('coordinator (real etcd, real gRPC)', function () {
  this.timeout(60_000);
  const env = useEtcd('coord');
  const running: Coordinator[] = [];
  const grpcClients: grpc.Client[] = [];
  let pki: TestPki;
  let adminCreds: grpc.ChannelCredentials;
  const agentCreds = new Map<string, grpc.ChannelCredentials>();

  before(async () => {
    pki = await testPki();
    adminCreds = await pki.credentials('admin');
    for (const id of ['hello-1', 'hello-2']) agentCreds.set(id, await pki.credentials('agent', id));
  });
  afterEach(async () => {
    for (const c of grpcClients.splice(0)) c.close();
    await Promise.all(running.splice(0).map((c) => c.stop({ graceMs: 500 })));
  });

  async function startCoordinator(replicaId: string, over: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
    const c = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: env.ks, logger: logger.child({ replica: replicaId }), replicaId, listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(env.client, env.ks), ...over,
    });
    running.push(c);
    await c.start();
    return c;
  }

  async function leaderOf(c: Coordinator): Promise<void> {
    await waitFor(`${c.address} to lead`, () => c.isLeader(), { timeoutMs: 15_000 });
  }

  async function stopCoordinator(c: Coordinator): Promise<void> {
    running.splice(running.indexOf(c), 1);
    await c.stop({ graceMs: 500 });
  }

  /** What an agent does: a member key bound to a short lease, then facts. */
  async function joinAsAgent(id: string, withFacts = true, over: Partial<MemberRecord> = {}): Promise<Agentish> {
    const lease = env.client.lease(2, { autoKeepAlive: true });
    lease.on('lost', () => undefined);
    const record: MemberRecord = {
      nodeId: id, hostname: `${id}.lab`, agentVersion: '0.1.0', bootId: 'boot-1', instanceId: 'i-1', address: '198.18.0.7',
      appliedDigest: '', registeredAt: new Date().toISOString(), ...over,
    };
    await lease.put(env.ks.member(id)).value(JSON.stringify(record)).exec();
    if (withFacts) {
      const facts = {
        collectedAt: new Date().toISOString(), hostname: `${id}.lab`,
        system: { manufacturer: 'Dell Inc.', model: 'R650', serial: 'SN1', uuid: 'u-1', sku: '', virtual: false },
        cpu: { manufacturer: 'Intel', brand: 'Xeon', model: '', cores: 32, physicalCores: 16, threads: 32, sockets: 2, speedGHz: 2.4 },
        memory: { totalBytes: 68719476736, layout: [] }, disks: [], network: [], gpus: [],
      };
      await env.client.put(env.ks.facts(id)).value(JSON.stringify(facts)).exec();
    }
    return { lease };
  }

  async function readNode(id: string): Promise<NodeRecord | undefined> {
    const text = await env.client.get(env.ks.node(id)).string();
    return text === null ? undefined : decodeNode(env.ks.node(id), text);
  }

  async function events(nodeId?: string): Promise<EventRecord[]> {
    const all = await env.client.getAll().prefix(env.ks.eventsPrefix()).strings();
    return Object.entries(all)
      .map(([, v]) => JSON.parse(v) as EventRecord)
      .filter((e) => nodeId === undefined || e.nodeId === nodeId)
      .sort((a, b) => a.seq - b.seq);
  }

  function clusterClient(c: Coordinator): ClusterServiceClient {
    const { api } = loadProto();
    const cl = new api.cluster.v1.ClusterService(c.address, adminCreds);
    grpcClients.push(cl);
    return cl;
  }

  /** A client holding the agent certificate of `nodeId`. */
  function agentClient(address: string, nodeId: string): AgentServiceClient {
    const { api } = loadProto();
    const creds = agentCreds.get(nodeId);
    if (!creds) throw new Error(`no agent certificate made for ${nodeId}`);
    const cl = new api.cluster.v1.AgentService(address, creds);
    grpcClients.push(cl);
    return cl;
  }

  function call<Req, Res>(fn: (req: Req, cb: grpc.requestCallback<Res>) => unknown, req: Req): Promise<Res> {
    return new Promise((res, rej) => {
      fn(req, (err, value) => (err ? rej(err) : res(value as Res)));
    });
  }

  it('first contact → New → Discovered, unreachable when the lease goes, reachable when back, each with its event', async () => {
    const c = await startCoordinator('a');
    await leaderOf(c);
    const agent = await joinAsAgent('node-1');

    const discovered = await waitFor('node-1 Discovered', async () => {
      const n = await readNode('node-1');
      return n?.state === 'Discovered' ? n : undefined;
    });
    expect(discovered).to.include({ reachable: true, agentVersion: '0.1.0', bootId: 'boot-1', hostname: 'node-1.lab', address: '198.18.0.7' });
    const types = (await events('node-1')).map((e) => e.type);
    expect(types).to.deep.equal(['node.created', 'node.discovered']);
    const discoveredEvent = (await events('node-1'))[1];
    expect(discoveredEvent).to.include({ from: 'New', to: 'Discovered', actor: 'coordinator/a' });

    // The agent dies: its lease is revoked (an expiry looks the same to etcd watchers).
    const before = Date.now();
    await agent.lease.revoke();
    const gone = await waitFor('node-1 unreachable', async () => {
      const n = await readNode('node-1');
      return n && !n.reachable ? n : undefined;
    });
    expect(gone.state).to.equal('Discovered');
    expect(Date.parse(gone.unreachableSince ?? '')).to.be.within(before - 1000, Date.now());

    const back = await joinAsAgent('node-1', false, { bootId: 'boot-2' });
    const again = await waitFor('node-1 reachable', async () => {
      const n = await readNode('node-1');
      return n?.reachable ? n : undefined;
    });
    expect(again.state).to.equal('Discovered');
    expect(again.unreachableSince).to.equal(undefined);
    expect(again.bootId).to.equal('boot-2');
    expect((await events('node-1')).map((e) => e.type)).to.deep.equal(['node.created', 'node.discovered', 'node.unreachable', 'node.reachable']);

    // Every event has its own sequence number, without gaps, matching the counter.
    const all = await events();
    expect(all.map((e) => e.seq)).to.deep.equal(all.map((_, i) => i + 1));
    expect(await env.client.get(env.ks.eventSeq()).string()).to.equal(String(all.length));
    await back.lease.revoke();
  });

  it('a restart of the Coordinator object changes no node state and re-derives reachability', async () => {
    const c1 = await startCoordinator('a');
    await leaderOf(c1);
    const stay = await joinAsAgent('stay');
    const leave = await joinAsAgent('leave');
    await waitFor('both Discovered', async () => (await readNode('stay'))?.state === 'Discovered' && (await readNode('leave'))?.state === 'Discovered');
    // Move one further so a restart has a non-initial state to lose.
    await c1.nodes.transition('stay', 'Commissioning', 'test');
    await c1.nodes.transition('stay', 'Commissioned', 'test');
    await stopCoordinator(c1);

    // While no coordinator runs, one agent goes away.
    await leave.lease.revoke();
    const eventsBefore = (await events()).length;

    const c2 = await startCoordinator('b');
    await leaderOf(c2);
    await waitFor('leave unreachable', async () => (await readNode('leave'))?.reachable === false);
    await c2.reconciler.runOnce();
    const stayNode = await readNode('stay');
    const leaveNode = await readNode('leave');
    expect(stayNode).to.include({ state: 'Commissioned', reachable: true });
    expect(leaveNode).to.include({ state: 'Discovered', reachable: false });
    // The only new event is the unreachable one.
    const newEvents = (await events()).slice(eventsBefore).map((e) => `${e.type}:${e.nodeId ?? ''}`);
    expect(newEvents).to.deep.equal(['node.unreachable:leave']);
    await stay.lease.revoke();
  });

  it('ListNodes with a selector, GetNode, NOT_FOUND and INVALID_ARGUMENT from the API', async () => {
    const c = await startCoordinator('a');
    await leaderOf(c);
    await joinAsAgent('w1');
    await joinAsAgent('w2');
    await joinAsAgent('ctl');
    await waitFor('3 Discovered', async () => {
      const ns = await Promise.all(['w1', 'w2', 'ctl'].map(readNode));
      return ns.every((n) => n?.state === 'Discovered');
    });
    for (const [id, role] of [['w1', 'worker'], ['w2', 'worker'], ['ctl', 'control']]) {
      await c.nodes.mutate(id, (cur) => cur && { next: { ...cur, labels: { role } }, event: { type: 'node.labels', message: `role=${role}` } });
    }
    const cl = clusterClient(c);
    const workers = await call(cl.listNodes.bind(cl), { labelSelector: 'role=worker' });
    expect(workers.nodes.map((n) => n.id)).to.deep.equal(['w1', 'w2']);
    expect(workers.nodes[0]).to.include({ state: 'Discovered', reachable: true, agentVersion: '0.1.0' });
    expect(workers.nodes[0].facts).to.include({ manufacturer: 'Dell Inc.', cpuCores: 16, memoryBytes: '68719476736' });
    expect(Number(workers.revision)).to.be.greaterThan(0);
    const all = await call(cl.listNodes.bind(cl), { labelSelector: '' });
    expect(all.nodes).to.have.length(3);
    const notWorkers = await call(cl.listNodes.bind(cl), { labelSelector: 'role!=worker' });
    expect(notWorkers.nodes.map((n) => n.id)).to.deep.equal(['ctl']);

    const detail = await call(cl.getNode.bind(cl), { id: 'w1' });
    expect(detail.node?.id).to.equal('w1');
    expect(JSON.parse(detail.factsJson)).to.have.nested.property('system.model', 'R650');

    const notFound = (await expectReject(call(cl.getNode.bind(cl), { id: 'nope' }))) as grpc.ServiceError;
    expect(notFound.code).to.equal(grpc.status.NOT_FOUND);
    expect(notFound.details).to.equal('node nope not found (list nodes with `clusterctl nodes`)');

    const bad = (await expectReject(call(cl.listNodes.bind(cl), { labelSelector: 'role=(' }))) as grpc.ServiceError;
    expect(bad.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).to.match(/^malformed label selector "role=\(":/);
  });

  it('WatchNodes sends current nodes as ADDED, then changes as MODIFIED', async () => {
    const c = await startCoordinator('a');
    await leaderOf(c);
    await joinAsAgent('w1', false);
    await waitFor('w1 exists', async () => (await readNode('w1')) !== undefined);
    const cl = clusterClient(c);
    const stream = cl.watchNodes({ labelSelector: '' });
    const seen: string[] = [];
    stream.on('data', (e: { type: string; node: { id: string; state: string } | null }) => seen.push(`${e.type}:${e.node?.id}:${e.node?.state}`));
    stream.on('error', () => undefined);
    await waitFor('ADDED', () => seen.includes('ADDED:w1:New'));
    await env.client.put(env.ks.facts('w1')).value(JSON.stringify({ hostname: 'w1.lab' })).exec();
    await waitFor('MODIFIED to Discovered', () => seen.includes('MODIFIED:w1:Discovered'));
    stream.cancel();
  });

  it('health: "" SERVING with etcd up, AgentService SERVING only on the leader; reflection lists the services', async () => {
    const leader = await startCoordinator('a');
    await leaderOf(leader);
    const follower = await startCoordinator('b');
    await waitFor('follower sees the leader', () => follower.leaderElection.currentLeader()?.id === 'a');
    const def = protoLoader.loadSync('health/v1/health.proto', { enums: String, includeDirs: [resolve(dirname(healthProtoPath), '..', '..')] });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { health: { v1: { Health: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & { check: (req: { service: string }, cb: grpc.requestCallback<{ status: string }>) => void } } } };
    };
    const viewerCreds = await pki.credentials('viewer');
    const check = async (c: Coordinator, service: string): Promise<string> => {
      const h = new pkg.grpc.health.v1.Health(c.address, viewerCreds);
      grpcClients.push(h);
      return (await call(h.check.bind(h), { service })).status;
    };
    await waitFor('leader "" SERVING', async () => (await check(leader, '')) === 'SERVING');
    expect(await check(leader, 'cluster.v1.AgentService')).to.equal('SERVING');
    expect(await check(follower, '')).to.equal('SERVING');
    expect(await check(follower, 'cluster.v1.AgentService')).to.equal('NOT_SERVING');
    expect(await check(follower, 'cluster.v1.ClusterService')).to.equal('SERVING');

    // Reflection (for any authenticated client): the list `grpcurl ... HOST:PORT list` prints.
    const refDef = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
      includeDirs: [resolve(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto')],
    });
    const refPkg = grpc.loadPackageDefinition(refDef) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo: () => grpc.ClientDuplexStream<{ listServices: string }, { listServicesResponse?: { service: { name: string }[] } }> } } } };
    };
    const rc = new refPkg.grpc.reflection.v1.ServerReflection(leader.address, viewerCreds);
    grpcClients.push(rc);
    const names = await new Promise<string[]>((res, rej) => {
      const s = rc.serverReflectionInfo();
      s.on('data', (m: { listServicesResponse?: { service: { name: string }[] } }) => { res((m.listServicesResponse?.service ?? []).map((x) => x.name)); s.end(); });
      s.on('error', rej);
      s.write({ listServices: '*' });
    });
    expect(names).to.include.members(['cluster.v1.AgentService', 'cluster.v1.ClusterService', 'grpc.health.v1.Health']);
  });

  it('AgentService: hello → Welcome, hello recorded in one txn, pings, connected=false at stream end; bad first message and followers refused', async () => {
    const leader = await startCoordinator('a', { pingIntervalMs: 200 });
    await leaderOf(leader);
    const follower = await startCoordinator('b');
    await waitFor('follower sees the leader', () => follower.leaderElection.currentLeader()?.id === 'a');
    const ac = agentClient(leader.address, 'hello-1');

    // Hello from a node the reconciler has not seen: created as New with the hello's fields, one txn + one event.
    const stream = ac.connect();
    const got: CoordinatorMessage__Output[] = [];
    stream.on('data', (m: CoordinatorMessage__Output) => {
      got.push(m);
      if (m.body === 'ping') stream.write({ pong: { seq: m.ping?.seq } } satisfies AgentMessage);
    });
    stream.on('error', () => undefined);
    stream.write({ hello: { nodeId: 'hello-1', agentVersion: '0.1.0', bootId: 'b-1', instanceId: 'i-1', hostname: 'hello-1.lab' } } satisfies AgentMessage);
    await waitFor('welcome', () => got.find((m) => m.body === 'welcome'));
    expect(got[0].welcome).to.include({ coordinatorId: 'a', pingIntervalMs: 200 });
    // The Welcome goes out before the record is written (attach must not queue behind etcd).
    const connected = await waitFor('the hello recorded', async () => {
      const n = await readNode('hello-1').catch(() => undefined);
      return n?.connected ? n : undefined;
    });
    expect(connected).to.include({ state: 'New', connected: true, agentVersion: '0.1.0', bootId: 'b-1', instanceId: 'i-1' });
    expect((await events('hello-1')).map((e) => e.type)).to.deep.equal(['node.created']);
    expect(leader.streams.isConnected('hello-1')).to.equal(true);
    await waitFor('two pings', () => got.filter((m) => m.body === 'ping').length >= 2);

    // Progress from the agent reaches the registry's listeners.
    const progress = new Promise<string>((res) => leader.streams.once('progress', (nodeId, p) => res(`${nodeId}:${p.commandId}:${p.status}`)));
    stream.write({ progress: { commandId: 'c-1', unitId: 'u', status: 'running' } } satisfies AgentMessage);
    expect(await progress).to.equal('hello-1:c-1:running');

    stream.end();
    await waitFor('disconnected recorded', async () => (await readNode('hello-1'))?.connected === false);
    expect(leader.streams.isConnected('hello-1')).to.equal(false);

    // First message not a Hello → INVALID_ARGUMENT, nothing written.
    const bad = ac.connect();
    const badErr = new Promise<grpc.ServiceError>((res) => bad.on('error', res));
    bad.on('data', () => undefined);
    bad.write({ pong: { seq: '1' } } satisfies AgentMessage);
    const e1 = await badErr;
    expect(e1.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(e1.details).to.match(/first message .* must be a Hello/);
    const badId = ac.connect();
    const badIdErr = new Promise<grpc.ServiceError>((res) => badId.on('error', res));
    badId.on('data', () => undefined);
    badId.write({ hello: { nodeId: '../etc' } } satisfies AgentMessage);
    const e2 = await badIdErr;
    expect(e2.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(e2.details).to.match(/invalid node id/);

    // A follower refuses and names the leader.
    const fc = agentClient(follower.address, 'hello-2').connect();
    const fErr = new Promise<grpc.ServiceError>((res) => fc.on('error', res));
    fc.on('data', () => undefined);
    fc.write({ hello: { nodeId: 'hello-2' } } satisfies AgentMessage);
    const e3 = await fErr;
    expect(e3.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(e3.details).to.equal(`not the leader; the leader is ${leader.address}`);
    expect(await readNode('hello-2')).to.equal(undefined);
  });

  it('fencing: a write is refused once the candidate key is deleted behind the leader\'s back; leadership then comes back', async () => {
    const c = await startCoordinator('a');
    await leaderOf(c);
    await joinAsAgent('f1');
    await waitFor('f1 Discovered', async () => (await readNode('f1'))?.state === 'Discovered');
    const before = await readNode('f1');
    const eventsBefore = (await events()).length;

    await env.client.delete().key(env.ks.electionCandidate('a')).exec();
    // The leader may not have noticed yet; etcd refuses the fenced txn regardless.
    const err = await expectReject(
      c.nodes.mutate('f1', (cur) => cur && { next: { ...cur, labels: { stale: 'write' } }, event: { type: 'node.labels', message: 'stale' } }),
    );
    expect(err).to.be.instanceOf(NotLeaderError);
    expect(await readNode('f1')).to.deep.equal(before);
    expect((await events()).length).to.equal(eventsBefore);
    await waitFor('leadership dropped', () => !c.isLeader(), { timeoutMs: 5000 });

    // Alone in the election, the replica campaigns again with a new key and leads again.
    await leaderOf(c);
    const newRev = (await env.client.get(env.ks.electionCandidate('a')).exec()).kvs[0]?.create_revision;
    expect(c.leaderElection.currentLeader()?.createRevision).to.equal(newRev);
    await c.nodes.mutate('f1', (cur) => cur && { next: { ...cur, labels: { fresh: 'write' } }, event: { type: 'node.labels', message: 'fresh' } });
    expect((await readNode('f1'))?.labels).to.deep.equal({ fresh: 'write' });
  });

  it('leadership is timed by the injected clock: no acknowledged keepalive within the TTL → not leader, no fence', async () => {
    const clock = new OffsetClock();
    const c = await startCoordinator('a', { clock, electionTtlMs: 3000 });
    await leaderOf(c);
    clock.offsetMs = 3500; // as if no keepalive had been acknowledged for 3.5 s
    expect(c.isLeader()).to.equal(false);
    expect(() => c.leaderElection.fenceCompare()).to.throw(NotLeaderError, /not the leader/);
    const err = await expectReject(c.nodes.mutate('x1', (cur) => (cur ? undefined : { next: newNodeRecord('x1', clock.iso()), event: { type: 'node.created', message: 'x' } })));
    expect(err).to.be.instanceOf(NotLeaderError);
    expect(await readNode('x1')).to.equal(undefined);
    // The next keepalive is sent (and timed) by the same clock: leadership resumes.
    await leaderOf(c);
  });

  it('etcd outage: leadership ends by itself within the TTL of the last acknowledged keepalive, and resumes after', async () => {
    const c = await startCoordinator('a', { electionTtlMs: 3000 });
    await leaderOf(c);
    const lostAt = new Promise<number>((res) => c.leaderElection.once('lost', () => res(Date.now())));
    const stoppedAt = Date.now();
    await env.etcd.stop('SIGKILL');
    try {
      const at = await lostAt;
      // The last acknowledged keepalive was at most one interval (TTL/3) before the outage.
      expect(at - stoppedAt).to.be.within(1000, 3300);
      expect(c.isLeader()).to.equal(false);
    } finally {
      await env.etcd.start();
    }
    await leaderOf(c);
  });

  it('failover: the follower leads once the leader resigns; agents are told where the new leader is', async () => {
    const a = await startCoordinator('a');
    await leaderOf(a);
    const b = await startCoordinator('b');
    await waitFor('b sees a', () => b.leaderElection.currentLeader()?.id === 'a');
    expect(b.isLeader()).to.equal(false);
    const t0 = Date.now();
    await stopCoordinator(a);
    await leaderOf(b);
    expect(Date.now() - t0).to.be.lessThan(3000); // resign deletes the key: no TTL wait
    expect(b.leaderElection.currentLeader()).to.include({ id: 'b', address: b.address });
    expect(await env.client.get(env.ks.electionCandidate('a')).string()).to.equal(null);
  });

  it('a burst of 300 joins at once is coalesced into a few passes, and every node ends Discovered with its events', async () => {
    const c = await startCoordinator('a');
    await leaderOf(c);
    const lease = env.client.lease(30, { autoKeepAlive: false });
    lease.on('lost', () => undefined);
    const leaseId = await lease.grant();
    const ids = Array.from({ length: 300 }, (_, i) => `burst-${String(i).padStart(3, '0')}`);
    const passesBefore = c.reconciler.passes;
    const t0 = Date.now();
    // Members and facts in chunks of 50 (etcd's default max ops per txn is 128).
    for (let i = 0; i < ids.length; i += 50) {
      const chunk = ids.slice(i, i + 50);
      await env.client.kv.txn({
        compare: [],
        success: chunk.flatMap((id) => [
          { request_put: { key: Buffer.from(env.ks.member(id)), value: Buffer.from(JSON.stringify({ nodeId: id, hostname: id, agentVersion: '0.1.0', bootId: 'b', instanceId: 'i', address: '', appliedDigest: '', registeredAt: '' })), lease: leaseId } },
          { request_put: { key: Buffer.from(env.ks.facts(id)), value: Buffer.from('{"hostname":"x"}') } },
        ]),
        failure: [],
      });
    }
    await waitFor('300 Discovered', async () => {
      const all = await env.client.getAll().prefix(env.ks.nodesPrefix()).strings();
      return Object.values(all).filter((v) => (JSON.parse(v) as NodeRecord).state === 'Discovered').length === ids.length;
    }, { timeoutMs: 50_000, intervalMs: 250 });
    const ms = Date.now() - t0;
    const evs = await events();
    expect(evs.filter((e) => e.type === 'node.created')).to.have.length(300);
    expect(evs.filter((e) => e.type === 'node.discovered')).to.have.length(300);
    const passes = c.reconciler.passes - passesBefore;
    expect(passes).to.be.lessThan(20);
    console.log(`      300 joins → 600 evented txns in ${ms} ms, ${passes} passes`);
    await lease.revoke();
  });

  it('event retention keeps the newest N events', async () => {
    const c = await startCoordinator('a', { eventRetention: 5 });
    await leaderOf(c);
    for (let i = 0; i < 12; i++) {
      await c.events.commit({ compares: [], ops: [], event: { type: 'test.tick', message: `tick ${i}` } });
    }
    await c.events.trim();
    await delay(50);
    const left = await events();
    expect(left.map((e) => e.seq)).to.deep.equal([8, 9, 10, 11, 12]);
    expect(await env.client.get(env.ks.eventSeq()).string()).to.equal('12');
  });
});
