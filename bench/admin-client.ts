/**
 * The operator's side of a benchmark: JobService and ConfigService clients of a TestCluster's
 * coordinator over mutual TLS with the admin credentials the coordinator wrote (what
 * clusterctl presents), and a promise wrapper for their unary calls. Shared by
 * bench/fanout.ts and bench/verify-fleet.ts.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { ConfigServiceClient } from '../generated/cluster/v1/ConfigService';
import type { JobServiceClient } from '../generated/cluster/v1/JobService';
import { loadProto } from '../shared/proto';
import { clientCredentials, parseCredentials } from '../shared/pki';
import type { TestCluster } from '../test/helpers/cluster';

/** One unary call with a deadline, as a promise (an empty response is an error). */
export function unary<Req, Res>(fn: (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error('empty response'));
      else resolve(res);
    });
  });
}

export interface AdminClients {
  jobs: JobServiceClient;
  config: ConfigServiceClient;
  close(): void;
}

/** Clients of the coordinator at `address` with `cluster`'s admin credentials. */
export function adminClients(cluster: TestCluster, address: string): AdminClients {
  const { api } = loadProto();
  const admin = parseCredentials(readFileSync(cluster.adminCredentials, 'utf8'), cluster.adminCredentials);
  const tls = clientCredentials({ caPem: admin.ca, certPem: admin.certificate, keyPem: admin.key });
  const jobs = new api.cluster.v1.JobService(address, tls, { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const config = new api.cluster.v1.ConfigService(address, tls);
  return { jobs, config, close: () => { jobs.close(); config.close(); } };
}
