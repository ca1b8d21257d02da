/**
 * The leader's connection keepalive (coordinator/connection-keepalive.ts), its decisions with
 * a hand-driven clock and connections that answer PINGs or not (the end-to-end path over real
 * TLS connections and a real cut is test/e2e/reachability.test.ts).
 */
import { expect } from 'chai';
import { ConnectionKeepalive, type KeptSession } from '../../coordinator/connection-keepalive';
import { createLogger } from '../../shared';

class Conn implements KeptSession {
  /** How often the keepalive looked at this connection's state. */
  looks = 0;
  private isDestroyed = false;
  closed = false;
  get destroyed(): boolean { this.looks++; return this.isDestroyed; }
  pings = 0;
  /** Answer PINGs (at once, or when `answer()` is called). */
  answering = true;
  private pending: (() => void)[] = [];
  private onClose?: () => void;
  constructor(readonly socket: { remoteAddress: string; remotePort: number }) {}
  ping(cb: (err: Error | null, duration: number, payload: Buffer) => void): boolean {
    this.pings++;
    const reply = (): void => cb(null, 1, Buffer.alloc(8));
    if (this.answering) reply(); else this.pending.push(reply);
    return true;
  }
  answer(): void { for (const r of this.pending.splice(0)) r(); }
  destroy(): void { this.isDestroyed = true; this.onClose?.(); }
  once(_event: 'close', listener: () => void): unknown { this.onClose = listener; return this; }
}

describe('connection keepalive (one sweep for every connection)', () => {
  let now = 1_000_000;
  const make = (): ConnectionKeepalive => new ConnectionKeepalive({ periodMs: 2000, timeoutMs: 2000, logger: createLogger({ level: 'silent' }), now: () => now });
  /** Sweeps every 250 ms (the sweep period for 2 s / 2 s) for `ms`. */
  const run = (k: ConnectionKeepalive, ms: number): void => {
    for (let t = 0; t < ms; t += 250) { now += 250; k.sweep(); }
  };

  it('PINGs a connection once it has not answered for the period; one that answers is kept', () => {
    const k = make();
    const a = new Conn({ remoteAddress: '10.0.0.1', remotePort: 5000 });
    k.add(a);
    run(k, 1750);
    expect(a.pings, 'not before the period').to.equal(0);
    run(k, 10_000);
    expect(a.pings).to.equal(5);
    expect(a.destroyed).to.equal(false);
    expect(k.droppedCount).to.equal(0);
    k.stop();
  });

  it('drops a connection whose PING goes unanswered for the timeout, and says since when its peer was silent', () => {
    const k = make();
    const a = new Conn({ remoteAddress: '10.0.0.2', remotePort: 5001 });
    const b = new Conn({ remoteAddress: '10.0.0.3', remotePort: 5002 });
    k.add(a);
    k.add(b);
    run(k, 2000);
    const lastAnswer = now;
    a.answering = false; // cut: silence from here
    run(k, 2000); // a's next PING is sent
    run(k, 1750);
    expect(a.destroyed, 'not before the timeout').to.equal(false);
    run(k, 500);
    expect(a.destroyed).to.equal(true);
    expect(b.destroyed).to.equal(false);
    expect(k.silentSince('10.0.0.2:5001')).to.be.within(lastAnswer - 250, lastAnswer + 250);
    expect(k.silentSince('10.0.0.3:5002')).to.equal(undefined);
    expect(k.size).to.equal(1);
    k.stop();
  });

  it('a stall of the leader\'s own event loop is not the peers\' silence: answers read after it keep the connections', () => {
    const k = make();
    const conns = Array.from({ length: 100 }, (_, i) => new Conn({ remoteAddress: '10.0.1.1', remotePort: 6000 + i }));
    for (const c of conns) { c.answering = false; k.add(c); }
    run(k, 2250); // every connection has a PING in flight
    expect(conns.every((c) => c.pings === 1)).to.equal(true);
    // The loop stalls 5 s: the answers arrived meanwhile, but are read only after the next sweep.
    now += 5000;
    k.sweep();
    expect(conns.filter((c) => c.destroyed), 'none dropped by the sweep that ends the stall').to.have.length(0);
    for (const c of conns) c.answer();
    run(k, 1000);
    expect(conns.filter((c) => c.destroyed)).to.have.length(0);
    // A real silence is still found: the same connections stop answering for good.
    run(k, 2000);
    run(k, 3000);
    expect(conns.filter((c) => c.destroyed)).to.have.length(100);
    k.stop();
  });

  it('a sweep looks only at the connections due then (a timing wheel), not at every connection', () => {
    const k = make();
    // 800 connections, 100 joining every 250 ms: their PINGs fall due in 8 different sweeps.
    const conns: Conn[] = [];
    for (let slot = 0; slot < 8; slot++) {
      for (let i = 0; i < 100; i++) {
        const c = new Conn({ remoteAddress: '10.0.2.1', remotePort: 7000 + slot * 100 + i });
        conns.push(c);
        k.add(c);
      }
      run(k, 250);
    }
    for (const c of conns) c.looks = 0;
    run(k, 10_000);
    const looks = conns.reduce((a, c) => a + c.looks, 0);
    // 40 sweeps; each connection is looked at once per PING (5 in 10 s), not once per sweep (40).
    expect(conns.every((c) => c.pings >= 5 && c.pings <= 6)).to.equal(true);
    expect(looks).to.be.at.most(800 * 6);
    expect(conns.some((c) => c.destroyed)).to.equal(false);
    k.stop();
  });
  it('a drop by the kernel (markSilent): the peer counts as silent since the start of its window, not since the drop; forgotten after a minute', () => {
    const k = make();
    now = 100_000;
    k.markSilent('10.0.0.9:6000', now - 3000);
    expect(k.silentSince('10.0.0.9:6000')).to.equal(97_000);
    expect(k.droppedCount).to.equal(1);
    // A "since" after the drop (a clock step) is clamped to the drop.
    k.markSilent('10.0.0.8:6000', now + 500);
    expect(k.silentSince('10.0.0.8:6000')).to.equal(100_000);
    const c = new Conn({ remoteAddress: '10.0.0.2', remotePort: 5001 });
    k.add(c); // starts the sweep timer's clock
    now += 61_000;
    k.sweep();
    expect(k.silentSince('10.0.0.9:6000')).to.equal(undefined);
    k.stop();
  });
});
