/**
 * clusterctl's client of ClusterService. Every call carries a deadline (--timeout) that also
 * bounds connecting: the channel is first asked to become ready within the deadline, so an
 * absent coordinator is reported as exactly that instead of as a generic gRPC status.
 * Server errors keep the server's message (shared/errors.ts fromGrpcError).
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_MESSAGE_LIMITS } from '../shared/grpc-limits';
import { loadProto } from '../shared/proto';
import {
  ClusterError, DeadlineExceededError, NotFoundError, UnavailableError, fromGrpcError,
} from '../shared/errors';
import type { ClusterServiceClient } from '../generated/cluster/v1/ClusterService';
import type { ListNodesResponse__Output } from '../generated/cluster/v1/ListNodesResponse';
import type { Node__Output } from '../generated/cluster/v1/Node';
import type { NodeDetail__Output } from '../generated/cluster/v1/NodeDetail';
import type { NodeEvent__Output } from '../generated/cluster/v1/NodeEvent';
import { formatDuration } from './output';

export interface ClusterClientOptions {
  /** HOST:PORT of any coordinator replica. */
  address: string;
  /** Deadline of each call in ms, connecting included. */
  timeoutMs: number;
}

/** Raised when no connection could be made within the deadline. */
export class CoordinatorUnreachableError extends UnavailableError {}

export interface WatchHandle {
  /** Resolves when the stream ends (server closed it, or cancel()); rejects on a stream error. */
  done: Promise<void>;
  cancel(): void;
}

export class ClusterClient {
  private readonly client: ClusterServiceClient;

  constructor(private readonly options: ClusterClientOptions) {
    const { api } = loadProto();
    this.client = new api.cluster.v1.ClusterService(options.address, grpc.credentials.createInsecure(), { ...GRPC_MESSAGE_LIMITS });
  }

  get address(): string {
    return this.options.address;
  }

  close(): void {
    this.client.close();
  }

  private deadline(): Date {
    return new Date(Date.now() + this.options.timeoutMs);
  }

  private unreachable(): CoordinatorUnreachableError {
    return new CoordinatorUnreachableError(
      `cannot reach the coordinator at ${this.options.address} within ${formatDuration(this.options.timeoutMs)} ` +
        '(is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)',
    );
  }

  /** Waits for a connection until `deadline`; an absent coordinator becomes one clear error. */
  private ready(deadline: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(deadline, (err) => (err ? reject(this.unreachable()) : resolve()));
    });
  }

  /** Maps a failed call to the error clusterctl prints, keeping the server's own message. */
  private callError(err: unknown): ClusterError {
    const e = fromGrpcError(err);
    if (e instanceof DeadlineExceededError) {
      return new DeadlineExceededError(
        `the coordinator at ${this.options.address} did not answer within ${formatDuration(this.options.timeoutMs)} (raise --timeout?)`,
        { cause: err },
      );
    }
    if (e instanceof UnavailableError && !e.message) {
      return new UnavailableError(`the coordinator at ${this.options.address} is unavailable`, { cause: err });
    }
    return e;
  }

  private async unary<Res>(start: (options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall): Promise<Res> {
    const deadline = this.deadline();
    await this.ready(deadline);
    return new Promise<Res>((resolve, reject) => {
      start({ deadline }, (err, res) => {
        if (err) reject(this.callError(err));
        else if (res === undefined) reject(new UnavailableError(`the coordinator at ${this.options.address} sent an empty answer`));
        else resolve(res);
      });
    });
  }

  /** Nodes matching a label selector (empty: all), in the server's order. */
  async listNodes(labelSelector = ''): Promise<Node__Output[]> {
    const res = await this.unary<ListNodesResponse__Output>((options, cb) => this.client.listNodes({ labelSelector }, options, cb));
    return res.nodes;
  }

  /** One node with its full facts; NotFoundError with a hint when the id is unknown. */
  async getNode(id: string): Promise<NodeDetail__Output> {
    try {
      return await this.unary<NodeDetail__Output>((options, cb) => this.client.getNode({ id }, options, cb));
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`node ${id} not found (list nodes with: clusterctl nodes)`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Streams node changes: the current nodes first (ADDED), then every change. Connecting is
   * bounded by the deadline; the stream itself is not (it lives until cancelled).
   */
  async watchNodes(labelSelector: string, onEvent: (e: NodeEvent__Output) => void): Promise<WatchHandle> {
    await this.ready(this.deadline());
    const call = this.client.watchNodes({ labelSelector });
    let cancelled = false;
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (e: NodeEvent__Output) => onEvent(e));
      call.on('end', () => resolve());
      call.on('error', (err: grpc.ServiceError) => {
        if (cancelled && err.code === grpc.status.CANCELLED) resolve();
        else if (err.code === grpc.status.UNAVAILABLE) {
          reject(new UnavailableError(`lost the watch stream to the coordinator at ${this.options.address}: ${err.details}`, { cause: err }));
        } else reject(this.callError(err));
      });
    });
    return {
      done,
      cancel: () => {
        cancelled = true;
        call.cancel();
      },
    };
  }
}
