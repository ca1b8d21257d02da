/**
 * Units a new bundle version dropped are removed when it is applied (agent/dropped-units.ts):
 * the pure difference by table, then the daemon's CommandExecutor and `applyAndRecord` on a
 * sandbox root with real files and commands, then a real systemd user manager for a service.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyAndRecord, buildAppliedRecord, readAppliedRecord, removeApplied, reverifyApplied, runWithRecord, type AppliedRecord } from '../../agent/applied-record';
import { FileAppliedStore } from '../../agent/applied-store';
import { CommandExecutor } from '../../agent/command-executor';
import { droppedUnits, plannedRemovals, unitTarget } from '../../agent/dropped-units';
import { createUnitContext, type OwnedUnitContext } from '../../agent/unit-context';
import type { RunReport } from '../../agent/units/executor';
import { createHandlerRegistry } from '../../agent/units/handlers';
import type { Command__Output } from '../../generated/cluster/v1/Command';
import type { CommandKind__Output } from '../../generated/cluster/v1/CommandKind';
import type { Bundle, UnitSpec } from '../../shared/bundle/types';
import { decodeCommandReport } from '../../shared/command-report';
import { createLogger } from '../../shared/logger';
import { startSystemdSandbox, type SystemdSandbox } from '../helpers/systemd-sandbox';

const quiet = createLogger({ level: 'silent' });

const bundle = (name: string, version: string, units: UnitSpec[]): Bundle => ({ name, version, variables: {}, units, verify: [] });

/** A complete record of `b` (every unit converged), as an apply that succeeded leaves it. */
function recordOf(b: Bundle): AppliedRecord {
  const report: RunReport = {
    mode: 'apply', bundle: { name: b.name, version: b.version }, ok: true, changed: [], probes: [], cancelled: false, durationMs: 0,
    units: b.units.map((u) => ({ unitId: u.id, kind: u.kind, state: 'changed', durationMs: 0, digest: `d-${u.id}` })),
  };
  return buildAppliedRecord(b, report, new Date(0));
}

describe('dropped units: the difference between the applied record and the new bundle (pure)', () => {
  const A: UnitSpec = { id: 'a', kind: 'file', path: '/etc/a.conf', content: 'a\n' };
  const B: UnitSpec = { id: 'b', kind: 'file', path: '/etc/b.conf', content: 'b\n' };
  const D: UnitSpec = { id: 'dir', kind: 'directory', path: '/opt/app' };
  const P: UnitSpec = { id: 'pkg', kind: 'package', name: 'chrony' };
  const S: UnitSpec = { id: 's', kind: 'systemd', unit: 's.service', content: '[Service]\nExecStart=/bin/true\n' };
  const C: UnitSpec = { id: 'init', kind: 'command', run: 'true', undo: 'true' };

  it('keeps a unit with the same id, kind and target (also when its spec changed); drops the others, in apply order', () => {
    const rows: [string, UnitSpec[], UnitSpec[], string[]][] = [
      ['nothing dropped', [A, B], [A, B], []],
      ['content changed: kept', [A, B], [{ ...A, content: 'new\n' }, B], []],
      ['B and S dropped', [A, B, S], [A], ['b:path:/etc/b.conf', 's:systemd:s.service']],
      ['every kind dropped, in apply order', [D, A, P, S, C], [], ['dir:path:/opt/app', 'a:path:/etc/a.conf', 'pkg:package:chrony', 's:systemd:s.service', 'init:command:init']],
      ['same id, path changed: the old path is dropped', [A], [{ ...A, path: '/etc/a2.conf' }], ['a:path:/etc/a.conf']],
      ['same id, kind changed (file → systemd): dropped', [{ ...A, id: 's' }], [S], ['s:path:/etc/a.conf']],
      ['renamed id, same path: not removed (the new unit manages it)', [A], [{ ...A, id: 'a-renamed' }], []],
      ['file became a directory at the same path: not removed', [A], [{ id: 'a', kind: 'directory', path: '/etc/a.conf' }], []],
      ['a trailing slash or a double slash is the same path', [D], [{ ...D, path: '/opt//app/' }], []],
      ['same package under another id: not removed', [P], [{ ...P, id: 'chrony' }], []],
      ['a command is its id: kept when its run changed, dropped when renamed', [C], [{ ...C, run: 'echo new' }], []],
      ['a command renamed', [C], [{ ...C, id: 'init2' }], ['init:command:init']],
    ];
    for (const [name, before, after, want] of rows) {
      const got = droppedUnits(recordOf(bundle('base', '3', before)), bundle('base', '4', after));
      expect(got.map((d) => `${d.spec.id}:${unitTarget(d.spec)}`), name).to.deep.equal(want);
      expect(got.every((d) => d.from === 'base@3'), name).to.equal(true);
    }
  });

  it('nothing applied: nothing to remove; another bundle (group changed): its units not in the new one are dropped', () => {
    expect(droppedUnits(undefined, bundle('base', '4', [A]))).to.deep.equal([]);
    const got = droppedUnits(recordOf(bundle('web', '2', [A, B])), bundle('base', '1', [A]));
    expect(got.map((d) => `${d.from} ${d.spec.id}`)).to.deep.equal(['web@2 b']);
  });

  it('units still pending from an earlier apply are dropped too (older first), each once, unless the new bundle has them again', () => {
    const rec: AppliedRecord = { ...recordOf(bundle('base', '4', [A, C])), pendingRemoval: [{ spec: B, from: 'base@3' }, { spec: S, from: 'base@3' }] };
    expect(droppedUnits(rec, bundle('base', '5', [A])).map((d) => `${d.from} ${d.spec.id}`)).to.deep.equal(['base@3 b', 'base@3 s', 'base@4 init']);
    expect(droppedUnits(rec, bundle('base', '3', [A, B, S])).map((d) => d.spec.id), 'rollback to 3: B and S kept, init dropped').to.deep.equal(['init']);
    const twice: AppliedRecord = { ...rec, pendingRemoval: [{ spec: C, from: 'base@3' }] };
    expect(droppedUnits(twice, bundle('base', '5', [A])).map((d) => `${d.from} ${d.spec.id}`)).to.deep.equal(['base@3 init']);
  });

  it('the plan lists each removal as action remove, in the order it runs (reverse), saying why; a reused id is told apart', () => {
    const next = bundle('base', '4', [{ ...A, path: '/etc/a2.conf' }]);
    const planned = plannedRemovals(droppedUnits(recordOf(bundle('base', '3', [A, B, S])), next), next);
    expect(planned.map((u) => [u.unitId, u.plan?.action, u.plan?.summary])).to.deep.equal([
      ['s', 'remove', 'stop and disable s.service, delete its unit file (from base@3: not in base@4)'],
      ['b', 'remove', 'remove file /etc/b.conf (from base@3: not in base@4)'],
      ['a (base@3)', 'remove', 'remove file /etc/a.conf (from base@3: target changed in base@4)'],
    ]);
  });
});

describe('dropped units are removed on apply (daemon executor and cluster-agent apply, sandbox root)', () => {
  let dir: string;
  let root: string;
  let state: string;
  let ctx: OwnedUnitContext;
  let executor: CommandExecutor;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dropped-units-'));
    root = join(dir, 'root');
    state = join(dir, 'state');
    mkdirSync(root, { recursive: true });
    ctx = createUnitContext({ root, logger: quiet });
    executor = new CommandExecutor({ handlers: createHandlerRegistry(), context: ctx, applied: await FileAppliedStore.open(state, quiet), logger: quiet });
  });
  afterEach(() => {
    ctx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const at = (p: string): string => join(root, p);
  const command = (kind: CommandKind__Output, b: Bundle): Command__Output => ({ id: 'j/n/1', jobId: 'j', kind, bundleJson: JSON.stringify(b), variables: {}, argv: [], timeoutMs: 0, health: null, secretVariables: [], allowedPaths: [] });
  const run = async (kind: CommandKind__Output, b: Bundle, progress: string[] = []) => {
    const r = await executor.execute(command(kind, b), (p) => { if (p.status !== 'running') progress.push(`${p.unitId} ${p.status}`); }, new AbortController().signal);
    return { ...r, report: r.report ? decodeCommandReport(r.report) : undefined };
  };

  /** v3: a directory, files A and B, a command with an undo (fails while /block-undo exists); v4 keeps the directory and A. */
  const v3 = bundle('app', '3', [
    { id: 'dir', kind: 'directory', path: '/opt/app' },
    { id: 'a', kind: 'file', path: '/opt/app/a.conf', content: 'a\n' },
    { id: 'b', kind: 'file', path: '/opt/app/b.conf', content: 'b\n' },
    { id: 'marker', kind: 'command', run: 'touch "$NODE_ROOT/opt/app/marker"', creates: '/opt/app/marker', undo: 'test ! -f "$NODE_ROOT/block-undo" && rm -f "$NODE_ROOT/opt/app/marker"' },
  ]);
  const v4 = bundle('app', '4', [v3.units[0], v3.units[1], { id: 'c', kind: 'file', path: '/opt/app/c.conf', content: 'c\n' }]);

  it('v3 → v4 plan lists the removals; the upgrade removes B and the marker (undo), keeps A, reports them; v4 → v3 re-creates them and removes C', async () => {
    expect((await run('COMMAND_KIND_APPLY', v3)).outcome).to.equal('succeeded');
    expect(existsSync(at('opt/app/marker'))).to.equal(true);

    const plan = await run('COMMAND_KIND_PLAN', v4);
    expect(plan.outcome).to.equal('succeeded');
    expect(plan.report?.units.map((u) => `${u.unitId}:${u.action}`)).to.deep.equal(['dir:unchanged', 'a:unchanged', 'c:create', 'marker:remove', 'b:remove']);
    expect(existsSync(at('opt/app/b.conf')), 'a plan changes nothing').to.equal(true);

    const progress: string[] = [];
    const up = await run('COMMAND_KIND_APPLY', v4, progress);
    expect(up.outcome, up.error).to.equal('succeeded');
    expect(up.report?.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['dir:unchanged', 'a:unchanged', 'c:changed', 'marker:removed', 'b:removed']);
    expect(progress).to.deep.equal(['dir unchanged', 'a unchanged', 'c changed', 'marker removed', 'b removed']);
    expect(existsSync(at('opt/app/b.conf')), 'B removed').to.equal(false);
    expect(existsSync(at('opt/app/marker')), 'the marker command was undone').to.equal(false);
    expect(readFileSync(at('opt/app/a.conf'), 'utf8')).to.equal('a\n');
    const rec = await readAppliedRecord(state);
    expect(rec?.bundleVersion).to.equal('4');
    expect(rec?.units.map((u) => u.id), 'the record holds only v4').to.deep.equal(['dir', 'a', 'c']);
    expect(rec?.pendingRemoval).to.equal(undefined);
    expect(up.appliedDigest).to.equal(rec?.digest);

    const again = await run('COMMAND_KIND_APPLY', v4);
    expect(again.report?.changed, 'a second apply changes and removes nothing').to.deep.equal([]);

    const back = await run('COMMAND_KIND_APPLY', v3);
    expect(back.outcome, back.error).to.equal('succeeded');
    expect(back.report?.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['dir:unchanged', 'a:unchanged', 'b:changed', 'marker:changed', 'c:removed']);
    expect(existsSync(at('opt/app/b.conf'))).to.equal(true);
    expect(existsSync(at('opt/app/marker'))).to.equal(true);
    expect(existsSync(at('opt/app/c.conf')), 'rolling back removes what v4 added').to.equal(false);
  });

  it('a removal that fails fails the command with a clear message and keeps what is still there in the record; verify calls it drift; the retry removes it', async () => {
    await run('COMMAND_KIND_APPLY', v3);
    writeFileSync(at('block-undo'), '');
    const up = await run('COMMAND_KIND_APPLY', v4);
    expect(up.outcome).to.equal('failed');
    // Reverse order: the marker's undo runs first and fails, so B is not reached.
    expect(up.error).to.match(/^unit marker: removing what app@4 dropped failed: command unit marker: undo .* exited with status 1.*; app@4 itself applied; still on the node: b, marker \(the next apply removes them\)$/);
    expect(existsSync(at('opt/app/c.conf')), 'v4 applied').to.equal(true);
    expect(existsSync(at('opt/app/b.conf')), 'B not reached').to.equal(true);
    const rec = await readAppliedRecord(state);
    expect(rec?.bundleVersion).to.equal('4');
    expect(rec?.status).to.equal('complete');
    expect(rec?.pendingRemoval?.map((p) => `${p.from} ${p.spec.id}`)).to.deep.equal(['app@3 b', 'app@3 marker']);

    const verify = await run('COMMAND_KIND_VERIFY', v4);
    expect(verify.report?.units.map((u) => `${u.unitId}:${u.action}`), 'leftovers are drift').to.deep.equal(['b:remove', 'marker:remove']);
    const drift = await reverifyApplied(state, ctx);
    expect(drift?.drifted).to.equal(true);
    expect(drift?.summary).to.equal('2 dropped unit(s) not yet removed: b, marker');

    rmSync(at('block-undo'));
    const retry = await run('COMMAND_KIND_APPLY', v4);
    expect(retry.outcome, retry.error).to.equal('succeeded');
    expect(retry.report?.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['dir:unchanged', 'a:unchanged', 'c:unchanged', 'marker:removed', 'b:removed']);
    expect(existsSync(at('opt/app/b.conf'))).to.equal(false);
    expect((await readAppliedRecord(state))?.pendingRemoval).to.equal(undefined);
  });

  it('a failed apply removes nothing and keeps the dropped units pending; the next good apply removes them', async () => {
    await run('COMMAND_KIND_APPLY', v3);
    const broken = bundle('app', '4', [...v4.units, { id: 'boom', kind: 'command', run: 'exit 9' }]);
    const up = await run('COMMAND_KIND_APPLY', broken);
    expect(up.outcome).to.equal('failed');
    expect(up.error).to.match(/^unit boom: /);
    expect(existsSync(at('opt/app/b.conf')), 'nothing removed after a failed apply').to.equal(true);
    const rec = await readAppliedRecord(state);
    expect(rec?.status).to.equal('incomplete');
    expect(rec?.pendingRemoval?.map((p) => p.spec.id)).to.deep.equal(['b', 'marker']);

    const fixed = await run('COMMAND_KIND_APPLY', v4);
    expect(fixed.outcome, fixed.error).to.equal('succeeded');
    expect(existsSync(at('opt/app/b.conf'))).to.equal(false);
    expect(existsSync(at('opt/app/marker'))).to.equal(false);
  });

  it('a unit whose path changed: the old path is removed, the new one written; commission into another bundle removes the old bundle\'s units', async () => {
    await run('COMMAND_KIND_APPLY', v3);
    const moved = bundle('app', '4', [v3.units[0], { id: 'a', kind: 'file', path: '/opt/app/a-new.conf', content: 'a\n' }, v3.units[2], v3.units[3]]);
    const progress: string[] = [];
    const up = await run('COMMAND_KIND_APPLY', moved, progress);
    expect(up.outcome, up.error).to.equal('succeeded');
    expect(progress).to.deep.equal(['dir unchanged', 'a changed', 'b unchanged', 'marker unchanged', 'a (app@3) removed']);
    expect(existsSync(at('opt/app/a.conf'))).to.equal(false);
    expect(existsSync(at('opt/app/a-new.conf'))).to.equal(true);

    const other = bundle('web', '1', [{ id: 'web', kind: 'file', path: '/opt/web.conf', content: 'w\n' }]);
    const c = await run('COMMAND_KIND_APPLY', other);
    expect(c.outcome, c.error).to.equal('succeeded');
    expect(existsSync(at('opt/app')), 'every unit of app@4 removed, its directory last').to.equal(false);
    expect((await readAppliedRecord(state))?.units.map((u) => u.id)).to.deep.equal(['web']);
  });

  it('decommission also removes units still pending from an earlier version', async () => {
    await run('COMMAND_KIND_APPLY', v3);
    writeFileSync(at('block-undo'), '');
    await run('COMMAND_KIND_APPLY', v4);
    rmSync(at('block-undo'));
    const rm = await run('COMMAND_KIND_REMOVE', v4);
    expect(rm.outcome, rm.error).to.equal('succeeded');
    expect(rm.report?.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['marker:removed', 'b:removed', 'c:removed', 'a:removed', 'dir:removed']);
    expect(existsSync(at('opt/app'))).to.equal(false);
    expect(await readAppliedRecord(state)).to.equal(undefined);
  });

  it('cluster-agent apply (applyAndRecord) and its dry run follow the same rule; removeApplied removes what is pending', async () => {
    const opts = { context: ctx };
    expect((await applyAndRecord(state, v3, opts)).report.ok).to.equal(true);
    const plan = await runWithRecord(state, v4, 'plan', opts);
    expect(plan.units.map((u) => `${u.unitId}:${u.plan?.action ?? ''}`)).to.deep.equal(['dir:unchanged', 'a:unchanged', 'c:create', 'marker:remove', 'b:remove']);
    expect(plan.changed).to.deep.equal(['c', 'marker', 'b']);
    writeFileSync(at('block-undo'), '');
    const up = await applyAndRecord(state, v4, opts);
    expect(up.report.ok).to.equal(false);
    expect(up.record.pendingRemoval?.map((p) => p.spec.id)).to.deep.equal(['b', 'marker']);
    rmSync(at('block-undo'));
    const removed = await removeApplied(state, ctx);
    expect(removed?.ok, JSON.stringify(removed?.failure)).to.equal(true);
    expect(existsSync(at('opt/app'))).to.equal(false);
  });
});

describe('a dropped systemd service is stopped, disabled and its unit file deleted (real user manager)', function () {
  this.timeout(180_000);
  let sb: SystemdSandbox;
  let dir: string;
  let ctx: OwnedUnitContext;

  before(async () => {
    sb = await startSystemdSandbox('dropped-units');
    dir = mkdtempSync(join(tmpdir(), 'dropped-systemd-'));
    ctx = createUnitContext({
      root: join(dir, 'root'), logger: quiet,
      systemdBus: 'session', systemdUnitDir: sb.unitDir, systemdBusAddress: sb.busAddress,
    });
  });
  after(async () => {
    ctx?.close();
    await sb?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const svc: UnitSpec = {
    id: 'svc', kind: 'systemd', unit: 'dropped.service', enabled: true, state: 'running',
    content: '[Unit]\nDescription=dropped-units test\n[Service]\nExecStart=/bin/sh -c \'exec sleep 600\'\n[Install]\nWantedBy=default.target\n',
  };
  const conf: UnitSpec = { id: 'conf', kind: 'file', path: '/etc/app.conf', content: 'x\n' };
  const show = async (prop: string): Promise<string> => (await sb.exec(`systemctl --user show -p ${prop} --value dropped.service`)).stdout.trim();

  it('v3 has the service, v4 drops it: after the upgrade it is gone; back to v3 it runs again', async () => {
    const state = join(dir, 'state');
    expect((await applyAndRecord(state, bundle('app', '3', [conf, svc]), { context: ctx })).report.ok).to.equal(true);
    expect(await show('ActiveState')).to.equal('active');
    expect(await show('UnitFileState')).to.equal('enabled');

    const up = await applyAndRecord(state, bundle('app', '4', [conf]), { context: ctx });
    expect(up.report.ok, JSON.stringify(up.report.failure)).to.equal(true);
    expect(up.report.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['conf:unchanged', 'svc:removed']);
    expect(up.report.units[1].plan?.summary).to.match(/^remove dropped\.service: state active \([a-z]+\)→inactive \(dead\), enabled enabled→disabled, unit file deleted$/);
    expect(await show('LoadState')).to.equal('not-found');
    expect(existsSync(join(sb.unitDir, 'dropped.service'))).to.equal(false);
    expect(readFileSync(join(dir, 'root/etc/app.conf'), 'utf8')).to.equal('x\n');

    const back = await applyAndRecord(state, bundle('app', '3', [conf, svc]), { context: ctx });
    expect(back.report.ok, JSON.stringify(back.report.failure)).to.equal(true);
    expect(await show('ActiveState')).to.equal('active');
  });
});
