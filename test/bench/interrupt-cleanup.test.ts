import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, ManagedProcess } from '../helpers/processes';
import { waitFor } from '../helpers/wait';

/**
 * A benchmark stopped by a signal, or one that exits without stopping what it started, leaves no
 * process behind (test/helpers/children.ts). The program under test is a small bench-like main:
 * it starts a long `sleep` through ManagedProcess, as the benchmarks start etcd and coordinators.
 */
async function startBenchLike(mode: 'signals' | 'exit-without-stop'): Promise<{ bench: ManagedProcess; sleeperPid: number }> {
  const helpers = JSON.stringify(join(DIST, 'test', 'helpers'));
  const script = `
    const { ManagedProcess } = require(${helpers} + '/processes');
    const { exitOnSignals } = require(${helpers} + '/children');
    ${mode === 'signals' ? 'exitOnSignals();' : ''}
    const sleeper = new ManagedProcess('sleeper', 'sleep', ['300']);
    process.stdout.write('PID ' + sleeper.pid + '\\n');
    ${mode === 'exit-without-stop' ? 'setTimeout(() => process.exit(0), 200);' : 'setInterval(() => {}, 1000);'}
  `;
  const bench = new ManagedProcess(`bench-like (${mode})`, process.execPath, ['-e', script]);
  await bench.waitForLog(/PID \d+\n/);
  const sleeperPid = Number(/PID (\d+)/.exec(bench.logs)?.[1]);
  expect(sleeperPid, 'the sleeper\'s pid').to.be.greaterThan(0);
  return { bench, sleeperPid };
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

describe('benchmarks leave no process behind (test/helpers/children.ts)', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} to a benchmark: it exits ${code} and the process it started is gone`, async () => {
      const { bench, sleeperPid: pid } = await startBenchLike('signals');
      try {
        expect(alive(pid)).to.equal(true);
        bench.proc.kill(signal);
        expect(await bench.exited).to.deep.equal({ code, signal: null });
        await waitFor('the sleeper to be killed', () => !alive(pid), { timeoutMs: 5000, intervalMs: 50 });
      } finally {
        if (alive(pid)) process.kill(pid, 'SIGKILL');
        await bench.kill();
      }
    });
  }

  it('a benchmark that exits without stopping its children: the exit hook kills them', async () => {
    const { bench, sleeperPid: pid } = await startBenchLike('exit-without-stop');
    try {
      expect(await bench.exited).to.deep.equal({ code: 0, signal: null });
      await waitFor('the sleeper to be killed', () => !alive(pid), { timeoutMs: 5000, intervalMs: 50 });
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
