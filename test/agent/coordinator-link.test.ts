/**
 * The agent's stream to the coordinator over real gRPC with mutual TLS on 127.0.0.1, with the
 * leader found in a real etcd. The coordinator side is a scripted AgentService (the test drives
 * what the coordinator says) serving with a coordinator certificate of the test CA
 * (test/helpers/pki.ts); the agent under test is the real Agent with its own agent certificate.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { Agent, type CommandHandler } from '../../agent';
import { AGENT_DEFAULTS } from '../../agent/options';
import type { LinkTimings } from '../../agent/coordinator-link';
import type { AgentMessage__Output } from '../../generated/cluster/v1/AgentMessage';
import type { CoordinatorMessage } from '../../generated/cluster/v1/CoordinatorMessage';
import { createEtcdClient } from '../../shared/etcd';
import { Keyspace } from '../../shared/keyspace';
import { createLogger } from '../../shared/logger';
import { loadProto } from '../../shared/proto';
import { serverCredentials } from '../../shared/pki';
import { ClusterCa, type KeyAndCertificate } from '../../shared/pki/cluster-ca';
import { agentCredentials, delay, EtcdServer, TcpProxy, testPki, waitFor } from '../helpers';

type Stream = grpc.ServerDuplexStream<AgentMessage__Output, CoordinatorMessage>;

/** A coordinator whose every word is scripted by the test. */
class ScriptedCoordinator {
  readonly server = new grpc.Server();
  readonly streams: Stream[] = [];
  readonly received: { stream: number; msg: AgentMessage__Output }[] = [];
  port = 0;
  /** `serving`: the certificate it presents and the CA it trusts (default: a coordinator certificate of the test CA). */
  constructor(readonly id: string, private readonly onHello: (s: Stream) => void, private readonly serving?: KeyAndCertificate & { caPem: string }) {}

  async start(): Promise<void> {
    const pki = await testPki();
    const serving = this.serving ?? { ...(await pki.identity('coordinator', this.id)), caPem: pki.caPem };
    const { api } = loadProto();
    this.server.addService(api.cluster.v1.AgentService.service, {
      Connect: (call: Stream) => {
        const idx = this.streams.push(call) - 1;
        call.on('data', (msg: AgentMessage__Output) => {
          this.received.push({ stream: idx, msg });
          if (msg.body === 'hello') this.onHello(call);
        });
        call.on('error', () => undefined);
        call.on('end', () => call.end());
      },
    });
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', serverCredentials({ caPem: serving.caPem, certPem: serving.certPem, keyPem: serving.keyPem }), (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  get address(): string { return `127.0.0.1:${this.port}`; }

  of(body: AgentMessage__Output['body']): AgentMessage__Output[] {
    return this.received.filter((r) => r.msg.body === body).map((r) => r.msg);
  }

  stop(): void { this.server.forceShutdown(); }
}

describe('agent coordinator link', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let n = 0;
  const cleanup: (() => Promise<void> | void)[] = [];

  before(async () => {
    etcd = await EtcdServer.start('link');
    client = createEtcdClient({ endpoints: [etcd.endpoint], tls: etcd.rootTls });
  });
  after(async () => {
    client?.close();
    await etcd?.destroy();
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function coordinator(id: string, ks: Keyspace, script: (s: Stream) => void, serving?: KeyAndCertificate & { caPem: string }): Promise<ScriptedCoordinator> {
    const c = new ScriptedCoordinator(id, script, serving);
    await c.start();
    cleanup.push(() => c.stop());
    await client.put(ks.electionCandidate(id)).value(JSON.stringify({ id, address: c.address, startedAt: new Date().toISOString() }));
    return c;
  }

  async function startAgent(ks: Keyspace, handler?: CommandHandler, logger = createLogger({ level: 'silent' }), link?: LinkTimings): Promise<Agent> {
    const a = new Agent(
      { nodeId: 'n1', leaseTtlMs: 3000, prefix: ks.prefix, hostname: 'n1.lab', bootId: 'boot-9', factsIntervalMs: 0, ...(link ? { link } : {}) },
      {
        etcd: client, logger, commandHandler: handler, credentials: await agentCredentials('n1'),
        factsProvider: () => Promise.reject(new Error('no facts in this test')),
        // Full jitter at 0.1: redials at about a fifth of the backoff ceiling.
        random: () => 0.1,
      },
    );
    cleanup.push(() => a.stop(1000));
    await a.start();
    return a;
  }

  const welcome = (s: Stream, pingIntervalMs = 0): void => { s.write({ welcome: { coordinatorId: 'c', pingIntervalMs } }); };

  it('finds the leader in etcd, says Hello, answers Ping, and fails unsupported commands honestly', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    const c = await coordinator('c1', ks, (s) => { welcome(s, 60_000); s.write({ ping: { seq: 7 } }); s.write({ command: { id: 'cmd-1', kind: 'COMMAND_KIND_APPLY' } }); });
    const a = await startAgent(ks);
    await waitFor('a result', () => c.of('result').length > 0);
    const hello = c.of('hello')[0].hello;
    expect(hello).to.deep.include({ nodeId: 'n1', hostname: 'n1.lab', bootId: 'boot-9', agentVersion: '0.1.0', instanceId: a.identity.instanceId, runningCommandId: '' });
    expect(hello?.completedCommandIds).to.deep.equal([]);
    expect(c.of('pong')[0].pong?.seq).to.equal('7');
    expect(c.of('result')[0].result).to.deep.include({ commandId: 'cmd-1', outcome: 'failed', error: 'this agent cannot run apply commands yet' });
    expect(a.connected).to.equal(true);
  });

  it('runs a command once: a duplicate is answered from the recorded result; cancel aborts the running one', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    let runs = 0;
    const handler: CommandHandler = {
      execute: (cmd, progress, signal) => {
        runs++;
        progress({ unitId: 'u1', status: 'running', message: cmd.id });
        if (cmd.id === 'slow') {
          return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ outcome: 'failed', error: 'stopped' }), { once: true }));
        }
        if (cmd.id === 'applied') {
          // An apply's report lists every unit that ran: its result says what progress would.
          return Promise.resolve({ outcome: 'succeeded', report: { mode: 'apply', bundle: { name: 'b', version: '1' }, ok: true, changed: [], units: [], probes: [], failure: null } });
        }
        return Promise.resolve({ outcome: 'succeeded', output: `ran ${cmd.id}` });
      },
    };
    let stream: Stream | undefined;
    const c = await coordinator('c1', ks, (s) => { stream = s; welcome(s); s.write({ command: { id: 'once', kind: 'COMMAND_KIND_EXEC' } }); });
    await startAgent(ks, handler);
    await waitFor('first result', () => c.of('result').length === 1);
    stream?.write({ command: { id: 'once', kind: 'COMMAND_KIND_EXEC' } });
    await waitFor('second result', () => c.of('result').length === 2);
    expect(runs).to.equal(1);
    expect(c.of('result').map((m) => m.result?.output)).to.deep.equal(['ran once', 'ran once']);
    // A command that ends within the 250 ms of gathering without a report (an exec's result):
    // its progress goes out at once, before its result.
    expect(c.of('progress').map((m) => m.progress)).to.deep.equal([{ commandId: 'once', unitId: 'u1', status: 'running', message: 'once', output: '' }]);
    expect(c.received.findIndex((r) => r.msg.body === 'progress'), 'progress before the result').to.be.lessThan(c.received.findIndex((r) => r.msg.body === 'result'));

    stream?.write({ command: { id: 'slow', kind: 'COMMAND_KIND_APPLY' } });
    await waitFor('slow to start', () => runs === 2);
    // One that runs on sends its progress once gathered.
    await waitFor('the slow command\'s progress', () => c.of('progress').length > 1);
    expect(c.of('progress').slice(1).map((m) => m.progress)).to.deep.equal([{ commandId: 'slow', unitId: 'u1', status: 'running', message: 'slow', output: '' }]);
    stream?.write({ cancel: { commandId: 'slow', reason: 'operator' } });
    await waitFor('cancelled result', () => c.of('result').some((m) => m.result?.commandId === 'slow'));
    expect(c.of('result').find((m) => m.result?.commandId === 'slow')?.result).to.deep.include({ outcome: 'cancelled', error: 'cancelled: operator' });

    stream?.write({ command: { id: 'applied', kind: 'COMMAND_KIND_APPLY' } });
    await waitFor('the apply\'s result', () => c.of('result').some((m) => m.result?.commandId === 'applied'));
    await delay(400);
    expect(c.of('progress').filter((m) => m.progress?.commandId === 'applied'), 'no progress of an apply that ended at once').to.deep.equal([]);
  });

  it('a result finished while disconnected is delivered after the reconnect, and the Hello says what runs', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    let release: (() => void) | undefined;
    const handler: CommandHandler = {
      execute: () => new Promise((resolve) => { release = () => resolve({ outcome: 'succeeded', output: 'late' }); }),
    };
    let hellos = 0;
    const c = await coordinator('c1', ks, (s) => {
      hellos++;
      welcome(s);
      if (hellos === 1) {
        s.write({ command: { id: 'long', kind: 'COMMAND_KIND_APPLY' } });
        // The coordinator goes away mid-command.
        setTimeout(() => s.end(), 200);
      }
    });
    await startAgent(ks, handler);
    await waitFor('the second hello', () => c.of('hello').length >= 2, { timeoutMs: 20_000 });
    expect(c.of('hello')[1].hello?.runningCommandId).to.equal('long');
    release?.();
    await waitFor('the late result', () => c.received.some((r) => r.msg.result?.commandId === 'long'));
    expect(c.received.find((r) => r.msg.result?.commandId === 'long')?.stream).to.be.greaterThan(0);
  });

  it('drops a stream after 3 missed pings, and follows a leader change in etcd', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    // c1 welcomes with a 100 ms ping interval and then never pings.
    const c1 = await coordinator('c1', ks, (s) => welcome(s, 100));
    const a = await startAgent(ks);
    await waitFor('a redial after missed pings', () => c1.of('hello').length >= 2, { timeoutMs: 20_000 });

    const c2 = new ScriptedCoordinator('c2', (s) => welcome(s, 60_000));
    await c2.start();
    cleanup.push(() => c2.stop());
    await client.put(ks.electionCandidate('c2')).value(JSON.stringify({ id: 'c2', address: c2.address, startedAt: new Date().toISOString() }));
    // c1 still has the lower create revision: it stays the leader until its key goes.
    await client.delete().key(ks.electionCandidate('c1'));
    await waitFor('hello at the new leader', () => c2.of('hello').length === 1, { timeoutMs: 20_000 });
    await waitFor('connected', () => a.connected);
  });

  it('holds a standby connection to a follower, and re-attaches over it (no new connection) when the follower leads', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    const c1 = await coordinator('c1', ks, (s) => welcome(s, 60_000));
    const a = await startAgent(ks);
    await waitFor('attached to c1', () => a.connected && c1.of('hello').length === 1, { timeoutMs: 20_000 });

    // A follower appears (behind a proxy that counts TCP connections): the agent connects to it without a call.
    const c2 = new ScriptedCoordinator('c2', (s) => welcome(s, 60_000));
    await c2.start();
    cleanup.push(() => c2.stop());
    const proxy = await TcpProxy.start(c2.address);
    cleanup.push(() => proxy.close());
    await client.put(ks.electionCandidate('c2')).value(JSON.stringify({ id: 'c2', address: proxy.endpoint, startedAt: new Date().toISOString() }));
    await waitFor('a standby connection to c2', () => proxy.accepted === 1, { timeoutMs: 20_000 });
    expect(c2.of('hello')).to.have.length(0);

    // c1's key goes: c2 leads, and the agent's stream to it rides the standby connection.
    await client.delete().key(ks.electionCandidate('c1'));
    await waitFor('hello at c2', () => c2.of('hello').length === 1, { timeoutMs: 20_000 });
    await waitFor('connected', () => a.connected);
    expect(proxy.accepted, 'TCP connections to c2 (1: the standby one, reused)').to.equal(1);
  });

  it('a backoff grown against a refusing leader is cut short when the same replica is elected again (a new term at the same address)', async () => {
    const ks = new Keyspace(`/link-${++n}/`);
    let refuse = true;
    // The replica refuses like a coordinator that lost leadership to an etcd outage, then is elected again.
    const c1 = await coordinator('c1', ks, (s) => {
      if (refuse) s.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'not the leader; no leader is elected right now, retry in a few seconds' });
      else welcome(s);
    });
    // A backoff far longer than the wait below: only a wake-up can bring the next hello in time.
    const slow: LinkTimings = { ...AGENT_DEFAULTS.link, backoff: { initialMs: 120_000, maxMs: 120_000 }, newLeaderJitterMs: 0 };
    const a = await startAgent(ks, undefined, undefined, slow);
    await waitFor('the first, refused hello', () => c1.of('hello').length === 1, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300)); // the agent is now asleep in its backoff (about 23 s)
    refuse = false;
    await client.delete().key(ks.electionCandidate('c1'));
    await client.put(ks.electionCandidate('c1')).value(JSON.stringify({ id: 'c1', address: c1.address, startedAt: new Date().toISOString() }));
    await waitFor('a hello right after the new term', () => c1.of('hello').length === 2, { timeoutMs: 10_000 });
    await waitFor('connected', () => a.connected, { timeoutMs: 10_000 });
  });

  it('refuses a rogue coordinator named in the election record (another CA; the cluster CA but not the coordinator role), logs it and keeps looking', async () => {
    const pki = await testPki();
    const other = (await ClusterCa.create()).ca;
    const rogues: [string, KeyAndCertificate & { caPem: string }][] = [
      ['another CA', { ...(await other.issueKeyAndCertificate({ role: 'coordinator', name: 'rogue' })), caPem: other.certPem }],
      ['an admin certificate of the cluster CA', { ...(await pki.identity('admin', 'rogue')), caPem: pki.caPem }],
    ];
    for (const [what, serving] of rogues) {
      const ks = new Keyspace(`/link-${++n}/`);
      const lines: Record<string, unknown>[] = [];
      const logger = createLogger({ level: 'debug', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
      const rogue = await coordinator('rogue', ks, (s) => welcome(s, 60_000), serving);
      const a = await startAgent(ks, undefined, logger);
      await waitFor(`the refusal of ${what} in the log`, () => lines.some((l) => /refused the coordinator named in the election record/.test(String(l.msg))), { timeoutMs: 15_000 })
        .catch((err: unknown) => { throw new Error(`${String(err)}; log: ${JSON.stringify(lines.filter((l) => l.level !== 'debug' || /coordinator/.test(String(l.msg))).slice(-5))}`); });
      // Several redials (random 0.1: 100 ms .. backoff), none of which got as far as a stream.
      await new Promise((r) => setTimeout(r, 1500));
      expect(rogue.streams, what).to.have.length(0);
      expect(a.connected, what).to.equal(false);

      // The real coordinator takes over the election: the agent finds and uses it.
      const good = await coordinator('c1', ks, (s) => welcome(s, 60_000));
      await client.delete().key(ks.electionCandidate('rogue'));
      await waitFor(`connected after ${what}`, () => a.connected, { timeoutMs: 20_000 });
      expect(good.of('hello')[0].hello?.nodeId).to.equal('n1');
      expect(rogue.streams, what).to.have.length(0);
      await a.stop(1000);
    }
  });
});
