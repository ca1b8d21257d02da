/**
 * `clusterctl status` tells a slow etcd from an unreachable one (coordinator/status-service.ts):
 * its probe is its own short-lived client, and when no member answers in time it says how long
 * it waited and whether a member still accepts connections. A SIGSTOPped etcd (connections
 * accepted, nothing answered, as under a flood) is "slow", with the time; a killed one stays
 * "unreachable" (test/cli/rough-edges.test.ts).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { main } from '../../cli/main';
import { Coordinator } from '../../coordinator';
import { acceptsConnections } from '../../coordinator/status-service';
import { createLogger, Keyspace } from '../../shared';
import { EtcdServer, freePort, testPki } from '../helpers';

async function cli(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: { write: (t) => { out += t; }, isTTY: false }, err: (t) => { err += t; }, env: { HOME: '/nonexistent', ...env } });
  return { code, out, err };
}

describe('status: the etcd probe says slow, with the time it waited, not unreachable', function () {
  this.timeout(120_000);

  it('accepts a listening port, refuses a closed one', async () => {
    const etcd = await EtcdServer.start('accepts');
    try {
      expect(await acceptsConnections(etcd.endpoint, 1000)).to.equal(true);
      expect(await acceptsConnections(`127.0.0.1:${await freePort()}`, 1000)).to.equal(false);
    } finally {
      await etcd.destroy();
    }
  });

  it('a stopped etcd (connections accepted, no answer) is reported slow with the measured wait; after SIGCONT status is whole again', async () => {
    const etcd = await EtcdServer.start('status-slow');
    const client = etcd.client();
    const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const pki = await testPki();
    const c = new Coordinator({
      etcd: client, etcdTls: etcd.rootTls, keyspace: ks, etcdEndpoints: [etcd.endpoint], logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
    });
    let frozen = false;
    try {
      await c.start();
      const creds = pki.writeCredentialsFile(await pki.identity('viewer'), [c.address]);
      const up = await cli(['status', '-o', 'json'], { CLUSTERCTL_CREDENTIALS: creds });
      expect(up.code, up.err).to.equal(0);
      etcd.freeze();
      frozen = true;
      const slow = await cli(['--timeout', '10s', 'status'], { CLUSTERCTL_CREDENTIALS: creds });
      expect(slow.code).to.equal(1);
      expect(slow.err).to.match(/etcd is slow from coordinator r1: no member answered its status probe within 2000 ms \(waited (\d+) ms; 127\.0\.0\.1:\d+\), but a member accepts connections/);
      const waited = Number(/waited (\d+) ms/.exec(slow.err)?.[1]);
      expect(waited).to.be.at.least(1900);
      expect(slow.err).to.not.match(/unreachable: no member answered/);
      etcd.thaw();
      frozen = false;
      const back = await cli(['--timeout', '10s', 'status'], { CLUSTERCTL_CREDENTIALS: creds });
      expect(back.code, back.err).to.equal(0);
    } finally {
      if (frozen) etcd.thaw();
      await c.stop({ graceMs: 500 });
      await etcd.destroy();
    }
  });
});
