/**
 * The systemd unit kind end to end against a real user manager: create → no-op → update
 * (restart because of its own file and because of restartWhenChanged) → verify → drift → remove,
 * and a unit that fails to start. Cross-checked with `systemctl --user` inside the sandbox.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, isLogLevel, NotFoundError } from '../../shared';
import type { SystemdUnitSpec } from '../../shared/bundle/types';
import { createSystemdManager } from '../../agent/systemd';
import { createSystemdUnitHandler, describeState, SystemdUnitFailedError } from '../../agent/units/systemd-unit';
import type { SystemdManager } from '../../agent/systemd/manager';
import type { UnitContext } from '../../agent/units/unit';
import { expectReject, startSystemdSandbox, type SystemdSandbox } from '../helpers';

const level = process.env.TEST_LOG_LEVEL ?? 'silent';
const logger = createLogger({ level: isLogLevel(level) ? level : 'silent' });

function serviceFile(greeting: string): string {
  return `[Unit]\nDescription=hello (${greeting})\n[Service]\nExecStart=/bin/sleep infinity\nEnvironment=GREETING=${greeting}\n[Install]\nWantedBy=default.target\n`;
}

describe('systemd unit (real user manager)', function () {
  this.timeout(120_000);
  let sb: SystemdSandbox;
  let manager: SystemdManager;
  const handler = createSystemdUnitHandler({ settleMs: 700 });

  const ctx = (changed: string[] = []): UnitContext => ({
    root: '/',
    logger,
    signal: new AbortController().signal,
    changedUnits: new Set(changed),
    env: process.env,
    systemd: async () => manager,
    packages: async () => {
      throw new Error('no packages in this test');
    },
  });

  const show = async (unit: string, prop: string): Promise<string> => {
    const r = await sb.exec(`systemctl --user show -p ${prop} --value ${unit}`);
    if (r.code !== 0) throw new Error(`systemctl --user show failed: ${r.stderr}`);
    return r.stdout.trim();
  };

  before(async () => {
    sb = await startSystemdSandbox('units');
    manager = createSystemdManager({ bus: 'session', busAddress: sb.busAddress, unitDir: sb.unitDir, logger });
  });

  after(async () => {
    manager?.close();
    await sb?.stop();
  });

  describe('lifecycle of hello.service', () => {
    const spec: SystemdUnitSpec = {
      id: 'hello', kind: 'systemd', unit: 'hello.service', content: serviceFile('one'),
      enabled: true, state: 'running', restartWhenChanged: ['hello-conf'],
    };
    let firstPid = '';

    it('plans a create before anything exists, and changes nothing while planning', async () => {
      const plan = await handler.plan(spec, ctx());
      expect(plan.action).to.equal('create');
      expect(plan.changes.map((c) => c.field)).to.deep.equal(['content', 'enabled', 'state']);
      expect(plan.changes.find((c) => c.field === 'state')).to.deep.include({ before: 'not-found', after: 'active (running)' });
      expect(plan.summary).to.equal('create hello.service: unit file written, enabled none→enabled, state not-found→active (running)');
      expect(existsSync(join(sb.unitDir, 'hello.service'))).to.equal(false);
    });

    it('creates: unit file written, enabled, running (cross-checked with systemctl --user)', async () => {
      const done = await handler.apply(spec, ctx());
      expect(done.action).to.equal('create');
      expect(readFileSync(join(sb.unitDir, 'hello.service'), 'utf8')).to.equal(spec.content);
      expect(await show('hello.service', 'ActiveState')).to.equal('active');
      expect(await show('hello.service', 'SubState')).to.equal('running');
      expect(await show('hello.service', 'UnitFileState')).to.equal('enabled');
      expect((await sb.exec('systemctl --user is-enabled hello.service')).stdout.trim()).to.equal('enabled');
      firstPid = await show('hello.service', 'MainPID');
      expect(Number(firstPid)).to.be.greaterThan(0);
    });

    it('is a no-op the second time: plan says unchanged, nothing restarted (same MainPID)', async () => {
      const plan = await handler.plan(spec, ctx());
      expect(plan).to.deep.include({ action: 'unchanged', changes: [] });
      expect(plan.summary).to.equal('hello.service: unchanged, active (running)');
      const again = await handler.apply(spec, ctx(['some-other-unit']));
      expect(again.action).to.equal('unchanged');
      expect(await show('hello.service', 'MainPID')).to.equal(firstPid);
    });

    it('restarts when a unit in restartWhenChanged changed earlier in the run', async () => {
      const plan = await handler.plan(spec, ctx(['hello-conf']));
      expect(plan.action).to.equal('update');
      expect(plan.summary).to.equal('update hello.service: restart (hello-conf changed)');
      const done = await handler.apply(spec, ctx(['hello-conf']));
      expect(done.action).to.equal('update');
      const pid = await show('hello.service', 'MainPID');
      expect(pid).to.not.equal(firstPid);
      firstPid = pid;
    });

    it('updates: a content change rewrites the file, reloads and restarts the running unit', async () => {
      const changed = { ...spec, content: serviceFile('two') };
      const plan = await handler.plan(changed, ctx());
      expect(plan.action).to.equal('update');
      expect(plan.changes.map((c) => c.field)).to.deep.equal(['content', 'restart']);
      expect(plan.summary).to.equal('update hello.service: unit file changed, restart (its unit file changed)');
      await handler.apply(changed, ctx());
      expect(readFileSync(join(sb.unitDir, 'hello.service'), 'utf8')).to.equal(changed.content);
      // systemd runs the new definition: reloaded (no NeedDaemonReload) and restarted.
      expect(await show('hello.service', 'Environment')).to.equal('GREETING=two');
      expect(await show('hello.service', 'NeedDaemonReload')).to.equal('no');
      const pid = await show('hello.service', 'MainPID');
      expect(pid).to.not.equal(firstPid);
      expect((await handler.verify(changed, ctx())).action).to.equal('unchanged');
      firstPid = pid;
      Object.assign(spec, changed);
    });

    it('verify reports drift when the unit is stopped and disabled behind the agent', async () => {
      expect((await handler.verify(spec, ctx())).action).to.equal('unchanged');
      const r = await sb.exec('systemctl --user stop hello.service && systemctl --user disable hello.service');
      expect(r.code, r.stderr).to.equal(0);
      const drift = await handler.verify(spec, ctx());
      expect(drift.action).to.equal('update');
      expect(drift.summary).to.match(/^drift hello\.service: /);
      expect(drift.changes).to.deep.include({ field: 'state', before: 'inactive (dead)', after: 'active (running)' });
      expect(drift.changes).to.deep.include({ field: 'enabled', before: 'disabled', after: 'enabled' });
      // Repair converges again.
      await handler.apply(spec, ctx());
      expect(await show('hello.service', 'ActiveState')).to.equal('active');
      expect((await handler.verify(spec, ctx())).action).to.equal('unchanged');
    });

    it('removes: stopped, disabled, unit file deleted, manager reloaded; a second remove does nothing', async () => {
      const removed = await handler.remove(spec, ctx());
      expect(removed.action).to.equal('remove');
      expect(removed.changes.map((c) => c.field)).to.deep.equal(['state', 'enabled', 'content']);
      expect(existsSync(join(sb.unitDir, 'hello.service'))).to.equal(false);
      expect(await show('hello.service', 'LoadState')).to.equal('not-found');
      expect(await show('hello.service', 'ActiveState')).to.equal('inactive');
      expect((await handler.remove(spec, ctx())).action).to.equal('unchanged');
    });
  });

  it('a unit whose ExecStart fails is reported as failed with its state, not as success', async () => {
    const spec: SystemdUnitSpec = {
      id: 'broken', kind: 'systemd', unit: 'broken.service', state: 'running',
      content: '[Service]\nExecStart=/bin/false\n',
    };
    const err = await expectReject(handler.apply(spec, ctx()), /^systemd unit broken\.service failed to start: failed \(exit-code\)/);
    expect(err).to.be.instanceOf(SystemdUnitFailedError);
    const status = (err as SystemdUnitFailedError).status;
    expect(status).to.include({ activeState: 'failed', result: 'exit-code' });
    expect(describeState(status)).to.equal('failed (exit-code)');
    expect(await show('broken.service', 'ActiveState')).to.equal('failed');
    // Verify sees the failure as drift, with the state systemd reports.
    const drift = await handler.verify(spec, ctx());
    expect(drift.changes).to.deep.include({ field: 'state', before: 'failed (exit-code)', after: 'active (running)' });
    await handler.remove(spec, ctx());
  });

  it('a oneshot whose ExecStart fails is reported with the job result', async () => {
    const spec: SystemdUnitSpec = {
      id: 'broken-oneshot', kind: 'systemd', unit: 'broken-oneshot.service', state: 'running',
      content: '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/false\n',
    };
    const err = await expectReject(handler.apply(spec, ctx()), /failed to start: failed \(exit-code\) \(job failed\)$/);
    expect((err as SystemdUnitFailedError).jobResult).to.equal('failed');
    await handler.remove(spec, ctx());
  });

  it('bad input: an unknown unit without content gives a clear error and changes nothing', async () => {
    const spec: SystemdUnitSpec = { id: 'ghost', kind: 'systemd', unit: 'ghost.service', state: 'running', enabled: true };
    const plan = await handler.plan(spec, ctx());
    expect(plan.changes[0]).to.deep.equal({ field: 'unit', before: 'not-found', after: 'loaded' });
    const err = await expectReject(handler.apply(spec, ctx()), /^systemd unit ghost\.service not found/);
    expect(err).to.be.instanceOf(NotFoundError);
    expect(existsSync(join(sb.unitDir, 'ghost.service'))).to.equal(false);
    await expectReject(handler.plan({ ...spec, unit: '../../etc/evil.service' }, ctx()), /invalid systemd unit name/);
    await expectReject(handler.plan({ ...spec, unit: 'nosuffix' }, ctx()), /invalid systemd unit name "nosuffix"/);
  });

  it('state stopped: stops a running unit and leaves a stopped one alone', async () => {
    const spec: SystemdUnitSpec = { id: 'quiet', kind: 'systemd', unit: 'quiet.service', content: serviceFile('q'), state: 'running' };
    await handler.apply(spec, ctx());
    const stopped: SystemdUnitSpec = { ...spec, state: 'stopped' };
    const plan = await handler.apply(stopped, ctx());
    expect(plan.changes).to.deep.equal([{ field: 'state', before: 'active (running)', after: 'inactive (dead)' }]);
    expect(await show('quiet.service', 'ActiveState')).to.equal('inactive');
    // Changed content of a stopped unit: file rewritten, no start.
    const edited = await handler.apply({ ...stopped, content: serviceFile('q2') }, ctx(['x']));
    expect(edited.changes.map((c) => c.field)).to.deep.equal(['content']);
    expect(await show('quiet.service', 'ActiveState')).to.equal('inactive');
    await handler.remove(stopped, ctx());
  });
});
