import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST } from '../helpers/processes';
import { waitFor } from '../helpers/wait';

/**
 * A benchmark stopped by a signal, or one that exits without stopping what it started, leaves no
 * process behind (test/helpers/children.ts). The program under test is a small bench-like main:
 * it starts a long `sleep` through ManagedProcess, as the benchmarks start etcd and coordinators.
 */
function runBenchLike(mode: 'signals' | 'exit-without-stop'): { proc: ReturnType<typeof spawn>; sleeperPid: Promise<number> } {
  const helpers = JSON.stringify(join(DIST, 'test', 'helpers'));
  const script = `
    const { ManagedProcess } = require(${helpers} + '/processes');
    const { exitOnSignals } = require(${helpers} + '/children');
    ${mode === 'signals' ? 'exitOnSignals();' : ''}
    const sleeper = new ManagedProcess('sleeper', 'sleep', ['300']);
    process.stdout.write('PID ' + sleeper.pid + '\\n');
    ${mode === 'exit-without-stop' ? 'setTimeout(() => process.exit(0), 200);' : 'setInterval(() => {}, 1000);'}
  `;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sleeperPid = new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PID (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', () => reject(new Error(`exited before starting its child: ${out}`)));
  });
  return { proc, sleeperPid };
}

/** Running and not a zombie (a killed orphan may wait a moment to be reaped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function exitOf(proc: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve({ code: proc.exitCode, signal: proc.signalCode });
    else proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

describe('benchmarks leave no process behind (test/helpers/children.ts)', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} to a benchmark: it exits ${code} and the process it started is gone`, async () => {
      const { proc, sleeperPid } = runBenchLike('signals');
      const pid = await sleeperPid;
      try {
        expect(alive(pid)).to.equal(true);
        proc.kill(signal);
        expect(await exitOf(proc)).to.deep.equal({ code, signal: null });
        await waitFor('the sleeper to be killed', () => !alive(pid), { timeoutMs: 5000, intervalMs: 50 });
      } finally {
        if (alive(pid)) process.kill(pid, 'SIGKILL');
        proc.kill('SIGKILL');
      }
    });
  }

  it('a benchmark that exits without stopping its children: the exit hook kills them', async () => {
    const { proc, sleeperPid } = runBenchLike('exit-without-stop');
    const pid = await sleeperPid;
    try {
      expect(await exitOf(proc)).to.deep.equal({ code: 0, signal: null });
      await waitFor('the sleeper to be killed', () => !alive(pid), { timeoutMs: 5000, intervalMs: 50 });
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
