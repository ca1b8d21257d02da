/**
 * Lifecycle jobs end to end in one process: real etcd, real gRPC on 127.0.0.1 (AgentService
 * streams and JobService), in-process Coordinators and Agents whose CommandExecutor runs real
 * file and command units (real child processes) in per-node sandbox roots.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { useEtcd, waitFor, delay, testPki, agentCredentials, SANDBOX_FACTS, type TestPki } from '../helpers';
import { Coordinator, type CoordinatorSettings } from '../../coordinator';
import { CANCELLED_BY_OPERATOR, commandIdFor, ConfigReader } from '../../coordinator/jobs';
import { CommandRouter } from '../../coordinator/jobs/command-dispatch';
import { JobProgress } from '../../coordinator/jobs/job-progress';
import { Agent } from '../../agent/agent';
import { CommandExecutor } from '../../agent/command-executor';
import { MemoryAppliedStore, appliedState } from '../../agent/applied-store';
import { createUnitContext } from '../../agent/unit-context';
import { createHandlerRegistry } from '../../agent/units/handlers';
import { createLogger, fromGrpcError, loadProto, systemClock, type NodeRecord } from '../../shared';
import type { JobServiceClient } from '../../generated/cluster/v1/JobService';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { StartJobRequest } from '../../generated/cluster/v1/StartJobRequest';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

/** A file unit templated with vars and facts, and a command unit that counts its runs. */
const BUNDLE = {
  name: 'web', version: '1', variables: { greeting: 'hello', sleep: '0' },
  units: [
    { id: 'conf', kind: 'file', path: '/etc/app.conf', content: 'greeting={{ vars.greeting }} host={{ facts.hostname }}\n', mode: '0644' },
    { id: 'count', kind: 'command', run: 'echo $$ > "$NODE_ROOT/pid"; echo run >> "$NODE_ROOT/count"; sleep {{ vars.sleep }} && test ! -f "$NODE_ROOT/fail-here" && echo done >> "$NODE_ROOT/done"' },
  ],
  verify: [],
};

interface Replica {
  coord: Coordinator;
  client: JobServiceClient;
}

interface TestAgent {
  agent: Agent;
  root: string;
}

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res)));
  });
}

describe('lifecycle jobs (real etcd, gRPC, agents running units)', function () {
  this.timeout(120_000);
  const env = useEtcd('jobs');
  let replicas: Replica[] = [];
  let agents: TestAgent[] = [];

  let pki: TestPki;

  before(async () => {
    pki = await testPki();
  });
  afterEach(async () => {
    await Promise.all(agents.map((a) => a.agent.stop(1000)));
    for (const a of agents) rmSync(a.root, { recursive: true, force: true });
    agents = [];
    for (const r of replicas) await stopReplica(r);
    replicas = [];
  });

  async function stopReplica(r: Replica): Promise<void> {
    r.client.close();
    await r.coord.stop({ graceMs: 500 });
  }

  /**
   * One replica as production runs it: the Coordinator's own job runner (started when it leads)
   * with the test's timings, and a JobService client of its own port. A second runner on the
   * same keyspace would run every job twice and race the first for each result (a cancel seen
   * by one of them only was recorded 'failed' by the other). `settings` override the test's.
   */
  async function startReplica(id: string, settings: Partial<CoordinatorSettings> = {}): Promise<Replica> {
    const coord = new Coordinator({
      etcd: env.client, etcdTls: env.etcd.rootTls, keyspace: env.ks, logger: logger.child({ replica: id }), replicaId: id, listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(env.client, env.ks),
      jobConnectTimeoutMs: 15_000, jobCancelGraceMs: 5000, jobProgressFlushMs: 100, jobResyncIntervalMs: 1000, ...settings,
    });
    await coord.start();
    const { api } = loadProto();
    const jobClient = new api.cluster.v1.JobService(coord.address, await pki.credentials('operator'));
    const r = { coord, client: jobClient };
    replicas.push(r);
    return r;
  }

  async function startAgent(nodeId: string): Promise<TestAgent> {
    const root = mkdtempSync(join(tmpdir(), `job-${nodeId}-`));
    const context = createUnitContext({ root, logger });
    const applied = new MemoryAppliedStore();
    const executor = new CommandExecutor({ handlers: createHandlerRegistry(), context, applied, logger, facts: () => Promise.resolve(SANDBOX_FACTS) });
    const agent = new Agent(
      { nodeId, leaseTtlMs: 3000, prefix: env.ks.prefix, hostname: `${nodeId}.lab`, bootId: 'boot-1', factsIntervalMs: 0 },
      {
        etcd: env.client, logger: logger.child({ nodeId }), credentials: await agentCredentials(nodeId), factsProvider: () => Promise.resolve(SANDBOX_FACTS),
        commandHandler: executor, applied: () => appliedState(applied),
      },
    );
    await agent.start();
    const a = { agent, root };
    agents.push(a);
    return a;
  }

  async function node(r: Replica, id: string): Promise<NodeRecord> {
    const n = await r.coord.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n.record;
  }

  async function setup(nodeIds: string[], groupVars: Record<string, string> = {}, settings: Partial<CoordinatorSettings> = {}): Promise<{ leader: Replica; agents: Map<string, TestAgent> }> {
    await env.client.put(env.ks.config('web', '1')).value(JSON.stringify(BUNDLE));
    await env.client.put(env.ks.group('web')).value(JSON.stringify({ name: 'web', bundle: 'web', version: '1', variables: groupVars }));
    const leader = await startReplica('r1', settings);
    await waitFor('r1 to lead', () => leader.coord.isLeader(), { timeoutMs: 15_000 });
    const map = new Map<string, TestAgent>();
    for (const id of nodeIds) map.set(id, await startAgent(id));
    await waitFor('nodes discovered and connected', async () => {
      for (const id of nodeIds) {
        const n = await leader.coord.nodes.get(id);
        if (n?.record.state !== 'Discovered' || !leader.coord.streams.isConnected(id)) return false;
      }
      return true;
    }, { timeoutMs: 30_000 });
    return { leader, agents: map };
  }

  const start = (r: Replica, req: StartJobRequest): Promise<Job__Output> => unary(r.client.startJob.bind(r.client), req);
  const get = (r: Replica, id: string): Promise<JobDetail__Output> => unary(r.client.getJob.bind(r.client), { id });

  async function finished(r: Replica, id: string, timeoutMs = 60_000): Promise<JobDetail__Output> {
    return waitFor(`job ${id} to finish`, async () => {
      const d = await get(r, id);
      return ['Succeeded', 'Failed', 'Cancelled', 'RolledBack'].includes(d.job?.state ?? '') ? d : undefined;
    }, { timeoutMs, intervalMs: 200 });
  }

  const lines = (path: string): number => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).length : 0);

  it('commissions 3 agents: units applied in each sandbox, nodes Commissioned in the group, claims released; a second commission and unknown nodes are refused and change nothing', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { leader, agents: ag } = await setup(ids);
    const job = await start(leader, { kind: 'commission', nodeIds: ids, group: 'web', extraVarsJson: '{"greeting":"hi"}', requestedBy: 'test' });
    expect(job.state).to.equal('Pending');
    expect(job.nodeIds).to.deep.equal(ids);
    const d = await finished(leader, job.id);
    expect(d.job?.state, d.job?.message).to.equal('Succeeded');
    expect(d.job?.counts).to.deep.equal({ succeeded: 3 });
    for (const id of ids) {
      const root = ag.get(id)?.root ?? '';
      expect(readFileSync(join(root, 'etc/app.conf'), 'utf8')).to.equal('greeting=hi host=sandbox\n');
      expect(lines(join(root, 'count'))).to.equal(1);
      const n = await node(leader, id);
      expect(n.state).to.equal('Commissioned');
      expect(n.group).to.equal('web');
      expect(n.appliedConfig).to.equal('web@1');
      expect(n.appliedDigest).to.match(/^sha256:/);
      expect(n.currentJob).to.equal(undefined);
      const jn = d.nodes.find((x) => x.nodeId === id);
      expect(jn?.state).to.equal('succeeded');
      expect(jn?.units.map((u) => `${u.unitId}:${u.status}`)).to.deep.equal(['conf:changed', 'count:changed']);
    }
    // Refusals: nothing may change (same node revisions, no new job). The drift watcher's
    // baseline (its write after a commission) lands first, so it is not counted as a change.
    await waitFor('the verify baselines', async () => {
      for (const id of ids) if (!(await leader.coord.nodes.get(id))?.record.verifiedBootId) return false;
      return true;
    });
    const before = await Promise.all(ids.map(async (id) => (await leader.coord.nodes.get(id))?.modRevision));
    const again = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web' }).catch((e: unknown) => e as Error);
    expect(again).to.be.instanceOf(Error);
    expect((again as Error).message).to.match(/node n1 is Commissioned; it cannot move to Commissioning \(from Commissioned it can move to Upgrading, Decommissioning\)/);
    const unknown = await start(leader, { kind: 'upgrade', nodeIds: ['n1', 'nope'] }).catch((e: unknown) => e as Error);
    expect((unknown as { code?: number }).code).to.equal(grpc.status.NOT_FOUND);
    expect((unknown as Error).message).to.include('node nope not found');
    const badKind = await start(leader, { kind: 'explode', nodeIds: ['n1'] }).catch((e: unknown) => e as Error);
    expect((badKind as Error).message).to.match(/unknown job kind "explode": use one of commission/);
    const after = await Promise.all(ids.map(async (id) => (await leader.coord.nodes.get(id))?.modRevision));
    expect(after).to.deep.equal(before);
    const list = await unary(leader.client.listJobs.bind(leader.client), { state: '', limit: 0 });
    expect(list.jobs.map((j) => j.id)).to.deep.equal([job.id]);
  });

  it('a commission carries the group\'s allowed paths: a group record the coordinator\'s checks never saw (written to etcd directly) is refused by the agent before any unit runs', async () => {
    const { leader, agents: ag } = await setup(['n1']);
    // As an older coordinator or a hand edit could have left it: the bundle writes /etc/app.conf.
    await env.client.put(env.ks.group('web')).value(JSON.stringify({ name: 'web', bundle: 'web', version: '1', variables: {}, allowedPaths: ['/opt/web'] }));
    const job = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web', requestedBy: 'test' });
    const d = await finished(leader, job.id);
    expect(d.job?.state, d.job?.message).to.equal('Failed');
    const jn = d.nodes.find((x) => x.nodeId === 'n1');
    expect(jn?.error).to.match(/refused: unit conf writes "\/etc\/app\.conf", outside the allowed paths \(\/opt\/web\)$/);
    const root = ag.get('n1')?.root ?? '';
    expect(existsSync(join(root, 'etc/app.conf'))).to.equal(false);
    expect(lines(join(root, 'count'))).to.equal(0);
  });

  it('rolling with batch 1 stops at the failure threshold: later nodes skipped and released', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { leader, agents: ag } = await setup(ids);
    writeFileSync(join(ag.get('n2')?.root ?? '', 'fail-here'), '');
    const job = await start(leader, { kind: 'commission', nodeIds: ids, group: 'web', strategy: 'rolling', batch: '1', maxFailures: 0 });
    const d = await finished(leader, job.id);
    expect(d.job?.state).to.equal('Failed');
    expect(d.job?.message).to.match(/1 node\(s\) failed, more than --max-failures 0/);
    expect(d.nodes.map((n) => `${n.nodeId}:${n.state}:${n.batch}`)).to.deep.equal(['n1:succeeded:0', 'n2:failed:1', 'n3:skipped:2']);
    expect(d.nodes[1].error).to.match(/unit count/);
    expect((await node(leader, 'n1')).state).to.equal('Commissioned');
    const n2 = await node(leader, 'n2');
    expect(n2.state).to.equal('Failed');
    expect(n2.lastError).to.match(/commission failed/);
    const n3 = await node(leader, 'n3');
    expect(n3.state).to.equal('Discovered');
    expect(n3.currentJob).to.equal(undefined);
    expect(lines(join(ag.get('n3')?.root ?? '', 'count'))).to.equal(0);
  });

  it('refuses a second job on a node being commissioned (Contiv #104); cancel mid-command kills the command on the agent', async () => {
    // The runner's timer pass is far away: the cancel must be recorded by the run that got it,
    // not by a later pass that retries a run which failed to end (it used to: the run still held
    // the job as Running, and Running → Cancelled was refused).
    const { leader, agents: ag } = await setup(['n1'], {}, { jobResyncIntervalMs: 600_000 });
    const root = ag.get('n1')?.root ?? '';
    const job = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web', extraVarsJson: '{"sleep":"30"}' });
    await waitFor('the command to run', () => existsSync(join(root, 'pid')), { timeoutMs: 30_000 });
    const pid = Number(readFileSync(join(root, 'pid'), 'utf8').trim());
    expect((await node(leader, 'n1')).state).to.equal('Commissioning');

    const dup = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web' }).catch((e: unknown) => e as Error);
    expect((dup as Error).message).to.match(/node n1 is|already in job/);
    expect((dup as { code?: number }).code).to.equal(grpc.status.FAILED_PRECONDITION);

    const cancelled = await unary(leader.client.cancelJob.bind(leader.client), { id: job.id, reason: 'test' });
    expect(cancelled.state).to.equal('Cancelling');
    const d = await finished(leader, job.id, 10_000);
    expect(d.job?.state).to.equal('Cancelled');
    expect(d.nodes[0].state, d.nodes[0].error).to.equal('cancelled');
    const n = await node(leader, 'n1');
    expect(n.state).to.equal('Cancelled');
    expect(n.lastError).to.equal('cancelled by operator');
    expect(n.currentJob).to.equal(undefined);
    await waitFor('the command process to be gone', () => {
      try { process.kill(pid, 0); return false; } catch { return true; }
    }, { timeoutMs: 10_000 });
    await delay(500);
    expect(existsSync(join(root, 'done'))).to.equal(false);
    // From Cancelled every path stays open: commission again works.
    const retry = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web' });
    expect((await finished(leader, retry.id)).job?.state).to.equal('Succeeded');
  });

  it('a run started on a job that has finished since (a runner pass working from an older list) changes nothing: no second job.succeeded, no record rewrite, not counted again', async () => {
    const { leader } = await setup(['n1']);
    const { coord } = leader;
    const job = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web' });
    expect((await finished(leader, job.id)).job?.state).to.equal('Succeeded');
    await coord.jobs.runner.idle();
    const jobKey = env.ks.job(job.id);
    const before = await env.client.get(jobKey).exec();
    const seqBefore = await env.client.get(env.ks.eventSeq()).string();
    // What the pass does with a stale list: a new run of the job id, after the first run ended.
    const router = new CommandRouter(coord.streams);
    router.attach();
    let counted = 0;
    try {
      const run = new JobProgress({
        store: coord.jobs.store.fenced(coord.leaderElection), nodes: coord.nodes, streams: coord.streams, router,
        config: new ConfigReader(env.client, env.ks, coord.keyring), isLeader: () => coord.isLeader(), clock: systemClock, logger,
        timings: { connectTimeoutMs: 15_000, commandTimeoutMs: 600_000, resultGraceMs: 5000, cancelGraceMs: 5000, progressFlushMs: 100, progressWritesPerSecond: 200 },
        observer: { jobFinished: () => { counted++; }, nodeFinished: () => undefined, commandStarted: () => undefined, commandSettled: () => undefined },
      }, job.id);
      run.start();
      await run.done;
    } finally {
      router.detach();
    }
    const after = await env.client.get(jobKey).exec();
    expect(after.kvs[0]?.mod_revision, 'the job record was not rewritten').to.equal(before.kvs[0]?.mod_revision);
    expect(await env.client.get(env.ks.eventSeq()).string(), 'no event written').to.equal(seqBefore);
    expect(counted, 'not counted as finished again').to.equal(0);
  });

  it('a run that gets the agent\'s "cancelled" result before it hears of the operator\'s cancel records the node cancelled (the job record says Cancelling), not failed', async () => {
    const { leader, agents: ag } = await setup(['n1']);
    const { coord } = leader;
    // The leader's job, run by a JobProgress of its own: no runner pass hands it the cancel, as
    // when the agent's result arrives before the pass has seen Cancelling, or when an earlier
    // leader sent the CancelCommand and the agent answers the re-sent command from its memory.
    await coord.jobs.runner.stop();
    const router = new CommandRouter(coord.streams);
    router.attach();
    try {
      const job = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web', extraVarsJson: '{"sleep":"30"}' });
      const run = new JobProgress({
        store: coord.jobs.store.fenced(coord.leaderElection), nodes: coord.nodes, streams: coord.streams, router,
        config: new ConfigReader(env.client, env.ks, coord.keyring), isLeader: () => coord.isLeader(), clock: systemClock, logger,
        timings: { connectTimeoutMs: 15_000, commandTimeoutMs: 600_000, resultGraceMs: 5000, cancelGraceMs: 5000, progressFlushMs: 100, progressWritesPerSecond: 200 },
      }, job.id);
      run.start();
      const root = ag.get('n1')?.root ?? '';
      await waitFor('the command to run', () => existsSync(join(root, 'pid')), { timeoutMs: 30_000 });
      expect((await unary(leader.client.cancelJob.bind(leader.client), { id: job.id, reason: 'test' })).state).to.equal('Cancelling');
      // The CancelCommand the run that heard of the cancel sends (here: the test, as that run).
      coord.streams.send('n1', { cancel: { commandId: commandIdFor(job.id, 'n1', 1), reason: CANCELLED_BY_OPERATOR } });
      await run.done;
      const d = await get(leader, job.id);
      expect(d.job?.state, d.job?.message).to.equal('Cancelled');
      expect(d.nodes[0].state, d.nodes[0].error).to.equal('cancelled');
      const n = await node(leader, 'n1');
      expect(n.state).to.equal('Cancelled');
      expect(n.lastError).to.equal(CANCELLED_BY_OPERATOR);
      expect(n.currentJob).to.equal(undefined);
    } finally {
      router.detach();
    }
  });

  it('resumes after the leader stops mid-job: nodes recorded done are not re-run, the running one is not started twice', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { leader, agents: ag } = await setup(ids, { sleep: '2' });
    const follower = await startReplica('r2');
    const job = await start(follower, { kind: 'commission', nodeIds: ids, group: 'web', strategy: 'rolling', batch: '1' });
    await waitFor('n1 done and n2 running', async () => {
      const d = await get(follower, job.id);
      return d.nodes[0].state === 'succeeded' && d.nodes[1].state === 'running' && existsSync(join(ag.get('n2')?.root ?? '', 'pid'));
    }, { timeoutMs: 30_000, intervalMs: 100 });
    replicas.splice(replicas.indexOf(leader), 1);
    await stopReplica(leader);
    await waitFor('r2 to lead', () => follower.coord.isLeader(), { timeoutMs: 20_000 });
    const d = await finished(follower, job.id, 60_000);
    expect(d.job?.state, JSON.stringify(d.nodes.map((n) => [n.nodeId, n.state, n.error]))).to.equal('Succeeded');
    for (const id of ids) {
      expect(lines(join(ag.get(id)?.root ?? '', 'count')), `runs on ${id}`).to.equal(1);
      expect((await node(follower, id)).state).to.equal('Commissioned');
    }
  });

  it('a node\'s "running" job record is written in the same transaction that moves it to Commissioning, and its final record with the move to Commissioned (one commit each, not two)', async () => {
    const { leader } = await setup(['n1']);
    const from = BigInt((await env.client.get(env.ks.node('n1')).exec()).header.revision) + 1n;
    const job = await start(leader, { kind: 'commission', nodeIds: ['n1'], group: 'web', requestedBy: 'test' });
    expect((await finished(leader, job.id)).job?.state).to.equal('Succeeded');
    // The node record's last write (the job's end, or the drift baseline after it).
    const until = BigInt((await env.client.get(env.ks.node('n1')).exec()).kvs[0].mod_revision);
    // Every put of the two keys since before the job, replayed from etcd's history.
    const keys = [env.ks.node('n1'), env.ks.jobNode(job.id, 'n1')];
    const puts: { key: string; state: string; revision: bigint }[] = [];
    const watcher = await env.client.watch().prefix(env.ks.prefix).startRevision(String(from)).create();
    try {
      let seen = from - 1n;
      watcher.on('put', (kv) => {
        const revision = BigInt(kv.mod_revision);
        if (revision > seen) seen = revision;
        const key = kv.key.toString();
        if (keys.includes(key)) puts.push({ key, state: (JSON.parse(kv.value.toString()) as { state: string }).state, revision });
      });
      await waitFor('the replay to reach the job\'s end', () => seen >= until, { timeoutMs: 10_000 });
    } finally {
      await watcher.cancel();
    }
    const running = puts.filter((p) => p.key === keys[1] && p.state === 'running');
    const commissioning = puts.filter((p) => p.key === keys[0] && p.state === 'Commissioning');
    // Later "running" puts are progress (units done so far); the first is the one the command starts from.
    expect(running.length, JSON.stringify(puts, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).to.be.greaterThan(0);
    expect(commissioning).to.have.length(1);
    expect(running[0].revision).to.equal(commissioning[0].revision);
    const succeeded = puts.filter((p) => p.key === keys[1] && p.state === 'succeeded');
    const commissioned = puts.filter((p) => p.key === keys[0] && p.state === 'Commissioned');
    // One runner ran the job: one final record, committed with the move to Commissioned (the
    // drift watcher's baseline may put the node again, still Commissioned, after it).
    expect(succeeded, JSON.stringify(puts, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).to.have.length(1);
    expect(commissioned.map((c) => c.revision), 'a Commissioned put in the same revision').to.include(succeeded[0].revision);
  });
});
