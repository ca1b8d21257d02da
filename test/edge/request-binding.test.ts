/**
 * Every write bound to its request, with real coordinator processes, a real agent and etcd:
 * a StartJob sent to a SIGSTOPped coordinator whose client gave up (deadline passed) creates no
 * job after SIGCONT; a StartJob retried with the same idempotency key (on another replica, while
 * the first is stopped) returns the first job, and etcd holds one job.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { e2eSuite } from '../e2e/e2e-suite';
import { contractMethods, RawClient, type RawAnswer, type RawMethod } from './raw-client';
import { Keyspace } from '../../shared';
import { IDEMPOTENCY_HEADER } from '../../shared/request-headers';
import { delay, waitFor } from '../helpers';

const START_JOB = '/cluster.v1.JobService/StartJob';

function startJobMethod(): RawMethod {
  const m = contractMethods().find((x) => x.path === START_JOB);
  if (!m) throw new Error('no StartJob');
  return m;
}

function keyed(key: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(IDEMPOTENCY_HEADER, key);
  return md;
}

const EXEC = { kind: 'exec', nodeIds: ['n1'], argv: ['true'] };

describe('edge: writes bound to their request (deadline, idempotency key)', function () {
  this.timeout(180_000);
  const suite = e2eSuite('request-binding');

  it('StartJob to a SIGSTOPped leader: the client times out, and after SIGCONT no job is created', async () => {
    const cluster = await suite.startCluster({ name: 'deadline' });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered'));
    const ks = new Keyspace();
    const client = suite.etcd.client();
    const c1 = cluster.coordinators[0];
    const raw = new RawClient(c1.address, cluster.adminCredentials);
    try {
      // Connected first, so the request itself (not the TLS handshake) waits in the stopped process's socket.
      expect((await raw.call(contractMethods().find((m) => m.name === 'GetStatus') as RawMethod, {})).code).to.equal(grpc.status.OK);
      process.kill(c1.proc.pid, 'SIGSTOP');
      let answer;
      try {
        answer = await raw.call(startJobMethod(), EXEC, { timeoutMs: 2000, metadata: keyed('deadline-test-0001') });
        // Past the deadline by a margin before the replica runs again.
        await delay(1000);
      } finally {
        process.kill(c1.proc.pid, 'SIGCONT');
      }
      expect(answer.code, answer.details).to.equal(grpc.status.DEADLINE_EXCEEDED);
      // The replica reads the request after SIGCONT and refuses it rather than committing it.
      await c1.proc.waitForLog(/"msg":"job refused".*deadline passed/, 30_000);
      expect((await client.getAll().prefix(ks.jobsPrefix()).keys())).to.deep.equal([]);
      expect(await client.getAll().prefix(ks.idempotencyPrefix()).keys()).to.deep.equal([]);
      const node = JSON.parse(await client.get(ks.node('n1')).string() ?? '{}') as { currentJob?: string };
      expect(node.currentJob ?? '').to.equal('');
    } finally {
      raw.close();
    }
  });

  it('a StartJob retried with the same idempotency key returns the first job, also across replicas and a SIGSTOP', async () => {
    const cluster = suite.cluster({ name: 'idempotency' });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const c2 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered'));
    const ks = new Keyspace();
    const client = suite.etcd.client();
    const via1 = new RawClient(c1.address, cluster.adminCredentials);
    const via2 = new RawClient(c2.address, cluster.adminCredentials);
    const jobIds = async (): Promise<string[]> => (await client.getAll().prefix(ks.jobsPrefix()).keys())
      .map((k) => ks.parseJobKey(k)).filter((p) => p && !p.nodeId).map((p) => p?.jobId ?? '');
    const jobOf = (a: RawAnswer): string => {
      expect(a.code, a.details).to.equal(grpc.status.OK);
      return (a.response as { id: string }).id;
    };
    try {
      // Same key twice on one replica, then on the other: one job.
      const first = jobOf(await via1.call(startJobMethod(), EXEC, { metadata: keyed('same-key-0001') }));
      expect(first).to.match(/^j-/);
      expect(jobOf(await via1.call(startJobMethod(), EXEC, { metadata: keyed('same-key-0001') }))).to.equal(first);
      expect(jobOf(await via2.call(startJobMethod(), EXEC, { metadata: keyed('same-key-0001') }))).to.equal(first);
      expect(await jobIds()).to.deep.equal([first]);
      // The same key with another request is refused, not answered with the wrong job.
      const other = await via2.call(startJobMethod(), { ...EXEC, argv: ['false'] }, { metadata: keyed('same-key-0001') });
      expect(other.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(other.details).to.match(/idempotency key already started job/);

      await waitFor('the first job done', async () => {
        const j = JSON.parse(await client.get(ks.job(first)).string() ?? '{}') as { state?: string };
        return j.state === 'Succeeded' || j.state === 'Failed';
      }, { timeoutMs: 60_000 });

      // The client's first try sits in c1 (stopped); its retry goes to c2 and starts the job;
      // c1, resumed before the first try's deadline, answers that try with the same job.
      process.kill(c1.proc.pid, 'SIGSTOP');
      let firstTry: Promise<RawAnswer>;
      let retry: RawAnswer;
      try {
        firstTry = via1.call(startJobMethod(), EXEC, { timeoutMs: 30_000, metadata: keyed('stopped-key-0002') });
        await delay(500);
        retry = await via2.call(startJobMethod(), EXEC, { metadata: keyed('stopped-key-0002') });
      } finally {
        process.kill(c1.proc.pid, 'SIGCONT');
      }
      const second = jobOf(retry);
      expect(jobOf(await firstTry)).to.equal(second);
      expect((await jobIds()).sort()).to.deep.equal([first, second].sort());
    } finally {
      via1.close();
      via2.close();
    }
  });
});
