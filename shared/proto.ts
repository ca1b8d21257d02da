/**
 * Loads proto/cluster.proto once per call site with the options the generated types were made
 * with (`npm run gen`: --longs=String --enums=String --defaults --oneofs). If these two ever
 * disagree the types lie, so both live next to each other here and in package.json.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Root, type Type } from 'protobufjs';
import type { ProtoGrpcType } from '../generated/cluster';

export const PROTO_FILE = 'cluster.proto';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/**
 * Where proto/ is: next to the compiled tree (dist/shared → ../../proto), next to a bundled
 * program (the RPM ships proto/ beside the bundle), or named by CLUSTER_PROTO_DIR.
 */
export function protoDir(): string {
  const candidates = [
    process.env.CLUSTER_PROTO_DIR,
    resolve(__dirname, '..', '..', 'proto'),
    resolve(__dirname, '..', 'proto'),
    resolve(__dirname, 'proto'),
  ].filter((d): d is string => typeof d === 'string' && d.length > 0);
  for (const dir of candidates) if (existsSync(join(dir, PROTO_FILE))) return dir;
  throw new Error(`cannot find ${PROTO_FILE}; looked in ${candidates.join(', ')} (set CLUSTER_PROTO_DIR)`);
}

export function protoPath(): string {
  return join(protoDir(), PROTO_FILE);
}

export interface LoadedProto {
  packageDefinition: protoLoader.PackageDefinition;
  api: ProtoGrpcType;
}

let cached: LoadedProto | undefined;

/**
 * The parsed contract. Parsing is pure and the result immutable, so it is memoised: with
 * thousands of simulated agents in one process, parsing once matters.
 */
export function loadProto(): LoadedProto {
  if (!cached) {
    const packageDefinition = protoLoader.loadSync(protoPath(), LOADER_OPTIONS);
    const api = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;
    cached = { packageDefinition, api };
  }
  return cached;
}

type ClusterV1 = ProtoGrpcType['cluster']['v1'];

/** The services of cluster.proto (its messages and enums are the other members of cluster.v1). */
export type ServiceName = { [K in keyof ClusterV1]: ClusterV1[K] extends { service: grpc.ServiceDefinition } ? K : never }[keyof ClusterV1];

/** A service's client class: what `loadProto().api.cluster.v1[name]` is, without its `service` descriptors. */
export type ServiceClientClass<K extends ServiceName> = new (...args: ConstructorParameters<typeof grpc.Client>) => InstanceType<ClusterV1[K]>;

let clientRoot: Root | undefined;
const clientClasses = new Map<ServiceName, grpc.ServiceClientConstructor>();

/**
 * One service's client class, for a program that is only a client of a few services (the agent:
 * AgentService, and PkiService at a join or renewal). It is the class `loadProto()` gives, made
 * the way proto-loader and grpc-js make it (the same paths, method names and codecs with
 * LOADER_OPTIONS, so the generated types hold), but from the parsed .proto alone: loadProto()
 * also builds proto-loader's descriptor objects of every message and method (for servers and
 * reflection) and a client class for every service, which an idle agent kept for good (0.5 MiB
 * of heap in a bare Node, ~0.3 MiB of the bundled agent's RSS: bench/README.md, agent's cost,
 * fourth pass). Memoised: simulated fleets make thousands of clients.
 */
export function loadServiceClient<K extends ServiceName>(name: K): ServiceClientClass<K> {
  let ctor = clientClasses.get(name);
  if (!ctor) {
    if (!clientRoot) {
      clientRoot = new Root().loadSync(protoPath(), LOADER_OPTIONS);
      clientRoot.resolveAll();
    }
    const service = clientRoot.lookupService(`cluster.v1.${name}`);
    const methods: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const method of service.methodsArray) {
      const request = method.resolvedRequestType;
      const response = method.resolvedResponseType;
      if (!request || !response) throw new Error(`${name}.${method.name}: unresolved message types`);
      methods[method.name] = {
        path: `/cluster.v1.${name}/${method.name}`,
        requestStream: method.requestStream === true,
        responseStream: method.responseStream === true,
        requestSerialize: serializer(request),
        requestDeserialize: deserializer(request),
        responseSerialize: serializer(response),
        responseDeserialize: deserializer(response),
        // proto-loader's lodash.camelcase of the method name; ours are all PascalCase words
        // (test/shared/proto.test.ts compares every service with proto-loader's).
        originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
      };
    }
    ctor = grpc.makeClientConstructor(methods, name);
    clientClasses.set(name, ctor);
  }
  return ctor as unknown as ServiceClientClass<K>;
}

/** As proto-loader's createSerializer. */
function serializer(type: Type): grpc.serialize<object> {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    // protobufjs's writer makes a Buffer under Node (BufferWriter), as proto-loader passes it on.
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

/** As proto-loader's createDeserializer. */
function deserializer(type: Type): grpc.deserialize<object> {
  return (bytes) => type.toObject(type.decode(bytes), LOADER_OPTIONS);
}

export type { ProtoGrpcType };
