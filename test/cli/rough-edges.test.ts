/**
 * clusterctl's rough edges an operator hit: exec's command timeout vs the global request
 * deadline, group help listing every subcommand, --version, fish completion, completion of
 * names from the coordinator (and silence when it is down), each completion word once.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { commandLine, parseInvocation, helpText } from '../../cli/command';
import { commandTree } from '../../cli/command-tree';
import { GLOBAL_OPTIONS } from '../../cli/global-options';
import { completionEntries, fishScript } from '../../cli/completion';
import { execRequestTimeoutMs } from '../../cli/commands/exec';
import { maxFailuresView, UNLIMITED_FAILURES } from '../../cli/commands/job-view';
import { main } from '../../cli/main';
import { Coordinator, newNodeRecord } from '../../coordinator';
import { createLogger, Keyspace } from '../../shared';
import { EtcdServer, freePort, testPki, waitFor } from '../helpers';

const noConfig = { env: {} as NodeJS.ProcessEnv };

async function cli(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: { write: (t) => { out += t; }, isTTY: false }, err: (t) => { err += t; }, env: { HOME: '/nonexistent', ...env } });
  return { code, out, err };
}

function helpOf(argv: string[]): string {
  const inv = parseInvocation(commandTree(), argv, noConfig);
  expect(inv.help).to.equal(true);
  return helpText(inv.path, GLOBAL_OPTIONS);
}

describe('cli: rough edges', function () {
  this.timeout(60_000);
  let credentialsFile = '';
  before(async () => {
    const pki = await testPki();
    credentialsFile = pki.writeCredentialsFile(await pki.identity('admin'), [`127.0.0.1:${await freePort()}`]);
  });

  describe('exec: --command-timeout is the command\'s, --timeout stays the global request deadline', () => {
    it('parses both, each with its own meaning', () => {
      const inv = parseInvocation(commandTree(), ['--timeout', '7s', 'exec', '--nodes', 'n1', '--command-timeout', '2s', '--', 'true'], noConfig);
      expect(inv.values).to.include({ timeout: 7000, commandTimeout: 2000 });
      const defaults = parseInvocation(commandTree(), ['exec', '--nodes', 'n1', '--', 'true'], noConfig);
      expect(defaults.values).to.include({ timeout: 5000, commandTimeout: 600_000 });
    });

    it('help lists --timeout once and --command-timeout once', () => {
      const text = helpOf(['exec', '--help']);
      expect(text.match(/ --timeout DURATION/g)).to.have.length(1);
      expect(text.match(/ --command-timeout DURATION/g)).to.have.length(1);
    });

    it('the request deadline covers the command timeout', () => {
      expect(execRequestTimeoutMs(5000, 600_000)).to.be.greaterThan(600_000);
      expect(execRequestTimeoutMs(5000, 2000)).to.be.greaterThan(2000);
      expect(execRequestTimeoutMs(900_000, 2000)).to.equal(900_000);
    });
  });

  describe('group help lists every subcommand', () => {
    for (const [group, subs] of [['nodes', ['list', 'describe']], ['files', ['list', 'upload', 'download', 'rm']]] as const) {
      it(`${group} --help`, () => {
        const text = helpOf([group, '--help']);
        expect(text).to.match(new RegExp(`^Usage: clusterctl ${group} `));
        for (const s of subs) expect(text).to.match(new RegExp(`\\n {2}${s} +`), `${s} in\n${text}`);
        expect(text).to.include('[default]');
      });
    }
    it('the default subcommand named explicitly still shows its own help', () => {
      expect(helpOf(['nodes', 'list', '--help'])).to.match(/^Usage: clusterctl nodes \[list\]/);
    });
  });

  it('status with etcd down says etcd is unreachable and names its members', async () => {
    const etcd = await EtcdServer.start('status-down');
    const client: Etcd3 = etcd.client();
    const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const pki = await testPki();
    const c = new Coordinator({
      etcd: client, etcdTls: etcd.rootTls, keyspace: ks, etcdEndpoints: [etcd.endpoint], logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
    });
    try {
      await c.start();
      const creds = pki.writeCredentialsFile(await pki.identity('viewer'), [c.address]);
      const up = await cli(['status'], { CLUSTERCTL_CREDENTIALS: creds });
      expect(up.code, up.err).to.equal(0);
      await etcd.stop('SIGKILL');
      const down = await cli(['--timeout', '8s', 'status'], { CLUSTERCTL_CREDENTIALS: creds });
      expect(down.code).to.equal(1);
      expect(down.err).to.match(/etcd is unreachable from coordinator r1: no member answered \(127\.0\.0\.1:\d+\)/);
      expect(down.err).to.not.match(/did not answer within/);
    } finally {
      await c.stop({ graceMs: 500 });
      await etcd.destroy();
    }
  });

  describe("Contiv's spellings", () => {
    const cases: [string[], string][] = [
      [['node', 'update', 'n1', '-g', 'w'], 'clusterctl node upgrade'],
      [['nodes', 'update', 'n1', 'n2', '-g', 'w'], 'clusterctl nodes upgrade'],
      [['nodes', 'commission', 'n1', 'n2', '-g', 'w'], 'clusterctl nodes commission'],
      [['nodes', 'decommission', 'n1', 'n2'], 'clusterctl nodes decommission'],
      [['nodes', 'get', '-j'], 'clusterctl nodes list'],
    ];
    for (const [argv, want] of cases) {
      it(`${argv.join(' ')} → ${want}`, () => {
        const inv = parseInvocation(commandTree(), argv, noConfig);
        expect(commandLine(inv.path)).to.equal(want);
        expect(inv.help).to.equal(false);
      });
    }
    it('nodes get -j asks for JSON', () => {
      expect(parseInvocation(commandTree(), ['nodes', 'get', '-j'], noConfig).values).to.include({ json: true });
    });
  });

  describe('JSON numbers', () => {
    it('maxFailures of "no limit" reads unlimited; a limit stays a number', () => {
      expect(maxFailuresView(UNLIMITED_FAILURES)).to.equal('unlimited');
      expect(maxFailuresView(4)).to.equal(4);
    });
  });

  describe('version and completion', () => {
    it('--version prints the version and exits 0', async () => {
      const r = await cli(['--version'], {});
      expect(r.code).to.equal(0);
      expect(r.out).to.match(/^clusterctl \d+\.\d+\.\d+/);
    });

    it('completion fish exits 0 with a fish script', async () => {
      const r = await cli(['completion', 'fish'], {});
      expect(r.code, r.err).to.equal(0);
      expect(r.out).to.include("complete -c clusterctl -f -a '(__clusterctl_complete)'");
      expect(r.out).to.include('__complete $dyn');
    });

    it('each completion word is offered once (get is an alias of two nodes commands); hidden helpers are not offered', () => {
      for (const e of completionEntries(commandTree())) {
        expect(new Set(e.words).size, `${e.path}: ${e.words.join(' ')}`).to.equal(e.words.length);
        expect(e.words).to.not.include('__complete');
      }
      const byPath = new Map(completionEntries(commandTree()).map((e) => [e.path, e]));
      expect(byPath.get('node describe')?.dynamic).to.equal('nodes');
      expect(byPath.get('nodes')?.dynamic).to.equal('');
      expect(fishScript(commandTree())).to.include("case 'node describe'");
    });

    it('__complete prints nothing and exits 0 at once when the coordinator is not reachable', async () => {
      const start = Date.now();
      const r = await cli(['--timeout', '1s', '__complete', 'nodes'], { CLUSTERCTL_CREDENTIALS: credentialsFile });
      expect(r).to.deep.equal({ code: 0, out: '', err: '' });
      expect(Date.now() - start).to.be.lessThan(5000);
    });

    it('__complete names the nodes a real coordinator knows', async () => {
      const etcd = await EtcdServer.start('complete');
      const client: Etcd3 = etcd.client();
      const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
      const pki = await testPki();
      const c = new Coordinator({
        etcd: client, etcdTls: etcd.rootTls, keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
        electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
      });
      try {
        await c.start();
        await waitFor('leader', () => c.isLeader(), { timeoutMs: 15_000 });
        for (const id of ['web-1', 'web-2']) {
          await c.nodes.mutate(id, (cur) => (cur ? undefined : { next: newNodeRecord(id, new Date().toISOString()), event: { type: 'node.created', message: 'test' } }));
        }
        const creds = pki.writeCredentialsFile(await pki.identity('viewer'), [c.address]);
        const r = await cli(['--timeout', '2s', '__complete', 'nodes'], { CLUSTERCTL_CREDENTIALS: creds });
        expect(r.code).to.equal(0);
        expect(r.out.trim().split('\n').sort()).to.deep.equal(['web-1', 'web-2']);
        const j = await cli(['nodes', 'get', '-j'], { CLUSTERCTL_CREDENTIALS: creds });
        expect((JSON.parse(j.out) as { id: string }[]).map((n) => n.id).sort()).to.deep.equal(['web-1', 'web-2']);

        // The maintenance reason is kept on the record and shown by node describe.
        const admin = pki.writeCredentialsFile(await pki.identity('admin'), [c.address]);
        const on = await cli(['node', 'maintenance', 'on', 'web-1', '--reason', 'disk swap, ticket 4711'], { CLUSTERCTL_CREDENTIALS: admin });
        expect(on.code, on.err).to.equal(0);
        const d = await cli(['node', 'describe', 'web-1'], { CLUSTERCTL_CREDENTIALS: admin });
        expect(d.out).to.include('Maintenance:    yes: disk swap, ticket 4711\n');
        const json = await cli(['node', 'describe', 'web-1', '-o', 'json'], { CLUSTERCTL_CREDENTIALS: admin });
        expect(json.out).to.include('"maintenanceReason": "disk swap, ticket 4711"');
        await cli(['node', 'maintenance', 'off', 'web-1'], { CLUSTERCTL_CREDENTIALS: admin });
        const off = await cli(['node', 'describe', 'web-1'], { CLUSTERCTL_CREDENTIALS: admin });
        expect(off.out).to.include('Maintenance:    no\n');
      } finally {
        await c.stop({ graceMs: 500 });
        await etcd.destroy();
      }
    });
  });
});
