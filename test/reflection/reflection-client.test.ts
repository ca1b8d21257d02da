/**
 * Server reflection as a third-party client sees it: Debian's python3-grpcio / python3-protobuf
 * (the C++ protobuf runtime, as strict as protoc) loads every file descriptor the coordinator
 * serves, builds a message class for every method's input and output, and makes one call over
 * mutual TLS. Map entry types must be named `<Field>Entry` and type names must resolve, or the
 * descriptor pool refuses the file (the grpcurl issue 519 class of bug).
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { EtcdServer, REPO_ROOT, run, testPki, waitFor, type TestPki } from '../helpers';
import { Coordinator } from '../../coordinator';
import { createLogger, Keyspace } from '../../shared';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(REPO_ROOT, 'test', 'reflection', 'reflection_client.py');

describe('server reflection with a real third-party client (python3-grpcio)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let pki: TestPki;
  let coordinator: Coordinator | undefined;
  let dir: string;

  before(async function () {
    const probe = await run(PYTHON, ['-c', 'import grpc, google.protobuf'], { timeoutMs: 20_000 }).catch(() => undefined);
    if (!probe || probe.code !== 0) throw new Error(`${PYTHON} with python3-grpcio and python3-protobuf is required (scripts/ensure-deps installs them)`);
    etcd = await EtcdServer.start('reflection');
    client = etcd.client();
    pki = await testPki();
    dir = mkdtempSync(join(tmpdir(), 'reflection-client-'));
  });
  after(async () => {
    await coordinator?.stop({ graceMs: 500 });
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists every service, resolves every method type into a message class and makes a call', async () => {
    const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    coordinator = new Coordinator({
      etcd: client, etcdTls: etcd.rootTls, keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
    });
    await coordinator.start();
    const c = coordinator;
    await waitFor('leader', () => c.isLeader(), { timeoutMs: 15_000 });
    const id = await pki.identity('viewer');
    const [ca, cert, key] = ['ca.crt', 'viewer.crt', 'viewer.key'].map((f) => join(dir, f));
    writeFileSync(ca, pki.caPem);
    writeFileSync(cert, id.certPem);
    writeFileSync(key, id.keyPem, { mode: 0o600 });
    expect(existsSync(SCRIPT)).to.equal(true);

    const r = await run(PYTHON, [SCRIPT, c.address, ca, cert, key, 'cluster.v1.ClusterService/GetStatus'], { timeoutMs: 40_000 });
    expect(r.code, `python client failed: ${r.stderr}`).to.equal(0);
    const out = JSON.parse(r.stdout) as { services: string[]; methods: number; call: { replicas?: { id?: string }[] } };
    expect(out.services).to.include.members([
      'cluster.v1.AgentService', 'cluster.v1.ClusterService', 'cluster.v1.JobService', 'cluster.v1.ConfigService',
      'cluster.v1.FileService', 'cluster.v1.DeclarativeService', 'cluster.v1.PkiService', 'grpc.health.v1.Health',
    ]);
    expect(out.methods).to.be.greaterThan(30);
    expect(out.call.replicas?.length, JSON.stringify(out.call)).to.be.greaterThan(0);
  });
});
