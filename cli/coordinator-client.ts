/**
 * clusterctl's one client of the coordinator, made by main.ts and handed to every command
 * through the context. It owns everything about talking to the coordinator:
 *
 * - the channels, one per replica (--coordinator a:7400,b:7400), shared by every service stub,
 *   each stub made the first time a command needs it;
 * - the channel credentials (`channelCredentials` in coordinator-endpoints.ts, the one place
 *   they are made): mutual TLS with the certificate of the credentials file, the server
 *   checked against its CA for the coordinator role (there is no plaintext);
 * - the deadline of each call (--timeout), which also bounds connecting, so an absent
 *   coordinator is reported as exactly that instead of as a generic gRPC status;
 * - the message limits (shared/grpc-limits.ts) and the mapping of a gRPC status to the shared
 *   error classes (shared/errors.ts fromGrpcError), the server's message kept;
 * - moving to the next replica: any replica serves the API, so when connecting to one fails
 *   the call goes to the next. A read that fails with UNAVAILABLE is retried on the next
 *   replica too; a write is retried only when it was never sent (connecting failed), since an
 *   UNAVAILABLE after sending does not say whether the coordinator acted on it — except
 *   StartJob, which the coordinator deduplicates by idempotency key. A stream (watch) whose
 *   connection is lost resumes on the next replica;
 * - the idempotency key and the wall-clock deadline of every write (shared/request-headers.ts):
 *   one key per write call of this invocation, the same on that call's retries on another replica.
 *
 * Importing this module loads gRPC; main.ts does so only when a command runs (not for --help),
 * and the proto is parsed only when the first stub is made.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { DEADLINE_HEADER, IDEMPOTENCY_HEADER } from '../shared/request-headers';
import { ClusterError, DeadlineExceededError, NotFoundError, UnauthenticatedError, UnavailableError, fromGrpcError } from '../shared/errors';
import type { ApplyRequest } from '../generated/cluster/v1/ApplyRequest';
import type { ApplyResponse__Output } from '../generated/cluster/v1/ApplyResponse';
import type { BundleInfo__Output } from '../generated/cluster/v1/BundleInfo';
import type { ClusterStatus__Output } from '../generated/cluster/v1/ClusterStatus';
import type { Event__Output } from '../generated/cluster/v1/Event';
import type { FileContent__Output } from '../generated/cluster/v1/FileContent';
import type { FileInfo__Output } from '../generated/cluster/v1/FileInfo';
import type { Group, Group__Output } from '../generated/cluster/v1/Group';
import type { DeleteBundleResponse__Output } from '../generated/cluster/v1/DeleteBundleResponse';
import type { DeleteGroupResponse__Output } from '../generated/cluster/v1/DeleteGroupResponse';
import type { Job__Output } from '../generated/cluster/v1/Job';
import type { JobDetail__Output } from '../generated/cluster/v1/JobDetail';
import type { ListBundlesResponse__Output } from '../generated/cluster/v1/ListBundlesResponse';
import type { ListEventsRequest } from '../generated/cluster/v1/ListEventsRequest';
import type { ListEventsResponse__Output } from '../generated/cluster/v1/ListEventsResponse';
import type { ListFilesResponse__Output } from '../generated/cluster/v1/ListFilesResponse';
import type { ListGroupsResponse__Output } from '../generated/cluster/v1/ListGroupsResponse';
import type { ListJobsResponse__Output } from '../generated/cluster/v1/ListJobsResponse';
import type { ListNodesResponse__Output } from '../generated/cluster/v1/ListNodesResponse';
import type { Node__Output } from '../generated/cluster/v1/Node';
import type { Globals__Output } from '../generated/cluster/v1/Globals';
import type { SecretInfo__Output } from '../generated/cluster/v1/SecretInfo';
import type { ListSecretsResponse__Output } from '../generated/cluster/v1/ListSecretsResponse';
import type { RotateKeyResponse__Output } from '../generated/cluster/v1/RotateKeyResponse';
import type { DiscoverResponse__Output } from '../generated/cluster/v1/DiscoverResponse';
import type { ManagerConfig__Output } from '../generated/cluster/v1/ManagerConfig';
import type { NodeDetail__Output } from '../generated/cluster/v1/NodeDetail';
import type { NodeDiff__Output } from '../generated/cluster/v1/NodeDiff';
import type { NodeHistory__Output } from '../generated/cluster/v1/NodeHistory';
import type { RefreshNodeFactsResponse__Output } from '../generated/cluster/v1/RefreshNodeFactsResponse';
import type { NodeEvent__Output } from '../generated/cluster/v1/NodeEvent';
import type { PlanRequest } from '../generated/cluster/v1/PlanRequest';
import type { PlanResponse__Output } from '../generated/cluster/v1/PlanResponse';
import type { StartJobRequest } from '../generated/cluster/v1/StartJobRequest';
import type { UploadFileRequest } from '../generated/cluster/v1/UploadFileRequest';
import type { WatchEventsRequest } from '../generated/cluster/v1/WatchEventsRequest';
import type { ClientOptions } from './global-options';
import { EndpointPool, isServiceError, isUnavailable, tlsProblem, type Endpoint, type Stubs } from './coordinator-endpoints';
import { formatDuration } from './output';
import type { AddUserResponse__Output } from '../generated/cluster/v1/AddUserResponse';
import type { CreateTokenRequest } from '../generated/cluster/v1/CreateTokenRequest';
import type { CreateTokenResponse__Output } from '../generated/cluster/v1/CreateTokenResponse';
import type { JoinTokenInfo__Output } from '../generated/cluster/v1/JoinTokenInfo';
import type { ListTokensResponse__Output } from '../generated/cluster/v1/ListTokensResponse';
import type { ListUsersResponse__Output } from '../generated/cluster/v1/ListUsersResponse';
import type { RevokeResponse__Output } from '../generated/cluster/v1/RevokeResponse';
import type { UserInfo__Output } from '../generated/cluster/v1/UserInfo';

/** Raised when no replica could be connected to within the deadline. */
export class CoordinatorUnreachableError extends UnavailableError {}

/** Thrown when the coordinator does not implement a service (an older version). */
export class UnimplementedError extends ClusterError {}

export interface WatchHandle {
  /** Resolves when the stream ends (server closed it, or cancel()); rejects on a stream error. */
  done: Promise<void>;
  cancel(): void;
}

/**
 * Whether a call may be sent again to another replica after an UNAVAILABLE answer: a read may;
 * a write only when the server answers a repeat with the first result (`idempotent`).
 */
type Safety = 'read' | 'write' | 'idempotent';

/** A client interceptor that sends `headers` with the call. */
function withHeaders(headers: Readonly<Record<string, string>>): grpc.Interceptor {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
      next(metadata, listener);
    },
  });
}

type Start<S, Res> = (stub: S, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

export class CoordinatorClient {
  private readonly pool: EndpointPool;
  /** This invocation's id: with a counter, the idempotency key of each of its writes. */
  private readonly invocation = randomUUID();
  private writes = 0;

  /** `pool` is given by `withTimeout` only: the views of one client share its channels. */
  constructor(private readonly options: ClientOptions, pool?: EndpointPool) {
    this.pool = pool ?? new EndpointPool(options);
  }

  /** The replicas, in the order given. */
  get addresses(): readonly string[] {
    return this.options.endpoints;
  }

  /** The same client (same channels) with another request deadline; closing the original closes both. */
  withTimeout(timeoutMs: number): CoordinatorClient {
    return new CoordinatorClient({ ...this.options, timeoutMs }, this.pool);
  }

  close(): void {
    this.pool.close();
  }

  private deadline(): Date {
    return new Date(Date.now() + this.options.timeoutMs);
  }

  private unreachable(): CoordinatorUnreachableError {
    return new CoordinatorUnreachableError(
      `cannot reach the coordinator at ${this.options.endpoints.join(' or ')} within ${formatDuration(this.options.timeoutMs)} ` +
        '(is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)',
    );
  }

  /**
   * A ready replica, trying them in turn from the current one, skipping those in `skip`.
   * A replica that neither answers nor refuses (a stopped process, a black-holed host) gets
   * only its share of the time left, so the others still get their turn before the deadline.
   */
  private async connect(deadline: Date, skip: ReadonlySet<Endpoint> = new Set()): Promise<Endpoint> {
    const candidates = this.pool.ordered().filter((e) => !skip.has(e));
    for (let i = 0; i < candidates.length; i++) {
      const left = deadline.getTime() - Date.now();
      if (left <= 0) break;
      const share = new Date(Date.now() + left / (candidates.length - i));
      if ((await candidates[i].connect(share, false)) === 'ready') return this.pool.use(candidates[i]);
    }
    // Every replica failed once: wait for whichever comes back first (a replica restarting).
    if (Date.now() < deadline.getTime() && candidates.length > 0) {
      const ready = await new Promise<Endpoint | undefined>((resolve) => {
        let pending = candidates.length;
        for (const e of candidates) {
          void e.connect(deadline, true).then((r) => {
            if (r === 'ready') resolve(e);
            else if (--pending === 0) resolve(undefined);
          });
        }
      });
      if (ready) return this.pool.use(ready);
    }
    const problems = await Promise.all(candidates.map(async (e) => [e.address, await tlsProblem(e.address, this.options.credentials, 1000)] as const));
    const refused = problems.filter((p): p is readonly [string, string] => p[1] !== undefined);
    if (refused.length > 0) {
      throw new UnauthenticatedError(
        `the TLS handshake with the coordinator at ${refused.map(([a, why]) => `${a} failed (${why})`).join('; at ')}: ` +
          `check that ${this.options.credentialsFile} is a credentials file of this cluster`,
      );
    }
    throw this.unreachable();
  }

  /** Maps a failed call to the error clusterctl prints, keeping the server's own message. */
  private callError(err: unknown, address: string, what: string, tried: readonly string[] = [address]): ClusterError {
    if (isServiceError(err) && err.code === grpc.status.UNIMPLEMENTED) {
      return new UnimplementedError(`the coordinator at ${address} does not serve ${what} (is it an older version? upgrade it)`, { cause: err });
    }
    const e = fromGrpcError(err);
    if (e instanceof DeadlineExceededError) {
      return new DeadlineExceededError(
        `the coordinator at ${address} did not answer within ${formatDuration(this.options.timeoutMs)} (raise --timeout?)`,
        { cause: err },
      );
    }
    if (e instanceof UnavailableError && (!e.message || tried.length > 1)) {
      const message = e.message || `the coordinator at ${address} is unavailable`;
      return new UnavailableError(tried.length > 1 ? `${message} (tried ${tried.join(', ')})` : message, { cause: err });
    }
    return e;
  }

  private async unary<K extends keyof Stubs, Res>(service: K, what: string, safety: Safety, start: Start<Stubs[K], Res>): Promise<Res> {
    const deadline = this.deadline();
    const failed = new Set<Endpoint>();
    // One key for this request, the same on each of its retries; the deadline as a time too.
    const interceptors = safety === 'read' ? [] : [withHeaders({
      [IDEMPOTENCY_HEADER]: `${this.invocation}.${++this.writes}`,
      [DEADLINE_HEADER]: String(deadline.getTime()),
    })];
    for (;;) {
      const endpoint = await this.connect(deadline, failed);
      try {
        return await new Promise<Res>((resolve, reject) => {
          start(endpoint.stub(service), { deadline, interceptors }, (err, res) => {
            if (err) reject(err);
            else if (res === undefined) reject(new UnavailableError(`the coordinator at ${endpoint.address} sent an empty answer`));
            else resolve(res);
          });
        });
      } catch (err) {
        failed.add(endpoint);
        const retry = safety !== 'write' && isUnavailable(err) && failed.size < this.pool.endpoints.length && Date.now() < deadline.getTime();
        if (!retry) throw this.callError(err, endpoint.address, what, [...failed].map((e) => e.address));
        this.pool.moveOn(endpoint);
      }
    }
  }

  /**
   * A server stream. Connecting is bounded by the deadline; the stream itself is not (it lives
   * until cancelled). When its connection is lost and there is another replica, it is opened
   * again there (`open(stub, true)`, so the caller can resume where it was); it gives up when
   * every replica failed in a row without sending anything, or none can be reached.
   */
  private async stream<K extends keyof Stubs, T>(
    service: K,
    what: string,
    open: (stub: Stubs[K], resumed: boolean) => grpc.ClientReadableStream<T>,
    onData: (item: T, resumed: boolean) => void,
  ): Promise<WatchHandle> {
    const first = await this.connect(this.deadline());
    let cancelled = false;
    let call: grpc.ClientReadableStream<T> | undefined;
    let failures = 0;
    let finish: () => void = () => undefined;
    let fail: (err: Error) => void = () => undefined;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    const start = (endpoint: Endpoint, resumed: boolean): void => {
      const c = open(endpoint.stub(service), resumed);
      call = c;
      c.on('data', (item: T) => {
        failures = 0;
        onData(item, resumed);
      });
      c.on('end', () => finish());
      c.on('error', (err: grpc.ServiceError) => {
        if (cancelled) return finish();
        if (err.code !== grpc.status.UNAVAILABLE) return fail(this.callError(err, endpoint.address, what));
        const lost = `lost the ${what} stream to the coordinator at ${endpoint.address}: ${err.details}`;
        if (this.pool.endpoints.length < 2 || ++failures >= this.pool.endpoints.length) return fail(new UnavailableError(lost, { cause: err }));
        this.pool.moveOn(endpoint);
        this.connect(this.deadline()).then(
          (next) => (cancelled ? finish() : start(next, true)),
          (e: unknown) => fail(new UnavailableError(`${lost}; ${e instanceof Error ? e.message : String(e)}`, { cause: err })),
        );
      });
    };
    start(first, false);
    return {
      done,
      cancel: () => {
        cancelled = true;
        call?.cancel();
        // A stream being re-opened has no call to cancel yet: done resolves now.
        finish();
      },
    };
  }

  // ---- ClusterService ----

  /** Nodes matching a label selector (empty: all), in the server's order. */
  async listNodes(labelSelector = ''): Promise<Node__Output[]> {
    return (await this.unary<'cluster', ListNodesResponse__Output>('cluster', 'ListNodes', 'read', (s, o, cb) => s.listNodes({ labelSelector }, o, cb))).nodes;
  }

  /**
   * One node with its full facts; NotFoundError with a hint when the id is unknown. With `at`
   * (RFC 3339 or -2h): the node as its history says it was then.
   */
  async getNode(id: string, at = ''): Promise<NodeDetail__Output> {
    try {
      return await this.unary<'cluster', NodeDetail__Output>('cluster', 'GetNode', 'read', (s, o, cb) => s.getNode({ id, at }, o, cb));
    } catch (err) {
      if (err instanceof NotFoundError && !at) throw new NotFoundError(`node ${id} not found (list nodes with: clusterctl nodes)`, { cause: err });
      throw err;
    }
  }

  /** Every kept change of a node's record, oldest first (the newest `limit`; 0 = all). */
  getNodeHistory(id: string, limit = 0): Promise<NodeHistory__Output> {
    return this.unary<'cluster', NodeHistory__Output>('cluster', 'GetNodeHistory', 'read', (s, o, cb) => s.getNodeHistory({ id, limit }, o, cb));
  }

  /** What differs between two nodes or two moments (empty `b` = node `a`; empty time = now). */
  diffNodes(request: { a: string; aAt?: string; b?: string; bAt?: string }): Promise<NodeDiff__Output> {
    return this.unary<'cluster', NodeDiff__Output>('cluster', 'DiffNodes', 'read', (s, o, cb) => s.diffNodes(request, o, cb));
  }

  /**
   * Has the node's agent collect its facts now; resolves once they are stored. Sent again to
   * another replica after UNAVAILABLE like a read: only the leader holds the agent's stream
   * (the others answer UNAVAILABLE), and a second collection changes nothing more.
   */
  refreshNodeFacts(id: string): Promise<RefreshNodeFactsResponse__Output> {
    return this.unary<'cluster', RefreshNodeFactsResponse__Output>('cluster', 'RefreshNodeFacts', 'read', (s, o, cb) => s.refreshNodeFacts({ id }, o, cb));
  }

  /**
   * Streams node changes: the current nodes first (ADDED), then every change. On another
   * replica the stream starts with the current nodes again: those unchanged since the last
   * event seen are not repeated, changed ones arrive as MODIFIED. (A node deleted while
   * reconnecting is not reported; the next `clusterctl nodes` shows it gone.)
   */
  watchNodes(labelSelector: string, onEvent: (e: NodeEvent__Output) => void): Promise<WatchHandle> {
    const seen = new Map<string, string>();
    return this.stream<'cluster', NodeEvent__Output>('cluster', 'watch', (s) => s.watchNodes({ labelSelector }), (e, resumed) => {
      const id = e.node?.id ?? '';
      const text = JSON.stringify(e.node);
      if (resumed && e.type === 'ADDED' && seen.has(id)) {
        if (seen.get(id) === text) return;
        e = { ...e, type: 'MODIFIED' };
      }
      if (e.type === 'DELETED') seen.delete(id);
      else seen.set(id, text);
      onEvent(e);
    });
  }

  setMaintenance(id: string, maintenance: boolean, reason: string): Promise<Node__Output> {
    return this.unary('cluster', 'SetMaintenance', 'write', (s, o, cb) => s.setMaintenance({ id, maintenance, reason }, o, cb));
  }

  deleteNode(id: string, force: boolean): Promise<Node__Output> {
    return this.unary('cluster', 'DeleteNode', 'write', (s, o, cb) => s.deleteNode({ id, force }, o, cb));
  }

  setLabels(id: string, set: Record<string, string>, remove: string[]): Promise<Node__Output> {
    return this.unary('cluster', 'SetLabels', 'write', (s, o, cb) => s.setLabels({ id, set, remove }, o, cb));
  }

  async discover(identifiers: string[], labels: Record<string, string>): Promise<Node__Output[]> {
    return (await this.unary<'cluster', DiscoverResponse__Output>('cluster', 'Discover', 'write', (s, o, cb) => s.discover({ identifiers, labels }, o, cb))).nodes;
  }

  async deletePreRegistered(ids: string[]): Promise<Node__Output[]> {
    return (await this.unary<'cluster', DiscoverResponse__Output>('cluster', 'DeletePreRegistered', 'write', (s, o, cb) => s.deletePreRegistered({ ids }, o, cb))).nodes;
  }

  async listEvents(req: ListEventsRequest): Promise<Event__Output[]> {
    return (await this.unary<'cluster', ListEventsResponse__Output>('cluster', 'ListEvents', 'read', (s, o, cb) => s.listEvents(req, o, cb))).events;
  }

  /** New events after `req.afterSeq`; on another replica it resumes after the last event seen. */
  watchEvents(req: WatchEventsRequest, onEvent: (e: Event__Output) => void): Promise<WatchHandle> {
    let afterSeq = req.afterSeq;
    return this.stream<'cluster', Event__Output>('cluster', 'event watch', (s) => s.watchEvents({ ...req, afterSeq }), (e) => {
      afterSeq = e.seq;
      onEvent(e);
    });
  }

  getStatus(): Promise<ClusterStatus__Output> {
    return this.unary('cluster', 'GetStatus', 'read', (s, o, cb) => s.getStatus({}, o, cb));
  }

  // ---- JobService ----

  startJob(req: StartJobRequest): Promise<Job__Output> {
    return this.unary('jobs', 'JobService', 'idempotent', (s, o, cb) => s.startJob(req, o, cb));
  }

  async listJobs(state: string, limit: number): Promise<Job__Output[]> {
    return (await this.unary<'jobs', ListJobsResponse__Output>('jobs', 'JobService', 'read', (s, o, cb) => s.listJobs({ state, limit }, o, cb))).jobs;
  }

  async getJob(id: string): Promise<JobDetail__Output> {
    try {
      return await this.unary<'jobs', JobDetail__Output>('jobs', 'JobService', 'read', (s, o, cb) => s.getJob({ id }, o, cb));
    } catch (err) {
      if (err instanceof NotFoundError && !/clusterctl jobs/.test(err.message)) {
        throw new NotFoundError(`${err.message} (list jobs with: clusterctl jobs)`, { cause: err });
      }
      throw err;
    }
  }

  /** The job's state on every change (each message is whole, so a resumed stream simply goes on). */
  watchJob(id: string, onDetail: (d: JobDetail__Output) => void): Promise<WatchHandle> {
    return this.stream<'jobs', JobDetail__Output>('jobs', 'job watch', (s) => s.watchJob({ id }), onDetail);
  }

  cancelJob(id: string, reason: string): Promise<Job__Output> {
    return this.unary('jobs', 'JobService', 'write', (s, o, cb) => s.cancelJob({ id, reason }, o, cb));
  }

  /** Idempotent: pause of a Pausing/Paused job answers OK unchanged, so a retry elsewhere is safe. */
  pauseJob(id: string, reason: string): Promise<Job__Output> {
    return this.unary('jobs', 'JobService', 'idempotent', (s, o, cb) => s.pauseJob({ id, reason }, o, cb));
  }

  resumeJob(id: string): Promise<Job__Output> {
    return this.unary('jobs', 'JobService', 'idempotent', (s, o, cb) => s.resumeJob({ id }, o, cb));
  }

  // ---- ConfigService ----

  pushBundle(yaml: string): Promise<BundleInfo__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.pushBundle({ yaml }, o, cb));
  }

  async listBundles(name = ''): Promise<BundleInfo__Output[]> {
    return (await this.unary<'config', ListBundlesResponse__Output>('config', 'ConfigService', 'read', (s, o, cb) => s.listBundles({ name }, o, cb))).bundles;
  }

  getBundle(name: string, version: string): Promise<BundleInfo__Output> {
    return this.unary('config', 'ConfigService', 'read', (s, o, cb) => s.getBundle({ name, version }, o, cb));
  }

  setGroup(group: Group, expectedRevision: string): Promise<Group__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.setGroup({ group, expectedRevision }, o, cb));
  }

  deleteBundle(name: string, version: string): Promise<DeleteBundleResponse__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.deleteBundle({ name, version }, o, cb));
  }

  deleteGroup(name: string, force: boolean): Promise<DeleteGroupResponse__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.deleteGroup({ name, force }, o, cb));
  }

  getGlobals(): Promise<Globals__Output> {
    return this.unary('config', 'ConfigService', 'read', (s, o, cb) => s.getGlobals({}, o, cb));
  }

  setGlobals(variablesJson: string): Promise<Globals__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.setGlobals({ variablesJson }, o, cb));
  }

  getManagerConfig(): Promise<ManagerConfig__Output> {
    return this.unary('config', 'ConfigService', 'read', (s, o, cb) => s.getManagerConfig({}, o, cb));
  }

  setManagerConfig(set: Record<string, string>, reset: string[]): Promise<ManagerConfig__Output> {
    return this.unary('config', 'ConfigService', 'write', (s, o, cb) => s.setManagerConfig({ set, reset }, o, cb));
  }

  getGroup(name: string): Promise<Group__Output> {
    return this.unary('config', 'ConfigService', 'read', (s, o, cb) => s.getGroup({ name }, o, cb));
  }

  async listGroups(): Promise<Group__Output[]> {
    return (await this.unary<'config', ListGroupsResponse__Output>('config', 'ConfigService', 'read', (s, o, cb) => s.listGroups({}, o, cb))).groups;
  }

  // ---- FileService ----

  async listFiles(): Promise<FileInfo__Output[]> {
    return (await this.unary<'files', ListFilesResponse__Output>('files', 'FileService', 'read', (s, o, cb) => s.listFiles({}, o, cb))).files;
  }

  upload(req: UploadFileRequest): Promise<FileInfo__Output> {
    return this.unary('files', 'FileService', 'write', (s, o, cb) => s.upload(req, o, cb));
  }

  /** `reveal`: a secret file's content (admin only; otherwise the coordinator withholds it). */
  download(name: string, reveal = false): Promise<FileContent__Output> {
    return this.unary('files', 'FileService', 'read', (s, o, cb) => s.download({ name, reveal }, o, cb));
  }

  // ---- SecretService ----

  setSecret(name: string, value: Buffer): Promise<SecretInfo__Output> {
    return this.unary('secrets', 'SecretService', 'write', (s, o, cb) => s.setSecret({ name, value }, o, cb));
  }

  async listSecrets(): Promise<SecretInfo__Output[]> {
    return (await this.unary<'secrets', ListSecretsResponse__Output>('secrets', 'SecretService', 'read', (s, o, cb) => s.listSecrets({}, o, cb))).secrets;
  }

  deleteSecret(name: string): Promise<SecretInfo__Output> {
    return this.unary('secrets', 'SecretService', 'write', (s, o, cb) => s.deleteSecret({ name }, o, cb));
  }

  rotateKey(): Promise<RotateKeyResponse__Output> {
    return this.unary('secrets', 'SecretService', 'write', (s, o, cb) => s.rotateKey({}, o, cb));
  }

  deleteFile(name: string): Promise<FileInfo__Output> {
    return this.unary('files', 'FileService', 'write', (s, o, cb) => s.deleteFile({ name }, o, cb));
  }

  // ---- DeclarativeService ----

  /** Plans against etcd and changes nothing: a read. */
  plan(req: PlanRequest): Promise<PlanResponse__Output> {
    return this.unary('declarative', 'DeclarativeService', 'read', (s, o, cb) => s.plan(req, o, cb));
  }

  apply(req: ApplyRequest): Promise<ApplyResponse__Output> {
    return this.unary('declarative', 'DeclarativeService', 'write', (s, o, cb) => s.apply(req, o, cb));
  }

  // ---- PkiService ----

  createToken(req: CreateTokenRequest): Promise<CreateTokenResponse__Output> {
    return this.unary('pki', 'PkiService', 'write', (s, o, cb) => s.createToken(req, o, cb));
  }

  async listTokens(): Promise<JoinTokenInfo__Output[]> {
    return (await this.unary<'pki', ListTokensResponse__Output>('pki', 'PkiService', 'read', (s, o, cb) => s.listTokens({}, o, cb))).tokens;
  }

  revokeToken(id: string): Promise<JoinTokenInfo__Output> {
    return this.unary('pki', 'PkiService', 'write', (s, o, cb) => s.revokeToken({ id }, o, cb));
  }

  addUser(name: string, role: string, validityDays = 0): Promise<AddUserResponse__Output> {
    return this.unary('pki', 'PkiService', 'write', (s, o, cb) => s.addUser({ name, role, validityDays }, o, cb));
  }

  async listUsers(): Promise<UserInfo__Output[]> {
    return (await this.unary<'pki', ListUsersResponse__Output>('pki', 'PkiService', 'read', (s, o, cb) => s.listUsers({}, o, cb))).users;
  }

  revokeUser(name: string, reason: string): Promise<RevokeResponse__Output> {
    return this.unary('pki', 'PkiService', 'write', (s, o, cb) => s.revokeUser({ name, reason }, o, cb));
  }

  revokeNode(nodeId: string, reason: string): Promise<RevokeResponse__Output> {
    return this.unary('pki', 'PkiService', 'write', (s, o, cb) => s.revokeNode({ nodeId, reason }, o, cb));
  }
}
