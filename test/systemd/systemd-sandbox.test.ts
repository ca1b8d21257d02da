/**
 * The sandbox helper itself: a test that dies without cleaning up must not leave a user
 * manager, its services, its cgroups or its temp dir behind (the in-namespace watchdog).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers';

function processesInNamespace(ns: string): number {
  let n = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/mnt`) === ns) n++;
    } catch {
      // Exited meanwhile.
    }
  }
  return n;
}

describe('systemd sandbox helper', function () {
  this.timeout(90_000);

  it('cleans up from inside when the test process is SIGKILLed', async () => {
    // A separate node process owns the sandbox; it prints what it made, then we kill it.
    const script = `
      const { startSystemdSandbox } = require(${JSON.stringify(join(__dirname, '..', 'helpers'))});
      const { writeFileSync } = require('node:fs');
      (async () => {
        const sb = await startSystemdSandbox('orphan');
        writeFileSync(sb.unitDir + '/sleeper.service', '[Service]\\nExecStart=/bin/sleep infinity\\n');
        const r = await sb.exec('systemctl --user daemon-reload && systemctl --user start sleeper.service && readlink /proc/self/ns/mnt');
        process.stdout.write(JSON.stringify({ dir: sb.dir, ns: r.stdout.trim(), pid: sb.managerPid }) + '\\n');
        setInterval(() => undefined, 1000);
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const info = await waitFor('the child to start its sandbox', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { dir: string; ns: string; pid: number }) : undefined;
    }, { timeoutMs: 45_000 });
    expect(info.ns).to.match(/^mnt:\[\d+\]$/);
    expect(info.ns).to.not.equal(readlinkSync('/proc/self/ns/mnt'));
    expect(processesInNamespace(info.ns)).to.be.greaterThan(1);
    const cgroup = readdirSync('/sys/fs/cgroup/systemd').find((d) => d === `cm-sandbox-${info.dir.split('/').pop() ?? ''}`);
    child.kill('SIGKILL');
    await waitFor('the watchdog to empty the namespace', () => processesInNamespace(info.ns) === 0, { timeoutMs: 20_000 });
    await waitFor('the watchdog to remove the temp dir', () => !existsSync(info.dir), { timeoutMs: 10_000 });
    if (cgroup) await waitFor('the watchdog to remove the cgroup', () => !existsSync(join('/sys/fs/cgroup/systemd', cgroup)), { timeoutMs: 10_000 });
  });
});
