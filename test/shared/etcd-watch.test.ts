/**
 * watchPrefixes against a real etcd: the subscribers of one prefix on one client share one etcd
 * watcher (shared/watch-hub.ts), counted by etcd itself (`etcd_debugging_mvcc_watcher_total`
 * on its /metrics), and each still sees what its own watcher showed it.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { createLogger, watchPrefixes, type Logger, type PrefixWatch, type WatchOptions } from '../../shared';
import { RenewingEtcd } from '../../agent/renewing-etcd';
import { delay, useEtcd, waitFor } from '../helpers';

const silent = createLogger({ level: 'silent' });

/** What one subscriber's onChange heard: keys of puts/deletes, and resyncs (no key). */
class Heard {
  readonly keys: string[] = [];
  resyncs = 0;
  readonly onChange = (key?: string): void => {
    if (key === undefined) this.resyncs++;
    else this.keys.push(key);
  };
}

function warnings(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'warn', sink: (line) => { lines.push(line); } }), lines };
}

describe('watchPrefixes: one etcd watcher per prefix and client, shared by its subscribers', function () {
  this.timeout(60_000);
  const suite = useEtcd('etcd-watch');
  let client: Etcd3;
  let baseline: number;
  let open: PrefixWatch[];

  const watchers = (): Promise<number> => suite.etcd.metric('etcd_debugging_mvcc_watcher_total');
  /** Waits until etcd holds `n` watchers more than before the test. */
  const expectWatchers = (n: number): Promise<number> =>
    waitFor(`etcd to hold ${n} watcher(s) of this test`, async () => ((await watchers()) === baseline + n ? n : undefined), { timeoutMs: 10_000, intervalMs: 50 });
  const watch = (prefixes: string[], heard: Heard, options?: WatchOptions, logger: Logger = silent, on: Etcd3 = client): PrefixWatch => {
    const w = watchPrefixes(on, prefixes, heard.onChange, logger, options);
    open.push(w);
    return w;
  };
  const connected = (...all: Heard[]): Promise<true> =>
    waitFor('every subscriber to have its connect', () => all.every((h) => h.resyncs >= 1) || undefined, { timeoutMs: 10_000, intervalMs: 20 });

  beforeEach(async () => {
    // A client of its own per test: its hub starts empty, and etcd counts only its watchers.
    client = suite.etcd.client();
    open = [];
    baseline = await watchers();
  });

  afterEach(async () => {
    await Promise.all(open.map((w) => w.stop()));
    client.close();
  });

  it('gives every subscriber of a prefix its puts and deletes through its own filters, over one etcd watcher', async () => {
    const ks = suite.ks;
    const all = new Heard();
    const onlyA = new Heard();
    const notSkipped = new Heard();
    watch([ks.nodesPrefix()], all);
    watch([ks.nodesPrefix()], onlyA, { keyFilter: (key) => key.endsWith('a') });
    watch([ks.nodesPrefix()], notSkipped, { putFilter: (_key, value) => value.toString() !== 'skip', previousValues: false });
    await connected(all, onlyA, notSkipped);
    expect(await expectWatchers(1)).to.equal(1);

    await client.put(ks.node('n1')).value('x');
    await client.put(ks.node('n2a')).value('skip');
    await client.delete().key(ks.node('n1'));
    await client.delete().key(ks.node('n2a'));
    await client.put(ks.node('enda')).value('x');
    await waitFor('the last put', () => all.keys.includes(ks.node('enda')) || undefined);

    expect(all.keys).to.deep.equal([ks.node('n1'), ks.node('n2a'), ks.node('n1'), ks.node('n2a'), ks.node('enda')]);
    expect(onlyA.keys).to.deep.equal([ks.node('n2a'), ks.node('n2a'), ks.node('enda')]);
    expect(notSkipped.keys).to.deep.equal([ks.node('n1'), ks.node('n1'), ks.node('n2a'), ks.node('enda')]);
    expect([all.resyncs, onlyA.resyncs, notSkipped.resyncs]).to.deep.equal([1, 1, 1]);
    expect(await watchers()).to.equal(baseline + 1);
  });

  it('keeps the watcher for the others when one stops, cancels it with the last, and opens it again for a later one', async () => {
    const ks = suite.ks;
    const first = new Heard();
    const second = new Heard();
    const a = watch([ks.groupsPrefix(), ks.jobsPrefix()], first);
    const b = watch([ks.groupsPrefix()], second);
    await connected(first, second);
    await expectWatchers(2);

    await a.stop();
    await client.put(ks.group('g1')).value('x');
    await client.put(ks.job('j1')).value('x');
    await waitFor('the group put', () => second.keys.length === 1 || undefined);
    expect(second.keys).to.deep.equal([ks.group('g1')]);
    expect(first.keys).to.deep.equal([]);
    // jobs/ had only the stopped one: its watcher is gone; groups/ still has one.
    await expectWatchers(1);

    await b.stop();
    await expectWatchers(0);
    await client.put(ks.group('g2')).value('x');
    await delay(200);
    expect(second.keys).to.deep.equal([ks.group('g1')]);

    const third = new Heard();
    watch([ks.groupsPrefix()], third);
    await connected(third);
    await expectWatchers(1);
    await client.put(ks.group('g3')).value('x');
    await waitFor('the put after re-opening', () => third.keys.length === 1 || undefined);
    expect(third.keys).to.deep.equal([ks.group('g3')]);
  });

  it('gives a subscriber that arrives while the last one\'s cancel is in flight a live watcher (leadership lost and won again)', async () => {
    const ks = suite.ks;
    for (let round = 0; round < 5; round++) {
      const before = new Heard();
      const w = watch([ks.nodesPrefix()], before);
      await connected(before);
      const stopping = w.stop();
      const after = new Heard();
      watch([ks.nodesPrefix()], after);
      await connected(after);
      await stopping;
      await client.put(ks.node(`r${round}`)).value('x');
      await waitFor(`round ${round}'s put`, () => after.keys.length === 1 || undefined);
      expect(before.keys).to.deep.equal([]);
      await expectWatchers(1);
      await Promise.all(open.map((o) => o.stop()));
      open = [];
      await expectWatchers(0);
    }
  });

  it('gives one resync soon after subscribing to a subscriber that joins a connected watcher, and none to the others', async () => {
    const ks = suite.ks;
    const early = new Heard();
    watch([ks.factsPrefix()], early);
    await connected(early);
    const late = new Heard();
    watch([ks.factsPrefix()], late);
    expect(late.resyncs).to.equal(0); // soon after, not inside watchPrefixes
    await connected(late);
    await delay(100);
    expect([early.resyncs, late.resyncs]).to.deep.equal([1, 1]);
    expect(await watchers()).to.equal(baseline + 1);
  });

  it('re-opens a watcher with previous values for a put filter that needs them, missing and repeating nothing', async () => {
    const ks = suite.ks;
    await client.put(ks.member('m1')).value('v1');
    const plain = new Heard();
    watch([ks.membersPrefix()], plain);
    await connected(plain);

    const seen: string[] = [];
    const withPrevious = new Heard();
    watch([ks.membersPrefix()], withPrevious, {
      putFilter: (key, value, previous) => {
        seen.push(`${key}: ${previous?.toString() ?? '(none)'} -> ${value.toString()}`);
        return true;
      },
    });
    // Written while the re-opened watcher connects: the old one's events have stopped, the new one resumes from its revision.
    await client.put(ks.member('m1')).value('v2');
    await connected(withPrevious);
    await client.put(ks.member('m1')).value('v3');
    await client.put(ks.member('m2')).value('w1');
    await waitFor('the last put', () => plain.keys.includes(ks.member('m2')) || undefined);
    await waitFor('the last put, with its previous value', () => withPrevious.keys.includes(ks.member('m2')) || undefined);

    expect(plain.keys).to.deep.equal([ks.member('m1'), ks.member('m1'), ks.member('m2')]);
    expect(plain.resyncs).to.equal(1); // it missed nothing: the re-open is not a resync for it
    expect(withPrevious.resyncs).to.equal(1);
    // It may see the put made while it joined (the new watcher resumed before it): with its previous value then.
    const tail = seen.filter((s) => !s.endsWith('-> v2'));
    expect(tail).to.deep.equal([`${ks.member('m1')}: v2 -> v3`, `${ks.member('m2')}: (none) -> w1`]);
    expect(seen.filter((s) => s.endsWith('-> v2')).every((s) => s === `${ks.member('m1')}: v1 -> v2`)).to.equal(true);
    // The old watcher was cancelled: one left.
    await expectWatchers(1);
  });

  it('gives a subscriber without previousValues no previous value, though the watcher has them for another', async () => {
    const ks = suite.ks;
    const previousSeen: (string | undefined)[] = [];
    const a = new Heard();
    const b = new Heard();
    watch([ks.groupsPrefix()], a, { putFilter: () => true });
    watch([ks.groupsPrefix()], b, { putFilter: (_k, _v, previous) => { previousSeen.push(previous?.toString()); return true; }, previousValues: false });
    await connected(a, b);
    await client.put(ks.group('g')).value('1');
    await client.put(ks.group('g')).value('2');
    await waitFor('both puts', () => b.keys.length === 2 || undefined);
    expect(previousSeen).to.deep.equal([undefined, undefined]);
  });

  it('keeps a prefix nested in another a watcher of its own', async () => {
    const ks = suite.ks;
    const jobs = new Heard();
    const jobNodes = new Heard();
    watch([ks.jobsPrefix()], jobs);
    watch([ks.jobNodesPrefix('j1')], jobNodes);
    await connected(jobs, jobNodes);
    await expectWatchers(2);
    await client.put(ks.job('j1')).value('x');
    await client.put(ks.jobNode('j1', 'n1')).value('x');
    await waitFor('the per-node put', () => jobs.keys.length === 2 && jobNodes.keys.length === 1 || undefined);
    expect(jobs.keys).to.deep.equal([ks.job('j1'), ks.jobNode('j1', 'n1')]);
    expect(jobNodes.keys).to.deep.equal([ks.jobNode('j1', 'n1')]);
  });

  it('shares nothing between two clients', async () => {
    const ks = suite.ks;
    const other = suite.etcd.client();
    try {
      const a = new Heard();
      const b = new Heard();
      watch([ks.nodesPrefix()], a);
      const w = watch([ks.nodesPrefix()], b, undefined, silent, other);
      await connected(a, b);
      await expectWatchers(2);
      await w.stop();
      await expectWatchers(1);
    } finally {
      other.close();
    }
  });

  it('opens a watch made through the agent\'s renewing client after a replacement on the new client, not on the old one\'s watcher', async () => {
    const ks = suite.ks;
    const first = suite.etcd.client();
    const renewing = new RenewingEtcd(first, { closeAfterMs: 0 });
    try {
      const before = new Heard();
      const old = watch([ks.electionPrefix()], before, undefined, silent, renewing.client);
      await connected(before);
      // What LeaderEtcdSource.rewatch does on onReplaced: a new watch, then the old one stopped.
      await renewing.replace(suite.etcd.client());
      const after = new Heard();
      watch([ks.electionPrefix()], after, undefined, silent, renewing.client);
      await old.stop();
      await connected(after);
      await delay(100); // the old client is closed after closeAfterMs
      // A closed client's stream lives on until it breaks (grpc-js ends no call on close): break it.
      await suite.etcd.stop();
      await suite.etcd.start();
      await waitFor('the new client\'s watcher to reconnect', () => after.resyncs >= 2 || undefined, { timeoutMs: 30_000, intervalMs: 50 });
      await client.put(ks.electionCandidate('c1')).value('x');
      await waitFor('the put, through the new client', () => after.keys.length === 1 || undefined);
      expect(before.keys).to.deep.equal([]);
      baseline = 0; // the restarted etcd counts from zero
      await expectWatchers(1);
    } finally {
      await Promise.all(open.map((w) => w.stop()));
      open = [];
      renewing.close();
    }
  });

  it('calls every subscriber\'s onChange when the shared watcher reconnects after an etcd restart', async () => {
    const ks = suite.ks;
    const heard = [new Heard(), new Heard(), new Heard()];
    watch([ks.nodesPrefix()], heard[0]);
    watch([ks.nodesPrefix()], heard[1], { keyFilter: () => false });
    watch([ks.nodesPrefix()], heard[2], { putFilter: () => true });
    await connected(...heard);

    await suite.etcd.stop();
    await suite.etcd.start();
    await waitFor('every subscriber\'s resync after the restart', () => heard.every((h) => h.resyncs >= 2) || undefined, { timeoutMs: 30_000, intervalMs: 50 });
    baseline = 0; // the restarted etcd counts from zero: ours are all it has
    await expectWatchers(1);
    await client.put(ks.node('after')).value('x');
    await waitFor('the put after the restart', () => heard[0].keys.length === 1 && heard[2].keys.length === 1 || undefined);
    expect(heard[1].keys).to.deep.equal([]);
  });

  it('logs an error of a shared watcher once, not once per subscriber, and its subscribers stop without waiting for etcd', async () => {
    const ks = suite.ks;
    // A user with no role: etcd refuses (cancels) its watch of any prefix.
    const refused = suite.etcd.clientAs(await suite.etcd.tls('watch-test-nobody'));
    const logs = [warnings(), warnings()];
    try {
      const a = watch([ks.nodesPrefix()], new Heard(), undefined, logs[0].logger, refused);
      const b = watch([ks.nodesPrefix()], new Heard(), undefined, logs[1].logger, refused);
      await waitFor('the refusal logged', () => logs.some((l) => l.lines.length > 0) || undefined, { timeoutMs: 10_000, intervalMs: 20 });
      await delay(200);
      const lines = logs.flatMap((l) => l.lines);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(/watch error/).and.to.match(/"subscribers":2/).and.to.match(/permission denied/);
      // No cancel is sent for a watcher etcd cancelled: etcd would never acknowledge it.
      const started = Date.now();
      await Promise.all([a.stop(), b.stop()]);
      expect(Date.now() - started).to.be.below(1_000);
    } finally {
      refused.close();
    }
  });

  it('stops without hanging after the client is closed', async () => {
    const ks = suite.ks;
    const own = suite.etcd.client();
    const a = new Heard();
    const b = new Heard();
    const wa = watch([ks.nodesPrefix()], a, undefined, silent, own);
    const wb = watch([ks.nodesPrefix()], b, undefined, silent, own);
    await connected(a, b);
    own.close();
    const started = Date.now();
    await Promise.all([wa.stop(), wb.stop()]);
    expect(Date.now() - started).to.be.below(5_000);
    await expectWatchers(0);
  });
});
