/**
 * A real Agent, in-process, against a real etcd (test/helpers EtcdServer): registration keys,
 * the lease behind the member key, stop() revoking it, expiry when renewals stop, lease loss,
 * and re-registration across an etcd outage. Facts are injected (a fixed object shared by
 * the agents, as a benchmark would) so the test is about membership, not systeminformation.
 */
import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { Agent, type StaticCredentials } from '../../agent';
import { createEtcdClient } from '../../shared/etcd';
import type { Facts } from '../../shared/facts';
import { Keyspace } from '../../shared/keyspace';
import { createLogger, type Logger } from '../../shared/logger';
import { decodeMember } from '../../shared/records';
import { agentCredentials, EtcdServer, waitFor } from '../helpers';

const FACTS: Facts = {
  collectedAt: '2024-01-01T00:00:00.000Z', hostname: 'shared',
  system: { manufacturer: 'Dell Inc.', model: 'PowerEdge R650', serial: 'ABC123', uuid: '4c4c4544-0042', sku: '', virtual: false },
  bios: { vendor: 'Dell', version: '1.2', releaseDate: '2023-01-01' },
  baseboard: { manufacturer: 'Dell', model: '0X', serial: 'B1' },
  cpu: { manufacturer: 'Intel', brand: 'Xeon', model: '106', cores: 32, physicalCores: 16, threads: 32, sockets: 1, speedGHz: 2.8 },
  memory: { totalBytes: 68719476736, layout: [] },
  disks: [{ device: '/dev/sda', name: 'sda', type: 'SSD', interfaceType: 'SATA', vendor: '', model: 'X', serial: 'S1', sizeBytes: 960197124096 }],
  network: [{ iface: 'eno1', mac: 'aa:bb:cc:dd:ee:01', ipv4: ['198.18.0.10'], ipv6: [], speedMbps: 10000, type: 'wired', virtual: false, operstate: 'up', isDefault: true }],
  os: { platform: 'linux', distro: 'Rocky Linux', release: '9.3', codename: '', kernel: '5.14.0', arch: 'x64' },
  gpus: [],
};

function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

describe('agent against a real etcd', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let observer: Etcd3;
  let prefixN = 0;
  let credentials: StaticCredentials;
  const agents: Agent[] = [];
  const clients: Etcd3[] = [];

  before(async () => {
    etcd = await EtcdServer.start('agent');
    observer = etcd.client();
    credentials = await agentCredentials('etcd-test');
  });
  after(async () => {
    await etcd?.destroy();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop(1000);
    for (const c of clients.splice(0)) c.close();
  });

  function newPrefix(): Keyspace {
    return new Keyspace(`/agent-test-${++prefixN}/`);
  }

  function client(): Etcd3 {
    const c = createEtcdClient({ endpoints: [etcd.endpoint], tls: etcd.rootTls });
    clients.push(c);
    return c;
  }

  function agent(nodeId: string, ks: Keyspace, etcdClient: Etcd3, logger: Logger, ttlMs = 2000): Agent {
    const a = new Agent(
      { nodeId, leaseTtlMs: ttlMs, prefix: ks.prefix, hostname: `${nodeId}.lab`, bootId: 'boot-1', factsIntervalMs: 0 },
      // No coordinator in these tests: the certificate is never presented, but an Agent needs one.
      { etcd: etcdClient, logger, credentials, factsProvider: () => Promise.resolve(FACTS) },
    );
    agents.push(a);
    return a;
  }

  const present = async (key: string): Promise<boolean> => (await observer.get(key).string()) !== null;

  it('registers member (leased) and facts, and stop() removes the member at once', async () => {
    const ks = newPrefix();
    const { logger, lines } = capturingLogger();
    const a = agent('n1', ks, client(), logger);
    await a.start();
    await a.whenRegistered();

    const keys = (await observer.getAll().prefix(ks.prefix).keys()).sort();
    expect(keys).to.deep.equal([ks.facts('n1'), ks.member('n1')]);
    const res = await observer.get(ks.member('n1')).exec();
    expect(res.kvs[0].lease).to.not.equal('0');
    const member = decodeMember(ks.member('n1'), res.kvs[0].value.toString());
    expect(member).to.deep.include({ nodeId: 'n1', hostname: 'n1.lab', bootId: 'boot-1', address: '198.18.0.10', agentVersion: '0.1.0' });
    expect(member.instanceId).to.equal(a.identity.instanceId);
    expect(JSON.parse((await observer.get(ks.facts('n1')).string()) ?? '{}')).to.deep.equal(FACTS);
    const ttl = await observer.leaseClient.leaseTimeToLive({ ID: res.kvs[0].lease });
    expect(Number(ttl.grantedTTL)).to.equal(2);
    expect(lines.filter((l) => l.msg === 'registered')).to.have.length(1);

    const t0 = Date.now();
    await a.stop();
    expect(await present(ks.member('n1'))).to.equal(false);
    expect(Date.now() - t0).to.be.lessThan(1500);
    // Facts are kept for an unreachable node.
    expect(await present(ks.facts('n1'))).to.equal(true);
  });

  it('facts are collected once and served from the cache to every command; a refresh writes only a change', async () => {
    const ks = newPrefix();
    let collections = 0;
    let disks = FACTS.disks;
    const a = new Agent(
      { nodeId: 'nf', leaseTtlMs: 2000, prefix: ks.prefix, hostname: 'nf.lab', bootId: 'boot-1', factsIntervalMs: 0 },
      { etcd: client(), logger: capturingLogger().logger, credentials, factsProvider: () => { collections++; return Promise.resolve({ ...FACTS, disks }); } },
    );
    agents.push(a);
    await a.start();
    await a.whenRegistered();
    // What 50 commands (25 at once, 25 one after another) would ask for their templates.
    await Promise.all(Array.from({ length: 25 }, () => a.facts()));
    for (let i = 0; i < 25; i++) expect((await a.facts()).hostname).to.equal('shared');
    expect(collections).to.equal(1);

    expect(await a.refreshFacts()).to.equal(false);
    const rev = (await observer.get(ks.facts('nf')).exec()).kvs[0].mod_revision;
    expect(collections).to.equal(2);
    // A new disk: the refresh sees it, writes facts/<id>, and commands render from the new copy.
    disks = [...FACTS.disks, { ...FACTS.disks[0], device: '/dev/sdb', name: 'sdb', serial: 'S2' }];
    expect(await a.refreshFacts()).to.equal(true);
    const stored = JSON.parse((await observer.get(ks.facts('nf')).string()) ?? '{}') as Facts;
    expect(stored.disks.map((d) => d.name)).to.deep.equal(['sda', 'sdb']);
    expect((await observer.get(ks.facts('nf')).exec()).kvs[0].mod_revision).to.not.equal(rev);
    expect((await a.facts()).disks).to.have.length(2);
    expect(collections).to.equal(3);
  });

  it('a hardware change seen by the cheap comparison re-collects and writes the facts; no change collects nothing', async () => {
    const ks = newPrefix();
    let collections = 0;
    let signature = 'sda';
    let disks = FACTS.disks;
    const a = new Agent(
      { nodeId: 'nh', leaseTtlMs: 2000, prefix: ks.prefix, hostname: 'nh.lab', bootId: 'boot-1', factsIntervalMs: 0, hardwareCheckIntervalMs: 100 },
      {
        etcd: client(), logger: capturingLogger().logger, credentials, hardwareSignature: () => signature,
        factsProvider: () => { collections++; return Promise.resolve({ ...FACTS, disks }); },
      },
    );
    agents.push(a);
    await a.start();
    await a.whenRegistered();
    await new Promise((r) => setTimeout(r, 500)); // ~5 comparisons of an unchanged machine
    expect(collections).to.equal(1);
    disks = [...FACTS.disks, { ...FACTS.disks[0], device: '/dev/sdb', name: 'sdb', serial: 'S2' }];
    signature = 'sda,sdb';
    await waitFor('facts with the new disk', async () => {
      const stored = JSON.parse((await observer.get(ks.facts('nh')).string()) ?? '{}') as Facts;
      return stored.disks.length === 2;
    }, { timeoutMs: 10_000 });
    expect(collections).to.equal(2);
  });

  it('a new applied digest reaches the member key once, a little later, for a burst of changes; the registration time stays', async () => {
    const ks = newPrefix();
    let digest = 'd1';
    const a = new Agent(
      { nodeId: 'n1', leaseTtlMs: 3000, prefix: ks.prefix, hostname: 'n1.lab', bootId: 'boot-1', factsIntervalMs: 0, appliedRefreshDelayMs: 300 },
      { etcd: client(), logger: createLogger({ level: 'error' }), credentials, factsProvider: () => Promise.resolve(FACTS), applied: () => ({ digest, bundle: '', version: '' }) },
    );
    agents.push(a);
    await a.start();
    await a.whenRegistered();
    const read = async (): Promise<{ version: string; appliedDigest: string; registeredAt: string }> => {
      const kv = (await observer.get(ks.member('n1')).exec()).kvs[0];
      const m = decodeMember(ks.member('n1'), kv.value.toString());
      return { version: String(kv.version), appliedDigest: m.appliedDigest, registeredAt: m.registeredAt };
    };
    const first = await read();
    expect(first).to.deep.include({ version: '1', appliedDigest: 'd1' });
    digest = 'd2';
    a.appliedChanged();
    digest = 'd3';
    a.appliedChanged();
    a.appliedChanged();
    // Not at once: the job's own writes go first.
    expect((await read()).version).to.equal('1');
    await waitFor('the member key to carry the new digest', async () => (await read()).appliedDigest === 'd3', { timeoutMs: 5000, intervalMs: 50 });
    await new Promise((r) => setTimeout(r, 800));
    expect(await read()).to.deep.equal({ version: '2', appliedDigest: 'd3', registeredAt: first.registeredAt });
  });

  it('the member key expires within the TTL once renewals stop', async () => {
    const ks = newPrefix();
    const own = client();
    const a = agent('n2', ks, own, capturingLogger().logger, 2000);
    await a.start();
    await a.whenRegistered();
    // The agent's only path to etcd goes away (as if the process died): no revoke is possible.
    own.close();
    const t0 = Date.now();
    await waitFor('member key to expire', async () => !(await present(ks.member('n2'))), { timeoutMs: 6000, intervalMs: 100 });
    const elapsed = Date.now() - t0;
    expect(elapsed).to.be.lessThan(3500);
  });

  it('re-grants and re-registers at once when etcd forgets the lease', async () => {
    const ks = newPrefix();
    const { logger, lines } = capturingLogger();
    const a = agent('n3', ks, client(), logger, 3000);
    await a.start();
    await a.whenRegistered();
    const before = a.membershipStatus.leaseId;
    await observer.leaseClient.leaseRevoke({ ID: before ?? '' });
    // The member key is written before the facts, and the line is logged after both: wait for both.
    await waitFor('re-registration on a new lease', async () => {
      const kv = (await observer.get(ks.member('n3')).exec()).kvs[0];
      return kv !== undefined && kv.lease !== before && kv.lease !== '0' && lines.some((l) => l.msg === 're-registered');
    }, { timeoutMs: 5000 });
    expect(lines.some((l) => l.msg === 'lease lost')).to.equal(true);
    expect(lines.filter((l) => l.msg === 're-registered')).to.have.length(1);
  });

  it('survives an etcd outage longer than the TTL: logs it once, re-registers when etcd is back', async () => {
    const ks = newPrefix();
    const { logger, lines } = capturingLogger();
    const a = agent('n4', ks, client(), logger, 2000);
    await a.start();
    await a.whenRegistered();

    await etcd.stop('SIGKILL');
    await waitFor('the agent to notice', () => lines.some((l) => l.msg === 'etcd unreachable'), { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 4000));
    expect(lines.filter((l) => l.msg === 'etcd unreachable')).to.have.length(1);
    expect(a.membershipStatus.etcdReachable).to.equal(false);

    await etcd.start();
    await waitFor('re-registration', () => lines.some((l) => l.msg === 're-registered'), { timeoutMs: 15_000 });
    expect(await present(ks.member('n4'))).to.equal(true);
    expect(await present(ks.facts('n4'))).to.equal(true);
    expect(lines.filter((l) => l.msg === 'etcd unreachable')).to.have.length(1);
    expect(a.membershipStatus).to.deep.include({ registered: true, etcdReachable: true });
    // Still renewing afterwards: the key outlives several TTLs.
    await new Promise((r) => setTimeout(r, 4500));
    expect(await present(ks.member('n4'))).to.equal(true);
  });

  it('many agents share one etcd client and one facts object', async () => {
    const ks = newPrefix();
    const shared = client();
    const { logger } = capturingLogger();
    const n = 50;
    const group = Array.from({ length: n }, (_, i) => agent(`m${i}`, ks, shared, logger, 3000));
    await Promise.all(group.map((a) => a.start()));
    await Promise.all(group.map((a) => a.whenRegistered()));
    expect((await observer.getAll().prefix(ks.membersPrefix()).keys()).length).to.equal(n);
    expect((await observer.getAll().prefix(ks.factsPrefix()).keys()).length).to.equal(n);
    await Promise.all(group.map((a) => a.stop(1000)));
    expect((await observer.getAll().prefix(ks.membersPrefix()).keys()).length).to.equal(0);
  });

  it('refuses a bad node id before touching etcd', () => {
    expect(() => new Agent({ nodeId: 'no spaces', leaseTtlMs: 2000 }, { etcd: observer, logger: capturingLogger().logger, credentials }))
      .to.throw(/invalid --node-id "no spaces"/);
  });
});
