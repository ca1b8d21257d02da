/**
 * The command contract (proto CommandReport, DriftDetail, Command.variables): the agent's
 * encoder against the one decoder every reader uses (shared/command-report.ts), malformed
 * reports and bundles refused with a message naming what is wrong, and the variables merged
 * once on the coordinator and rendered as sent by a real CommandExecutor in a sandbox root.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandReport } from '../../agent/command-executor';
import { CommandExecutor } from '../../agent/command-executor';
import { findingOf, unusableRecordFinding } from '../../agent/applied-reload';
import { FileAppliedStore } from '../../agent/applied-store';
import { createUnitContext } from '../../agent/unit-context';
import { createHandlerRegistry } from '../../agent/units/handlers';
import type { RunReport } from '../../agent/units/executor';
import { commandVariables, decodeJobNode } from '../../coordinator/jobs/job-record';
import type { Command__Output } from '../../generated/cluster/v1/Command';
import type { CommandKind__Output } from '../../generated/cluster/v1/CommandKind';
import { createLogger, InvalidArgumentError } from '../../shared';
import {
  completedVerification, decodeCommandReport, decodeDriftDetail, driftDetailLine, driftLines, type CommandReport,
} from '../../shared/command-report';

const quiet = createLogger({ level: 'silent' });

function run(over: Partial<RunReport>): RunReport {
  return { mode: 'apply', bundle: { name: 'web', version: '2' }, ok: true, changed: [], units: [], probes: [], cancelled: false, durationMs: 5, ...over };
}

const CONF = {
  unitId: 'conf', kind: 'file' as const, state: 'changed' as const, durationMs: 1, digest: 'sha256:c',
  plan: { unitId: 'conf', kind: 'file' as const, action: 'update' as const, summary: 'update /etc/demo.conf: content 1→2 lines', changes: [{ field: 'content', before: '1 line', after: '2 lines' }] },
};
const DATA = {
  unitId: 'data', kind: 'directory' as const, state: 'unchanged' as const, durationMs: 1, digest: 'sha256:d',
  plan: { unitId: 'data', kind: 'directory' as const, action: 'unchanged' as const, summary: '/var/data is as wanted', changes: [] },
};
const NEW = {
  unitId: 'motd', kind: 'file' as const, state: 'changed' as const, durationMs: 1, digest: 'sha256:m',
  plan: { unitId: 'motd', kind: 'file' as const, action: 'create' as const, summary: 'create /etc/motd', changes: [{ field: 'ensure', before: null, after: 'present' }] },
};
const PORT_OK = { id: 'port', ok: true, detail: 'tcp 127.0.0.1:80: open', durationMs: 1 };
const PORT_DOWN = { id: 'port', ok: false, detail: 'tcp 127.0.0.1:80: connection refused', durationMs: 1 };

describe('command report: encode (agent) and decode (shared), as etcd stores it', () => {
  const rows: { name: string; run: RunReport; units: string[]; probes: string[]; verification: { drifted: boolean } | undefined; lines: string[] }[] = [
    { name: 'apply: every unit and probe', run: run({ changed: ['conf', 'motd'], units: [CONF, DATA, NEW], probes: [PORT_OK] }), units: ['conf', 'data', 'motd'], probes: ['port'], verification: undefined, lines: [] },
    { name: 'plan: every unit', run: run({ mode: 'plan', changed: ['conf'], units: [CONF, DATA] }), units: ['conf', 'data'], probes: [], verification: undefined, lines: [] },
    { name: 'verify, clean: nothing kept', run: run({ mode: 'verify', units: [DATA], probes: [PORT_OK] }), units: [], probes: [], verification: { drifted: false }, lines: [] },
    {
      name: 'verify, drift: the drifted unit and the failed probe', run: run({ mode: 'verify', ok: false, changed: ['conf'], units: [CONF, DATA], probes: [PORT_DOWN] }),
      units: ['conf'], probes: ['port'], verification: { drifted: true },
      lines: ['conf: update /etc/demo.conf: content 1→2 lines', 'probe port: tcp 127.0.0.1:80: connection refused'],
    },
    {
      name: 'verify, a check that could not run: not a completed verification',
      run: run({ mode: 'verify', ok: false, units: [{ unitId: 'pkg', kind: 'package', state: 'failed', durationMs: 1, digest: 'sha256:p', error: 'dnf missing' }], failure: { unitId: 'pkg', reason: 'dnf missing', alreadyChanged: [] } }),
      units: ['pkg'], probes: [], verification: undefined, lines: ['pkg: dnf missing'],
    },
    {
      name: 'remove that failed half-way', run: run({ mode: 'remove', ok: false, changed: ['motd'], units: [NEW], failure: { unitId: 'conf', reason: 'busy', alreadyChanged: ['motd'] } }),
      units: ['motd'], probes: [], verification: undefined, lines: [],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const encoded = commandReport(row.run);
      const decoded = decodeCommandReport(JSON.parse(JSON.stringify(encoded)));
      expect(decoded).to.deep.equal(encoded);
      expect(decoded.mode).to.equal(row.run.mode);
      expect(decoded.bundle).to.deep.equal({ name: 'web', version: '2' });
      expect(decoded.units.map((u) => u.unitId)).to.deep.equal(row.units);
      expect(decoded.probes.map((p) => p.id)).to.deep.equal(row.probes);
      expect(decoded.failure?.alreadyChanged ?? []).to.deep.equal(row.run.failure?.alreadyChanged ?? []);
      expect(completedVerification(decoded)).to.deep.equal(row.verification);
      if (row.run.mode === 'verify') expect(driftLines(decoded)).to.deep.equal(row.lines);
    });
  }

  it('a field that did not exist before (null) survives as has_before false', () => {
    const [u] = decodeCommandReport(JSON.parse(JSON.stringify(commandReport(run({ units: [NEW] }))))).units;
    expect(u.changes).to.deep.equal([{ field: 'ensure', before: '', hasBefore: false, after: 'present', hasAfter: true }]);
  });

  it('missing fields take the proto defaults', () => {
    expect(decodeCommandReport({ mode: 'plan' })).to.deep.equal({ mode: 'plan', bundle: null, ok: false, changed: [], units: [], probes: [], failure: null });
    expect(completedVerification(null)).to.equal(undefined);
  });
});

describe('command report: a malformed one is refused, naming the field', () => {
  const rows: [string, unknown, RegExp][] = [
    ['not an object', 'apply', /^report: must be an object/],
    ['a list', [], /^report: must be an object \(got a list\)/],
    ['unknown mode', { mode: 'repair' }, /^report\.mode: must be one of apply, remove, verify, plan \(got "repair"\)/],
    ['units not a list', { mode: 'apply', units: { conf: {} } }, /^report\.units: must be a list/],
    ['a unit without an id', { mode: 'apply', units: [{ kind: 'file' }] }, /^report\.units\[0\]\.unitId: must name the unit/],
    ['a change with a numeric field', { mode: 'plan', units: [{ unitId: 'conf', changes: [{ field: 3 }] }] }, /^report\.units\[0\]\.changes\[0\]\.field: must be a string/],
    ['ok as text', { mode: 'apply', ok: 'yes' }, /^report\.ok: must be true or false/],
    ['already changed not strings', { mode: 'apply', failure: { reason: 'x', alreadyChanged: [1] } }, /^report\.failure\.alreadyChanged\[0\]: must be a string/],
  ];
  for (const [name, value, want] of rows) {
    it(name, () => {
      expect(() => decodeCommandReport(value)).to.throw(InvalidArgumentError, want);
    });
  }

  it('a job node record read back from etcd with a malformed plan names the key', () => {
    const key = '/cluster/v1/jobs/j1/nodes/n1';
    const text = JSON.stringify({ nodeId: 'n1', state: 'succeeded', plan: { mode: 'plan', units: [{ unitId: 'conf', changes: 'all' }] } });
    expect(() => decodeJobNode(key, text)).to.throw(InvalidArgumentError, `etcd value at ${key}: plan.units[0].changes: must be a list`);
    const good = JSON.stringify({ nodeId: 'n1', state: 'succeeded', drift: commandReport(run({ mode: 'verify', ok: false, units: [CONF] })) });
    expect(decodeJobNode(key, good).drift?.units.map((u) => u.unitId)).to.deep.equal(['conf']);
    expect(decodeJobNode(key, JSON.stringify({ nodeId: 'n1', state: 'pending' }))).to.not.have.any.keys('plan', 'drift');
  });

  it('a job node record stored before reports were messages (planJson/driftJson text) reads as the same structure', () => {
    const key = '/cluster/v1/jobs/j1/nodes/n1';
    // What agent/command-executor.ts summariseReport wrote and the runner stored as it came.
    const driftJson = JSON.stringify({
      mode: 'verify', bundle: { name: 'web', version: '2' }, ok: false, changed: ['motd'],
      drift: [{ unitId: 'motd', kind: 'file', state: 'changed', action: 'create', summary: 'create /etc/motd', changes: [{ field: 'ensure', before: null, after: 'present' }] }], probes: [],
    });
    const planJson = JSON.stringify({ mode: 'plan', bundle: { name: 'web', version: '2' }, ok: true, changed: [], units: [{ unitId: 'conf', kind: 'file', state: 'unchanged', action: 'unchanged', summary: 'as wanted' }], probes: [] });
    const rec = decodeJobNode(key, JSON.stringify({ nodeId: 'n1', state: 'succeeded', driftJson, planJson }));
    expect(rec.drift).to.deep.equal(commandReport(run({ mode: 'verify', ok: false, changed: ['motd'], units: [NEW] })));
    expect(rec.plan?.units.map((u) => [u.unitId, u.action])).to.deep.equal([['conf', 'unchanged']]);
    expect(rec).to.not.have.any.keys('planJson', 'driftJson');
    expect(() => decodeJobNode(key, JSON.stringify({ nodeId: 'n1', state: 'failed', driftJson: '{not json' }))).to.throw(InvalidArgumentError, `etcd value at ${key}:`);
  });
});

describe('drift detail: the agent re-verify on the wire', () => {
  const drift = {
    bundle: { name: 'web', version: '2' }, appliedDigest: 'sha256:x', appliedAt: 'a', checkedAt: 'c', drifted: true, incomplete: false,
    units: [{ unitId: 'motd', kind: 'file' as const, action: 'update' as const, summary: 'update /etc/motd: content', changes: [{ field: 'content', before: '1 line', after: null }] }],
    failedProbes: [], summary: '1 of 3 units drifted: motd (content)', report: run({ mode: 'verify' }),
  };

  it('encodes, decodes and reads as one line', () => {
    const f = findingOf(drift);
    const d = decodeDriftDetail(JSON.parse(JSON.stringify(f.detail)));
    expect(d).to.deep.equal(f.detail);
    expect(d.units[0]).to.deep.include({ unitId: 'motd', state: 'update', action: 'update' });
    expect(d.units[0].changes).to.deep.equal([{ field: 'content', before: '1 line', hasBefore: true, after: '', hasAfter: false }]);
    expect(driftDetailLine(d)).to.equal('1 of 3 units drifted: motd (content)');
    expect(driftDetailLine({ ...d, drifted: false })).to.equal('');
    const unusable = unusableRecordFinding('not JSON', new Date(0)).detail;
    expect(decodeDriftDetail(unusable)).to.deep.include({ drifted: true, unusableRecord: true, checkedAt: '1970-01-01T00:00:00.000Z' });
  });

  it('a malformed one is refused, naming the field', () => {
    expect(() => decodeDriftDetail({ drifted: true, unitsOmitted: -1 })).to.throw(InvalidArgumentError, /^drift\.unitsOmitted: must be a whole number/);
    expect(() => decodeDriftDetail({ drifted: 'yes' })).to.throw(InvalidArgumentError, /^drift\.drifted: must be true or false/);
  });
});

describe('command variables: merged once on the coordinator', () => {
  it('bundle defaults < group variables < extra vars (the job record holds the last two merged)', () => {
    const rows: [string, Record<string, string | number | boolean>, Record<string, string>, Record<string, string>][] = [
      ['bundle defaults only', { greeting: 'hi', port: 80, tls: false }, {}, { greeting: 'hi', port: '80', tls: 'false' }],
      ['group (or -e) over the bundle', { greeting: 'hi', port: 80 }, { greeting: 'hello' }, { greeting: 'hello', port: '80' }],
      ['a variable only the job has', {}, { extra: 'x' }, { extra: 'x' }],
    ];
    for (const [name, bundle, job, want] of rows) expect(commandVariables(bundle, job), name).to.deep.equal(want);
  });
});

describe('command executor: what comes off the wire', () => {
  let dir: string;
  let executor: CommandExecutor;
  let root: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'command-report-'));
    root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    const context = createUnitContext({ root, logger: quiet });
    const applied = await FileAppliedStore.open(join(dir, 'state'), quiet);
    executor = new CommandExecutor({ handlers: createHandlerRegistry(), context, applied, logger: quiet });
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function command(kind: CommandKind__Output, bundleJson: string, variables: Record<string, string> = {}, allowedPaths: string[] = []): Command__Output {
    return { id: 'j1/n1/1', jobId: 'j1', kind, bundleJson, variables, argv: [], timeoutMs: 0, health: null, secretVariables: [], allowedPaths };
  }

  const BUNDLE = {
    name: 'demo', version: '1', variables: { greeting: 'from-the-bundle' },
    units: [{ id: 'conf', kind: 'file', path: '/etc/demo.conf', content: 'greeting={{ vars.greeting }}\n' }],
  };

  it('a bundle that does not validate is refused with the validator\'s problems, and nothing runs', async () => {
    const rows: [string, string, RegExp][] = [
      ['not JSON', '{units', /^command j1\/n1\/1: refused: bundle_json is not a valid bundle: .*JSON/],
      ['a unit without a path', JSON.stringify({ ...BUNDLE, units: [{ id: 'conf', kind: 'file', content: 'x' }] }), /^command j1\/n1\/1: refused: bundle_json is not a valid bundle: invalid bundle demo .*units\[0\]/],
      ['no units list', JSON.stringify({ name: 'demo', version: '1' }), /^command j1\/n1\/1: refused: bundle_json is not a valid bundle: invalid bundle demo/],
    ];
    for (const [name, json, want] of rows) {
      const r = await executor.execute(command('COMMAND_KIND_APPLY', json), () => undefined, new AbortController().signal);
      expect(r.outcome, name).to.equal('failed');
      expect(r.error, name).to.match(want);
      expect(r.report, name).to.equal(undefined);
    }
    expect(() => readFileSync(join(root, 'etc', 'demo.conf'))).to.throw();
  });

  it('renders with Command.variables as the only source (the bundle\'s own are already merged in them)', async () => {
    const r = await executor.execute(command('COMMAND_KIND_APPLY', JSON.stringify(BUNDLE), { greeting: 'from-the-command' }), () => undefined, new AbortController().signal);
    expect(r.outcome, r.error).to.equal('succeeded');
    expect(readFileSync(join(root, 'etc', 'demo.conf'), 'utf8')).to.equal('greeting=from-the-command\n');
    const report: CommandReport = decodeCommandReport(r.report);
    expect(report).to.deep.include({ mode: 'apply', ok: true, changed: ['conf'] });

    // A variable the command does not carry is undefined, even when the bundle has a default.
    const missing = await executor.execute(command('COMMAND_KIND_PLAN', JSON.stringify(BUNDLE)), () => undefined, new AbortController().signal);
    expect(missing.outcome).to.equal('failed');
    expect(missing.error).to.match(/undefined variable vars\.greeting/);
  });

  it('the group\'s allowed paths: a rendered unit writing outside them fails the command before any unit runs', async () => {
    const bundle = {
      name: 'demo', version: '1', variables: {},
      units: [
        { id: 'inside', kind: 'file', path: '/etc/myapp/app.conf', content: 'x\n' },
        // Rendered on the agent: the coordinator saw only a template under /etc/myapp.
        { id: 'escape', kind: 'file', path: '/etc/myapp{{ vars.suffix }}/shadow', content: 'x\n' },
      ],
    };
    const r = await executor.execute(command('COMMAND_KIND_APPLY', JSON.stringify(bundle), { suffix: '-other' }, ['/etc/myapp']), () => undefined, new AbortController().signal);
    expect(r.outcome).to.equal('failed');
    expect(r.error).to.equal('command j1/n1/1: refused: unit escape writes "/etc/myapp-other/shadow", outside the allowed paths (/etc/myapp)');
    expect(r.report).to.equal(undefined);
    // Nothing ran: not even the unit inside the allowed path.
    expect(() => readFileSync(join(root, 'etc', 'myapp', 'app.conf'))).to.throw();

    // Removal and verification are not refused: they touch what an earlier command placed.
    const removed = await executor.execute(command('COMMAND_KIND_REMOVE', JSON.stringify(bundle), { suffix: '-other' }, ['/etc/myapp']), () => undefined, new AbortController().signal);
    expect(removed.outcome, removed.error).to.equal('succeeded');

    // Normalised before the check, and inside: applied.
    const ok = { ...bundle, units: [{ id: 'inside', kind: 'file', path: '/etc//myapp/./app.conf', content: 'x\n' }] };
    const applied = await executor.execute(command('COMMAND_KIND_APPLY', JSON.stringify(ok), {}, ['/etc/myapp/']), () => undefined, new AbortController().signal);
    expect(applied.outcome, applied.error).to.equal('succeeded');
    expect(readFileSync(join(root, 'etc', 'myapp', 'app.conf'), 'utf8')).to.equal('x\n');
  });
});
