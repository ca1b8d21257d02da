/**
 * shared/backoff.ts with an injected random: the delay of attempt n lies in
 * [0.1, 1] × min(max, initial × factor^n), grows, caps at max, and reset() starts over.
 */
import { expect } from 'chai';
import { Backoff, sleep } from '../../shared/backoff';

describe('shared/backoff', () => {
  describe('bounds per attempt (random pinned low / mid / high)', () => {
    // [initial, max, factor, random, expected delays for attempts 0..5]
    const rows: [number, number, number | undefined, number, number[]][] = [
      [100, 2000, undefined, 0, [10, 20, 40, 80, 160, 200]],
      [100, 2000, undefined, 0.999999, [100, 200, 400, 800, 1600, 2000]],
      [100, 2000, undefined, 0.5, [55, 110, 220, 440, 880, 1100]],
      [250, 1000, 3, 0, [25, 75, 100, 100, 100, 100]],
      [250, 1000, 3, 0.999999, [250, 750, 1000, 1000, 1000, 1000]],
      [1000, 1000, 2, 0.5, [550, 550, 550, 550, 550, 550]],
    ];
    for (const [initialMs, maxMs, factor, r, want] of rows) {
      it(`initial ${initialMs} max ${maxMs} factor ${factor ?? 2} random ${r}`, () => {
        const b = new Backoff({ initialMs, maxMs, factor, random: () => r });
        expect(want.map(() => b.next())).to.deep.equal(want);
        expect(b.attempts).to.equal(want.length);
      });
    }
  });

  it('every delay stays within [ceiling/10, ceiling] over many random draws', () => {
    // A deterministic sequence of draws covering [0, 1).
    let i = 0;
    const random = (): number => ((i++ * 0.6180339887) % 1);
    const b = new Backoff({ initialMs: 50, maxMs: 5000, random });
    for (let n = 0; n < 200; n++) {
      const ceiling = Math.min(5000, 50 * 2 ** n);
      const d = b.next();
      expect(d, `attempt ${n}`).to.be.at.least(Math.round(ceiling * 0.1)).and.at.most(ceiling);
    }
  });

  it('reset() starts again from the initial delay', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0.999999 });
    b.next(); b.next(); b.next();
    expect(b.next()).to.equal(800);
    b.reset();
    expect(b.attempts).to.equal(0);
    expect(b.next()).to.equal(100);
  });

  it('sleep resolves after the delay, and at once when aborted', async () => {
    const t0 = Date.now();
    await sleep(60);
    expect(Date.now() - t0).to.be.at.least(55);
    const ac = new AbortController();
    const t1 = Date.now();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - t1).to.be.below(1000);
    const t2 = Date.now();
    await sleep(10_000, ac.signal); // already aborted
    expect(Date.now() - t2).to.be.below(1000);
  });
});
