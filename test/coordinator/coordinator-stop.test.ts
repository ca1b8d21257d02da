/**
 * The coordinator's stop() is bounded: each part it stops (leader loops, job runs, the
 * election's resign, the event log, the revocation watch) gets stepTimeoutMs, then stop logs
 * the part it leaves behind and goes on, so one call that never answers cannot hold a shutdown
 * (an afterEach `coord.stop` once timed out after 60 s in test/trust/coordinator-trust).
 * Real etcd behind a TcpProxy whose cut() makes every etcd call go unanswered.
 */
import { expect } from 'chai';
import { Coordinator } from '../../coordinator';
import { createEtcdClient } from '../../shared/etcd';
import { createLogger } from '../../shared';
import { testPki, TcpProxy, useEtcd, waitFor } from '../helpers';

describe('coordinator stop: bounded and logged (real etcd behind a TCP proxy)', function () {
  this.timeout(60_000);
  const env = useEtcd('stop');

  it('with etcd silent, stop ends: the part that hangs is named in the log, and the parts after it stop', async () => {
    const proxy = await TcpProxy.start(env.etcd.endpoint);
    const client = createEtcdClient({ endpoints: [proxy.endpoint], tls: env.etcd.rootTls, dialTimeoutMs: 2000 });
    const logs: { msg: string; [k: string]: unknown }[] = [];
    const logger = createLogger({ level: 'info', sink: (line) => logs.push(JSON.parse(line) as { msg: string }) });
    const pki = await testPki();
    const coord = new Coordinator({
      etcd: client, etcdTls: env.etcd.rootTls, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0', electionTtlMs: 30_000,
      pki: await pki.coordinatorPki(env.client, env.ks),
    });
    try {
      await coord.start();
      await waitFor('r1 to lead', () => coord.isLeader(), { timeoutMs: 15_000 });
      proxy.cut();
      await coord.stop({ graceMs: 100, stepTimeoutMs: 1000 });
      const late = logs.filter((l) => / did not end within 1000 ms; going on without it$/.test(l.msg)).map((l) => l.msg);
      expect(late, JSON.stringify(logs.map((l) => l.msg))).to.include('stop: the election (resign) did not end within 1000 ms; going on without it');
      expect(logs.map((l) => l.msg)).to.include('stopped');
    } finally {
      await proxy.close();
      client.close();
    }
  });
});
