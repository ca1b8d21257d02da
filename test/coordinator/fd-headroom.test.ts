/**
 * The leader warns while its client connections near the open-files limit (coordinator/fd-headroom.ts):
 * at 20,000 agents on a box whose hard limit was 20,000 it lost its leadership to EMFILE with
 * nothing in its log before. The rule with a hand-driven clock, the limit as a real process
 * reads it, and a real coordinator under `prlimit` taking real mutual-TLS connections.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { FdHeadroom, openFilesLimit } from '../../coordinator/fd-headroom';
import { createLogger, type LogFields, type Logger } from '../../shared';
import { loadProto } from '../../shared/proto';
import { clientCredentials, parseCredentials } from '../../shared/pki';
import { EtcdServer, TestCluster, run, testPki, waitFor } from '../helpers';

function recorder(): { logger: Logger; warnings: { msg: string; f?: LogFields }[] } {
  const warnings: { msg: string; f?: LogFields }[] = [];
  const quiet = createLogger({ level: 'silent' });
  const logger: Logger = { ...quiet, warn: (msg: string, f?: LogFields) => { warnings.push({ msg, ...(f ? { f } : {}) }); }, child: () => logger };
  return { logger, warnings };
}

describe('open-files headroom of the leader', function () {
  this.timeout(120_000);

  it('reads the soft limit from /proc/self/limits; unlimited or missing is no limit', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units',
      'Max processes             127                  127                  processes',
      'Max open files            20000                20000                files',
    ].join('\n');
    expect(openFilesLimit(text)).to.equal(20_000);
    expect(openFilesLimit(text.replace(/20000 {16}20000/, 'unlimited            unlimited'))).to.equal(undefined);
    expect(openFilesLimit('Max processes 1 1 processes')).to.equal(undefined);
  });

  it('warns once connections and other descriptors reach 80 % of the limit, at most once a minute', () => {
    const { logger, warnings } = recorder();
    let now = 0;
    let open = 0;
    let counts = 0;
    const h = new FdHeadroom({ logger, limit: 1000, baseFds: 20, countFds: () => { counts++; return open; }, now: () => now });
    open = 420;
    expect(h.check(400), 'under half the limit: not counted').to.equal(false);
    expect(counts).to.equal(0);
    open = 600; // 500 connections, and the other descriptors grew to 100 since start
    expect(h.check(500)).to.equal(false);
    expect([counts, h.baseFds]).to.deep.equal([1, 100]);
    open = 860; // the other descriptors grew to 210
    expect(h.check(650), 'counted again only a second later').to.equal(false);
    expect(counts).to.equal(1);
    now += 1000;
    expect(h.check(650)).to.equal(true);
    expect([counts, h.baseFds]).to.deep.equal([2, 210]);
    expect(warnings[0].msg).to.equal('client connections near the open-files limit');
    expect(warnings[0].f).to.include({ connections: 650, otherFds: 210, limit: 1000 });
    expect(String(warnings[0].f?.fix)).to.match(/LimitNOFILE/);
    now += 59_000;
    expect(h.check(700), 'not again within a minute').to.equal(false);
    now += 1_000;
    expect(h.check(700)).to.equal(true);
    expect(warnings).to.have.length(2);
  });

  it('a process started under prlimit reads that limit', async () => {
    const code = `const { openFilesLimit, openFds } = require(${JSON.stringify(require.resolve('../../coordinator/fd-headroom'))}); console.log(JSON.stringify({ limit: openFilesLimit(), fds: openFds() }));`;
    const r = await run('prlimit', ['--nofile=150:150', '--', process.execPath, '-e', code]);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as { limit: number; fds: number };
    expect(out.limit).to.equal(150);
    expect(out.fds).to.be.greaterThan(2).and.lessThan(150);
  });

  describe('a real coordinator with an open-files limit of 200', () => {
    let etcd: EtcdServer;
    let cluster: TestCluster;
    const clients: grpc.Client[] = [];
    before(async () => {
      await testPki();
      etcd = await EtcdServer.start('fd-headroom');
      cluster = new TestCluster(etcd, { name: 'fd-headroom' });
      await cluster.startCoordinator({ openFilesLimit: 200 });
    });
    after(async () => {
      for (const c of clients) c.close();
      await cluster?.destroy();
      await etcd?.destroy();
    });

    it('warns before its connections run it out of descriptors, and keeps serving', async () => {
      const { api } = loadProto();
      const admin = parseCredentials(readFileSync(cluster.adminCredentials, 'utf8'), cluster.adminCredentials);
      const tls = clientCredentials({ caPem: admin.ca, certPem: admin.certificate, keyPem: admin.key });
      const coordinator = cluster.coordinators[0];
      const warned = (): boolean => /client connections near the open-files limit/.test(coordinator.proc.logs);
      // One real mutual-TLS connection per client (no shared subchannel), each proven by a call.
      const call = (c: grpc.Client): Promise<void> => new Promise((resolve, reject) => {
        (c as unknown as { ListGroups(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void })
          .ListGroups({}, { deadline: new Date(Date.now() + 10_000) }, (err) => (err ? reject(err) : resolve()));
      });
      let opened = 0;
      while (!warned() && opened < 190) {
        const c = new api.cluster.v1.ConfigService(cluster.coordinatorAddress, tls, { 'grpc.use_local_subchannel_pool': 1 });
        clients.push(c);
        await call(c);
        opened++;
      }
      await waitFor('the warning', () => Promise.resolve(warned()), { timeoutMs: 5_000 });
      const line = coordinator.proc.logs.split('\n').find((l) => l.includes('client connections near the open-files limit')) ?? '';
      const f = JSON.parse(line) as { level: string; connections: number; otherFds: number; limit: number };
      expect(f.level).to.equal('warn');
      expect(f.limit).to.equal(200);
      expect(f.connections + f.otherFds).to.be.at.least(160);
      expect(f.connections, 'warned before the limit was reached').to.be.at.most(opened);
      // Still serving (nothing failed with EMFILE), and said once.
      for (const c of clients.splice(0)) c.close();
      const fresh = new api.cluster.v1.ConfigService(cluster.coordinatorAddress, tls);
      clients.push(fresh);
      await call(fresh);
      expect(coordinator.proc.logs.split('\n').filter((l) => /EMFILE|near the open/.test(l)).map((l) => l.slice(0, 400))).to.have.length(1);
      expect(coordinator.proc.logs.match(/client connections near the open-files limit/g)).to.have.length(1);
    });
  });
});
