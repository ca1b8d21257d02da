/**
 * Canary, pause and resume (issue 15 §3) with real coordinator and agent processes on a real
 * etcd: --canary N runs N nodes and pauses until `job resume`; `job pause` holds a rolling job
 * after its current batch and a Paused job is cancellable; a Paused job survives the SIGKILL of
 * the leader process and is resumed on the new leader; --canary-soak re-runs the bundle's verify
 * probes on the canaries after the soak and goes on by itself, or stops the job when a probe
 * fails; bad canary input is refused with nothing written. What ran on a node is read from its
 * root (the bundle's command appends its version to /opt/app/runs once per run).
 */
import { expect } from 'chai';
import { status } from '@grpc/grpc-js';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import { delay, waitFor, type CoordinatorHandle } from '../helpers';
import { nodeStates, type LifecycleApi } from './lifecycle-api';
import { BUNDLE, coordinatorSnapshot, GROUP, requireNode, runsOfVersion } from './lifecycle-fixtures';
import { lifecycleSuite, prepare } from './lifecycle-suite';

const IDS = ['n1', 'n2', 'n3'];

function refusal(p: Promise<unknown>): Promise<(Error & { code?: number }) | undefined> {
  return p.then(() => undefined, (e: unknown) => e as Error & { code?: number });
}

/** Waits for the job to be Paused, then checks it stays Paused over a few runner passes (resync 2 s). */
async function stillPaused(api: LifecycleApi, jobId: string): Promise<JobDetail__Output> {
  await api.waitJob(jobId, 'Paused', (d) => d.job?.state === 'Paused', 90_000);
  await delay(5000);
  const d = await api.getJob(jobId);
  expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Paused');
  return d;
}

describe('e2e lifecycle: canary, pause and resume (real processes)', function () {
  this.timeout(300_000);
  const s = lifecycleSuite('lc-canary');

  it('--canary 1 of 3 commissions one node and pauses holding the others\' claims; pause again is a no-op; resume finishes the job', async () => {
    const { api, nodes, coordinators } = await prepare(s, IDS);
    const job = await api.startJob({ kind: 'commission', nodeIds: IDS, group: GROUP, canary: 1 });
    expect(job.canary).to.equal(1);
    expect(job.batches, 'the canary batch and the rest').to.equal(2);

    const d = await stillPaused(api, job.id);
    expect(nodeStates(d)).to.equal('n1:succeeded n2:pending n3:pending');
    expect(d.job?.message).to.match(/^canary done on n1: check it, then resume it: clusterctl job resume j-/);
    expect(runsOfVersion(nodes.get('n1')?.root ?? '', 1)).to.equal(1);
    expect(runsOfVersion(nodes.get('n2')?.root ?? '', 1)).to.equal(0);
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioned');
    // The nodes not yet run stay claimed: another job on them is refused naming the paused job.
    for (const id of ['n2', 'n3']) expect((await requireNode(s.client, id)).currentJob, id).to.equal(job.id);
    const other = await refusal(api.startJob({ kind: 'commission', nodeIds: ['n2'], group: GROUP }));
    expect(other?.code, other?.message).to.equal(status.FAILED_PRECONDITION);
    expect(other?.message).to.contain(`node n2 is already in job ${job.id} (commission, Paused)`);
    expect((await api.listJobs()).find((j) => j.id === job.id)?.state, 'jobs lists it Paused').to.equal('Paused');
    const metrics = await coordinators[0].metricsAddress();
    await waitFor('cluster_jobs to count the Paused job', async () => {
      const text = await (await fetch(`http://${metrics}/metrics`)).text();
      return text.split('\n').includes('cluster_jobs{kind="commission",state="Paused"} 1');
    }, { timeoutMs: 20_000, intervalMs: 500 });

    // Idempotent requests answer OK with the job as it is.
    expect((await api.pauseJob(job.id)).state).to.equal('Paused');

    const resumed = await api.resumeJob(job.id);
    expect(resumed.state).to.equal('Running');
    const done = await api.finished(job.id, 90_000);
    expect(done.job?.state, nodeStates(done)).to.equal('Succeeded');
    for (const id of IDS) {
      expect(runsOfVersion(nodes.get(id)?.root ?? '', 1), `${id} ran once`).to.equal(1);
      const rec = await requireNode(s.client, id);
      expect(rec.state, id).to.equal('Commissioned');
      expect(rec.currentJob, id).to.equal(undefined);
    }
    expect((await refusal(api.resumeJob(job.id)))?.message).to.equal(`job ${job.id} has already finished (Succeeded); nothing to resume`);
    const types = (await api.events({ jobId: job.id })).map((e) => e.type);
    expect(types).to.include.members(['job.paused', 'job.resumed', 'job.succeeded']);
  });

  it('job pause mid rolling upgrade holds after the running batch; resume goes on; pause again and cancel of the Paused job skips the rest and releases it', async () => {
    const { api, nodes } = await prepare(s, IDS, { versions: [1, 2] });
    const commission = await api.startJob({ kind: 'commission', nodeIds: IDS, group: GROUP });
    expect((await api.finished(commission.id, 90_000)).job?.state).to.equal('Succeeded');
    const root = (id: string): string => nodes.get(id)?.root ?? '';

    const job = await api.startJob({
      kind: 'upgrade', nodeIds: IDS, group: GROUP, bundle: `${BUNDLE}@2`, strategy: 'rolling', batch: '1', extraVarsJson: '{"sleep":"3"}',
    });
    await api.waitJob(job.id, 'n1 running', (d) => d.nodes[0]?.state === 'running', 60_000);
    const pausing = await api.pauseJob(job.id, 'check the first node');
    expect(pausing.state).to.equal('Pausing');
    let d = await stillPaused(api, job.id);
    expect(nodeStates(d), 'the running batch finished, the next did not start').to.equal('n1:succeeded n2:pending n3:pending');
    expect(runsOfVersion(root('n2'), 2)).to.equal(0);
    expect(d.job?.currentBatch, 'paused before batch 2').to.equal(1);

    await api.resumeJob(job.id);
    await api.waitJob(job.id, 'n2 running', (x) => x.nodes[1]?.state === 'running', 60_000);
    expect((await api.pauseJob(job.id)).state).to.equal('Pausing');
    d = await stillPaused(api, job.id);
    expect(nodeStates(d)).to.equal('n1:succeeded n2:succeeded n3:pending');

    const cancelled = await api.cancelJob(job.id, 'enough');
    expect(cancelled.state).to.equal('Cancelling');
    const end = await api.finished(job.id, 60_000);
    expect(end.job?.state, nodeStates(end)).to.equal('Cancelled');
    expect(end.nodes[2]?.state).to.equal('skipped');
    const n3 = await requireNode(s.client, 'n3');
    expect(n3.currentJob, 'the paused job\'s claim on n3 is released').to.equal(undefined);
    expect(n3.state, 'n3 was never upgraded').to.equal('Commissioned');
    expect(n3.appliedConfig).to.equal(`${BUNDLE}@1`);
    expect(runsOfVersion(root('n3'), 2)).to.equal(0);
    for (const id of ['n1', 'n2']) expect(runsOfVersion(root(id), 2), id).to.equal(1);
  });

  it('a Paused canary job survives the SIGKILL of the leader process: the new leader keeps it Paused, and resume on it finishes the job', async () => {
    const { api, nodes, coordinators } = await prepare(s, IDS, { versions: [1, 2], coordinators: 2 });
    const [c1, c2] = coordinators as [CoordinatorHandle, CoordinatorHandle];
    const commission = await api.startJob({ kind: 'commission', nodeIds: IDS, group: GROUP });
    expect((await api.finished(commission.id, 90_000)).job?.state).to.equal('Succeeded');

    const job = await api.startJob({ kind: 'upgrade', nodeIds: IDS, group: GROUP, bundle: `${BUNDLE}@2`, canary: 1, strategy: 'rolling', batch: '1' });
    await api.waitJob(job.id, 'Paused', (d) => d.job?.state === 'Paused', 90_000);

    await c1.kill();
    await c2.proc.waitForLog(/"msg":"became leader"/, 30_000);
    const api2 = s.api(c2.address);
    const d = await stillPaused(api2, job.id);
    expect(nodeStates(d)).to.equal('n1:succeeded n2:pending n3:pending');
    expect(runsOfVersion(nodes.get('n2')?.root ?? '', 2)).to.equal(0);

    expect((await api2.resumeJob(job.id)).state).to.equal('Running');
    const done = await api2.finished(job.id, 90_000);
    expect(done.job?.state, nodeStates(done)).to.equal('Succeeded');
    for (const id of IDS) {
      expect(runsOfVersion(nodes.get(id)?.root ?? '', 2), `${id}: release 2 ran once`).to.equal(1);
      expect((await requireNode(s.client, id)).state, id).to.equal('Upgraded');
    }
  });

  it('--canary-soak: the canary is verified again after the soak and the job goes on by itself; a canary whose probe fails during the soak stops the job', async () => {
    const { api, nodes } = await prepare(s, IDS);
    const job = await api.startJob({ kind: 'commission', nodeIds: IDS, group: GROUP, canary: 1, canarySoakMs: 3000 });
    const seen = new Set<string>();
    const done = await api.waitJob(job.id, 'to finish', (x) => {
      seen.add(x.job?.state ?? '');
      return ['Succeeded', 'Failed', 'Cancelled', 'RolledBack'].includes(x.job?.state ?? '');
    }, 120_000);
    expect(done.job?.state, nodeStates(done)).to.equal('Succeeded');
    expect(seen.has('Paused'), 'a soaking canary does not wait for resume').to.equal(false);
    const events = await api.events({ jobId: job.id });
    const soak = events.find((e) => e.type === 'job.soak');
    expect(soak?.message).to.match(/^canary soak until \S+ on n1$/);
    // n2 started after the soak ended.
    const until = Date.parse(/until (\S+)/.exec(soak?.message ?? '')?.[1] ?? '');
    expect(Date.parse(done.nodes[1]?.startedAt ?? '')).to.be.at.least(until);
    for (const id of IDS) expect(runsOfVersion(nodes.get(id)?.root ?? '', 1), id).to.equal(1);

    // Decommission, then again with a soak during which the canary's service is stopped.
    const off = await api.startJob({ kind: 'decommission', nodeIds: IDS });
    expect((await api.finished(off.id, 90_000)).job?.state).to.equal('Succeeded');
    const failing = await api.startJob({ kind: 'commission', nodeIds: IDS, group: GROUP, canary: 1, canarySoakMs: 8000 });
    await api.waitJob(failing.id, 'soaking', (x) => x.job?.canarySoakUntil !== '', 60_000);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    await n1.exec('systemctl --user stop app.service');
    const failed = await api.finished(failing.id, 90_000);
    expect(failed.job?.state, nodeStates(failed)).to.equal('Failed');
    expect(failed.job?.message).to.contain('the canary failed its soak');
    expect(failed.nodes[0]?.state).to.equal('failed');
    expect(failed.nodes[0]?.error).to.match(/^canary soak: /);
    expect(nodeStates(failed)).to.match(/n2:skipped.* n3:skipped/);
    for (const id of ['n2', 'n3']) {
      const rec = await requireNode(s.client, id);
      expect(rec.currentJob, id).to.equal(undefined);
      expect(rec.state, `${id} never commissioned by the failed job`).to.equal('Decommissioned');
    }
  });

  it('bad canary input is refused with INVALID_ARGUMENT and no job: canary ≥ node count, negative (wraps to a huge uint32), on decommission, a soak of more than 24 h, a soak without a canary', async () => {
    const { api } = await prepare(s, IDS);
    const before = await coordinatorSnapshot(s.client);
    const table: [Record<string, unknown>, string][] = [
      [{ kind: 'commission', canary: 3 }, '--canary 3 must be less than the job\'s 3 node(s)'],
      [{ kind: 'commission', canary: 5 }, '--canary 5 must be less than the job\'s 3 node(s)'],
      [{ kind: 'commission', canary: -1 }, 'must be less than the job\'s 3 node(s)'],
      [{ kind: 'decommission', canary: 1 }, '--canary applies to commission and upgrade'],
      [{ kind: 'commission', canary: 1, canarySoakMs: 25 * 3_600_000 }, 'longer than the 24h allowed'],
      [{ kind: 'commission', canarySoakMs: 60_000 }, '--canary-soak needs --canary N'],
      [{ kind: 'commission', canary: 1, dryRun: true }, 'does not apply to a dry run'],
    ];
    for (const [req, words] of table) {
      const err = await refusal(api.startJob({ nodeIds: IDS, group: GROUP, ...req }));
      expect(err?.code, `${JSON.stringify(req)}: ${err?.message ?? 'accepted'}`).to.equal(status.INVALID_ARGUMENT);
      expect(err?.message).to.contain(words);
    }
    expect(await api.listJobs()).to.deep.equal([]);
    expect(await coordinatorSnapshot(s.client), 'nothing written').to.deep.equal(before);
  });
});
