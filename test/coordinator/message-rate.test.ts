/** The agent stream's message rate (pure, driven by the time passed in). */
import { expect } from 'chai';
import { MessageRate } from '../../coordinator/message-rate';

describe('agent stream message rate', () => {
  it('allows a burst of twice the rate, then the rate, and refills with time', () => {
    const r = new MessageRate(10, 0);
    const burst = Array.from({ length: 25 }, () => r.take(0));
    expect(burst.filter(Boolean)).to.have.length(20);
    expect(r.take(0)).to.equal(false);
    expect(r.take(100)).to.equal(true); // 100 ms = one token at 10/s
    expect(r.take(100)).to.equal(false);
    // Steady at the rate: always allowed.
    let ok = 0;
    for (let t = 200; t <= 10_200; t += 100) if (r.take(t)) ok++;
    expect(ok).to.equal(101);
    // A long pause refills only up to the burst.
    const later = Array.from({ length: 30 }, () => r.take(1_000_000));
    expect(later.filter(Boolean)).to.have.length(20);
  });
});
