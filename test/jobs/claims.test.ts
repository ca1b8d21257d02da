/**
 * StartJob's claims on a real etcd (the real JobStarter, JobStore and etcd limits): the nodes are
 * claimed in chunks as large as one transaction allows (the op limit less the fence), several in
 * flight; a node that changes mid-claim refuses the job and every chunk that committed is given
 * back, so the refused job changes nothing. The store is the real JobStore; the test only counts
 * the claim transactions it sends and, for the race, writes to a node just before each one.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { ConfigReader, JobStarter, JobStore, CLAIM_CONCURRENCY } from '../../coordinator/jobs';
import type { Compare, TxnOp } from '../../coordinator/etcd-txn';
import { systemClock } from '../../shared';
import { createLogger } from '../../shared/logger';
import { delay, expectReject } from '../helpers';
import { useHarness, type Harness } from '../reconcile/harness';

// 8 chunks of 127: the first alone, then 7 with at most CLAIM_CONCURRENCY (4) in flight, so a
// concurrency above 4 would show.
const N = 900;

/** The real JobStore, counting the claim transactions (several node puts) as they go out. */
class CountingStore extends JobStore {
  claims = 0;
  inFlight = 0;
  mostInFlight = 0;
  /** Runs before each claim transaction is sent (with its node keys and the job claiming them). */
  beforeClaim?: (keys: string[], jobId: string) => Promise<void>;

  constructor(client: Etcd3, private readonly h: Harness) {
    super({ client, keyspace: h.ks, events: h.events, logger: createLogger({ level: 'error' }) });
  }

  override async txn(compares: readonly Compare[], ops: readonly TxnOp[]): ReturnType<JobStore['txn']> {
    // A claim puts node records that name a job; a release puts them back without one.
    const claimed = ops.flatMap((op) => (op.kind === 'put' && op.key.startsWith(this.h.ks.nodesPrefix()) && typeof op.value === 'string' && op.value.includes('"currentJob"') ? [op.key] : []));
    const keys = claimed.length === ops.length ? claimed : [];
    if (keys.length < 2) return super.txn(compares, ops);
    this.claims++;
    const first = ops[0];
    const jobId = first.kind === 'put' && typeof first.value === 'string' ? (JSON.parse(first.value) as { currentJob: string }).currentJob : '';
    // In flight from the moment the starter sends it: counted before the race's own write, which
    // would otherwise let a chunk without one finish before the others were counted.
    this.inFlight++;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    try {
      await this.beforeClaim?.(keys, jobId);
      return await super.txn(compares, ops);
    } finally {
      this.inFlight--;
    }
  }
}

describe('jobs: claims at StartJob (real etcd)', function () {
  this.timeout(60_000);
  const suite = useHarness('claims');
  let h: Harness;
  let store: CountingStore;
  let starter: JobStarter;

  beforeEach(async () => {
    h = suite.h;
    await h.withGroup();
    const ids = Array.from({ length: N }, (_, i) => `n${String(i).padStart(3, '0')}`);
    await Promise.all(ids.map((id) => h.putNode({ id, state: 'Commissioned', group: 'worker', appliedConfig: 'base@1' })));
    store = new CountingStore(suite.client, h);
    starter = new JobStarter({ client: suite.client, keyspace: h.ks, store, config: new ConfigReader(suite.client, h.ks), clock: systemClock });
  });

  const start = (): ReturnType<JobStarter['start']> => h.startJob({ kind: 'verify', group: 'worker' }, starter);

  const nodeValues = async (): Promise<Record<string, string>> => suite.client.getAll().prefix(h.ks.nodesPrefix()).strings();

  it(`claims ${N} nodes in transactions of up to 127 (128 less the fence): the first alone, then ${CLAIM_CONCURRENCY} in flight`, async () => {
    const job = await start();
    expect(store.claims).to.equal(Math.ceil(N / 127));
    expect(store.mostInFlight).to.equal(CLAIM_CONCURRENCY);
    const claimed = Object.values(await nodeValues()).filter((v) => (JSON.parse(v) as { currentJob?: string }).currentJob === job.record.id);
    expect(claimed).to.have.length(N);
  });

  it('a node changed mid-claim refuses the job: every chunk that committed is released, no job is left, nothing else changed', async () => {
    const before = await nodeValues();
    const victim = h.ks.node(`n${N - 1}`);
    const touched = { ...(JSON.parse(before[victim]) as Record<string, unknown>), labels: { rack: 'r9' } };
    // Before every claim transaction that does not hold the victim, someone edits the victim:
    // the chunk that holds it always loses its compare, on every attempt.
    store.beforeClaim = async (keys) => {
      if (!keys.includes(victim)) await suite.client.put(victim).value(JSON.stringify(touched));
    };
    const err = await expectReject(start());
    expect(err.message).to.match(new RegExp(`node n${N - 1} changed while job .* was claiming it; retry`));
    // 3 attempts, each sending all 8 chunks (the victim's, in the parallel part, fails).
    expect(store.claims, 'claim transactions over the 3 attempts').to.equal(3 * Math.ceil(N / 127));
    expect(store.mostInFlight).to.equal(CLAIM_CONCURRENCY);
    const after = await nodeValues();
    for (const [key, value] of Object.entries(before)) {
      if (key === victim) expect(JSON.parse(after[key])).to.deep.equal(touched);
      else expect(after[key], key).to.equal(value);
    }
    expect(await h.jobs.list()).to.deep.equal([]);
  });

  it('two jobs started at once on the same nodes: the one that wins the first chunk claims them all, the other is refused naming it', async () => {
    // The worst interleaving, forced: the first job's first chunk goes at once and its others
    // late; the second job's first chunk goes late and its others at once. Were all chunks sent
    // together, each job would win some, both would be refused and start again.
    const seen: string[] = [];
    store.beforeClaim = async (keys, jobId) => {
      if (!seen.includes(jobId)) seen.push(jobId);
      const role = seen.indexOf(jobId);
      if (role > 1) return; // later attempts: no delays
      const firstChunk = keys.includes(h.ks.node('n000'));
      if ((role === 0) !== firstChunk) await delay(300);
    };
    const [a, b] = await Promise.allSettled([start(), start()]);
    const won = [a, b].filter((r) => r.status === 'fulfilled');
    const lost = [a, b].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won, 'exactly one job started').to.have.length(1);
    expect(lost).to.have.length(1);
    const job = won[0].status === 'fulfilled' ? won[0].value.record.id : '';
    expect(job, 'the job that claimed first won, on its first attempt').to.equal(seen[0]);
    expect(String(lost[0].reason)).to.include(job);
    const claims = Object.values(await nodeValues()).map((v) => (JSON.parse(v) as { currentJob?: string }).currentJob);
    expect(new Set(claims)).to.deep.equal(new Set([job]));
    expect((await h.jobs.list()).map((j) => j.record.id)).to.deep.equal([job]);
  });
});
