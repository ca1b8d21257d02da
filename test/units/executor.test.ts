import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBundle, type UnitProgress } from '../../agent/units/executor';
import { createHandlerRegistry } from '../../agent/units/handlers';
import type { UnitHandler } from '../../agent/units/unit';
import type { Bundle, UnitSpec } from '../../shared/bundle/types';
import { waitFor } from '../helpers';
import { snapshot } from './fs-snapshot';
import { isAlive } from './proc-alive';
import { tempNode, type TempNode } from './unit-test-context';

const bundle = (units: UnitSpec[]): Bundle => ({ name: 'b', version: '1', variables: {}, units, verify: [] });

const UNITS: UnitSpec[] = [
  { id: 'dir', kind: 'directory', path: '/opt/app', mode: '0755' },
  { id: 'conf', kind: 'file', path: '/opt/app/app.conf', content: 'x=1\n' },
  { id: 'init', kind: 'command', run: 'echo ok > "$NODE_ROOT/opt/app/done"', creates: '/opt/app/done', undo: 'rm -f "$NODE_ROOT/opt/app/done"' },
];

describe('executor (ordered units on a real node root)', () => {
  let node: TempNode;
  beforeEach(() => { node = tempNode('executor'); });
  afterEach(() => node.cleanup());

  const opts = (extra: Partial<Parameters<typeof runBundle>[2]> = {}): Parameters<typeof runBundle>[2] => ({ handlers: createHandlerRegistry(), context: node.base, ...extra });

  it('plan changes nothing; apply runs in order with progress; the second apply changes nothing and says so', async () => {
    const before = snapshot(node.root);
    const plan = await runBundle(bundle(UNITS), 'plan', opts());
    expect(plan.changed).to.deep.equal(['dir', 'conf', 'init']);
    expect(snapshot(node.root)).to.deep.equal(before);

    const events: string[] = [];
    const first = await runBundle(bundle(UNITS), 'apply', opts({ onProgress: (p: UnitProgress) => events.push(`${p.index}/${p.total} ${p.unitId} ${p.state}`) }));
    expect(first.ok).to.equal(true);
    expect(first.changed).to.deep.equal(['dir', 'conf', 'init']);
    expect(events).to.deep.equal(['0/3 dir running', '0/3 dir changed', '1/3 conf running', '1/3 conf changed', '2/3 init running', '2/3 init changed']);

    const second = await runBundle(bundle(UNITS), 'apply', opts());
    expect(second.ok).to.equal(true);
    expect(second.changed).to.deep.equal([]);
    expect(second.units.map((u) => u.state)).to.deep.equal(['unchanged', 'unchanged', 'unchanged']);

    const verify = await runBundle(bundle(UNITS), 'verify', opts());
    expect(verify.ok).to.equal(true);
  });

  it('a failure stops the run and says which unit, why, and what had already changed', async () => {
    const units: UnitSpec[] = [...UNITS.slice(0, 2), { id: 'bad', kind: 'command', run: 'echo boom >&2; exit 7' }, UNITS[2]];
    const r = await runBundle(bundle(units), 'apply', opts());
    expect(r.ok).to.equal(false);
    expect(r.failure).to.deep.equal({ unitId: 'bad', reason: 'command unit bad: "echo boom >&2; exit 7" exited with status 7: boom', alreadyChanged: ['dir', 'conf'] });
    expect(r.units.map((u) => `${u.unitId}:${u.state}`)).to.deep.equal(['dir:changed', 'conf:changed', 'bad:failed', 'init:skipped']);
    expect(r.units[2].output?.text).to.equal('boom\n');
    expect(existsSync(join(node.root, 'opt/app/done')), 'units after the failure did not run').to.equal(false);
  });

  it('verify reports every drifted unit, not only the first', async () => {
    await runBundle(bundle(UNITS), 'apply', opts());
    writeFileSync(join(node.root, 'opt/app/app.conf'), 'x=2\n');
    const { rmSync } = await import('node:fs');
    rmSync(join(node.root, 'opt/app/done'));
    const r = await runBundle(bundle(UNITS), 'verify', opts());
    expect(r.ok).to.equal(false);
    expect(r.changed).to.deep.equal(['conf', 'init']);
    expect(r.units[1].plan?.summary).to.equal('update /opt/app/app.conf: content 1→1 lines (+1 -1)');
  });

  it('remove undoes in reverse order', async () => {
    await runBundle(bundle(UNITS), 'apply', opts());
    const order: string[] = [];
    const r = await runBundle(bundle(UNITS), 'remove', opts({ onProgress: (p: UnitProgress) => { if (p.state !== 'running') order.push(`${p.unitId}:${p.state}`); } }));
    expect(r.ok).to.equal(true);
    // The directory is empty (and removable) only because its file and marker went first.
    expect(order).to.deep.equal(['init:removed', 'conf:removed', 'dir:removed']);
    expect(existsSync(join(node.root, 'opt/app'))).to.equal(false);
  });

  it('cancel via AbortSignal stops the running unit (its process is killed) and skips the rest', async () => {
    mkdirSync(join(node.root, 'run'));
    const units: UnitSpec[] = [
      UNITS[0],
      { id: 'slow', kind: 'command', run: 'echo $$ > "$NODE_ROOT/run/pid"; exec sleep 60' },
      UNITS[1],
    ];
    const controller = new AbortController();
    const pending = runBundle(bundle(units), 'apply', opts({ signal: controller.signal }));
    const pidFile = join(node.root, 'run/pid');
    await waitFor('the slow command to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(pid)).to.equal(true);
    controller.abort();
    const r = await pending;
    expect(r.cancelled).to.equal(true);
    expect(r.failure?.unitId).to.equal('slow');
    expect(r.failure?.reason).to.equal('unit slow stopped: run cancelled');
    expect(r.failure?.alreadyChanged).to.deep.equal(['dir']);
    expect(r.units.map((u) => u.state)).to.deep.equal(['changed', 'failed', 'skipped']);
    await waitFor('the cancelled command to be gone', () => !isAlive(pid), { timeoutMs: 5000 });
  });

  it('a handler that ignores its signal is given up on after the grace; changedUnits feeds later units', async () => {
    const seen: string[][] = [];
    const stubborn: UnitHandler = {
      kind: 'systemd',
      plan: async () => { throw new Error('unused'); },
      verify: async () => { throw new Error('unused'); },
      remove: async () => { throw new Error('unused'); },
      apply: async (spec, ctx) => {
        seen.push([...ctx.changedUnits]);
        if (spec.id === 'hang') await new Promise(() => undefined);
        return { unitId: spec.id, kind: 'systemd', action: 'unchanged', changes: [], summary: 'ok' };
      },
    };
    const units: UnitSpec[] = [
      UNITS[0],
      { id: 'svc', kind: 'systemd', unit: 'a.service', restartWhenChanged: ['dir'] },
      { id: 'hang', kind: 'systemd', unit: 'b.service', timeoutMs: 200 },
    ];
    const started = Date.now();
    const r = await runBundle(bundle(units), 'apply', opts({ handlers: createHandlerRegistry([stubborn]), stopGraceMs: 300 }));
    expect(seen[0]).to.deep.equal(['dir']);
    expect(r.failure?.reason).to.equal('unit hang timed out after 200ms');
    expect(Date.now() - started).to.be.below(3000);
  });

  it('a command with no guard runs once per rendered spec when given the applied digests', async () => {
    const once: UnitSpec = { id: 'once', kind: 'command', run: 'echo run >> "$NODE_ROOT/log"' };
    const first = await runBundle(bundle([once]), 'apply', opts());
    const digests = new Map(first.units.map((u) => [u.unitId, u.digest]));
    const second = await runBundle(bundle([once]), 'apply', opts({ previousDigests: digests }));
    expect(second.units[0].state).to.equal('unchanged');
    const changedSpec: UnitSpec = { ...once, run: 'echo run2 >> "$NODE_ROOT/log"' };
    await runBundle(bundle([changedSpec]), 'apply', opts({ previousDigests: digests }));
    expect(readFileSync(join(node.root, 'log'), 'utf8')).to.equal('run\nrun2\n');
  });
});
