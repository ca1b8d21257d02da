/**
 * The election at the default 2 s TTL against a blocked main event loop (issue 12 §2): the
 * keepalives run in a worker thread (coordinator/lease-keeper.ts), so a loop blocked for longer
 * than the TTL keeps the leadership, while a loop blocked past the stall limit loses it — a hung
 * leader must not lead forever. The block is a busy-wait on this process's main thread, which
 * is the in-process coordinator's event loop. Real etcd (TLS, client certificates), real gRPC.
 */
import { expect } from 'chai';
import { useEtcd, waitFor, testPki, type TestPki } from '../helpers';
import { Coordinator, newNodeRecord, type CoordinatorOptions } from '../../coordinator';
import { createLogger, decodeNode, type LogFields, type Logger } from '../../shared';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

/** Blocks the calling thread (the event loop) for `ms`. */
function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spinning on purpose: nothing else may run on this loop meanwhile
  }
}

/** Lets the loop run the timers and messages that queued up during a block. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

describe('election against a blocked event loop (keepalives in a worker thread)', function () {
  this.timeout(60_000);
  const env = useEtcd('election-stall');
  const running: Coordinator[] = [];
  let pki: TestPki;

  before(async () => {
    pki = await testPki();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop({ graceMs: 500 })));
  });

  async function startLeader(over: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
    const c = new Coordinator({
      etcd: env.client, etcdEndpoints: [env.etcd.endpoint], etcdTls: env.etcd.rootTls, keyspace: env.ks, logger, replicaId: 'a', listen: '127.0.0.1:0',
      electionTtlMs: 2000, pki: await pki.coordinatorPki(env.client, env.ks), ...over,
    });
    running.push(c);
    await c.start();
    await waitFor('a to lead', () => c.isLeader(), { timeoutMs: 15_000 });
    return c;
  }

  async function candidateRevision(): Promise<string | undefined> {
    return (await env.client.get(env.ks.electionCandidate('a')).exec()).kvs[0]?.create_revision;
  }

  it('a loop blocked for 3 s keeps the leadership at the 2 s TTL, and its fenced writes still land', async () => {
    const c = await startLeader();
    const revision = await candidateRevision();
    expect(revision).to.be.a('string');
    const losses: string[] = [];
    c.leaderElection.on('lost', (reason) => losses.push(reason));

    busyWait(3000);
    await settle();

    expect(losses, 'leadership lost during a 3 s block').to.deep.equal([]);
    expect(c.isLeader()).to.equal(true);
    expect(await candidateRevision(), 'the candidate key (and so its lease) survived').to.equal(revision);
    await c.nodes.mutate('n1', (cur) => (cur ? undefined : { next: newNodeRecord('n1', new Date().toISOString()), event: { type: 'node.created', message: 'after the block' } }));
    const text = await env.client.get(env.ks.node('n1')).string();
    expect(text && decodeNode(env.ks.node('n1'), text).id).to.equal('n1');
  });

  it('a loop blocked past the stall limit loses the leadership (its lease expires in etcd); it leads again afterwards', async () => {
    // The "lost leadership" line, to see when it says the leadership lapsed.
    const lostLines: LogFields[] = [];
    const capture: Logger = {
      debug: () => undefined, info: () => undefined, error: () => undefined, child: () => capture,
      warn: (msg, f) => { if (msg === 'lost leadership' && f) lostLines.push(f); },
    };
    const c = await startLeader({ electionStallLimitMs: 2500, logger: capture });
    const revision = await candidateRevision();
    const losses: string[] = [];
    c.leaderElection.on('lost', (reason) => losses.push(reason));

    // Keepalives stop 2.5 s into the block; the lease then lasts at most one TTL (2 s) more.
    const blockStart = Date.now();
    busyWait(7000);
    // Before any timer ran: the leadership is over by the clock already, whatever the log says later.
    expect(c.isLeader(), 'not leader the moment the block ends').to.equal(false);
    const blockEnd = Date.now();
    await settle();

    expect(losses.length, 'leadership lost after the block').to.be.greaterThan(0);
    // The line comes after the block (the expiry timer ran late) and says how long before it the
    // leadership lapsed: no later than the stall limit plus one TTL into the block.
    const lapsedMsAgo = Number(lostLines[0]?.lapsedMsAgo);
    expect(lapsedMsAgo, 'lapsedMsAgo in the "lost leadership" line').to.be.a('number').and.greaterThan(0);
    const lapsedAt = blockEnd - lapsedMsAgo;
    expect(lapsedAt - blockStart, 'lapsed within stall limit + TTL of the block start (ms)').to.be.at.most(2500 + 2000 + 300);
    expect(await candidateRevision(), 'the old candidate key is gone').to.not.equal(revision);
    await waitFor('a to lead again with a new key', async () => c.isLeader() && (await candidateRevision()) !== revision, { timeoutMs: 15_000 });
  });
});
