/**
 * Many waiters on one AbortSignal through one listener (shared/abort-subscribers.ts): the
 * signal's own semantics (once, in order, not after an unsubscribe, never after the abort),
 * and one 'abort' listener on the signal however many subscribe.
 */
import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import { onAbort } from '../../shared/abort-subscribers';

function listenerCount(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length;
}

describe('onAbort (many waiters, one listener)', () => {
  it('runs every subscriber once, in the order they subscribed', () => {
    const ac = new AbortController();
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) onAbort(ac.signal, () => seen.push(i));
    ac.abort();
    ac.abort();
    expect(seen).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it('does not run a subscriber that unsubscribed, before or during the abort', () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const offA = onAbort(ac.signal, () => seen.push('a'));
    let offC = (): void => undefined;
    onAbort(ac.signal, () => { seen.push('b'); offC(); });
    offC = onAbort(ac.signal, () => seen.push('c'));
    onAbort(ac.signal, () => seen.push('d'));
    offA();
    ac.abort();
    expect(seen).to.deep.equal(['b', 'd']);
  });

  it('a subscriber that throws does not keep the abort from the others; its error is reported', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const reported: unknown[] = [];
    const onUncaught = (err: unknown): void => { reported.push(err); };
    const mochaHandlers = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      onAbort(ac.signal, () => { seen.push('a'); throw new Error('boom'); });
      onAbort(ac.signal, () => seen.push('b'));
      ac.abort();
      expect(seen).to.deep.equal(['a', 'b']);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      for (const h of mochaHandlers) process.on('uncaughtException', h);
    }
    expect(reported.map((e) => (e as Error).message)).to.deep.equal(['boom']);
  });

  it('never runs a subscriber that came after the abort', () => {
    const ac = new AbortController();
    ac.abort();
    let ran = false;
    const off = onAbort(ac.signal, () => { ran = true; });
    off();
    expect(ran).to.equal(false);
  });

  it('puts one listener on the signal for 10,000 subscribers, and none for a signal already aborted', () => {
    const ac = new AbortController();
    const offs = Array.from({ length: 10_000 }, () => onAbort(ac.signal, () => undefined));
    expect(listenerCount(ac.signal)).to.equal(1);
    for (const off of offs) off();
    let ran = 0;
    onAbort(ac.signal, () => { ran++; });
    ac.abort();
    expect(ran).to.equal(1);
    const done = new AbortController();
    done.abort();
    onAbort(done.signal, () => undefined);
    expect(listenerCount(done.signal)).to.equal(0);
  });
});
