import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseInvocation, resolveCommand, helpText, commandLine } from '../../cli/command';
import { commandTree } from '../../cli/command-tree';
import { GLOBAL_OPTIONS, checkAddress, compileClientOptions } from '../../cli/global-options';
import { main } from '../../cli/main';
import { freePort, testPki } from '../helpers';

const noConfig = { env: {} as NodeJS.ProcessEnv };

function names(argv: string[]): string {
  return commandLine(resolveCommand(commandTree(), argv).path);
}

interface Captured { code: number; out: string; err: string; ms: number }

/** An admin credentials file of the test CA (made in the suite's before hook). */
let credentialsFile = '';

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  let out = '';
  let err = '';
  const start = Date.now();
  // HOME points nowhere so a developer's own ~/.config/clusterctl/config.yaml cannot change the result.
  const code = await main(argv, {
    out: { write: (t) => { out += t; }, isTTY: false },
    err: (t) => { err += t; },
    env: { HOME: '/nonexistent', CLUSTERCTL_CREDENTIALS: credentialsFile, ...env },
  });
  return { code, out, err, ms: Date.now() - start };
}

describe('cli/command: argument handling', () => {
  before(async () => {
    const pki = await testPki();
    credentialsFile = pki.writeCredentialsFile(await pki.identity('admin'), ['127.0.0.1:7400']);
  });

  describe('which command runs', () => {
    const cases: [string[], string][] = [
      [['nodes'], 'clusterctl nodes list'],
      [['nodes', 'list'], 'clusterctl nodes list'],
      [['nodes', 'get'], 'clusterctl nodes list'],
      [['nodes', 'ls', '-o', 'json'], 'clusterctl nodes list'],
      [['-o', 'json', 'nodes'], 'clusterctl nodes list'],
      [['--coordinator', '10.0.0.1:7400', 'nodes', '-l', 'a=b'], 'clusterctl nodes list'],
      [['--coordinator=10.0.0.1:7400', 'nodes'], 'clusterctl nodes list'],
      [['nodes', '-w'], 'clusterctl nodes list'],
      [['node', 'describe', 'n1'], 'clusterctl node describe'],
      [['node', 'get', 'n1', '-j'], 'clusterctl node describe'],
      [['node', 'show', 'n1'], 'clusterctl node describe'],
      [['nodes', 'describe', 'n1'], 'clusterctl nodes describe'],
      // A node called "list" is still a node id once the command is known.
      [['node', 'get', 'list'], 'clusterctl node describe'],
      [['node'], 'clusterctl node'],
      [['version'], 'clusterctl version'],
      [[], 'clusterctl'],
    ];
    for (const [argv, want] of cases) {
      it(`${JSON.stringify(argv)} → ${want}`, () => expect(names(argv)).to.equal(want));
    }
  });

  describe('values, positionals and sources', () => {
    it('merges global and command options wherever the flags appear', () => {
      const inv = parseInvocation(commandTree(), ['-o', 'wide', 'nodes', '--selector', 'role=worker', '--timeout', '1500ms'], noConfig);
      expect(inv.help).to.equal(false);
      expect(inv.values).to.include({ output: 'wide', selector: 'role=worker', timeout: 1500, watch: false });
      // No --coordinator: the credentials file's coordinators are used (global-options.ts).
      expect(inv.values.coordinator).to.deep.equal([]);
    });

    it('reads CLUSTER_COORDINATOR and CLUSTERCTL_TIMEOUT; a flag wins over the environment', () => {
      const env = { CLUSTER_COORDINATOR: '10.1.1.1:7400', CLUSTERCTL_TIMEOUT: '2s' };
      expect(parseInvocation(commandTree(), ['nodes'], { env }).values).to.deep.include({ coordinator: ['10.1.1.1:7400'], timeout: 2000 });
      expect(parseInvocation(commandTree(), ['--coordinator', 'h:1', 'nodes'], { env }).values).to.deep.include({ coordinator: ['h:1'] });
    });

    it('several coordinator replicas: a comma list in the flag, the environment or a repeated flag', () => {
      const list = (argv: string[], env: NodeJS.ProcessEnv = {}): unknown => parseInvocation(commandTree(), argv, { env }).values.coordinator;
      expect(list(['--coordinator', 'a:7400,b:7400', 'nodes'])).to.deep.equal(['a:7400', 'b:7400']);
      expect(list(['--coordinator', 'a:7400', '--coordinator=b:7400', 'nodes'])).to.deep.equal(['a:7400', 'b:7400']);
      expect(list(['nodes'], { CLUSTER_COORDINATOR: ' a:7400 , b:7400 ' })).to.deep.equal(['a:7400', 'b:7400']);
    });
  });

  describe('compileClientOptions', () => {
    // A credentials file as `user add` writes it (the PEM text is not parsed here).
    const CREDS = 'coordinator: [c1:7400, c2:7400]\nuser: alice\nrole: operator\nca: CA\ncertificate: CERT\nkey: KEY\n';
    const files = (map: Record<string, string>) => (path: string): string => {
      if (path in map) return map[path];
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    };

    it('checks every address, drops duplicates, keeps the order and the timeout in ms', () => {
      const read = files({ '/c.yaml': CREDS });
      const o = compileClientOptions({ coordinator: ['b:1', 'a:2', 'b:1'], timeout: 1500, credentials: '/c.yaml' }, read);
      expect(o).to.deep.include({ endpoints: ['b:1', 'a:2'], timeoutMs: 1500, credentialsFile: '/c.yaml' });
      expect(o.credentials).to.include({ user: 'alice', role: 'operator', certificate: 'CERT' });
      expect(() => compileClientOptions({ coordinator: ['a:1', 'nohost'], timeout: 1, credentials: '/c.yaml' }, read)).to.throw(/--coordinator "nohost" is not HOST:PORT/);
      expect(compileClientOptions({ coordinator: [], timeout: 1, credentials: '/c.yaml' }, read).endpoints).to.deep.equal(['c1:7400', 'c2:7400']);
    });

    it('takes the coordinators from the credentials file when --coordinator is not given; the default file is admin.yaml', () => {
      expect(compileClientOptions({ timeout: 1, credentials: '/c.yaml' }, files({ '/c.yaml': CREDS })).endpoints).to.deep.equal(['c1:7400', 'c2:7400']);
      const o = compileClientOptions({ timeout: 1 }, files({ '/etc/cluster/pki/admin.yaml': CREDS }));
      expect(o.credentialsFile).to.equal('/etc/cluster/pki/admin.yaml');
    });

    it('without readable credentials: one line naming the three ways to give them', () => {
      expect(() => compileClientOptions({ timeout: 1 }, files({}))).to.throw(
        /^no credentials to call the coordinator with \(\/etc\/cluster\/pki\/admin.yaml: no such file\): give one with --credentials FILE, the CLUSTERCTL_CREDENTIALS environment variable, or `credentials: FILE` in the config file$/,
      );
      expect(() => compileClientOptions({ timeout: 1, credentials: '/nope.yaml' }, files({}))).to.throw(/^cannot read credentials file \/nope.yaml: no such file; give one with --credentials FILE/);
      expect(() => compileClientOptions({ timeout: 1, credentials: '/bad.yaml' }, files({ '/bad.yaml': 'user: x\n' }))).to.throw(/credentials file \/bad.yaml: field "coordinator"/);
    });

    it('keeps the node id as a positional', () => {
      const inv = parseInvocation(commandTree(), ['node', 'get', '-j', 'node-7'], noConfig);
      expect(inv.positionals).to.deep.equal(['node-7']);
      expect(inv.values).to.include({ json: true });
    });

    it('--help anywhere asks for help, and a group without a command shows its help', () => {
      expect(parseInvocation(commandTree(), ['nodes', '--help'], noConfig).help).to.equal(true);
      expect(parseInvocation(commandTree(), ['node', 'describe', '-h'], noConfig).help).to.equal(true);
      expect(parseInvocation(commandTree(), ['node'], noConfig).help).to.equal(true);
      expect(parseInvocation(commandTree(), [], noConfig).help).to.equal(true);
    });
  });

  describe('bad input is one clear line', () => {
    const cases: [string, string[], RegExp][] = [
      ['unknown command', ['nodez'], /^unknown command "nodez" for clusterctl \(commands: status, nodes, node, jobs, job, bundles, bundle, groups, group, global, config, discover, files, exec, plan, apply, events, dashboard, token, user, secret, completion, version; see clusterctl --help\)$/],
      ['unknown subcommand', ['node', 'reboot', 'n1'], /^unknown command "reboot" for clusterctl node/],
      ['unknown flag', ['nodes', '--colour'], /^unknown flag --colour \(run with --help/],
      ['bad output format', ['nodes', '-o', 'xml'], /^--output: "xml" is not one of table, wide, json, yaml$/],
      ['bad timeout', ['--timeout', 'soon', 'nodes'], /^invalid duration "soon"/],
      ['flag without value', ['nodes', '-l'], /^-l needs a value \(SELECTOR\)$/],
      ['missing node id', ['node', 'describe'], /^which node\? give its ID \(list nodes with: clusterctl nodes\) \(usage: clusterctl node describe ID/],
      ['two node ids', ['node', 'describe', 'a', 'b'], /^unexpected argument "b" for clusterctl node describe/],
      ['stray word to version', ['version', 'now'], /^unexpected argument "now" for clusterctl version/],
    ];
    for (const [name, argv, want] of cases) {
      it(name, () => {
        let message = '';
        try {
          parseInvocation(commandTree(), argv, noConfig);
        } catch (err) {
          message = (err as Error).message;
        }
        expect(message).to.match(want);
        expect(message).to.not.include('\n');
      });
    }
  });

  describe('checkAddress', () => {
    const cases: [string, boolean][] = [
      ['127.0.0.1:7400', true],
      ['coordinator.lab:7400', true],
      ['[::1]:7400', true],
      ['127.0.0.1', false],
      ['127.0.0.1:0', false],
      ['127.0.0.1:70000', false],
      ['http://127.0.0.1:7400', false],
      ['', false],
    ];
    for (const [address, ok] of cases) {
      it(`${JSON.stringify(address)} → ${ok ? 'accepted' : 'refused'}`, () => {
        if (ok) expect(checkAddress(address)).to.equal(address);
        else expect(() => checkAddress(address)).to.throw(/is not HOST:PORT \(e\.g\. 127\.0\.0\.1:7400\)/);
      });
    }
  });

  describe('help text', () => {
    it('root help lists the commands, an example and the global options once', () => {
      const text = helpText(resolveCommand(commandTree(), []).path, GLOBAL_OPTIONS);
      expect(text).to.match(/^Usage: clusterctl \[global options\] COMMAND/);
      expect(text).to.match(/\n {2}nodes +List and watch/);
      expect(text).to.include('Example:\n  clusterctl status\n  clusterctl nodes\n');
      expect(text.match(/--coordinator HOST:PORT/g)).to.have.length(1);
      expect(text).to.include('env CLUSTER_COORDINATOR');
      expect(text).to.include('--credentials FILE');
      expect(text).to.include('env CLUSTERCTL_CREDENTIALS');
    });

    it('command help shows usage, aliases, its own flags, then the globals', () => {
      const text = helpText(resolveCommand(commandTree(), ['nodes']).path, GLOBAL_OPTIONS);
      expect(text).to.match(/^Usage: clusterctl nodes \[list\]/);
      expect(text).to.include('Aliases: list, get, ls');
      expect(text.indexOf('-l, --selector SELECTOR')).to.be.greaterThan(0);
      expect(text.indexOf('-l, --selector')).to.be.lessThan(text.indexOf('Global options:'));
      expect(text).to.include('clusterctl nodes --watch');
    });
  });

  describe('main(): exit codes and one-line errors', () => {
    const cases: [string, string[], RegExp][] = [
      ['bad selector', ['nodes', '-l', 'role=work er'], /^error: malformed label selector "role=work er": /],
      ['bad selector, group spelling', ['nodes', 'list', '--selector', 'zone in (a,'], /^error: malformed label selector "zone in \(a,": /],
      ['bad selector term', ['nodes', '-l', 'a=b,,c'], /^error: malformed label selector "a=b,,c": empty term/],
      ['bad coordinator address', ['--coordinator', 'localhost', 'nodes'], /^error: --coordinator "localhost" is not HOST:PORT/],
      ['node id given to nodes', ['nodes', 'get', 'node-1'], /^error: "nodes" lists every node; to show one: clusterctl node describe node-1$/],
      ['unknown command', ['frobnicate'], /^error: unknown command "frobnicate"/],
    ];
    for (const [name, argv, want] of cases) {
      it(`${name}: exit 1, one line, nothing on stdout, no network wait`, async () => {
        // Port 1 with a 5 s timeout: if the command tried the network first, it would take 5 s.
        const r = await cli(['--coordinator', '127.0.0.1:1', ...argv]);
        expect(r.code).to.equal(1);
        expect(r.err.trimEnd()).to.match(want);
        expect(r.err.trimEnd().split('\n')).to.have.length(1);
        expect(r.out).to.equal('');
        expect(r.ms).to.be.lessThan(2000);
      });
    }

    it('an unreachable coordinator: exit 1 after --timeout with the hint', async () => {
      const port = await freePort();
      const r = await cli(['--coordinator', `127.0.0.1:${port}`, '--timeout', '400ms', 'nodes']);
      expect(r.code).to.equal(1);
      expect(r.err).to.equal(
        `error: cannot reach the coordinator at 127.0.0.1:${port} within 400ms (is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)\n`,
      );
      expect(r.out).to.equal('');
      expect(r.ms).to.be.within(350, 4000);
    });

    it('several unreachable replicas: every one is tried within --timeout, and the error names them all', async () => {
      const [a, b] = [await freePort(), await freePort()];
      const r = await cli(['--coordinator', `127.0.0.1:${a},127.0.0.1:${b}`, '--timeout', '600ms', 'status']);
      expect(r.code).to.equal(1);
      expect(r.err).to.equal(
        `error: cannot reach the coordinator at 127.0.0.1:${a} or 127.0.0.1:${b} within 600ms (is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)\n`,
      );
      expect(r.ms).to.be.within(550, 4000);
    });

    it('the same for node describe', async () => {
      const port = await freePort();
      const r = await cli(['node', 'describe', 'node-1'], { CLUSTER_COORDINATOR: `127.0.0.1:${port}`, CLUSTERCTL_TIMEOUT: '300ms' });
      expect(r.code).to.equal(1);
      expect(r.err).to.match(new RegExp(`^error: cannot reach the coordinator at 127\\.0\\.0\\.1:${port} within 300ms`));
    });

    it('--help prints to stdout and exits 0; version works offline', async () => {
      const help = await cli(['node', 'describe', '--help']);
      expect(help.code).to.equal(0);
      expect(help.out).to.match(/^Usage: clusterctl node describe ID/);
      expect(help.err).to.equal('');
      const v = await cli(['version', '-o', 'json']);
      expect(v.code).to.equal(0);
      expect(JSON.parse(v.out)).to.have.property('clientVersion').that.is.a('string');
    });

    it('a config file supplies defaults; an unknown key in it is a clear error', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'clusterctl-config-'));
      try {
        const good = join(dir, 'good.yaml');
        writeFileSync(good, 'coordinator: 10.9.9.9:7400\noutput: json\n');
        expect(parseInvocation(commandTree(), ['nodes'], { env: {}, configEnv: 'CLUSTERCTL_CONFIG', defaultConfigPath: good }).values)
          .to.deep.include({ coordinator: ['10.9.9.9:7400'], output: 'json' });
        const several = join(dir, 'several.yaml');
        writeFileSync(several, 'coordinator:\n  - 10.9.9.9:7400\n  - 10.9.9.10:7400\n');
        expect(parseInvocation(commandTree(), ['nodes'], { env: {}, configEnv: 'CLUSTERCTL_CONFIG', defaultConfigPath: several }).values.coordinator)
          .to.deep.equal(['10.9.9.9:7400', '10.9.9.10:7400']);
        const bad = join(dir, 'bad.yaml');
        writeFileSync(bad, 'coordnator: 10.9.9.9:7400\n');
        const r = await cli(['--config', bad, 'nodes']);
        expect(r.code).to.equal(1);
        expect(r.err).to.match(/^error: config file .*bad\.yaml: unknown option "coordnator"/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
