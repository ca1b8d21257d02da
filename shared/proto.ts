/**
 * Loads proto/cluster.proto once per call site with the options the generated types were made
 * with (`npm run gen`: --longs=String --enums=String --defaults --oneofs). If these two ever
 * disagree the types lie, so both live next to each other here and in package.json.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
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

export type { ProtoGrpcType };
