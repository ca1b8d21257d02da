/**
 * SystemdManager against real systemd user managers (TESTBED.md), reached over D-Bus from
 * outside their mount namespaces.
 */
import { expect } from 'chai';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CancelledError, InvalidArgumentError, NotFoundError, createLogger, isLogLevel } from '../../shared';
import { createSystemdManager } from '../../agent/systemd';
import type { SystemdManager } from '../../agent/systemd/manager';
import { expectReject, startSystemdSandbox, waitFor, type SystemdSandbox } from '../helpers';

const level = process.env.TEST_LOG_LEVEL ?? 'silent';
const logger = createLogger({ level: isLogLevel(level) ? level : 'silent' });
const SLEEPER = '[Unit]\nDescription=sleeps\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=default.target\n';

async function show(sb: SystemdSandbox, unit: string, prop: string): Promise<string> {
  const r = await sb.exec(`systemctl --user show -p ${prop} --value ${unit}`);
  if (r.code !== 0) throw new Error(`systemctl show failed: ${r.stderr}`);
  return r.stdout.trim();
}

describe('systemd manager over D-Bus (real user managers)', function () {
  this.timeout(120_000);
  const sandboxes: SystemdSandbox[] = [];
  const managers: SystemdManager[] = [];
  let a: SystemdSandbox;
  let b: SystemdSandbox;
  let ma: SystemdManager;
  let mb: SystemdManager;

  before(async () => {
    // Two at once: the sandbox must be safe to start in parallel.
    [a, b] = await Promise.all([startSystemdSandbox('mgr-a'), startSystemdSandbox('mgr-b')]);
    sandboxes.push(a, b);
    ma = createSystemdManager({ bus: 'session', busAddress: a.busAddress, unitDir: a.unitDir, logger: logger.child({ node: 'a' }) });
    mb = createSystemdManager({ bus: 'session', busAddress: b.busAddress, unitDir: b.unitDir, logger: logger.child({ node: 'b' }) });
    managers.push(ma, mb);
  });

  after(async () => {
    for (const m of managers) m.close();
    await Promise.all(sandboxes.map((s) => s.stop()));
  });

  it('reaches the bus socket by path from outside the mount namespace', () => {
    const path = a.busAddress.replace(/^unix:path=/, '');
    expect(path.startsWith(a.runtimeDir)).to.equal(true);
    expect(statSync(path).isSocket()).to.equal(true);
    expect(a.busAddress).to.not.equal(b.busAddress);
  });

  it('reports an unknown unit as not-found, and refuses to start it with a clear error', async () => {
    const s = await ma.status('no-such-thing.service');
    expect(s).to.include({ name: 'no-such-thing.service', loadState: 'not-found', activeState: 'inactive', result: '' });
    const err = await expectReject(ma.start('no-such-thing.service'), /^systemd unit no-such-thing\.service not found$/);
    expect(err).to.be.instanceOf(NotFoundError);
    await expectReject(ma.enable('no-such-thing.service'), /systemd unit no-such-thing\.service not found/);
  });

  it('refuses an invalid unit name before it reaches systemd', async () => {
    const err = await expectReject(ma.status('../etc/passwd'), /invalid systemd unit name/);
    expect(err).to.be.instanceOf(InvalidArgumentError);
    await expectReject(ma.start('-rf.service'), /invalid systemd unit name/);
  });

  it('starts, enables, restarts, stops and disables; each manager sees only its own node', async () => {
    writeFileSync(join(a.unitDir, 'sleeper.service'), SLEEPER);
    await ma.reload();
    expect(await ma.start('sleeper.service')).to.equal('done');
    await ma.enable('sleeper.service');
    const s = await ma.status('sleeper.service');
    expect(s).to.deep.equal({ name: 'sleeper.service', loadState: 'loaded', activeState: 'active', subState: 'running', unitFileState: 'enabled', result: 'success' });
    expect(await show(a, 'sleeper.service', 'ActiveState')).to.equal('active');
    expect(await show(a, 'sleeper.service', 'UnitFileState')).to.equal('enabled');
    // Node b has no such unit.
    expect((await mb.status('sleeper.service')).loadState).to.equal('not-found');

    const pid1 = await show(a, 'sleeper.service', 'MainPID');
    expect(await ma.restart('sleeper.service')).to.equal('done');
    const pid2 = await show(a, 'sleeper.service', 'MainPID');
    expect(pid2).to.not.equal(pid1);
    expect(Number(pid2)).to.be.greaterThan(0);

    expect(await ma.stop('sleeper.service')).to.equal('done');
    await ma.disable('sleeper.service');
    expect(await ma.status('sleeper.service')).to.include({ activeState: 'inactive', unitFileState: 'disabled' });
    expect(await show(a, 'sleeper.service', 'UnitFileState')).to.equal('disabled');
  });

  it('keeps sandboxes apart: stopping a unit on one node leaves the same-named unit on another running', async () => {
    for (const [sb, m] of [[a, ma], [b, mb]] as const) {
      writeFileSync(join(sb.unitDir, 'twin.service'), SLEEPER);
      await m.reload();
      expect(await m.start('twin.service')).to.equal('done');
    }
    const pidB = await show(b, 'twin.service', 'MainPID');
    expect(await ma.stop('twin.service')).to.equal('done');
    expect((await mb.status('twin.service')).activeState).to.equal('active');
    expect(await show(b, 'twin.service', 'MainPID')).to.equal(pidB);
    expect(await mb.stop('twin.service')).to.equal('done');
  });

  it('returns the job result of a failing start ("failed"), not success', async () => {
    writeFileSync(join(a.unitDir, 'oneshot-false.service'), '[Service]\nType=oneshot\nExecStart=/bin/false\n');
    await ma.reload();
    expect(await ma.start('oneshot-false.service')).to.equal('failed');
    expect(await ma.status('oneshot-false.service')).to.include({ activeState: 'failed', result: 'exit-code' });
  });

  it('stops waiting when the signal aborts, and cancels the job', async () => {
    // A oneshot start job lasts as long as its ExecStart runs.
    writeFileSync(join(a.unitDir, 'slow.service'), '[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n');
    await ma.reload();
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 500);
    const err = await expectReject(ma.start('slow.service', ac.signal), /cancelled while waiting for systemd to start slow\.service/);
    expect(err).to.be.instanceOf(CancelledError);
    expect(Date.now() - started).to.be.lessThan(10_000);
    // The job is cancelled and the half-started unit stopped: nothing left activating.
    // (A oneshot stopped mid-start ends "failed (signal)", which is as stopped as it gets.)
    await waitFor('slow.service to be stopped after the cancel', async () => ['inactive', 'failed'].includes((await ma.status('slow.service')).activeState));
    expect(await show(a, 'slow.service', 'MainPID')).to.equal('0');
    expect((await a.exec('systemctl --user list-jobs --no-legend')).stdout.trim()).to.equal('');
  });

  it('reconnects after the bus daemon dies (SIGKILL)', async () => {
    expect((await ma.status('default.target')).activeState).to.equal('active');
    // Only this sandbox's bus daemon: the PID namespace is the host's, so never kill by name.
    const pid = Number(await show(a, 'dbus.service', 'MainPID'));
    expect(pid).to.be.greaterThan(1);
    process.kill(pid, 'SIGKILL');
    // The first call may still hit the dying connection; the manager must recover on its own.
    await waitFor('status after the bus restarted', async () => (await ma.status('default.target')).activeState === 'active', { timeoutMs: 20_000 });
    writeFileSync(join(a.unitDir, 'after-reconnect.service'), SLEEPER);
    await ma.reload();
    expect(await ma.start('after-reconnect.service')).to.equal('done');
    expect(await show(a, 'after-reconnect.service', 'ActiveState')).to.equal('active');
  });
});
