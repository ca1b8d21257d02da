/**
 * Server reflection as a third-party client sees it: Debian's python3-grpcio / python3-protobuf
 * (the C++ protobuf runtime, as strict as protoc) loads every file descriptor the coordinator
 * serves, builds a message class for every method's input and output, and makes one call over
 * mutual TLS. Map entry types must be named `<Field>Entry` and type names must resolve, or the
 * descriptor pool refuses the file (the grpcurl issue 519 class of bug). And protoc itself
 * (Debian's protobuf-compiler) loads the whole set fetched by reflection; that it refuses the
 * pre-fix map entry names is shown on a copy with one entry renamed back.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { FileDescriptorSet, type IFileDescriptorSet } from 'protobufjs/ext/descriptor';
import { EtcdServer, REPO_ROOT, run, testPki, waitFor, type RunResult, type TestPki } from '../helpers';
import { Coordinator } from '../../coordinator';
import { createLogger, Keyspace } from '../../shared';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(REPO_ROOT, 'test', 'reflection', 'reflection_client.py');
const SET_SCRIPT = join(REPO_ROOT, 'test', 'reflection', 'reflection_descriptor_set.py');
const PROTOC = '/usr/bin/protoc';

/** protoc loads `files` from the set `setPath` (building each into its strict descriptor pool) and writes them back. */
function protocCheck(setPath: string, files: readonly string[]): Promise<RunResult> {
  return run(PROTOC, [`--descriptor_set_in=${setPath}`, '--descriptor_set_out=/dev/null', ...files], { timeoutMs: 20_000 });
}

/** The set with the map entry of one field named as @grpc/proto-loader named it before the fix (`Labels`, not `LabelsEntry`). */
function withProtobufjsMapEntry(set: IFileDescriptorSet): { set: IFileDescriptorSet; what: string } {
  const copy = FileDescriptorSet.toObject(FileDescriptorSet.fromObject(set)) as IFileDescriptorSet;
  for (const file of copy.file ?? []) {
    for (const m of file.messageType ?? []) {
      for (const field of m.field ?? []) {
        const entry = (m.nestedType ?? []).find((n) => n.options?.mapEntry === true && field.typeName === `.${file.package ?? ''}.${m.name ?? ''}.${n.name ?? ''}`);
        if (!entry?.name?.endsWith('Entry')) continue;
        const old = entry.name;
        entry.name = old.slice(0, -'Entry'.length);
        field.typeName = `.${file.package ?? ''}.${m.name ?? ''}.${entry.name}`;
        return { set: copy, what: `${m.name ?? ''}.${old} renamed ${entry.name}` };
      }
    }
  }
  throw new Error('no map field in the served descriptors');
}

describe('server reflection with a real third-party client (python3-grpcio)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let pki: TestPki;
  let coordinator: Coordinator | undefined;
  let dir: string;
  let ca: string;
  let cert: string;
  let key: string;
  const address = (): string => {
    if (!coordinator) throw new Error('no coordinator');
    return coordinator.address;
  };

  before(async function () {
    const probe = await run(PYTHON, ['-c', 'import grpc, google.protobuf'], { timeoutMs: 20_000 }).catch(() => undefined);
    if (!probe || probe.code !== 0) throw new Error(`${PYTHON} with python3-grpcio and python3-protobuf is required (scripts/ensure-deps installs them)`);
    etcd = await EtcdServer.start('reflection');
    client = etcd.client();
    pki = await testPki();
    dir = mkdtempSync(join(tmpdir(), 'reflection-client-'));
    const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    coordinator = new Coordinator({
      etcd: client, etcdTls: etcd.rootTls, keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
    });
    await coordinator.start();
    const c = coordinator;
    await waitFor('leader', () => c.isLeader(), { timeoutMs: 15_000 });
    const id = await pki.identity('viewer');
    [ca, cert, key] = ['ca.crt', 'viewer.crt', 'viewer.key'].map((f) => join(dir, f));
    writeFileSync(ca, pki.caPem);
    writeFileSync(cert, id.certPem);
    writeFileSync(key, id.keyPem, { mode: 0o600 });
  });
  after(async () => {
    await coordinator?.stop({ graceMs: 500 });
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists every service, resolves every method type into a message class and makes a call', async () => {
    expect(existsSync(SCRIPT)).to.equal(true);
    const r = await run(PYTHON, [SCRIPT, address(), ca, cert, key, 'cluster.v1.ClusterService/GetStatus'], { timeoutMs: 40_000 });
    expect(r.code, `python client failed: ${r.stderr}`).to.equal(0);
    const out = JSON.parse(r.stdout) as { services: string[]; methods: number; call: { replicas?: { id?: string }[] } };
    expect(out.services).to.include.members([
      'cluster.v1.AgentService', 'cluster.v1.ClusterService', 'cluster.v1.JobService', 'cluster.v1.ConfigService',
      'cluster.v1.FileService', 'cluster.v1.DeclarativeService', 'cluster.v1.PkiService', 'grpc.health.v1.Health',
    ]);
    expect(out.methods).to.be.greaterThan(30);
    expect(out.call.replicas?.length, JSON.stringify(out.call)).to.be.greaterThan(0);
  });

  it('protoc accepts every file descriptor served by reflection, and refuses the pre-fix map entry names', async () => {
    if (!existsSync(PROTOC)) throw new Error(`${PROTOC} is required (Debian package protobuf-compiler; scripts/ensure-deps installs it)`);
    const setPath = join(dir, 'served.pb');
    const r = await run(PYTHON, [SET_SCRIPT, address(), ca, cert, key, setPath], { timeoutMs: 40_000 });
    expect(r.code, `reflection fetch failed: ${r.stderr}`).to.equal(0);
    const { files } = JSON.parse(r.stdout) as { files: string[] };
    expect(files.some((f) => f.includes('cluster')), files.join(', ')).to.equal(true);
    const served = FileDescriptorSet.toObject(FileDescriptorSet.decode(readFileSync(setPath))) as IFileDescriptorSet;
    expect(served.file?.map((f) => f.name)).to.deep.equal(files);

    const ok = await protocCheck(setPath, files);
    expect(ok.code, `protoc refused the served descriptors: ${ok.stderr}`).to.equal(0);
    expect(ok.stderr).to.equal('');

    // protoc resolves a relative type name by scope, as in a .proto file, so it would not see
    // the other half of the pre-fix bug: every reference must be fully qualified.
    const relative = (served.file ?? []).flatMap((f) => [
      ...(f.messageType ?? []).flatMap(function refs(m): string[] {
        return [...(m.field ?? []).map((x) => x.typeName ?? ''), ...(m.nestedType ?? []).flatMap(refs)];
      }),
      ...(f.service ?? []).flatMap((s) => (s.method ?? []).flatMap((x) => [x.inputType ?? '', x.outputType ?? ''])),
    ]).filter((t) => t !== '' && !t.startsWith('.'));
    expect(relative, 'type names not fully qualified').to.deep.equal([]);

    // The check can fail: one map entry put back the way it was served before the fix.
    const bad = withProtobufjsMapEntry(served);
    const badPath = join(dir, 'protobufjs-map-entry.pb');
    writeFileSync(badPath, FileDescriptorSet.encode(FileDescriptorSet.fromObject(bad.set)).finish());
    const refused = await protocCheck(badPath, files);
    expect(refused.code, `protoc accepted ${bad.what}`).to.not.equal(0);
    expect(refused.stderr, bad.what).to.match(/map_entry should not be set explicitly/);
  });
});
