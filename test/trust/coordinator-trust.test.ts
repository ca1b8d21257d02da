/**
 * The coordinator over real mutual TLS on loopback (in-process, real etcd): the Salt CVE
 * classes of issue 10 as named tests. Nothing reaches a handler without a certificate of the
 * cluster CA; an agent certificate speaks only for its own node; roles are enforced with a
 * message naming the role; the audit trail names the certificate, not what the client says;
 * revocation is effective from the next call and closes a revoked agent's live stream.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { useEtcd, waitFor, testPki, type TestPki } from '../helpers';
import { Coordinator, newNodeRecord } from '../../coordinator';
import { createLogger, decodeEvent, fromGrpcError, Keyspace, loadProto, type ClusterError, type EventRecord } from '../../shared';
import { clientCredentials, parseCredentials } from '../../shared/pki';
import { createKeyAndCsr } from '../../shared/pki/cluster-ca';
import type { AgentMessage } from '../../generated/cluster/v1/AgentMessage';
import type { AgentServiceClient } from '../../generated/cluster/v1/AgentService';
import type { CoordinatorMessage__Output } from '../../generated/cluster/v1/CoordinatorMessage';

const RAW = (b: Buffer): Buffer => b;
const DEADLINE_MS = 5000;

interface MethodInfo { path: string; requestStream: boolean; responseStream: boolean }

/** Every method of every service the coordinator serves: the contract's, health and reflection. */
function allMethods(): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const [name, def] of Object.entries(loadProto().packageDefinition)) {
    if (!name.startsWith('cluster.v1.') || 'format' in def) continue;
    for (const m of Object.values(def as Record<string, MethodInfo>)) out.push({ path: m.path, requestStream: m.requestStream, responseStream: m.responseStream });
  }
  out.push(
    { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false },
    { path: '/grpc.health.v1.Health/Watch', requestStream: false, responseStream: true },
    { path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', requestStream: true, responseStream: true },
    { path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', requestStream: true, responseStream: true },
  );
  return out;
}

/** Calls `m` with an empty message; resolves with the error status (undefined = the call succeeded). */
function rawCall(client: grpc.Client, m: MethodInfo): Promise<grpc.ServiceError | undefined> {
  const options = { deadline: Date.now() + DEADLINE_MS };
  return new Promise((resolve) => {
    if (!m.requestStream && !m.responseStream) {
      client.makeUnaryRequest(m.path, RAW, RAW, Buffer.alloc(0), options, (err) => resolve(err ?? undefined));
      return;
    }
    if (m.requestStream && !m.responseStream) {
      const s = client.makeClientStreamRequest(m.path, RAW, RAW, new grpc.Metadata(), options, (err) => resolve(err ?? undefined));
      s.write(Buffer.alloc(0));
      s.end();
      return;
    }
    let s: grpc.ClientReadableStream<Buffer>;
    if (m.requestStream) {
      const duplex = client.makeBidiStreamRequest(m.path, RAW, RAW, new grpc.Metadata(), options);
      duplex.write(Buffer.alloc(0));
      s = duplex;
    } else {
      s = client.makeServerStreamRequest(m.path, RAW, RAW, Buffer.alloc(0), new grpc.Metadata(), options);
    }
    s.on('data', () => undefined);
    s.on('error', (err: grpc.ServiceError) => resolve(err));
    s.on('end', () => resolve(undefined));
  });
}

function unary<Req, Res>(fn: (req: Req, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res)));
  });
}

async function refusal(p: Promise<unknown>): Promise<ClusterError> {
  try {
    await p;
  } catch (err) {
    return err as ClusterError;
  }
  throw new Error('expected a refusal');
}

describe('trust: the coordinator over mutual TLS (real etcd, real TLS on loopback)', function () {
  this.timeout(60_000);
  const env = useEtcd('trust');
  let pki: TestPki;
  let coord: Coordinator;
  let logs: Record<string, unknown>[];
  const clients: grpc.Client[] = [];
  const api = (): ReturnType<typeof loadProto>['api']['cluster']['v1'] => loadProto().api.cluster.v1;

  before(async () => {
    pki = await testPki();
  });
  beforeEach(async () => {
    logs = [];
    const logger = createLogger({ level: 'info', sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
    coord = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0', electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000,
      pki: await pki.coordinatorPki(env.client, env.ks),
    });
    await coord.start();
    await waitFor('r1 to lead', () => coord.isLeader(), { timeoutMs: 15_000 });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await coord.stop({ graceMs: 200 });
  });

  function track<C extends grpc.Client>(c: C): C {
    clients.push(c);
    return c;
  }

  async function nodeKeys(): Promise<string[]> {
    return Object.keys(await env.client.getAll().prefix(env.ks.nodesPrefix()).strings());
  }

  async function events(type: string): Promise<EventRecord[]> {
    const all = await env.client.getAll().prefix(env.ks.eventsPrefix()).strings();
    return Object.entries(all).map(([k, v]) => decodeEvent(k, v)).filter((e) => e.type === type);
  }

  /** Opens Connect with `creds` and sends a hello for `nodeId`; resolves with the first message or the error. */
  function hello(creds: grpc.ChannelCredentials, nodeId: string): { stream: grpc.ClientDuplexStream<AgentMessage, CoordinatorMessage__Output>; first: Promise<CoordinatorMessage__Output | grpc.ServiceError> } {
    const ac: AgentServiceClient = track(new (api().AgentService)(coord.address, creds));
    const stream = ac.connect();
    const first = new Promise<CoordinatorMessage__Output | grpc.ServiceError>((resolve) => {
      stream.on('data', (m: CoordinatorMessage__Output) => {
        if (m.body === 'ping') stream.write({ pong: { seq: m.ping?.seq } });
        resolve(m);
      });
      stream.on('error', (err: grpc.ServiceError) => resolve(err));
    });
    stream.write({ hello: { nodeId, agentVersion: '0.1.0', bootId: 'b', instanceId: 'i', hostname: `${nodeId}.lab` } });
    return { stream, first };
  }

  it('no certificate (CVE-2020-11651 class): every RPC of every service is refused UNAUTHENTICATED; only PkiService.Join is open', async () => {
    const anonymous = track(new grpc.Client(coord.address, pki.anonymousCredentials()));
    const methods = allMethods();
    expect(methods.length).to.be.greaterThan(30);
    const outcomes = await Promise.all(methods.map(async (m) => [m.path, (await rawCall(anonymous, m))?.code] as const));
    for (const [path, code] of outcomes) {
      if (path === '/cluster.v1.PkiService/Join') expect(code, path).to.equal(grpc.status.INVALID_ARGUMENT); // reached the handler: no token
      else expect(code, path).to.equal(grpc.status.UNAUTHENTICATED);
    }
    expect(await nodeKeys()).to.deep.equal([]);
  });

  it('a pki dir that cannot be written stops the start before a CA is created (it would leave the cluster without admin.yaml)', async () => {
    const empty = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const other = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: empty, logger: createLogger({ level: 'silent' }), replicaId: 'r2', listen: '127.0.0.1:0',
      pki: { dir: '/dev/null/pki', clusterSecretFile: join(mkdtempSync(join(tmpdir(), 'trust-secret-')), 'cluster-secret') },
    });
    const err = await refusal(other.start());
    expect(err.message).to.match(/^the pki dir \/dev\/null\/pki is not a writable directory \(.*\): give --pki-dir DIR/);
    expect(await env.client.get(empty.pkiCa()).string()).to.equal(null);
    await other.stop({ graceMs: 100 });
  });

  it('a replica renews its serving certificate at two thirds of its validity; new connections get the new one and are served', async () => {
    const empty = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const short = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: empty, logger: createLogger({ level: 'silent' }), replicaId: 'r3', listen: '127.0.0.1:0', servingRenewCheckMs: 100,
      pki: { ...(await pki.coordinatorPki(env.client, empty)), servingValidityMs: 60_000 },
    });
    try {
      await short.start();
      const port = Number(short.address.split(':').pop());
      const serial = (): Promise<string> => new Promise((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' }, () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        });
        s.on('error', reject);
      });
      const first = await serial();
      // Validity starts 5 min back (clock skew allowance), so two thirds of it is already behind us.
      await waitFor('a renewed serving certificate', async () => (await serial()) !== first, { timeoutMs: 5000, intervalMs: 100 });
      const viewer = track(new (api().ClusterService)(short.address, await pki.credentials('viewer')));
      await unary(viewer.getStatus.bind(viewer), {});
    } finally {
      await short.stop({ graceMs: 100 });
    }
  });

  it('a plaintext client is refused (no plaintext fallback)', async () => {
    const plain = track(new grpc.Client(coord.address, grpc.credentials.createInsecure()));
    const err = await rawCall(plain, { path: '/cluster.v1.ClusterService/ListNodes', requestStream: false, responseStream: false });
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
  });

  it('a certificate for node A opening a stream as node B (CVE-2024-38822 class) is refused and logged with both ids', async () => {
    await env.client.put(env.ks.node('node-b')).value(JSON.stringify(newNodeRecord('node-b', new Date().toISOString())));
    const before = await env.client.get(env.ks.node('node-b')).string();
    const { first } = hello(await pki.credentials('agent', 'node-a'), 'node-b');
    const err = (await first) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(err.details).to.equal('permission denied: this certificate is for node node-a, not node-b');
    const logged = logs.find((l) => l.msg === 'refused an agent stream: the hello names another node than the certificate');
    expect(logged).to.include({ certificateNodeId: 'node-a', helloNodeId: 'node-b' });
    expect(await env.client.get(env.ks.node('node-b')).string()).to.equal(before);
    expect(coord.streams.isConnected('node-b')).to.equal(false);
  });

  it('a second stream with another certificate of the same node cannot take over the live one; the same certificate can', async () => {
    const first = await pki.credentials('agent', 'node-c');
    const a = hello(first, 'node-c');
    expect(((await a.first) as CoordinatorMessage__Output).body).to.equal('welcome');
    const other = await pki.freshIdentity('agent', 'node-c');
    const b = hello(clientCredentials({ caPem: pki.caPem, certPem: other.certPem, keyPem: other.keyPem }), 'node-c');
    const refused = (await b.first) as grpc.ServiceError;
    expect(refused.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(refused.details).to.match(/node node-c is connected with another certificate/);
    expect(coord.streams.isConnected('node-c')).to.equal(true);
    const c = hello(first, 'node-c');
    expect(((await c.first) as CoordinatorMessage__Output).body).to.equal('welcome');
    a.stream.on('error', () => undefined);
  });

  it('a flood of fake hellos without or with wrong certificates leaves no node in the inventory', async () => {
    const wrong = [pki.anonymousCredentials(), await pki.credentials('agent', 'flood-0'), await pki.credentials('viewer'), await pki.credentials('admin')];
    const attempts: Promise<CoordinatorMessage__Output | grpc.ServiceError>[] = [];
    for (let i = 0; i < 120; i++) attempts.push(hello(wrong[i % wrong.length], `victim-${i % 7}`).first);
    const results = await Promise.all(attempts);
    for (const r of results) expect((r as grpc.ServiceError).code, JSON.stringify(r)).to.be.oneOf([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]);
    expect(await nodeKeys()).to.deep.equal([]);
    expect(coord.streams.size).to.equal(0);
  });

  it('a viewer starting a job gets PERMISSION_DENIED naming the role; exec needs admin', async () => {
    const viewer = track(new (api().JobService)(coord.address, await pki.credentials('viewer', 'vera')));
    const e1 = await refusal(unary(viewer.startJob.bind(viewer), { kind: 'verify', nodeIds: ['n1'] }));
    expect(e1.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(e1.message).to.equal('permission denied: StartJob needs the operator role; you are vera (viewer)');
    const operator = track(new (api().JobService)(coord.address, await pki.credentials('operator', 'olga')));
    const e2 = await refusal(unary(operator.startJob.bind(operator), { kind: 'exec', nodeIds: ['n1'], argv: ['id'] }));
    expect(e2.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(e2.message).to.equal('permission denied: StartJob(kind=exec) needs the admin role; you are olga (operator)');
  });

  it('a forged requestedBy is ignored: the audit trail shows the certificate identity', async () => {
    await env.client.put(env.ks.node('n1')).value(JSON.stringify({ ...newNodeRecord('n1', new Date().toISOString()), state: 'Discovered' }));
    const admin = track(new (api().JobService)(coord.address, await pki.credentials('admin')));
    const job = await unary<object, { id: string; requestedBy: string }>(admin.startJob.bind(admin), {
      kind: 'exec', nodeIds: ['n1'], argv: ['id'], requestedBy: 'somebody-else', maxFailures: 1,
    });
    expect(job.requestedBy).to.equal('user:admin');
    const created = await waitFor('job.created', async () => (await events('job.created')).find((e) => e.jobId === job.id));
    expect(created.actor).to.equal('user:admin');
    expect(created.message).to.not.include('somebody-else');

    const cluster = track(new (api().ClusterService)(coord.address, await pki.credentials('operator', 'olga')));
    await unary(cluster.setMaintenance.bind(cluster), { id: 'n1', maintenance: true, reason: 'test' });
    expect((await events('node.maintenance')).map((e) => e.actor)).to.deep.equal(['user:olga']);
  });

  it('apply: a cluster file with command units needs admin (the plan is refused before any write); the event names the certificate', async () => {
    const doc = [
      'bundles:',
      '  - name: app',
      '    version: 1',
      '    units:',
      '      - { id: init, kind: command, run: "touch /opt/app/.initialised" }',
      'groups:',
      '  web: { bundle: app@1 }',
      '',
    ].join('\n');
    const before = await env.client.getAll().prefix(env.ks.prefix).strings();
    const operator = track(new (api().DeclarativeService)(coord.address, await pki.credentials('operator', 'olga')));
    const err = await refusal(unary(operator.apply.bind(operator), { document: doc, sourceName: 'cluster.yaml', requestedBy: 'root' }));
    expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(err.message).to.equal('permission denied: Apply(command units) needs the admin role; you are olga (operator)');
    expect(await env.client.getAll().prefix(env.ks.prefix).strings()).to.deep.equal(before);

    const admin = track(new (api().DeclarativeService)(coord.address, await pki.credentials('admin')));
    await unary(admin.apply.bind(admin), { document: doc, sourceName: 'cluster.yaml', requestedBy: 'root' });
    expect((await events('config.applied')).map((e) => e.actor)).to.deep.equal(['user:admin']);
  });

  it('users: added through PkiService, served, revoked, refused from the next call on', async () => {
    const pkiAdmin = track(new (api().PkiService)(coord.address, await pki.credentials('admin')));
    const added = await unary<object, { credentials: string; serial: string }>(pkiAdmin.addUser.bind(pkiAdmin), { name: 'alice', role: 'viewer' });
    const creds = parseCredentials(added.credentials);
    expect(creds).to.include({ user: 'alice', role: 'viewer' });
    expect(creds.coordinator).to.deep.equal([coord.address]);
    const alice = track(new (api().ClusterService)(coord.address, clientCredentials({ caPem: creds.ca, certPem: creds.certificate, keyPem: creds.key })));
    await unary(alice.listNodes.bind(alice), { labelSelector: '' });
    const viaAlice = track(new (api().PkiService)(coord.address, clientCredentials({ caPem: creds.ca, certPem: creds.certificate, keyPem: creds.key })));
    const denied = await refusal(unary(viaAlice.listUsers.bind(viaAlice), {}));
    expect(denied.message).to.equal('permission denied: ListUsers needs the admin role; you are alice (viewer)');

    const revoked = await unary<object, { serials: string[] }>(pkiAdmin.revokeUser.bind(pkiAdmin), { name: 'alice', reason: 'left' });
    expect(revoked.serials).to.deep.equal([added.serial]);
    // Every replica follows the revocation list by watch: allow the watch its moment.
    const err = await waitFor('alice refused', async () => {
      try {
        await unary(alice.listNodes.bind(alice), { labelSelector: '' });
        return undefined;
      } catch (e) {
        return e as ClusterError;
      }
    }, { timeoutMs: 5000, intervalMs: 50 });
    expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(err.message).to.match(/has been revoked/);
    expect((await events('pki.user.revoked'))[0].actor).to.equal('user:admin');
  });

  it('revoking a node closes its live stream at once; it cannot reconnect with that certificate', async () => {
    const pkiAdmin = track(new (api().PkiService)(coord.address, await pki.credentials('admin')));
    const { token } = await unary<object, { token: string }>(pkiAdmin.createToken.bind(pkiAdmin), { uses: 1, description: 'test' });
    const { keyPem, csrPem } = await createKeyAndCsr('node-r');
    const anonymousPki = track(new (api().PkiService)(coord.address, pki.anonymousCredentials()));
    const joined = await unary<object, { certificate: string; ca: string; serial: string }>(anonymousPki.join.bind(anonymousPki), { token, nodeId: 'node-r', csr: csrPem });
    const agentCreds = clientCredentials({ caPem: joined.ca, certPem: joined.certificate, keyPem });
    const live = hello(agentCreds, 'node-r');
    expect(((await live.first) as CoordinatorMessage__Output).body).to.equal('welcome');
    await waitFor('node-r connected', async () => coord.streams.isConnected('node-r'));
    const ended = new Promise<grpc.ServiceError>((resolve) => live.stream.on('error', resolve));

    const res = await unary<object, { serials: string[] }>(pkiAdmin.revokeNode.bind(pkiAdmin), { nodeId: 'node-r', reason: 'stolen' });
    expect(res.serials).to.deep.equal([joined.serial]);
    const err = await ended;
    expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(err.details).to.match(/has been revoked/);
    expect(coord.streams.isConnected('node-r')).to.equal(false);
    const again = (await hello(agentCreds, 'node-r').first) as grpc.ServiceError;
    expect(again.code).to.equal(grpc.status.UNAUTHENTICATED);
  });
});
