/**
 * Job retention: the policy by table, and the leader's trim against a real etcd through a
 * real Coordinator — old finished jobs go with their per-node records, unfinished jobs and a
 * job whose id shares a prefix stay, a job finishing later triggers a trim on its own, and a
 * follower (no fence) trims nothing.
 */
import { expect } from 'chai';
import { Coordinator } from '../../coordinator/coordinator';
import { isFinished, jobsToTrim, pendingNode, type JobRecord, type JobState } from '../../coordinator/jobs';
import { createLogger, NotLeaderError, systemClock } from '../../shared';
import { expectReject, testPki, useEtcd, waitFor, type TestPki } from '../helpers';

const logger = createLogger({ level: 'silent' });
const DAY = 24 * 3_600_000;
const NOW = Date.parse('2026-06-01T00:00:00Z');
const ago = (ms: number): string => new Date(NOW - ms).toISOString();

describe('job retention: which jobs go (table)', () => {
  const job = (id: string, state: JobState, finishedAgo?: number): Pick<JobRecord, 'id' | 'state' | 'createdAt' | 'finishedAt'> => ({
    id, state, createdAt: ago(40 * DAY), ...(finishedAgo !== undefined ? { finishedAt: ago(finishedAgo) } : {}),
  });
  // [jobs oldest first, keep, max age, trimmed]
  const rows: [Pick<JobRecord, 'id' | 'state' | 'createdAt' | 'finishedAt'>[], number, number, string[]][] = [
    [[], 2, DAY, []],
    [[job('a', 'Succeeded', 1), job('b', 'Failed', 1)], 2, DAY, []],
    [[job('a', 'Succeeded', 1), job('b', 'Failed', 1), job('c', 'Cancelled', 1)], 2, DAY, ['a']],
    // Unfinished jobs never go and do not count.
    [[job('a', 'Running'), job('b', 'Succeeded', 1), job('c', 'Pending'), job('d', 'Cancelling'), job('e', 'Succeeded', 1)], 1, DAY, ['b']],
    // Too old goes even under the count.
    [[job('a', 'Succeeded', 2 * DAY), job('b', 'Succeeded', 1)], 10, DAY, ['a']],
    [[job('a', 'Running'), job('b', 'Succeeded', 3 * DAY)], 10, DAY, ['b']],
    // No finish time: aged by creation (40 days).
    [[job('a', 'Failed'), job('b', 'Failed', 1)], 10, 30 * DAY, ['a']],
  ];
  for (const [jobs, keep, maxAgeMs, want] of rows) {
    it(`${jobs.map((j) => `${j.id}:${j.state}`).join(' ') || '(none)'}, keep ${keep}, max ${maxAgeMs / DAY} d → [${want.join(', ')}]`, () => {
      expect(jobsToTrim(jobs, { keep, maxAgeMs }, NOW)).to.deep.equal(want);
    });
  }
});

describe('job retention: the leader trims (real etcd)', function () {
  this.timeout(60_000);
  const env = useEtcd('job-retention');
  let pki: TestPki;
  let coord: Coordinator | undefined;
  before(async () => { pki = await testPki(); });
  afterEach(async () => { await coord?.stop({ graceMs: 200 }); coord = undefined; });

  function record(id: string, state: JobState, finishedAt: string | undefined, nodeIds: string[]): JobRecord {
    const now = systemClock.iso();
    return {
      id, kind: 'verify', state, targets: { nodeIds }, nodeIds, variables: {}, strategy: 'all-at-once', batch: '1', maxFailures: 0, dryRun: false,
      force: false, batches: [nodeIds], currentBatch: 0, message: '', createdAt: now, ...(finishedAt ? { finishedAt } : {}), requestedBy: 'test',
      // An unfinished job stays unclaimed, so this replica's runner leaves it as seeded.
      claimed: isFinished(state),
    };
  }

  async function seed(store: Coordinator['jobs']['store'], id: string, state: JobState, finishedAt: string | undefined): Promise<void> {
    const nodes = ['n1', 'n2', 'n3'];
    await store.commit(record(id, state, finishedAt, nodes), '0', { type: 'job.created', message: 'seed' });
    for (const n of nodes) await store.putNode(id, { ...pendingNode(n, 0), state: 'succeeded', output: `output of ${n}` });
  }

  async function keys(): Promise<string[]> {
    return (await env.client.getAll().prefix(env.ks.jobsPrefix()).keys()).map((k) => k.slice(env.ks.jobsPrefix().length)).sort();
  }

  it('keeps the newest N finished jobs and none older than the age; node records go with their job', async () => {
    coord = new Coordinator({
      etcd: env.client, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0', electionTtlMs: 3000,
      jobRetention: 2, jobRetentionAgeMs: DAY, pki: await pki.coordinatorPki(env.client, env.ks),
    });
    // Seeded through the coordinator's own (unfenced) store before it leads, so nothing trims yet.
    const seedStore = coord.jobs.store;
    const recent = systemClock.iso();
    await seed(seedStore, 'j-1', 'Succeeded', recent);          // oldest by creation: over the count
    await seed(seedStore, 'j-2', 'Running', undefined);         // unfinished: kept
    await seed(seedStore, 'j-3', 'Failed', new Date(Date.now() - 2 * DAY).toISOString()); // too old
    await seed(seedStore, 'j-10', 'Succeeded', recent);         // shares the prefix "j-1"
    await seed(seedStore, 'j-11', 'Cancelled', recent);
    await coord.start();
    await waitFor('leadership', () => coord?.isLeader() ?? false, { timeoutMs: 20_000 });
    const want = ['j-10', 'j-10/nodes/n1', 'j-10/nodes/n2', 'j-10/nodes/n3', 'j-11', 'j-11/nodes/n1', 'j-11/nodes/n2', 'j-11/nodes/n3',
      'j-2', 'j-2/nodes/n1', 'j-2/nodes/n2', 'j-2/nodes/n3'];
    await waitFor('the first trim on leadership', async () => JSON.stringify(await keys()) === JSON.stringify(want), { timeoutMs: 20_000 });
    const events = Object.values(await env.client.getAll().prefix(env.ks.eventsPrefix()).strings()).map((v) => JSON.parse(v) as { type: string; message: string });
    const trimmed = events.filter((e) => e.type === 'job.trimmed');
    expect(trimmed).to.have.length(1);
    expect(trimmed[0].message).to.match(/^trimmed 2 finished job\(s\)/);

    // A job finishing later: the trim follows its record's change, with no call from here.
    await seed(seedStore, 'j-12', 'Succeeded', systemClock.iso());
    await waitFor('the trim after a new finished job', async () => !(await keys()).includes('j-10'), { timeoutMs: 20_000 });
    expect((await keys()).filter((k) => !k.includes('/'))).to.deep.equal(['j-11', 'j-12', 'j-2']);
  });

  it('a replica that does not lead trims nothing (the fence refuses)', async () => {
    coord = new Coordinator({
      etcd: env.client, keyspace: env.ks, logger, replicaId: 'r2', listen: '127.0.0.1:0', electionTtlMs: 3000,
      jobRetention: 1, pki: await pki.coordinatorPki(env.client, env.ks),
    });
    await seed(coord.jobs.store, 'j-1', 'Succeeded', systemClock.iso());
    await seed(coord.jobs.store, 'j-2', 'Succeeded', systemClock.iso());
    const err = await expectReject(coord.jobs.retention.trim(), /not the leader/);
    expect(err).to.be.instanceOf(NotLeaderError);
    expect((await keys()).filter((k) => !k.includes('/'))).to.deep.equal(['j-1', 'j-2']);
  });
});
