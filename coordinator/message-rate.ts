/**
 * A token bucket for the messages of one agent stream: `perSecond` on average, bursts of twice
 * that. A stream over it is closed (RESOURCE_EXHAUSTED) and the agent redials with its backoff,
 * so one misbehaving agent cannot keep the leader's event loop busy for the others. Pure: the
 * caller passes the time (its injected clock).
 */
export class MessageRate {
  private tokens: number;
  private readonly burst: number;

  constructor(private readonly perSecond: number, private last: number) {
    this.burst = 2 * perSecond;
    this.tokens = this.burst;
  }

  /** Milliseconds since the last take: past 2 s of it the bucket is full again. */
  idleFor(now: number): number {
    return now - this.last;
  }

  /** Takes one message's token at `now` (ms); false when the stream is over its rate. */
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
