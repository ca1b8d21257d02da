/**
 * A gRPC client of any method of the contract by its path, for edge tests and the fuzzer: the
 * request is either a message (serialized with the method's own serializer) or raw bytes, so a
 * test can send what no generated client would. Answers are the status (code + message) or the
 * decoded response; nothing here throws for a refused call.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { loadProto } from '../../shared';
import { CLUSTER_CHANNEL_OPTIONS, clientCredentials, parseCredentials } from '../../shared/pki';
import { GRPC_OPTIONS } from '../../shared/grpc-limits';
import { DEADLINE_HEADER } from '../../shared/request-headers';

export interface RawMethod {
  /** "/cluster.v1.JobService/StartJob" */
  path: string;
  service: string;
  name: string;
  requestStream: boolean;
  responseStream: boolean;
  serialize: (message: unknown) => Buffer;
  deserialize: (bytes: Buffer) => unknown;
  /** The request type's field names (camelCase) as proto-loader gives them. */
  requestType: string;
}

export interface RawAnswer {
  code: grpc.status;
  details: string;
  /** Messages received (a stream may answer several before its status). */
  messages: number;
  /** A unary call's decoded response. */
  response?: unknown;
}

/** Every method of every service of proto/cluster.proto. */
export function contractMethods(): RawMethod[] {
  const { api } = loadProto();
  const out: RawMethod[] = [];
  const pkg = api.cluster.v1 as unknown as Record<string, { service?: grpc.ServiceDefinition }>;
  for (const [service, ctor] of Object.entries(pkg)) {
    const def = ctor.service;
    if (!def) continue;
    for (const [name, m] of Object.entries(def)) {
      const md = m as grpc.MethodDefinition<unknown, unknown> & { requestType?: { type?: { name?: string } } };
      out.push({
        path: md.path, service, name, requestStream: md.requestStream, responseStream: md.responseStream,
        serialize: (msg) => md.requestSerialize(msg), deserialize: (b) => md.responseDeserialize(b), requestType: md.requestType?.type?.name ?? '',
      });
    }
  }
  return out;
}

export class RawClient {
  readonly client: grpc.Client;

  /** `channelOptions` are added to the cluster's (e.g. 'grpc.default_compression_algorithm'). */
  constructor(address: string, credentialsFile: string, channelOptions: grpc.ChannelOptions = {}) {
    const c = parseCredentials(readFileSync(credentialsFile, 'utf8'), credentialsFile);
    this.client = new grpc.Client(address, clientCredentials({ caPem: c.ca, certPem: c.certificate, keyPem: c.key }), { ...GRPC_OPTIONS, ...CLUSTER_CHANNEL_OPTIONS, ...channelOptions });
  }

  /**
   * Sends one request (a message or raw bytes) and resolves with the status. A response stream
   * is read until its status or until `streamMs` passed (then cancelled: a watch never ends on
   * its own, and being answered is what counts).
   */
  call(method: RawMethod, request: unknown, options: { timeoutMs?: number; streamMs?: number; metadata?: grpc.Metadata } = {}): Promise<RawAnswer> {
    const serialize = (m: unknown): Buffer => (Buffer.isBuffer(m) ? m : method.serialize(m));
    const deserialize = (b: Buffer): Buffer => b;
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    const metadata = options.metadata?.clone() ?? new grpc.Metadata();
    // As clusterctl sends it with every write (shared/request-headers.ts).
    metadata.set(DEADLINE_HEADER, String(deadline));
    return new Promise((resolve) => {
      let messages = 0;
      const done = (code: grpc.status, details: string): void => resolve({ code, details, messages });
      if (!method.requestStream && !method.responseStream) {
        this.client.makeUnaryRequest(method.path, serialize, deserialize, request, metadata, { deadline }, (err, res) => {
          if (err) done(err.code, err.details);
          else resolve({ code: grpc.status.OK, details: '', messages: 1, response: res ? method.deserialize(res) : undefined });
        });
        return;
      }
      let call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<unknown, Buffer>;
      if (method.requestStream) {
        const duplex = this.client.makeBidiStreamRequest(method.path, serialize, deserialize, metadata, { deadline });
        duplex.write(request);
        duplex.end();
        call = duplex;
      } else {
        call = this.client.makeServerStreamRequest(method.path, serialize, deserialize, request, metadata, { deadline });
      }
      let settled = false;
      const timer = setTimeout(() => {
        // Alive and answering (or quietly waiting for changes, as a watch does): that is an answer.
        if (!settled) { settled = true; call.cancel(); done(grpc.status.OK, messages > 0 ? 'streaming' : 'open'); }
      }, options.streamMs ?? 300);
      call.on('data', () => { messages++; });
      call.on('error', (err: grpc.ServiceError) => {
        clearTimeout(timer);
        if (!settled) { settled = true; done(err.code, err.details); }
      });
      call.on('status', (s: grpc.StatusObject) => {
        clearTimeout(timer);
        if (!settled) { settled = true; done(s.code, s.details); }
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
