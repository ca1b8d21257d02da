/**
 * Completion as an operator meets it: the scripts `clusterctl completion bash|fish` print,
 * loaded into a real bash and a real fish, offer the node ids, group and bundle names a real
 * coordinator knows (through `clusterctl __complete`, which the scripts call by the program's
 * installed name), each word once.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { Coordinator, newNodeRecord } from '../../coordinator';
import { createLogger, Keyspace } from '../../shared';
import { BIN, clusterctl, EtcdServer, run, testPki, waitFor } from '../helpers';

const FISH = '/usr/bin/fish';

const BUNDLE = `name: demo
version: 1
units:
  - { id: motd, kind: file, path: /etc/motd, content: "hello\\n" }
`;

describe('cli: completion in a real bash and fish names what the coordinator knows', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let coordinator: Coordinator | undefined;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    const probe = await run(FISH, ['--version']).catch(() => undefined);
    if (!probe || probe.code !== 0) throw new Error(`${FISH} is required (scripts/ensure-deps installs Debian's fish)`);
    etcd = await EtcdServer.start('completion-shells');
    client = etcd.client();
    const ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const pki = await testPki();
    const c = new Coordinator({
      etcd: client, etcdTls: etcd.rootTls, keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1', listen: '127.0.0.1:0',
      electionTtlMs: 3000, pingIntervalMs: 300, resyncIntervalMs: 1000, pki: await pki.coordinatorPki(client, ks),
    });
    coordinator = c;
    await c.start();
    await waitFor('leader', () => c.isLeader(), { timeoutMs: 15_000 });
    for (const id of ['web-1', 'web-2']) {
      await c.nodes.mutate(id, (cur) => (cur ? undefined : { next: newNodeRecord(id, new Date().toISOString()), event: { type: 'node.created', message: 'test' } }));
    }
    dir = mkdtempSync(join(tmpdir(), 'completion-shells-'));
    // The scripts call `clusterctl` by name, as installed from the package: put one on PATH.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'clusterctl'), `#!/bin/sh\nexec '${process.execPath}' '${BIN.clusterctl}' "$@"\n`);
    chmodSync(join(bin, 'clusterctl'), 0o755);
    env = {
      PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data'),
      CLUSTERCTL_CREDENTIALS: pki.writeCredentialsFile(await pki.identity('admin'), [c.address]),
    };
    const bundleFile = join(dir, 'demo.yaml');
    writeFileSync(bundleFile, BUNDLE);
    for (const args of [['bundle', 'push', '-f', bundleFile], ['group', 'set', 'web', '--bundle', 'demo@1']]) {
      const r = await clusterctl(args, { env });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
    }
  });
  after(async () => {
    await coordinator?.stop({ graceMs: 500 });
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The words bash offers after `clusterctl WORDS...` (the last word is the one being completed). */
  async function bash(words: string[]): Promise<string[]> {
    const script = `source <(clusterctl completion bash)
COMP_WORDS=(clusterctl ${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length}; _clusterctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await run('bash', ['-c', script], { env });
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.split('\n').filter((l) => l);
  }

  /** The candidates fish offers for the command line `clusterctl LINE` (its `complete -C`). */
  async function fish(line: string): Promise<string[]> {
    const r = await run(FISH, ['--no-config', '-c', `clusterctl completion fish | source; complete -C '${`clusterctl ${line}`.replace(/'/g, "\\'")}'`], { env });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    return r.stdout.split('\n').filter((l) => l).map((l) => l.split('\t')[0]);
  }

  const once = (words: string[]): void => { expect(words.length, words.join(' ')).to.equal(new Set(words).size); };

  it('bash: node ids, group and bundle names, each once', async () => {
    const nodes = await bash(['node', 'describe', '']);
    expect(nodes).to.include.members(['web-1', 'web-2']);
    once(nodes);
    expect(await bash(['node', 'describe', 'web-'])).to.deep.equal(['web-1', 'web-2']);
    expect(await bash(['group', 'show', ''])).to.include('web');
    expect(await bash(['bundle', 'show', ''])).to.include('demo');
    const sub = await bash(['nodes', '']);
    once(sub);
    expect(sub).to.include.members(['get', 'list', 'describe', 'commission']);
  });

  it('fish: subcommands at the root, node ids, group and bundle names, each once', async () => {
    const root = await fish('');
    once(root);
    expect(root).to.include.members(['nodes', 'node', 'files', 'completion', 'global', 'config', 'discover']);
    expect(root).to.not.include('__complete');
    expect(await fish('node com')).to.deep.equal(['commission']);
    const nodes = await fish('node describe ');
    once(nodes);
    expect(nodes).to.include.members(['web-1', 'web-2']);
    expect(await fish('node describe web-')).to.deep.equal(['web-1', 'web-2']);
    expect(await fish('group show ')).to.include('web');
    expect(await fish('bundle show ')).to.include('demo');
    const sub = await fish('nodes ');
    once(sub);
    expect(sub).to.include.members(['get', 'list', 'describe', 'commission']);
    expect(await fish('nodes -o ')).to.include.members(['json', 'yaml']);
  });
});
