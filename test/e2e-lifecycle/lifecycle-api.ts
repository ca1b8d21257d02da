/**
 * The operator's side of the lifecycle e2e tests: gRPC clients of ONE coordinator replica's
 * JobService, ConfigService and ClusterService (real gRPC on 127.0.0.1), promisified, errors
 * turned back into the shared typed errors (`.code` is the gRPC status) so a test can check
 * both the status and the one-line message a person would read. The calls go over the
 * cluster's mutual TLS with a credentials file (the admin.yaml a coordinator writes).
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { fromGrpcError, loadProto } from '../../shared';
import { clientCredentials, parseCredentials } from '../../shared/pki';
import type { BundleInfo__Output } from '../../generated/cluster/v1/BundleInfo';
import type { ClusterServiceClient } from '../../generated/cluster/v1/ClusterService';
import type { ConfigServiceClient } from '../../generated/cluster/v1/ConfigService';
import type { Event__Output } from '../../generated/cluster/v1/Event';
import type { Group, Group__Output } from '../../generated/cluster/v1/Group';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { JobServiceClient } from '../../generated/cluster/v1/JobService';
import type { StartJobRequest } from '../../generated/cluster/v1/StartJobRequest';
import { waitFor } from '../helpers';

const FINISHED = new Set(['Succeeded', 'Failed', 'Cancelled', 'RolledBack']);
const DEADLINE_MS = 15_000;

type Unary<Req, Res> = (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown;

function call<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res)));
  });
}

export class LifecycleApi {
  private readonly jobs: JobServiceClient;
  private readonly config: ConfigServiceClient;
  private readonly cluster: ClusterServiceClient;

  /** `credentialsFile`: a clusterctl credentials file (default: $CLUSTERCTL_CREDENTIALS). */
  constructor(readonly address: string, credentialsFile: string | undefined = process.env.CLUSTERCTL_CREDENTIALS) {
    const { api } = loadProto();
    if (!credentialsFile) throw new Error('LifecycleApi needs a credentials file (the admin.yaml the coordinator wrote to its --pki-dir)');
    const c = parseCredentials(readFileSync(credentialsFile, 'utf8'), credentialsFile);
    const creds = clientCredentials({ caPem: c.ca, certPem: c.certificate, keyPem: c.key });
    this.jobs = new api.cluster.v1.JobService(address, creds);
    this.config = new api.cluster.v1.ConfigService(address, creds);
    this.cluster = new api.cluster.v1.ClusterService(address, creds);
  }

  pushBundle(yaml: string): Promise<BundleInfo__Output> {
    return call(this.config.pushBundle.bind(this.config) as Unary<{ yaml: string }, BundleInfo__Output>, { yaml });
  }

  setGroup(group: Group): Promise<Group__Output> {
    return call(this.config.setGroup.bind(this.config) as Unary<{ group: Group; expectedRevision: string }, Group__Output>, { group, expectedRevision: '' });
  }

  startJob(req: StartJobRequest): Promise<Job__Output> {
    return call(this.jobs.startJob.bind(this.jobs) as Unary<StartJobRequest, Job__Output>, { requestedBy: 'e2e-lifecycle', ...req });
  }

  getJob(id: string): Promise<JobDetail__Output> {
    return call(this.jobs.getJob.bind(this.jobs) as Unary<{ id: string }, JobDetail__Output>, { id });
  }

  listJobs(): Promise<Job__Output[]> {
    return call(this.jobs.listJobs.bind(this.jobs) as Unary<{ state: string; limit: number }, { jobs: Job__Output[] }>, { state: '', limit: 0 }).then((r) => r.jobs);
  }

  cancelJob(id: string, reason = 'e2e test'): Promise<Job__Output> {
    return call(this.jobs.cancelJob.bind(this.jobs) as Unary<{ id: string; reason: string }, Job__Output>, { id, reason });
  }

  pauseJob(id: string, reason = 'e2e test'): Promise<Job__Output> {
    return call(this.jobs.pauseJob.bind(this.jobs) as Unary<{ id: string; reason: string }, Job__Output>, { id, reason });
  }

  resumeJob(id: string): Promise<Job__Output> {
    return call(this.jobs.resumeJob.bind(this.jobs) as Unary<{ id: string }, Job__Output>, { id });
  }

  events(filter: { nodeId?: string; jobId?: string } = {}): Promise<Event__Output[]> {
    return call(
      this.cluster.listEvents.bind(this.cluster) as Unary<{ nodeId: string; jobId: string; limit: number; afterSeq: string }, { events: Event__Output[] }>,
      { nodeId: filter.nodeId ?? '', jobId: filter.jobId ?? '', limit: 0, afterSeq: '0' },
    ).then((r) => r.events);
  }

  /** Polls GetJob until `predicate` holds (e.g. a node recorded running). */
  waitJob(id: string, what: string, predicate: (d: JobDetail__Output) => boolean, timeoutMs = 60_000): Promise<JobDetail__Output> {
    return waitFor(`job ${id}: ${what}`, async () => {
      const d = await this.getJob(id);
      return predicate(d) ? d : undefined;
    }, { timeoutMs, intervalMs: 200 });
  }

  /** Polls GetJob until the job is Succeeded, Failed or Cancelled. */
  finished(id: string, timeoutMs = 60_000): Promise<JobDetail__Output> {
    return this.waitJob(id, 'to finish', (d) => FINISHED.has(d.job?.state ?? ''), timeoutMs);
  }

  close(): void {
    this.jobs.close();
    this.config.close();
    this.cluster.close();
  }
}

/** `n1:succeeded n2:running ...`: a job's per-node states on one line, for assertion messages. */
export function nodeStates(d: JobDetail__Output): string {
  return d.nodes.map((n) => `${n.nodeId}:${n.state}${n.error ? `(${n.error})` : ''}`).join(' ');
}
