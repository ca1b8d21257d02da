/**
 * EtcdLeaderSource against a real etcd: the election rule of shared/leader-record.ts applied to
 * what the watch reports (puts, deletes), and a malformed lowest record skipped (the next
 * candidate leads, as the coordinators' own election decides), not "no leader".
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { EtcdLeaderSource, type LeaderInfo } from '../../agent/leader-discovery';
import { createEtcdClient } from '../../shared/etcd';
import { Keyspace } from '../../shared/keyspace';
import { createLogger } from '../../shared/logger';
import { EtcdServer, waitFor } from '../helpers';

describe('agent leader discovery (EtcdLeaderSource)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let ks: Keyspace;
  const sources: EtcdLeaderSource[] = [];

  before(async () => {
    etcd = await EtcdServer.start('leader-discovery');
    client = createEtcdClient({ endpoints: [etcd.endpoint], tls: etcd.rootTls });
  });
  after(async () => {
    client?.close();
    await etcd?.destroy();
  });
  beforeEach(() => { ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`); });
  afterEach(async () => { for (const s of sources.splice(0)) await s.close(); });

  const record = (id: string, port: number): string => JSON.stringify({ id, address: `127.0.0.1:${port}`, startedAt: '2026-01-01T00:00:00Z' });

  async function source(): Promise<{ s: EtcdLeaderSource; seen: (LeaderInfo | undefined)[] }> {
    const s = new EtcdLeaderSource({ etcd: client, keyspace: ks, logger: createLogger({ level: 'silent' }), callTimeoutMs: 2000 });
    sources.push(s);
    const seen: (LeaderInfo | undefined)[] = [];
    s.subscribe((l) => seen.push(l));
    await s.start();
    return { s, seen };
  }

  it('the lowest create revision leads; a delete of its key hands over to the next; a malformed record is skipped', async () => {
    await client.put(ks.electionCandidate('a')).value(record('a', 7001));
    await client.put(ks.electionCandidate('b')).value(record('b', 7002));
    const { s, seen } = await source();
    expect(s.current()).to.include({ id: 'a', address: '127.0.0.1:7001' });
    expect(seen.map((l) => l?.id)).to.deep.equal(['a']);

    await client.delete().key(ks.electionCandidate('a'));
    await waitFor('b to lead', () => s.current()?.id === 'b', { timeoutMs: 10_000 });

    // A malformed record with a lower create revision than c's: skipped, b still leads.
    await client.delete().key(ks.electionCandidate('b'));
    await waitFor('no leader', () => s.current() === undefined, { timeoutMs: 10_000 });
    await client.put(ks.electionCandidate('bad')).value('not json');
    await client.put(ks.electionCandidate('c')).value(record('c', 7003));
    await waitFor('c to lead past the malformed lowest record', () => s.current()?.id === 'c', { timeoutMs: 10_000 });
    expect(seen.map((l) => l?.id)).to.deep.equal(['a', 'b', undefined, 'c']);
  });

  it('refresh() after close() reads nothing and notifies nobody', async () => {
    const { s, seen } = await source();
    expect(s.current()).to.equal(undefined);
    await s.close();
    await client.put(ks.electionCandidate('a')).value(record('a', 7001));
    await s.refresh();
    expect(s.current()).to.equal(undefined);
    expect(seen).to.deep.equal([]);
  });
});
