/** The coordinator's event-loop delay log (coordinator/loop-delay.ts): a block is reported with its length; a quiet window is not. */
import { expect } from 'chai';
import { LoopDelayLog } from '../../coordinator/loop-delay';
import { createLogger } from '../../shared';
import { waitFor } from '../helpers';

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spinning on purpose: the block to be reported
  }
}

describe('event loop delay log', () => {
  it('logs a window with a 400 ms block (max ≥ 350 ms), and nothing for windows without one', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = new LoopDelayLog({
      logger: createLogger({ level: 'info', sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }),
      windowMs: 1000, thresholdMs: 100_000,
    });
    log.start();
    try {
      // A threshold no block reaches: windows pass, nothing is logged.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(lines).to.deep.equal([]);
    } finally {
      log.stop();
    }

    const reporting = new LoopDelayLog({
      logger: createLogger({ level: 'info', sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }),
      windowMs: 1000, thresholdMs: 300,
    });
    reporting.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      busyWait(400);
      await waitFor('the window with the block logged', () => lines.length > 0, { timeoutMs: 10_000 });
      expect(lines[0]).to.include({ msg: 'event loop delay', windowMs: 1000 });
      expect(lines[0].maxMs).to.be.a('number').and.at.least(350);
    } finally {
      reporting.stop();
    }
  });
});
