/**
 * What a user and a role per agent costs etcd (shared/etcd-auth.ts): creating N agents' users
 * and roles (as N enrolments would), etcd's DB size and RSS before and after, and lease
 * keepalives per second through one client, with authentication on (N users present) and on a
 * second etcd without auth. Real etcd (the test harness's, TLS with client certificates).
 *
 *     node dist/bench/etcd-auth-scale.js [--nodes 10000] [--leases 1000] [--seconds 10] [--concurrency 32]
 *
 * Prints one JSON line of figures; bench/README.md records a run.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { Keyspace } from '../shared/keyspace';
import { grantAgentAccess } from '../shared/etcd-auth';
import { EtcdServer } from '../test/helpers/etcd-server';
import { exitOnSignals } from '../test/helpers/children';

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function dbMiB(client: Etcd3): Promise<number> {
  const s = await client.maintenance.status();
  return Math.round((Number(s.dbSize) / 1024 / 1024) * 10) / 10;
}

/** Renews `leases` leases as fast as one client can for `seconds`; returns renewals per second. */
async function keepaliveRate(client: Etcd3, leases: number, seconds: number, concurrency: number): Promise<number> {
  const ids: string[] = [];
  for (let i = 0; i < leases; i++) ids.push((await client.leaseClient.leaseGrant({ TTL: 60 })).ID);
  const stream = await client.leaseClient.leaseKeepAlive();
  let answered = 0;
  stream.on('data', () => { answered++; });
  const until = Date.now() + seconds * 1000;
  let next = 0;
  let inFlight = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (inFlight < concurrency && Date.now() < until) {
        stream.write({ ID: ids[next++ % ids.length] });
        inFlight++;
      }
      if (Date.now() >= until) { resolve(); return; }
      setImmediate(pump);
    };
    stream.on('data', () => { inFlight--; });
    pump();
  });
  stream.end();
  for (const ID of ids) await client.leaseClient.leaseRevoke({ ID }).catch(() => undefined);
  return Math.round(answered / seconds);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '10000' }, leases: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '32' } } });
  const nodes = Number(values.nodes);
  const leases = Number(values.leases);
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const ks = new Keyspace();
  const etcd = await EtcdServer.start('auth-scale');
  try {
    const root = etcd.client();
    const pid = (etcd as unknown as { proc?: { pid?: number } }).proc?.pid;
    const before = { dbMiB: await dbMiB(root), rssMiB: rssMiB(pid) };
    const rateFewUsers = await keepaliveRate(root, leases, seconds, concurrency);
    const started = Date.now();
    const checkpoints: { users: number; seconds: number; perUserMs: number }[] = [];
    let last = started;
    const step = Math.max(1, Math.floor(nodes / 10));
    for (let i = 0; i < nodes; i++) {
      await grantAgentAccess(root, ks, `node-${String(i).padStart(5, '0')}`);
      if ((i + 1) % step === 0) {
        const now = Date.now();
        checkpoints.push({ users: i + 1, seconds: Math.round((now - started) / 100) / 10, perUserMs: Math.round(((now - last) / step) * 10) / 10 });
        // A long run is readable while it runs (and when cut short).
        process.stderr.write(`${JSON.stringify({ ...checkpoints[checkpoints.length - 1], dbMiB: await dbMiB(root), rssMiB: rssMiB(pid) })}\n`);
        last = now;
      }
    }
    const createSeconds = (Date.now() - started) / 1000;
    const after = { dbMiB: await dbMiB(root), rssMiB: rssMiB(pid) };
    const rateManyUsers = await keepaliveRate(root, leases, seconds, concurrency);
    process.stdout.write(`${JSON.stringify({
      nodes, createSeconds: Math.round(createSeconds * 10) / 10, usersPerSecond: Math.round(nodes / createSeconds), checkpoints,
      before, after, keepalivesPerSecond: { authOnFewUsers: rateFewUsers, authOnAllUsers: rateManyUsers },
    })}\n`);
  } finally {
    await etcd.destroy();
  }
}

exitOnSignals();
main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
