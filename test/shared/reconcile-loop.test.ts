import { expect } from 'chai';
import { createLogger, ManualClock, ReconcileLoop, settle, type LogFields } from '../../shared';

/** A pass the test releases by hand, to hold the loop "in flight". */
class Gate {
  private release?: () => void;
  started = 0;
  wait(): Promise<void> {
    this.started++;
    return new Promise((r) => { this.release = r; });
  }
  open(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }
}

function logCapture(): { logger: ReturnType<typeof createLogger>; warnings: string[] } {
  const warnings: string[] = [];
  const logger = createLogger({ level: 'warn', sink: (line: string, _fields?: LogFields) => { warnings.push(line); } });
  return { logger, warnings };
}

describe('ReconcileLoop (driven by a ManualClock, no sleeps)', () => {
  it('runs a first pass at start, then one per interval', async () => {
    const clock = new ManualClock();
    let passes = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 1000, pass: async () => { passes++; } });
    void loop.start();
    await settle();
    expect(passes).to.equal(1);
    await clock.advance(999);
    expect(passes).to.equal(1);
    await clock.advance(1 + 100); // the tick triggers, then the debounce
    expect(passes).to.equal(2);
    await clock.advance(3000);
    expect(passes).to.equal(5);
    await loop.stop();
    await clock.advance(5000);
    expect(passes).to.equal(5);
    expect(clock.pending()).to.equal(0);
  });

  it('gathers a burst of triggers into one pass after the debounce', async () => {
    const clock = new ManualClock();
    let passes = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 0, debounceMs: 100, pass: async () => { passes++; } });
    void loop.start();
    await settle();
    for (let i = 0; i < 50; i++) loop.trigger();
    expect(loop.state).to.equal('scheduled');
    await clock.advance(99);
    expect(passes).to.equal(1);
    await clock.advance(1);
    expect(passes).to.equal(2);
    expect(loop.state).to.equal('idle');
    await loop.stop();
  });

  it('never drops a trigger that arrives during a pass: exactly one more pass follows', async () => {
    const clock = new ManualClock();
    const gate = new Gate();
    let passes = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 0, pass: async () => { await gate.wait(); passes++; } });
    void loop.start();
    await settle();
    expect(loop.state).to.equal('running');
    loop.trigger();
    loop.trigger();
    loop.trigger();
    gate.open();
    await settle();
    expect(passes).to.equal(1);
    expect(gate.started).to.equal(2); // the rerun started without waiting for a debounce
    gate.open();
    await settle();
    expect(passes).to.equal(2);
    expect(loop.state).to.equal('idle');
    await clock.advance(10_000);
    expect(gate.started).to.equal(2);
    await loop.stop();
  });

  it('runNow() resolves only after a pass that started after the call', async () => {
    const clock = new ManualClock();
    const gate = new Gate();
    const seen: number[] = [];
    let value = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 0, pass: async () => { const v = value; await gate.wait(); seen.push(v); } });
    void loop.start();
    await settle();
    value = 7;
    let done = false;
    const p = loop.runNow().then(() => { done = true; });
    gate.open();
    await settle();
    expect(done).to.equal(false);
    gate.open();
    await p;
    expect(seen).to.deep.equal([0, 7]);
    await loop.stop();
  });

  it('stop() waits for the pass in flight and cancels every timer', async () => {
    const clock = new ManualClock();
    const gate = new Gate();
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 500, pass: () => gate.wait() });
    void loop.start();
    await settle();
    loop.trigger();
    let stopped = false;
    const s = loop.stop().then(() => { stopped = true; });
    await settle();
    expect(stopped).to.equal(false);
    gate.open();
    await s;
    expect(loop.state).to.equal('stopped');
    expect(gate.started).to.equal(1); // the trigger made during the pass died with the stop
    expect(clock.pending()).to.equal(0);
  });

  it('skips passes while when() is false (a follower), and runs them again once true', async () => {
    const clock = new ManualClock();
    let leader = false;
    let passes = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 0, when: () => leader, pass: async () => { passes++; } });
    void loop.start();
    loop.trigger();
    await clock.advance(200);
    expect(passes).to.equal(0);
    leader = true;
    loop.trigger();
    await clock.advance(200);
    expect(passes).to.equal(1);
    await loop.stop();
  });

  it('a failing pass is logged and the next trigger retries', async () => {
    const clock = new ManualClock();
    const { logger, warnings } = logCapture();
    let calls = 0;
    const loop = new ReconcileLoop({
      name: 'flaky', clock, logger, intervalMs: 0,
      pass: async () => { calls++; if (calls === 1) throw new Error('etcd unavailable'); },
    });
    void loop.start();
    await settle();
    expect(warnings.join('\n')).to.match(/flaky pass failed.*etcd unavailable/);
    expect(loop.completedPasses).to.equal(0);
    loop.trigger();
    await clock.advance(100);
    expect(calls).to.equal(2);
    expect(loop.completedPasses).to.equal(1);
    await loop.stop();
  });

  it('runNow() during a pass asks for one more pass also on a loop that was never started', async () => {
    const clock = new ManualClock();
    const gate = new Gate();
    let passes = 0;
    const loop = new ReconcileLoop({ name: 't', clock, logger: logCapture().logger, intervalMs: 0, pass: async () => { await gate.wait(); passes++; } });
    void loop.runNow();
    await settle();
    let done = false;
    const second = loop.runNow().then(() => { done = true; });
    gate.open();
    await settle();
    expect(passes).to.equal(1);
    expect(done).to.equal(false);
    gate.open();
    await second;
    expect(passes).to.equal(2);
  });

  it('a when() that throws is logged like a failed pass; runNow() still resolves', async () => {
    const clock = new ManualClock();
    const { logger, warnings } = logCapture();
    const loop = new ReconcileLoop({ name: 'w', clock, logger, intervalMs: 0, when: () => { throw new Error('no lease'); }, pass: async () => undefined });
    await loop.runNow();
    expect(warnings.join('\n')).to.match(/w pass failed.*no lease/);
  });
});
