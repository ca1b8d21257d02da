/**
 * clusterctl's client of the operator APIs beyond the node list: ClusterService's admin RPCs,
 * JobService and ConfigService, all on the coordinator address. Same rules as cli/client.ts:
 * every call is bounded by --timeout (connecting included), an absent coordinator is one
 * clear error, server messages are kept. A service the coordinator does not serve
 * (UNIMPLEMENTED: an older coordinator) says so instead of printing a bare status.
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_MESSAGE_LIMITS } from '../../shared/grpc-limits';
import { loadProto } from '../../shared/proto';
import { ClusterError, DeadlineExceededError, NotFoundError, UnavailableError, fromGrpcError } from '../../shared/errors';
import type { ClusterServiceClient } from '../../generated/cluster/v1/ClusterService';
import type { ConfigServiceClient } from '../../generated/cluster/v1/ConfigService';
import type { JobServiceClient } from '../../generated/cluster/v1/JobService';
import type { BundleInfo__Output } from '../../generated/cluster/v1/BundleInfo';
import type { ClusterStatus__Output } from '../../generated/cluster/v1/ClusterStatus';
import type { Event__Output } from '../../generated/cluster/v1/Event';
import type { Group, Group__Output } from '../../generated/cluster/v1/Group';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { ListBundlesResponse__Output } from '../../generated/cluster/v1/ListBundlesResponse';
import type { ListEventsRequest } from '../../generated/cluster/v1/ListEventsRequest';
import type { ListEventsResponse__Output } from '../../generated/cluster/v1/ListEventsResponse';
import type { ListGroupsResponse__Output } from '../../generated/cluster/v1/ListGroupsResponse';
import type { ListJobsResponse__Output } from '../../generated/cluster/v1/ListJobsResponse';
import type { Node__Output } from '../../generated/cluster/v1/Node';
import type { StartJobRequest } from '../../generated/cluster/v1/StartJobRequest';
import type { WatchEventsRequest } from '../../generated/cluster/v1/WatchEventsRequest';
import { formatDuration } from '../output';
import type { WatchHandle } from '../client';

export interface ApiClientOptions {
  address: string;
  timeoutMs: number;
}

/** Thrown when the coordinator does not implement a service (an older version). */
export class UnimplementedError extends ClusterError {}

export class ApiClient {
  private readonly cluster: ClusterServiceClient;
  private readonly jobs: JobServiceClient;
  private readonly config: ConfigServiceClient;

  constructor(private readonly options: ApiClientOptions) {
    const { api } = loadProto();
    const creds = grpc.credentials.createInsecure();
    this.cluster = new api.cluster.v1.ClusterService(options.address, creds, { ...GRPC_MESSAGE_LIMITS });
    // One channel for all three services: the later clients reuse the first one's.
    const channelOverride = this.cluster.getChannel();
    this.jobs = new api.cluster.v1.JobService(options.address, creds, { channelOverride });
    this.config = new api.cluster.v1.ConfigService(options.address, creds, { channelOverride });
  }

  close(): void {
    this.cluster.close();
  }

  private deadline(): Date {
    return new Date(Date.now() + this.options.timeoutMs);
  }

  private ready(deadline: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      this.cluster.waitForReady(deadline, (err) => {
        if (!err) resolve();
        else {
          reject(new UnavailableError(
            `cannot reach the coordinator at ${this.options.address} within ${formatDuration(this.options.timeoutMs)} ` +
              '(is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)',
          ));
        }
      });
    });
  }

  private callError(err: unknown, what: string): ClusterError {
    if (err instanceof Error && (err as Partial<grpc.ServiceError>).code === grpc.status.UNIMPLEMENTED) {
      return new UnimplementedError(`the coordinator at ${this.options.address} does not serve ${what} (is it an older version? upgrade it)`, { cause: err });
    }
    const e = fromGrpcError(err);
    if (e instanceof DeadlineExceededError) {
      return new DeadlineExceededError(
        `the coordinator at ${this.options.address} did not answer within ${formatDuration(this.options.timeoutMs)} (raise --timeout?)`,
        { cause: err },
      );
    }
    if (e instanceof UnavailableError && !e.message) return new UnavailableError(`the coordinator at ${this.options.address} is unavailable`, { cause: err });
    return e;
  }

  private async unary<Res>(what: string, start: (options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall): Promise<Res> {
    const deadline = this.deadline();
    await this.ready(deadline);
    return new Promise<Res>((resolve, reject) => {
      start({ deadline }, (err, res) => {
        if (err) reject(this.callError(err, what));
        else if (res === undefined) reject(new UnavailableError(`the coordinator at ${this.options.address} sent an empty answer`));
        else resolve(res);
      });
    });
  }

  /** A server stream: connecting is bounded by the deadline, the stream is not. */
  private async stream<T>(what: string, open: () => grpc.ClientReadableStream<T>, onData: (item: T) => void): Promise<WatchHandle> {
    await this.ready(this.deadline());
    const call = open();
    let cancelled = false;
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (item: T) => onData(item));
      call.on('end', () => resolve());
      call.on('error', (err: grpc.ServiceError) => {
        if (cancelled && err.code === grpc.status.CANCELLED) resolve();
        else if (err.code === grpc.status.UNAVAILABLE) {
          reject(new UnavailableError(`lost the ${what} stream to the coordinator at ${this.options.address}: ${err.details}`, { cause: err }));
        } else reject(this.callError(err, what));
      });
    });
    return { done, cancel: () => { cancelled = true; call.cancel(); } };
  }

  // ---- ClusterService: admin ----

  setMaintenance(id: string, maintenance: boolean, reason: string): Promise<Node__Output> {
    return this.unary('SetMaintenance', (o, cb) => this.cluster.setMaintenance({ id, maintenance, reason }, o, cb));
  }

  setLabels(id: string, set: Record<string, string>, remove: string[]): Promise<Node__Output> {
    return this.unary('SetLabels', (o, cb) => this.cluster.setLabels({ id, set, remove }, o, cb));
  }

  async listEvents(req: ListEventsRequest): Promise<Event__Output[]> {
    return (await this.unary<ListEventsResponse__Output>('ListEvents', (o, cb) => this.cluster.listEvents(req, o, cb))).events;
  }

  watchEvents(req: WatchEventsRequest, onEvent: (e: Event__Output) => void): Promise<WatchHandle> {
    return this.stream('event watch', () => this.cluster.watchEvents(req), onEvent);
  }

  getStatus(): Promise<ClusterStatus__Output> {
    return this.unary('GetStatus', (o, cb) => this.cluster.getStatus({}, o, cb));
  }

  // ---- JobService ----

  startJob(req: StartJobRequest): Promise<Job__Output> {
    return this.unary('JobService', (o, cb) => this.jobs.startJob(req, o, cb));
  }

  async listJobs(state: string, limit: number): Promise<Job__Output[]> {
    return (await this.unary<ListJobsResponse__Output>('JobService', (o, cb) => this.jobs.listJobs({ state, limit }, o, cb))).jobs;
  }

  async getJob(id: string): Promise<JobDetail__Output> {
    try {
      return await this.unary('JobService', (o, cb) => this.jobs.getJob({ id }, o, cb));
    } catch (err) {
      if (err instanceof NotFoundError && !/clusterctl jobs/.test(err.message)) {
        throw new NotFoundError(`${err.message} (list jobs with: clusterctl jobs)`, { cause: err });
      }
      throw err;
    }
  }

  watchJob(id: string, onDetail: (d: JobDetail__Output) => void): Promise<WatchHandle> {
    return this.stream('job watch', () => this.jobs.watchJob({ id }), onDetail);
  }

  cancelJob(id: string, reason: string): Promise<Job__Output> {
    return this.unary('JobService', (o, cb) => this.jobs.cancelJob({ id, reason }, o, cb));
  }

  // ---- ConfigService ----

  pushBundle(yaml: string): Promise<BundleInfo__Output> {
    return this.unary('ConfigService', (o, cb) => this.config.pushBundle({ yaml }, o, cb));
  }

  async listBundles(name = ''): Promise<BundleInfo__Output[]> {
    return (await this.unary<ListBundlesResponse__Output>('ConfigService', (o, cb) => this.config.listBundles({ name }, o, cb))).bundles;
  }

  getBundle(name: string, version: string): Promise<BundleInfo__Output> {
    return this.unary('ConfigService', (o, cb) => this.config.getBundle({ name, version }, o, cb));
  }

  setGroup(group: Group, expectedRevision: string): Promise<Group__Output> {
    return this.unary('ConfigService', (o, cb) => this.config.setGroup({ group, expectedRevision }, o, cb));
  }

  getGroup(name: string): Promise<Group__Output> {
    return this.unary('ConfigService', (o, cb) => this.config.getGroup({ name }, o, cb));
  }

  async listGroups(): Promise<Group__Output[]> {
    return (await this.unary<ListGroupsResponse__Output>('ConfigService', (o, cb) => this.config.listGroups({}, o, cb))).groups;
  }
}
