/**
 * Table tests of shared/options.ts: precedence (flag > env > config file > default), value
 * kinds (durations, lists, booleans, ints, choices) and the one-line errors a person gets
 * for an unknown flag, a missing required option or a bad value.
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseOptions, parseDuration, formatHelp, type OptionSpecs } from '../../shared/options';
import { InvalidArgumentError } from '../../shared/errors';

const SPECS = {
  etcd: { kind: 'list', description: 'etcd endpoints', env: 'T_ETCD', default: ['127.0.0.1:2379'], placeholder: 'HOST:PORT[,...]' },
  nodeId: { kind: 'string', description: 'node id', env: 'T_NODE_ID', required: true },
  leaseTtl: { kind: 'duration', description: 'lease TTL', env: 'T_LEASE_TTL', default: 10, min: 1000 },
  pollMs: { kind: 'duration', description: 'poll', unit: 'ms', default: 250 },
  workers: { kind: 'int', description: 'workers', env: 'T_WORKERS', default: 4, min: 1, short: 'w' },
  verbose: { kind: 'boolean', description: 'verbose', env: 'T_VERBOSE', short: 'v' },
  level: { kind: 'string', description: 'log level', env: 'T_LEVEL', choices: ['debug', 'info', 'warn'], default: 'info' },
  hostname: { kind: 'string', description: 'hostname' },
} as const satisfies OptionSpecs;

describe('shared/options', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'options-test-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function config(text: string): string {
    const path = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, text);
    return path;
  }

  describe('precedence: flag > env > config file > default', () => {
    // Each row sets the same option (workers) in some of the four places.
    const rows: { name: string; flag?: string; env?: string; file?: string; want: number; source: string }[] = [
      { name: 'default only', want: 4, source: 'default' },
      { name: 'file over default', file: '7', want: 7, source: 'config' },
      { name: 'env over file', env: '8', file: '7', want: 8, source: 'env' },
      { name: 'flag over env and file', flag: '9', env: '8', file: '7', want: 9, source: 'flag' },
      { name: 'flag over file', flag: '9', file: '7', want: 9, source: 'flag' },
      { name: 'flag over default', flag: '9', want: 9, source: 'flag' },
      { name: 'empty env is ignored', env: '', file: '7', want: 7, source: 'config' },
    ];
    for (const r of rows) {
      it(r.name, () => {
        const argv = ['--node-id', 'n1'];
        if (r.flag) argv.push('--workers', r.flag);
        if (r.file) argv.push('--config', config(`workers: ${r.file}\n`));
        const env: NodeJS.ProcessEnv = r.env !== undefined ? { T_WORKERS: r.env } : {};
        const res = parseOptions(SPECS, { argv, env });
        expect(res.values.workers).to.equal(r.want);
        expect(res.sources.workers).to.equal(r.source);
      });
    }

    it('config file named by the config env var, keys either camelCase or kebab-case', () => {
      const path = config('nodeId: from-file\nlease-ttl: 3s\n');
      const res = parseOptions(SPECS, { argv: [], env: { T_CFG: path }, configEnv: 'T_CFG' });
      expect(res.values.nodeId).to.equal('from-file');
      expect(res.values.leaseTtl).to.equal(3000);
      expect(res.configPath).to.equal(path);
    });

    it('default config path is read only when it exists', () => {
      const res = parseOptions(SPECS, { argv: ['--node-id', 'n1'], env: {}, defaultConfigPath: join(dir, 'absent.yaml') });
      expect(res.configPath).to.equal(undefined);
      const path = config('workers: 2\n');
      expect(parseOptions(SPECS, { argv: ['--node-id', 'n1'], env: {}, defaultConfigPath: path }).values.workers).to.equal(2);
    });
  });

  describe('durations (to ms)', () => {
    const rows: [string, 'ms' | 's', number][] = [
      ['500ms', 's', 500], ['10s', 's', 10_000], ['2m', 's', 120_000], ['1h', 's', 3_600_000],
      ['3', 's', 3000], ['1.5', 's', 1500], ['250', 'ms', 250], [' 2s ', 's', 2000], ['0', 's', 0],
    ];
    for (const [text, unit, ms] of rows) {
      it(`${JSON.stringify(text)} (bare unit ${unit}) = ${ms} ms`, () => expect(parseDuration(text, unit)).to.equal(ms));
    }
    for (const bad of ['', 's', '-1s', '10 s', '1d', 'ten', '1e3']) {
      it(`${JSON.stringify(bad)} is refused`, () => expect(() => parseDuration(bad)).to.throw(InvalidArgumentError, /invalid duration/));
    }
    it('flag duration honours the spec unit and the minimum', () => {
      expect(parseOptions(SPECS, { argv: ['--node-id', 'n', '--lease-ttl', '3', '--poll-ms', '40'], env: {} }).values).to.include({ leaseTtl: 3000, pollMs: 40 });
      expect(() => parseOptions(SPECS, { argv: ['--node-id', 'n', '--lease-ttl', '500ms'], env: {} })).to.throw(InvalidArgumentError, /--lease-ttl: must be at least 1 s/);
    });
    it('a number in the config file is in the spec unit', () => {
      expect(parseOptions(SPECS, { argv: ['--node-id', 'n', '--config', config('leaseTtl: 2\n')], env: {} }).values.leaseTtl).to.equal(2000);
    });
  });

  describe('lists', () => {
    const rows: { name: string; argv: string[]; env?: NodeJS.ProcessEnv; file?: string; want: string[] }[] = [
      { name: 'default', argv: [], want: ['127.0.0.1:2379'] },
      { name: 'comma list in a flag', argv: ['--etcd', 'a:1,b:2'], want: ['a:1', 'b:2'] },
      { name: 'repeated flag accumulates', argv: ['--etcd', 'a:1', '--etcd=b:2,c:3'], want: ['a:1', 'b:2', 'c:3'] },
      { name: 'blanks trimmed, empties dropped', argv: ['--etcd', ' a:1 , ,b:2,'], want: ['a:1', 'b:2'] },
      { name: 'env', argv: [], env: { T_ETCD: 'e:1,e:2' }, want: ['e:1', 'e:2'] },
      { name: 'YAML sequence in the config file', argv: [], file: 'etcd:\n  - y:1\n  - y:2\n', want: ['y:1', 'y:2'] },
    ];
    for (const r of rows) {
      it(r.name, () => {
        const argv = ['--node-id', 'n', ...r.argv];
        if (r.file) argv.push('--config', config(r.file));
        expect(parseOptions(SPECS, { argv, env: r.env ?? {} }).values.etcd).to.deep.equal(r.want);
      });
    }
  });

  describe('booleans', () => {
    const rows: { argv: string[]; env?: NodeJS.ProcessEnv; want: boolean }[] = [
      { argv: [], want: false },
      { argv: ['--verbose'], want: true },
      { argv: ['-v'], want: true },
      { argv: ['--verbose=false'], want: false },
      { argv: ['--verbose=yes'], want: true },
      { argv: ['--no-verbose'], env: { T_VERBOSE: 'true' }, want: false },
      { argv: [], env: { T_VERBOSE: '1' }, want: true },
      { argv: [], env: { T_VERBOSE: 'off' }, want: false },
      { argv: [], env: { T_VERBOSE: 'ON' }, want: true },
    ];
    for (const r of rows) {
      it(`${r.argv.join(' ') || '(none)'} ${r.env ? JSON.stringify(r.env) : ''} → ${r.want}`, () => {
        expect(parseOptions(SPECS, { argv: ['--node-id', 'n', ...r.argv], env: r.env ?? {} }).values.verbose).to.equal(r.want);
      });
    }
    it('a non-boolean value is refused', () => {
      expect(() => parseOptions(SPECS, { argv: ['--node-id', 'n', '--verbose=maybe'], env: {} })).to.throw(InvalidArgumentError, /--verbose: "maybe" is not true or false/);
    });
  });

  describe('errors a person can act on (one line each)', () => {
    const rows: { name: string; argv: string[]; env?: NodeJS.ProcessEnv; file?: string; match: RegExp }[] = [
      { name: 'unknown flag', argv: ['--node-id', 'n', '--bogus', '1'], match: /^unknown flag --bogus \(run with --help to list the flags\)$/ },
      { name: 'unknown flag with =value', argv: ['--node-id', 'n', '--bogus=1'], match: /^unknown flag --bogus / },
      { name: 'unknown short flag', argv: ['--node-id', 'n', '-q'], match: /^unknown flag -q/ },
      { name: 'missing required', argv: [], match: /^missing --node-id \(or T_NODE_ID\)$/ },
      { name: 'flag without its value', argv: ['--node-id'], match: /^--node-id needs a value/ },
      { name: 'not a whole number', argv: ['--node-id', 'n', '--workers', '2.5'], match: /^--workers: "2.5" is not a whole number$/ },
      { name: 'below minimum', argv: ['--node-id', 'n', '-w', '0'], match: /^--workers: must be at least 1$/ },
      { name: 'not one of the choices', argv: ['--node-id', 'n', '--level', 'loud'], match: /^--level: "loud" is not one of debug, info, warn$/ },
      { name: 'bad env value names the variable', argv: ['--node-id', 'n'], env: { T_WORKERS: 'many' }, match: /^environment variable T_WORKERS: "many" is not a whole number$/ },
      { name: 'unknown key in config file', argv: ['--node-id', 'n'], file: 'wrokers: 3\n', match: /unknown option "wrokers"/ },
      { name: 'config file not a mapping', argv: ['--node-id', 'n'], file: '- a\n- b\n', match: /must hold a mapping/ },
      { name: 'config file not YAML', argv: ['--node-id', 'n'], file: 'a: [1,\n', match: /is not valid YAML/ },
      { name: 'config file missing', argv: ['--node-id', 'n', '--config', '/nonexistent/x.yaml'], match: /^cannot read config file \/nonexistent\/x.yaml/ },
      { name: '--config without a path', argv: ['--config'], match: /^--config needs a file path$/ },
    ];
    for (const r of rows) {
      it(r.name, () => {
        const argv = [...r.argv];
        if (r.file) argv.push('--config', config(r.file));
        let err: unknown;
        try {
          parseOptions(SPECS, { argv, env: r.env ?? {} });
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(InvalidArgumentError);
        const message = (err as Error).message;
        expect(message).to.match(r.match);
        expect(message.split('\n')[0]).to.match(r.match); // the match is on the first line
      });
    }

    it('positionals refused when the runtime takes none', () => {
      expect(() => parseOptions(SPECS, { argv: ['--node-id', 'n', 'extra'], env: {}, allowPositionals: false })).to.throw(InvalidArgumentError, /unexpected argument "extra"/);
    });
    it('--help skips the required check', () => {
      expect(parseOptions(SPECS, { argv: ['--help'], env: {} }).help).to.equal(true);
    });
  });

  describe('positionals, --, help text', () => {
    it('keeps positionals and what follows --', () => {
      const res = parseOptions(SPECS, { argv: ['nodes', '--node-id', 'n', 'describe', '--', '--not-a-flag'], env: {} });
      expect(res.positionals).to.deep.equal(['nodes', 'describe']);
      expect(res.rest).to.deep.equal(['--not-a-flag']);
    });
    it('formatHelp lists every flag with its env var and default', () => {
      const text = formatHelp('usage: t', SPECS);
      for (const flag of ['--etcd HOST:PORT[,...]', '--node-id', '--lease-ttl', '-w, --workers', '-v, --verbose', '--config FILE']) expect(text).to.contain(flag);
      expect(text).to.contain('env T_LEASE_TTL; default 10');
      expect(text).to.contain('one of debug|info|warn');
    });
  });
});
