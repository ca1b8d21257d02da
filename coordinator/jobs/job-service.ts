/**
 * JobService, served by every replica: StartJob, CancelJob, PauseJob and ResumeJob write to etcd (the leader's
 * runner does the work), ListJobs/GetJob read etcd, WatchJob streams the job and its nodes
 * now and after every change under jobs/<id>/ until the job ends. Errors are shared/errors
 * classes, mapped to a gRPC status once, here.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  errorMessage, FailedPreconditionError, InvalidArgumentError, isValidSegment, NotFoundError, toGrpcStatus, type Keyspace, type Logger,
} from '../../shared';
import type { JobServiceHandlers } from '../../generated/cluster/v1/JobService';
import type { Job } from '../../generated/cluster/v1/Job';
import type { JobDetail } from '../../generated/cluster/v1/JobDetail';
import type { GetJobRequest__Output } from '../../generated/cluster/v1/GetJobRequest';
import {
  batchOf, checkJobTransition, countNodes, isActive, isFinished, isJobState, JOB_STATES, pendingNode,
  type JobNodeRecord, type JobRecord,
} from './job-record';
import { pauseChange, resumeChange, type JobChange } from './job-pause';
import type { JobStarter } from './job-starter';
import type { JobStore, VersionedJob } from './job-store';
import { unary } from '../unary-handler';
import { markCpuProfile } from '../cpu-profile';
import { actorName, actorOf, authorizeAction } from '../caller';

export interface JobServiceOptions {
  /** Unfenced: any replica may start and cancel jobs. */
  store: JobStore;
  starter: JobStarter;
  keyspace: Keyspace;
  logger: Logger;
}

export function toJobView(v: VersionedJob, nodes: ReadonlyMap<string, JobNodeRecord> = new Map()): Job {
  const j = v.record;
  return {
    id: j.id, kind: j.kind, state: j.state, group: j.group ?? '', bundle: j.bundle ?? '', strategy: j.strategy, batch: j.batch,
    maxFailures: j.maxFailures, dryRun: j.dryRun, force: j.force, nodeIds: j.nodeIds, batches: j.batches.length,
    currentBatch: j.currentBatch, counts: countNodes(j, nodes), message: j.message, createdAt: j.createdAt,
    startedAt: j.startedAt ?? '', finishedAt: j.finishedAt ?? '', requestedBy: j.requestedBy, revision: v.modRevision,
    // Recorded at the end; while the job runs, from the node records at hand.
    driftedNodes: j.drifted ?? j.nodeIds.filter((id) => nodes.get(id)?.drift !== undefined),
    canary: j.canary ?? 0, canarySoakMs: j.canarySoakMs ?? 0, canarySoakUntil: j.canarySoakUntil ?? '',
    soakMs: j.health?.soakMs ?? 0, probeIntervalMs: j.health?.intervalMs ?? 0, probes: j.health?.probes ?? [],
    rollback: j.rollback ?? (j.kind === 'upgrade' && !j.dryRun ? 'never' : ''),
  };
}

export function toJobDetail(v: VersionedJob, nodes: ReadonlyMap<string, JobNodeRecord>): JobDetail {
  return {
    job: toJobView(v, nodes),
    nodes: v.record.nodeIds.map((id) => {
      const n = nodes.get(id) ?? pendingNode(id, batchOf(v.record, id));
      return {
        nodeId: id, batch: n.batch, state: n.state, commandId: n.commandId ?? '', startedAt: n.startedAt ?? '', finishedAt: n.finishedAt ?? '',
        error: n.error ?? '', output: n.output ?? '', units: n.units, plan: n.plan ?? null, drift: n.drift ?? null,
        exitCode: n.exitCode ?? -1, hasExitCode: n.exitCode !== undefined,
        previousState: n.previous?.state ?? '', previousBundle: n.previous?.bundle ?? '',
        rollbackState: n.rollback?.state ?? '', rollbackError: n.rollback?.error ?? '', rollbackFinishedAt: n.rollback?.finishedAt ?? '',
      };
    }),
  };
}

export function createJobServiceHandlers(options: JobServiceOptions): JobServiceHandlers {
  const { store, starter } = options;
  const log = options.logger.child({ component: 'job-service' });

  /** A job id, or "active" (newest unfinished) / "last" (newest). */
  async function resolve(id: string): Promise<VersionedJob> {
    const wanted = id.trim();
    if (wanted === 'active' || wanted === 'last') {
      const all = (await store.list()).filter((j) => j.record.claimed);
      // "active": the newest unfinished job, a Paused one included (`job resume active`).
      const pick = wanted === 'last' ? all[all.length - 1] : [...all].reverse().find((j) => isActive(j.record.state));
      if (!pick) throw new NotFoundError(wanted === 'last' ? 'no jobs yet' : 'no job is running (see `clusterctl jobs`)');
      return pick;
    }
    if (!isValidSegment(wanted)) throw new InvalidArgumentError(`invalid job id ${JSON.stringify(id)}: give a job id, "active" or "last"`);
    const j = await store.require(wanted);
    if (!j.record.claimed) throw new NotFoundError(`job ${wanted} not found (it is still being started)`);
    return j;
  }

  async function cancel(id: string, reason: string, actor: string): Promise<Job> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const v = await resolve(id);
      const j = v.record;
      if (isFinished(j.state)) throw new FailedPreconditionError(`job ${j.id} has already finished (${j.state}); nothing to cancel`);
      if (j.state === 'Cancelling') return toJobView(v);
      checkJobTransition(j.id, j.state, 'Cancelling');
      const next: JobRecord = { ...j, state: 'Cancelling', message: `cancelling${reason ? `: ${reason}` : ''}` };
      try {
        const written = await store.commit(next, v.modRevision, { type: 'job.cancelling', message: `cancel requested${reason ? `: ${reason}` : ''}`, actor });
        return toJobView(written);
      } catch (err) {
        log.debug('cancel raced with a job update; retrying', { err: errorMessage(err) });
      }
    }
    throw new FailedPreconditionError(`job ${id} kept changing while being cancelled; retry`);
  }

  /** Pause or resume: the pure decision (job-pause.ts) written with CAS, retried on a race. */
  async function change(id: string, what: string, decide: (j: JobRecord) => JobChange | undefined, actor: string): Promise<Job> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const v = await resolve(id);
      const c = decide(v.record);
      if (!c) return toJobView(v, await store.nodes(v.record.id));
      try {
        return toJobView(await store.commit(c.next, v.modRevision, { type: c.type, message: c.message, actor }));
      } catch (err) {
        log.debug(`${what} raced with a job update; retrying`, { err: errorMessage(err) });
      }
    }
    throw new FailedPreconditionError(`job ${id} kept changing during ${what}; retry`);
  }

  function watch(call: grpc.ServerWritableStream<GetJobRequest__Output, JobDetail>): void {
    let closed = false;
    let sending: Promise<void> = Promise.resolve();
    let watcher: { cancel(): Promise<void> } | undefined;
    const end = (err?: unknown): void => {
      if (closed) return;
      closed = true;
      watcher?.cancel().catch(() => undefined);
      if (err) call.emit('error', toGrpcStatus(err));
      else call.end();
    };
    call.on('cancelled', () => { closed = true; watcher?.cancel().catch(() => undefined); });
    (async () => {
      const first = await resolve(call.request.id);
      const jobId = first.record.id;
      const sendNow = async (): Promise<void> => {
        if (closed) return;
        const v = await store.require(jobId);
        const nodes = await store.nodes(jobId);
        if (closed) return;
        call.write(toJobDetail(v, nodes));
        if (isFinished(v.record.state)) end();
      };
      const w = await store.client.watch().prefix(options.keyspace.job(jobId)).create();
      watcher = w;
      if (closed) { await w.cancel(); return; }
      // Coalesce bursts of progress writes into one message each.
      let queued = false;
      w.on('put', () => {
        if (queued) return;
        queued = true;
        sending = sending.then(async () => {
          queued = false;
          await sendNow();
        }).catch((err: unknown) => end(err));
      });
      w.on('error', (err) => end(err));
      sending = sending.then(sendNow);
      await sending;
    })().catch((err: unknown) => end(err));
  }

  return {
    StartJob: unary(async (req, call) => {
      markCpuProfile('start-job');
      // exec needs admin: a fact of the request the method-level check could not see.
      const peer = authorizeAction(call, { method: 'JobService/StartJob', kind: req.kind });
      // The audit trail names the certificate's identity, whatever requestedBy the client sent.
      let v: VersionedJob;
      try {
        v = await starter.start({ ...req, requestedBy: actorName(peer) });
      } catch (err) {
        log.info('job refused', { kind: req.kind, by: actorName(peer), err: errorMessage(err) });
        throw err;
      }
      log.info('job started', { jobId: v.record.id, kind: v.record.kind, nodes: v.record.nodeIds.length });
      return toJobView(v);
    }),
    ListJobs: unary(async (req) => {
      const state = req.state.trim();
      if (state && !isJobState(state)) throw new InvalidArgumentError(`unknown job state ${JSON.stringify(req.state)}: use one of ${JOB_STATES.join(', ')}`);
      let jobs = (await store.list()).filter((j) => j.record.claimed && (!state || j.record.state === state));
      if (req.limit > 0) jobs = jobs.slice(-req.limit);
      const views: Job[] = [];
      for (const j of jobs) views.push(toJobView(j, await store.nodes(j.record.id)));
      return { jobs: views };
    }),
    GetJob: unary(async (req) => {
      const v = await resolve(req.id);
      return toJobDetail(v, await store.nodes(v.record.id));
    }),
    WatchJob: watch,
    CancelJob: unary((req, call) => cancel(req.id, req.reason.trim(), actorOf(call))),
    PauseJob: unary((req, call) => change(req.id, 'pause', (j) => pauseChange(j, req.reason.trim()), actorOf(call))),
    ResumeJob: unary((req, call) => change(req.id, 'resume', resumeChange, actorOf(call))),
  };
}
