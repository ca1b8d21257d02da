/**
 * gRPC glue for the files, exec and plan/apply commands: a channel to the coordinator named by
 * --coordinator, unary calls bounded by --timeout (connecting included, like cli/client.ts), and
 * server errors turned back into the shared error classes so their message reaches the
 * operator as is. The message size limits match the server's (coordinator/files/file-store.ts):
 * a 1 MiB file travels both ways.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProto, type LoadedProto } from '../../shared/proto';
import { DeadlineExceededError, UnavailableError, fromGrpcError, type ClusterError } from '../../shared/errors';
import { formatDuration } from '../output';
import type { CliContext } from '../context';

/** The coordinator's message limit (shared/grpc-limits.ts), also used by `files upload`'s early size check. */
export { MAX_GRPC_MESSAGE_BYTES as CLI_MAX_MESSAGE_BYTES } from '../../shared/grpc-limits';
import { GRPC_MESSAGE_LIMITS } from '../../shared/grpc-limits';

export const CHANNEL_OPTIONS: grpc.ChannelOptions = { ...GRPC_MESSAGE_LIMITS };

type Api = LoadedProto['api']['cluster']['v1'];

/** One service client of the coordinator, closed by `close()`. */
export class Rpc<T extends grpc.Client> {
  readonly client: T;

  constructor(
    private readonly address: string,
    private readonly timeoutMs: number,
    make: (api: Api, address: string, options: grpc.ChannelOptions) => T,
  ) {
    this.client = make(loadProto().api.cluster.v1, address, CHANNEL_OPTIONS);
  }

  static forContext<T extends grpc.Client>(context: CliContext, make: (api: Api, address: string, options: grpc.ChannelOptions) => T): Rpc<T> {
    return new Rpc(context.globals.coordinator, context.globals.timeout, make);
  }

  close(): void {
    this.client.close();
  }

  deadline(ms = this.timeoutMs): Date {
    return new Date(Date.now() + ms);
  }

  /** Waits for a connection; an absent coordinator is one clear error. */
  ready(deadline = this.deadline()): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(deadline, (err) =>
        err
          ? reject(new UnavailableError(
            `cannot reach the coordinator at ${this.address} within ${formatDuration(this.timeoutMs)} ` +
                '(is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)',
          ))
          : resolve(),
      );
    });
  }

  error(err: unknown, timeoutMs = this.timeoutMs): ClusterError {
    const e = fromGrpcError(err);
    if (e instanceof DeadlineExceededError) {
      return new DeadlineExceededError(`the coordinator at ${this.address} did not answer within ${formatDuration(timeoutMs)} (raise --timeout?)`, { cause: err });
    }
    return e;
  }

  /** One unary call with the --timeout deadline (or `timeoutMs`). */
  async unary<Res>(start: (options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall, timeoutMs = this.timeoutMs): Promise<Res> {
    const deadline = this.deadline(timeoutMs);
    await this.ready(deadline);
    return new Promise<Res>((resolve, reject) => {
      start({ deadline }, (err, res) => {
        if (err) reject(this.error(err, timeoutMs));
        else if (res === undefined) reject(new UnavailableError(`the coordinator at ${this.address} sent an empty answer`));
        else resolve(res);
      });
    });
  }
}
