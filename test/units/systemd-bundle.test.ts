/**
 * End to end through the executor: one bundle mixing directory + file + command + systemd units
 * (and a systemdActive probe) on a real systemd user manager (test/helpers/systemd-sandbox.ts).
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyAndRecord, reverifyApplied, removeApplied } from '../../agent/applied-record';
import { createUnitContext, type OwnedUnitContext } from '../../agent/unit-context';
import { createLogger } from '../../shared/logger';
import { parseBundle, renderBundle } from '../../shared/bundle';
import { startSystemdSandbox, type SystemdSandbox } from '../helpers/systemd-sandbox';

describe('bundle of file + directory + command + systemd units on a real user manager', function () {
  this.timeout(180_000);
  let sb: SystemdSandbox;
  let dir: string;
  let ctx: OwnedUnitContext;

  before(async () => {
    sb = await startSystemdSandbox('units-e2e');
    dir = mkdtempSync(join(tmpdir(), 'units-e2e-'));
    ctx = createUnitContext({
      root: join(dir, 'root'), logger: createLogger({ level: 'silent' }),
      systemdBus: 'session', systemdUnitDir: sb.unitDir, systemdBusAddress: sb.busAddress,
    });
  });
  after(async () => {
    ctx?.close();
    await sb?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const mainPid = async (): Promise<string> => (await sb.exec('systemctl --user show -p MainPID --value hello.service')).stdout.trim();

  const yaml = (greeting: string): string => `
name: hello
version: 1
variables: { greeting: "${greeting}" }
units:
  - { id: app-dir, kind: directory, path: /opt/hello, mode: "0755" }
  - id: conf
    kind: file
    path: /opt/hello/hello.conf
    content: "{{ vars.greeting }}\\n"
  - { id: init, kind: command, run: 'date > "$NODE_ROOT/opt/hello/.init"', creates: /opt/hello/.init, undo: 'rm -f "$NODE_ROOT/opt/hello/.init"' }
  - id: svc
    kind: systemd
    unit: hello.service
    content: |
      [Unit]
      Description=hello from the units e2e test
      [Service]
      ExecStart=/bin/sh -c 'cat ${join(dir, 'root')}/opt/hello/hello.conf > ${join(dir, 'seen')}; exec sleep 600'
      [Install]
      WantedBy=default.target
    enabled: true
    state: running
    restartWhenChanged: [conf]
verify:
  - { id: svc-active, systemdActive: hello.service }
`;

  it('applies, is a no-op the second time, restarts the service when its config changes, reverifies, removes', async () => {
    const state = join(dir, 'state');
    const first = await applyAndRecord(state, renderBundle(parseBundle(yaml('hi'))), { context: ctx });
    expect(first.report.ok, JSON.stringify(first.report.failure)).to.equal(true);
    expect(first.report.changed).to.deep.equal(['app-dir', 'conf', 'init', 'svc']);
    expect(first.report.probes).to.deep.equal([{ ...first.report.probes[0], ok: true }]);
    expect((await sb.exec('systemctl --user is-active hello.service')).stdout.trim()).to.equal('active');
    expect(readFileSync(join(dir, 'seen'), 'utf8')).to.equal('hi\n');
    const pid1 = await mainPid();

    const second = await applyAndRecord(state, renderBundle(parseBundle(yaml('hi'))), { context: ctx });
    expect(second.report.changed).to.deep.equal([]);
    expect(await mainPid(), 'no restart without a change').to.equal(pid1);

    const third = await applyAndRecord(state, renderBundle(parseBundle(yaml('hello again'))), { context: ctx });
    expect(third.report.changed).to.deep.equal(['conf', 'svc']);
    expect(await mainPid(), 'restarted because conf changed').to.not.equal(pid1);
    expect(readFileSync(join(dir, 'seen'), 'utf8')).to.equal('hello again\n');

    // Drift behind the agent's back: the service stopped, the config edited.
    await sb.exec('systemctl --user stop hello.service');
    writeFileSync(join(dir, 'root/opt/hello/hello.conf'), 'edited\n');
    const drift = await reverifyApplied(state, ctx);
    expect(drift?.drifted).to.equal(true);
    expect(drift?.units.map((u) => u.unitId)).to.deep.equal(['conf', 'svc']);
    expect(drift?.failedProbes.map((p) => p.id)).to.deep.equal(['svc-active']);

    const removed = await removeApplied(state, ctx);
    expect(removed?.ok, JSON.stringify(removed?.failure)).to.equal(true);
    expect(removed?.units.map((u) => u.unitId)).to.deep.equal(['svc', 'init', 'conf', 'app-dir']);
    const show = await sb.exec('systemctl --user show -p LoadState --value hello.service');
    expect(show.stdout.trim()).to.equal('not-found');
  });
});
