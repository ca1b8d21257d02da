/**
 * "Reload" and the one applied-record format, with a real etcd, a real in-process Coordinator
 * (its DriftWatcher records DriftReports), real gRPC on 127.0.0.1, real agent processes
 * (dist/agent/main.js, killed with SIGKILL) and in-process Agents running real file and command
 * units in sandbox roots.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '../../coordinator';
import { TokenStore } from '../../coordinator/pki';
import { jobRequest } from '../../coordinator/reconcile/job-request';
import { Agent } from '../../agent/agent';
import { findingOf, reverifyStore } from '../../agent/applied-reload';
import { FileAppliedStore } from '../../agent/applied-store';
import { migrateLegacyRecord, readAppliedRecord, type AppliedRecord } from '../../agent/applied-record';
import { CommandExecutor } from '../../agent/command-executor';
import { appliedState } from '../../agent/applied-store';
import { createUnitContext } from '../../agent/unit-context';
import { createHandlerRegistry } from '../../agent/units/handlers';
import { digestOf } from '../../shared/bundle/digest';
import { decodeDriftDetail } from '../../shared/command-report';
import { createLogger, decodeEvent, type EventRecord, type Logger, type NodeRecord } from '../../shared';
import { agentCredentials, BIN, ManagedProcess, run, SANDBOX_FACTS, spawnNode, testPki, useEtcd, waitFor } from '../helpers';

const quiet = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

/** A logger that keeps its JSON lines (to assert on "drift found" in-process). */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: 'debug', sink: (l) => lines.push(l) }) };
}

/** Two files and a guardless command (runs once per spec: the record's digests say it ran). */
const BUNDLE = {
  name: 'web', version: '1', variables: {},
  units: [
    { id: 'conf', kind: 'file', path: '/etc/app.conf', content: 'port=80\n', mode: '0644' },
    { id: 'motd', kind: 'file', path: '/etc/motd', content: 'managed\n', mode: '0644' },
    { id: 'count', kind: 'command', run: 'echo run >> "$NODE_ROOT/count"' },
  ],
  verify: [],
};
const BUNDLE_YAML = `name: web
version: "1"
units:
  - { id: conf, kind: file, path: /etc/app.conf, content: "port=80\\n", mode: "0644" }
  - { id: motd, kind: file, path: /etc/motd, content: "managed\\n", mode: "0644" }
  - { id: count, kind: command, run: 'echo run >> "$NODE_ROOT/count"' }
`;

describe('agent reload: one applied record, re-verify at start and on reconnect, DriftReport to the coordinator', function () {
  this.timeout(120_000);
  const env = useEtcd('reload');
  let dir: string;
  /** A join token of the current test's cluster (made with its coordinator). */
  let joinToken = '';
  /** Where agents join: the current test's coordinator. */
  let joinAddress = '';
  const cleanup: (() => Promise<void> | void)[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'reload-'));
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startCoordinator(id = 'r1'): Promise<Coordinator> {
    const coord = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: env.ks, logger: quiet.child({ replica: id }), replicaId: id, listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await (await testPki()).coordinatorPki(env.client, env.ks),
    });
    await coord.start();
    // Coordinator.stop is idempotent: a test may stop it early, cleanup stops it again.
    cleanup.push(() => coord.stop({ graceMs: 500 }));
    await waitFor(`${id} to lead`, () => coord.isLeader(), { timeoutMs: 15_000 });
    joinAddress = coord.address;
    joinToken = (await new TokenStore(env.client, env.ks, (await testPki()).ca.publicKeyHash).create({})).token;
    return coord;
  }

  async function nodeRecord(coord: Coordinator, id: string): Promise<NodeRecord | undefined> {
    return (await coord.nodes.get(id))?.record;
  }

  async function events(type: string, nodeId: string): Promise<EventRecord[]> {
    const kvs = await env.client.getAll().prefix(env.ks.eventsPrefix()).exec();
    return kvs.kvs.map((kv) => decodeEvent(kv.key.toString(), kv.value.toString())).filter((e) => e.type === type && e.nodeId === nodeId);
  }

  function nodeDirs(name: string): { root: string; state: string } {
    const root = join(dir, name, 'root');
    const state = join(dir, name, 'state');
    mkdirSync(root, { recursive: true });
    return { root, state };
  }

  function spawnAgent(nodeId: string, root: string, state: string, bootId: string): ManagedProcess {
    const p = spawnNode(`agent ${nodeId} ${bootId}`, BIN.agent, [
      '--etcd', env.etcd.endpoint, '--node-id', nodeId, '--state-dir', state, '--root', root, '--prefix', env.ks.prefix,
      '--boot-id', bootId, '--lease-ttl', '3', '--hostname', `${nodeId}.lab`, '--log-level', 'debug',
      // Joins at its first start; a restart on the same state dir uses the stored certificate.
      '--join-token', joinToken, '--join-address', joinAddress,
    ], { logFile: join(dir, `agent-${nodeId}.log`) });
    cleanup.push(() => p.kill('SIGKILL'));
    return p;
  }

  /** An in-process agent whose daemon parts are wired as main.ts wires them. */
  async function startAgent(nodeId: string, root: string, state: string, bootId: string, logger: Logger): Promise<Agent> {
    const context = createUnitContext({ root, logger: quiet });
    const applied = await FileAppliedStore.open(state, logger);
    const handlers = createHandlerRegistry();
    const ref: { agent?: Agent } = {};
    const executor = new CommandExecutor({
      handlers, context, applied, logger: quiet, facts: () => Promise.resolve(SANDBOX_FACTS),
      onAppliedChanged: () => { ref.agent?.appliedChanged(); },
      onConverged: () => ref.agent?.converged(),
    });
    const a = new Agent(
      { nodeId, leaseTtlMs: 3000, prefix: env.ks.prefix, hostname: `${nodeId}.lab`, bootId, factsIntervalMs: 0 },
      {
        etcd: env.client, logger, credentials: await agentCredentials(nodeId), factsProvider: () => Promise.resolve(SANDBOX_FACTS), commandHandler: executor, applied: () => appliedState(applied),
        reverify: (signal) => reverifyStore(applied, context, { handlers, signal }),
      },
    );
    ref.agent = a;
    cleanup.push(async () => { await a.stop(1000); context.close(); });
    await a.start();
    return a;
  }

  it('`cluster-agent apply` then the daemon on the same state dir: it reports that record; a managed file changed, the agent restarted with a new boot id → "drift found" logged, DriftReport recorded on the node with a node.drift event', async () => {
    const coord = await startCoordinator();
    const { root, state } = nodeDirs('n1');
    const bundleFile = join(dir, 'web.yaml');
    writeFileSync(bundleFile, BUNDLE_YAML);
    const applied = await run(process.execPath, [BIN.agent, 'apply', '--bundle', bundleFile, '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
    expect(applied.code, applied.stderr + applied.stdout).to.equal(0);
    const record = await readAppliedRecord(state);
    expect(record?.format).to.equal(1);

    let agent = spawnAgent('n1', root, state, 'boot-1');
    await agent.waitForLog(/"msg":"applied record re-verified: no drift"/, 60_000);
    await waitFor('the daemon to report the CLI record\'s digest', async () => (await nodeRecord(coord, 'n1'))?.appliedDigest === record?.digest, { timeoutMs: 30_000 });
    expect(agent.logs).not.to.match(/"msg":"drift found"/);
    expect((await nodeRecord(coord, 'n1'))?.driftSummary).to.equal(undefined);

    // Behind the agent's back, then a "reboot": SIGKILL and a new boot id.
    writeFileSync(join(root, 'etc/app.conf'), 'port=8080\nextra=1\n');
    await agent.kill('SIGKILL');
    agent = spawnAgent('n1', root, state, 'boot-2');
    await agent.waitForLog(/"msg":"drift found"/, 60_000);
    const line = agent.logs.split('\n').find((l) => l.includes('"msg":"drift found"')) ?? '';
    const logged = JSON.parse(line) as { summary: string; appliedDigest: string };
    expect(logged.summary).to.match(/^1 of 3 units drifted: conf \(/);
    expect(logged.appliedDigest).to.equal(record?.digest);

    const n = await waitFor('driftSummary on the node', async () => {
      const r = await nodeRecord(coord, 'n1');
      return r?.driftSummary ? r : undefined;
    }, { timeoutMs: 30_000 });
    expect(n.driftSummary).to.equal(logged.summary);
    expect(n.bootId).to.equal('boot-2');
    const drift = await events('node.drift', 'n1');
    expect(drift.length).to.be.greaterThan(0);
    expect(drift[0].message).to.equal(logged.summary);
    // The re-verify reads only: the drifted file is still as the operator left it.
    expect(readFileSync(join(root, 'etc/app.conf'), 'utf8')).to.equal('port=8080\nextra=1\n');
  });

  it('a daemon apply (commission job) writes the record `cluster-agent verify` reads: guardless command counted as run, drift found after a change', async () => {
    const coord = await startCoordinator();
    await env.client.put(env.ks.config('web', '1')).value(JSON.stringify(BUNDLE));
    await env.client.put(env.ks.group('web')).value(JSON.stringify({ name: 'web', bundle: 'web', version: '1', variables: {} }));
    const { root, state } = nodeDirs('n2');
    const agent = await startAgent('n2', root, state, 'boot-1', quiet);
    await waitFor('n2 discovered and connected', async () => (await nodeRecord(coord, 'n2'))?.state === 'Discovered' && coord.streams.isConnected('n2'), { timeoutMs: 30_000 });
    const job = await coord.jobs.starter.start(jobRequest({ kind: 'commission', nodeIds: ['n2'], group: 'web', requestedBy: 'test' }));
    await waitFor('n2 commissioned', async () => (await nodeRecord(coord, 'n2'))?.state === 'Commissioned', { timeoutMs: 60_000 });
    expect(job.record.id).to.be.a('string');

    const record = await readAppliedRecord(state);
    expect(record?.format).to.equal(1);
    expect(record?.bundleName).to.equal('web');
    expect(record?.status).to.equal('complete');
    expect(record?.units.map((u) => `${u.id}:${u.converged}`)).to.deep.equal(['conf:true', 'motd:true', 'count:true']);
    expect((await nodeRecord(coord, 'n2'))?.appliedDigest).to.equal(record?.digest);

    const verify = (): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      run(process.execPath, [BIN.agent, 'verify', '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
    const clean = await verify();
    expect(clean.code, clean.stdout + clean.stderr).to.equal(0);
    expect(clean.stdout).to.match(/verified web@1: 3 units as specified/);
    expect(readFileSync(join(root, 'count'), 'utf8')).to.equal('run\n');

    writeFileSync(join(root, 'etc/motd'), 'hacked\n');
    const drifted = await verify();
    expect(drifted.code, drifted.stdout + drifted.stderr).to.equal(2);
    expect(drifted.stdout).to.match(/~ motd: /);

    // Restart the daemon: it finds the drift; a repair converges the node without changing the
    // record, and the finding is forgotten (not re-sent after the next reconnect).
    await agent.stop(1000);
    const restarted = await startAgent('n2', root, state, 'boot-2', quiet);
    await restarted.reverifyIdle();
    expect(restarted.lastDriftFinding?.summary).to.match(/^1 of 3 units drifted: motd/);
    await waitFor('n2 reconnected', () => restarted.connected && coord.streams.isConnected('n2'), { timeoutMs: 30_000 });
    // The drift watcher answers the new boot id with a verify job (or, when it had no baseline
    // yet, takes boot-2 as one); a repair started before that job ends would be refused.
    await waitFor('the drift watcher done with boot-2', async () => {
      const n = await nodeRecord(coord, 'n2');
      return n?.verifiedBootId === 'boot-2' && n.currentJob === undefined;
    }, { timeoutMs: 60_000 });
    const repair = await coord.jobs.starter.start(jobRequest({ kind: 'repair', nodeIds: ['n2'], requestedBy: 'test' }));
    await waitFor('motd repaired', () => readFileSync(join(root, 'etc/motd'), 'utf8') === 'managed\n', { timeoutMs: 60_000 });
    await waitFor('the drift finding forgotten', () => restarted.lastDriftFinding === undefined, { timeoutMs: 10_000 });
    expect(repair.record.id).to.be.a('string');
    expect(readFileSync(join(root, 'count'), 'utf8'), 'the guardless command did not run again').to.equal('run\n');
    expect((await readAppliedRecord(state))?.digest).to.equal(record?.digest);
  });

  it('an old daemon-format record is converted (logged, written back, re-verified without drift); an unusable one is logged, left alone and reported as drift "re-apply needed"', async () => {
    const coord = await startCoordinator();
    // What agent versions before the one format wrote: {bundle, version, digest, appliedAt, units, bundleJson}.
    const { root, state } = nodeDirs('n3');
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/app.conf'), 'port=80\n', { mode: 0o644 });
    writeFileSync(join(root, 'etc/motd'), 'managed\n', { mode: 0o644 });
    const old = {
      bundle: 'web', version: '1', digest: digestOf(BUNDLE), appliedAt: '2024-05-01T00:00:00.000Z',
      units: Object.fromEntries(BUNDLE.units.map((u) => [u.id, digestOf(u)])), bundleJson: JSON.stringify(BUNDLE),
    };
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, 'applied.json'), JSON.stringify(old));

    // The local CLI reads it too (converted in memory; it does not write on verify).
    const cli = await run(process.execPath, [BIN.agent, 'verify', '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
    expect(cli.code, cli.stdout + cli.stderr).to.equal(0);
    expect(JSON.parse(readFileSync(join(state, 'applied.json'), 'utf8'))).to.deep.equal(old);

    const cap = capturingLogger();
    const agent = await startAgent('n3', root, state, 'boot-1', cap.logger);
    expect(cap.lines.some((l) => l.includes('"msg":"applied record converted from the old daemon format"'))).to.equal(true);
    const onDisk = JSON.parse(readFileSync(join(state, 'applied.json'), 'utf8')) as AppliedRecord;
    expect(onDisk).to.deep.equal(migrateLegacyRecord(old, join(state, 'applied.json')));
    expect(onDisk.format).to.equal(1);
    expect(onDisk.units.every((u) => u.converged)).to.equal(true);
    await agent.reverifyIdle();
    expect(agent.lastDriftFinding?.drifted).to.equal(false);
    expect(cap.lines.some((l) => l.includes('"msg":"applied record re-verified: no drift"'))).to.equal(true);
    await waitFor('the converted digest in the hello', async () => (await nodeRecord(coord, 'n3'))?.appliedDigest === onDisk.digest, { timeoutMs: 30_000 });

    // A record nobody can read: not "nothing applied", not a crash.
    const { root: root4, state: state4 } = nodeDirs('n4');
    mkdirSync(state4, { recursive: true });
    writeFileSync(join(state4, 'applied.json'), '{"something":"else"}');
    const cap4 = capturingLogger();
    await startAgent('n4', root4, state4, 'boot-1', cap4.logger);
    const err = cap4.lines.find((l) => l.includes('"msg":"applied record unusable: re-apply needed"'));
    expect(err, cap4.lines.join('\n')).to.be.a('string');
    expect(err).to.match(/unknown format; move it aside and re-apply/);
    const n4 = await waitFor('n4 drift recorded', async () => {
      const r = await nodeRecord(coord, 'n4');
      return r?.driftSummary ? r : undefined;
    }, { timeoutMs: 30_000 });
    expect(n4.driftSummary).to.match(/^applied record unusable: applied record .*applied\.json has an unknown format/);
    expect(readFileSync(join(state4, 'applied.json'), 'utf8')).to.equal('{"something":"else"}');
  });

  it('drift found while no coordinator is up is sent once connected; a reconnect after an outage re-verifies and reports the new drift', async () => {
    const { root, state } = nodeDirs('n5');
    const bundleFile = join(dir, 'web.yaml');
    writeFileSync(bundleFile, BUNDLE_YAML);
    const applied = await run(process.execPath, [BIN.agent, 'apply', '--bundle', bundleFile, '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
    expect(applied.code, applied.stderr).to.equal(0);
    writeFileSync(join(root, 'etc/app.conf'), 'changed\n');

    const cap = capturingLogger();
    const agent = await startAgent('n5', root, state, 'boot-1', cap.logger);
    await agent.reverifyIdle();
    expect(agent.lastDriftFinding?.summary).to.match(/^1 of 3 units drifted: conf/);
    expect(cap.lines.some((l) => l.includes('"msg":"drift found"'))).to.equal(true);
    expect(agent.connected).to.equal(false);

    const c1 = await startCoordinator('r1');
    const n = await waitFor('queued drift recorded', async () => {
      const r = await nodeRecord(c1, 'n5');
      return r?.driftSummary ? r : undefined;
    }, { timeoutMs: 30_000 });
    expect(n.driftSummary).to.match(/^1 of 3 units drifted: conf/);

    // Outage (longer than the ping interval, at least 1 s), drift grows meanwhile.
    await c1.stop({ graceMs: 500 });
    await waitFor('agent notices the outage', () => !agent.connected, { timeoutMs: 15_000 });
    writeFileSync(join(root, 'etc/motd'), 'changed too\n');
    await new Promise((r) => setTimeout(r, 1500));
    const c2 = await startCoordinator('r2');
    const n2 = await waitFor('new drift recorded after the reconnect', async () => {
      const r = await nodeRecord(c2, 'n5');
      return r?.driftSummary?.startsWith('2 of 3') ? r : undefined;
    }, { timeoutMs: 45_000 });
    expect(n2.driftSummary).to.match(/conf .*motd/);
    expect(cap.lines.filter((l) => l.includes('"msg":"drift found"')).length).to.be.greaterThan(1);
    expect(cap.lines.some((l) => /"msg":"drift found".*"reason":"reconnected after \d+ ms away"/.test(l))).to.equal(true);
  });

  it('findingOf keeps the drift detail bounded (changes dropped, then units cut with a count)', () => {
    const units = Array.from({ length: 500 }, (_, i) => ({
      unitId: `u${i}`, kind: 'file' as const, action: 'update' as const, summary: `update /etc/f${i}: content changed`,
      changes: [{ field: 'content', before: 'x'.repeat(50), after: 'y'.repeat(50) }],
    }));
    const report = {
      bundle: { name: 'b', version: '1' }, appliedDigest: 'sha256:x', appliedAt: '', checkedAt: '', drifted: true, incomplete: false,
      units, failedProbes: [], summary: 'many',
      report: { mode: 'verify' as const, bundle: { name: 'b', version: '1' }, ok: false, changed: [], units: [], probes: [], cancelled: false, durationMs: 0 },
    };
    const table: { max: number; changes: boolean; omitted: boolean }[] = [
      { max: 1_000_000, changes: true, omitted: false },
      { max: 80_000, changes: false, omitted: false },
      { max: 8_000, changes: false, omitted: true },
    ];
    for (const row of table) {
      const f = findingOf(report, row.max);
      expect(JSON.stringify(f.detail).length, String(row.max)).to.be.at.most(row.max);
      const body = decodeDriftDetail(f.detail);
      expect(body, 'the full run report stays local').to.not.have.property('report');
      expect(body.drifted).to.equal(true);
      expect(body.units[0].changes.length > 0, String(row.max)).to.equal(row.changes);
      expect(body.unitsOmitted > 0, String(row.max)).to.equal(row.omitted);
    }
  });
});
