/**
 * clusterctl itself binds its writes to the request (issue 16 §4): the real clusterctl, real
 * coordinator processes, a real agent and etcd, with a TLS-record relay (tls-record-relay.ts)
 * in front of the first coordinator playing the network. test/edge/request-binding.test.ts
 * shows the coordinator's side with a raw client that sets the headers itself; these fail if
 * clusterctl stops sending them:
 *
 * - the deadline: `node commission` whose request reaches a SIGSTOPped leader only as the client
 *   gives up (--timeout 3s) creates no job after SIGCONT — gRPC's own deadline (grpc-timeout) is
 *   a duration the server starts counting when it reads the request, so only the wall-clock
 *   deadline clusterctl sends lets the replica see that the client is gone;
 * - the idempotency key: a `node commission` whose answer is lost (the coordinator committed
 *   the job, then the connection was reset) is retried by clusterctl on the next replica, which
 *   answers with the same job because the retry carries the same key: etcd holds one job.
 */
import { expect } from 'chai';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { e2eSuite } from '../e2e/e2e-suite';
import { Keyspace } from '../../shared';
import { delay, waitFor, type RunResult } from '../helpers';
import type { TestCluster } from '../helpers/cluster';
import { APPLICATION_DATA, TlsRecordRelay, type RecordAction, type RelayConnection, type RelayedRecord } from './tls-record-relay';

const BUNDLE = `name: demo
version: "1"
units:
  - id: motd
    kind: file
    path: /etc/motd
    content: "demo\\n"
    mode: "0644"
`;

/**
 * Whether `record` is a call of clusterctl: a client record of application data of 150 bytes or
 * more (gRPC HEADERS with the method and metadata, and the request) sent after the server
 * answered the client's handshake flight (session tickets, HTTP/2 SETTINGS). The client's
 * certificate goes before that answer; the HTTP/2 preface, sent with the client's Finished, and
 * the SETTINGS ACK are smaller. The tests take the first such record and check by what follows
 * (the coordinator's log, the job in etcd) that it was the request, so a wrong guess fails them.
 */
function isCall(record: RelayedRecord, conn: RelayConnection): boolean {
  if (record.direction !== 'up' || record.type !== APPLICATION_DATA || record.length < 150) return false;
  const earlier = conn.records.slice(0, -1);
  const clientFlight = earlier.findIndex((r) => r.direction === 'up' && r.type === APPLICATION_DATA);
  return clientFlight >= 0 && earlier.slice(clientFlight).some((r) => r.direction === 'down' && r.type === APPLICATION_DATA);
}

/** A node n1 (sandbox root), bundle demo@1 and group worker using it: `node commission n1 -g worker` starts a job. */
async function withWorkerGroup(cluster: TestCluster): Promise<void> {
  const root = join(cluster.baseDir, 'roots', 'n1');
  mkdirSync(root, { recursive: true });
  await cluster.startAgent('n1', { extraArgs: ['--root', root] });
  await cluster.waitForNodes('n1 Discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered'));
  const file = join(cluster.baseDir, 'demo.yaml');
  writeFileSync(file, BUNDLE);
  for (const args of [['bundle', 'push', '-f', file], ['group', 'set', 'worker', '--bundle', 'demo@1']]) {
    const r = await cluster.ctl(args);
    expect(r.code, `clusterctl ${args.join(' ')}: ${r.stderr}`).to.equal(0);
  }
}

describe('edge: clusterctl sends the request deadline and the idempotency key (real clusterctl, SIGSTOP, a lost answer)', function () {
  this.timeout(180_000);
  const suite = e2eSuite('cli-request-binding');
  const ks = new Keyspace();
  const jobIds = async (): Promise<string[]> => (await suite.etcd.client().getAll().prefix(ks.jobsPrefix()).keys())
    .map((k) => ks.parseJobKey(k)).filter((p) => p && !p.nodeId).map((p) => p?.jobId ?? '');

  it('node commission whose request reaches a SIGSTOPped leader as clusterctl times out: no job after SIGCONT', async () => {
    const cluster = await suite.startCluster({ name: 'cli-deadline' });
    await withWorkerGroup(cluster);
    const c1 = cluster.coordinators[0];
    let requestOn: (conn: RelayConnection, at: number) => void = () => undefined;
    const request = new Promise<{ conn: RelayConnection; at: number }>((resolve) => { requestOn = (conn, at) => resolve({ conn, at }); });
    let held: { conn: RelayConnection; at: number } | undefined;
    const relay = await TlsRecordRelay.start(c1.address, (record, conn): RecordAction => {
      if (held === undefined && isCall(record, conn)) {
        held = { conn, at: record.atMs };
        requestOn(conn, record.atMs);
        return 'hold';
      }
      if (held?.conn !== conn || record.direction !== 'up') return 'forward';
      // The rest of the request (a DATA record written with it) goes with it; what the client
      // sends after giving up (RST_STREAM, GOAWAY) never arrives, so only the deadline can stop the job.
      return record.atMs - held.at < 50 ? 'hold' : 'drop';
    });
    let stopped = false;
    try {
      const ctl: Promise<RunResult> = cluster.ctl(['--coordinator', relay.endpoint, '--timeout', '3s', 'node', 'commission', 'n1', '-g', 'worker']);
      const { conn } = await request;
      process.kill(c1.proc.pid, 'SIGSTOP');
      stopped = true;
      relay.release(conn, 'up');
      const r = await ctl;
      expect(r.code, `clusterctl: ${r.stdout}${r.stderr}`).to.equal(1);
      expect(r.stderr).to.match(/did not answer within 3s/);
      await delay(1000);
      process.kill(c1.proc.pid, 'SIGCONT');
      stopped = false;
      // The replica reads the request after SIGCONT and refuses it rather than committing it
      // (without clusterctl's deadline header it commits the job here).
      const refused = /"msg":"job refused".*deadline passed/;
      const outcome = await waitFor('c1 to refuse or commit the job', async () => (refused.test(c1.proc.logs) ? 'refused' : (await jobIds()).length > 0 ? 'committed' : undefined), { timeoutMs: 30_000 });
      expect(outcome).to.equal('refused');
      expect(await jobIds()).to.deep.equal([]);
      expect(await suite.etcd.client().getAll().prefix(ks.idempotencyPrefix()).keys()).to.deep.equal([]);
    } finally {
      if (stopped) process.kill(c1.proc.pid, 'SIGCONT');
      await relay.close();
    }
  });

  it('node commission whose answer is lost after the job was committed: clusterctl retries on the next replica with the same key, one job', async () => {
    const cluster = suite.cluster({ name: 'cli-idempotency' });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const c2 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false });
    await withWorkerGroup(cluster);
    let requestOn: (conn: RelayConnection) => void = () => undefined;
    const request = new Promise<RelayConnection>((resolve) => { requestOn = resolve; });
    let lost: RelayConnection | undefined;
    const relay = await TlsRecordRelay.start(c1.address, (record, conn): RecordAction => {
      if (lost === undefined && isCall(record, conn)) {
        lost = conn;
        requestOn(conn);
        return 'forward';
      }
      // The coordinator's answer never reaches clusterctl.
      return lost === conn && record.direction === 'down' ? 'drop' : 'forward';
    });
    try {
      const ctl = cluster.ctl(['--coordinator', `${relay.endpoint},${c2.address}`, '--timeout', '30s', 'node', 'commission', 'n1', '-g', 'worker']);
      const conn = await request;
      // c1 committed the job (and answered into the void); then the connection dies.
      let committed: string[] = [];
      for (const t0 = Date.now(); committed.length === 0 && Date.now() - t0 < 20_000; await delay(50)) committed = await jobIds();
      expect(committed, 'c1 committed the job').to.have.length(1);
      relay.reset(conn);
      const r = await ctl;
      expect(r.code, `clusterctl: ${r.stdout}${r.stderr}`).to.equal(0);
      expect(r.stdout).to.match(new RegExp(`^job ${committed[0]} started`, 'm'));
      expect(await jobIds()).to.deep.equal(committed);
    } finally {
      await relay.close();
    }
  });
});
