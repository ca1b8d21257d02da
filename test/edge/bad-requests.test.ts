/**
 * Requests a real coordinator process must refuse or outlast, over real gRPC and a real etcd:
 * AddUser with a validity no certificate can carry (the long fuzz run found that 2^32 days made
 * an invalid date that came back INTERNAL), and one client flooding unary calls and streams
 * while another client is still answered.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { e2eSuite } from '../e2e/e2e-suite';
import { contractMethods, RawClient, type RawMethod } from './raw-client';
import { waitFor } from '../helpers';

function method(path: string): RawMethod {
  const m = contractMethods().find((x) => x.path === path);
  if (!m) throw new Error(`no method ${path}`);
  return m;
}

describe('edge: bad requests to a real coordinator', function () {
  this.timeout(180_000);
  const suite = e2eSuite('bad-requests');

  it('AddUser with a validity past 3,650 days (up to 2^32-1) is INVALID_ARGUMENT and writes nothing; 3,650 days is accepted', async () => {
    const cluster = await suite.startCluster({ name: 'add-user' });
    const raw = new RawClient(cluster.coordinatorAddress, cluster.adminCredentials);
    const etcd = suite.etcd.client();
    // A read of one key returns the store's current revision in its header.
    const revision = async (): Promise<string> => (await etcd.kv.range({ key: Buffer.from('\0'), limit: '1' })).header.revision;
    try {
      const addUser = method('/cluster.v1.PkiService/AddUser');
      for (const validityDays of [0xffffffff, 2 ** 31, 3651]) {
        const before = await revision();
        const a = await raw.call(addUser, { name: 'longlived', role: 'viewer', validityDays });
        expect(a.code, `${validityDays} days: ${a.details}`).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(a.details).to.equal('a user certificate is valid for at most 3650 days');
        expect(await revision(), `${validityDays} days changed etcd`).to.equal(before);
      }
      const ok = await raw.call(addUser, { name: 'tenyears', role: 'viewer', validityDays: 3650 });
      expect(ok.code, ok.details).to.equal(grpc.status.OK);
      expect(cluster.coordinators[0].proc.alive).to.equal(true);
    } finally {
      raw.close();
    }
  });

  it('one client flooding unary calls and streams: another client is answered while the flood runs, and the leader keeps its lease', async () => {
    const cluster = suite.cluster({ name: 'flood' });
    // At the default election TTL (2 s): the flood lags the leader's event loop by up to ~1.5 s
    // (measured below and printed), and the lease is renewed from a worker thread
    // (coordinator/lease-keeper.ts), so that lag must not cost the leadership.
    const coordinator = await cluster.startCoordinator();
    const metrics = `http://${await coordinator.metricsAddress()}/metrics`;
    const lag = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(metrics)).text();
      const out: Record<string, number> = {};
      for (const m of text.matchAll(/^nodejs_eventloop_lag_(max|p99|mean)_seconds (\S+)$/gm)) out[m[1]] = Math.round(Number(m[2]) * 1000);
      return out;
    };
    // The call guard counts calls per certificate: the other client is another user, and another
    // process (clusterctl), so the flooding process's own busy event loop does not delay it.
    const bobFile = join(cluster.baseDir, 'bob.yaml');
    const added = await cluster.ctl(['user', 'add', 'bob', '--role', 'viewer', '-f', bobFile]);
    expect(added.code, added.stderr).to.equal(0);
    const flooder = new RawClient(cluster.coordinatorAddress, cluster.adminCredentials);
    const listNodes = method('/cluster.v1.ClusterService/ListNodes');
    const watchNodes = method('/cluster.v1.ClusterService/WatchNodes');
    const codes = new Map<string, number>();
    // The first message of each code, for the failure message.
    const firstDetails = new Map<string, string>();
    const count = ({ code, details }: { code: grpc.status; details: string }): void => {
      const k = grpc.status[code];
      codes.set(k, (codes.get(k) ?? 0) + 1);
      if (!firstDetails.has(k)) firstDetails.set(k, details);
    };
    const sent = (): number => [...codes.values()].reduce((a, b) => a + b, 0);
    let flooding = true;
    const unaryLoop = async (): Promise<void> => {
      while (flooding) count(await flooder.call(listNodes, {}, { timeoutMs: 60_000 }));
    };
    // Each stream is held open for a second, then a new one is opened in its place.
    const streamLoop = async (): Promise<void> => {
      while (flooding) count(await flooder.call(watchNodes, {}, { timeoutMs: 60_000, streamMs: 1000 }));
    };
    const leadershipLines = (): number => (coordinator.proc.logs.match(/"msg":"(lost leadership|became leader)"/g) ?? []).length;
    try {
      const leadershipBefore = leadershipLines();
      await lag(); // prom-client resets the lag histogram at each scrape: what follows is the flood's.
      // Twice the guard's default of 32 calls in flight per client, and 50 watches at once.
      const loops = [...Array.from({ length: 64 }, unaryLoop), ...Array.from({ length: 50 }, streamLoop)];
      await waitFor('the flood under way', () => sent() >= 200, { timeoutMs: 60_000, intervalMs: 100 });
      // The other client's calls, one after another, each with a generous deadline.
      const answers: string[] = [];
      const sentBefore = sent();
      for (let i = 0; i < 3; i++) {
        // `nodes` (ListNodes: an etcd read), not `status`, whose etcd probe has its own 2 s deadline.
        const r = await cluster.ctl(['--credentials', bobFile, 'nodes', '--timeout', '60s'], 90_000);
        answers.push(r.code === 0 ? 'ok' : `exit ${r.code}: ${r.stderr.trim()}`);
      }
      const sentDuring = sent() - sentBefore;
      const loopLag = await lag();
      flooding = false;
      await Promise.all(loops);
      const flood = `flood: ${JSON.stringify(Object.fromEntries(codes))} ${JSON.stringify(Object.fromEntries(firstDetails))}; leader's event-loop lag (ms): ${JSON.stringify(loopLag)}`;
      console.log(`      ${flood}`);
      // No leadership change while the flood ran (the leader logs each one).
      expect(leadershipLines(), `${flood}\n${coordinator.proc.logs.split('\n').filter((l) => /leadership|became leader|keepalive/.test(l)).join('\n')}`).to.equal(leadershipBefore);
      expect(answers.join(' | '), flood).to.equal('ok | ok | ok');
      // The flood went on while the other client was answered, and was itself served.
      expect(sentDuring, flood).to.be.greaterThan(100);
      expect(codes.get('OK') ?? 0, flood).to.be.greaterThan(0);
      expect(cluster.coordinators[0].proc.alive).to.equal(true);
    } finally {
      flooding = false;
      flooder.close();
    }
  });
});
