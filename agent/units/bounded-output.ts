/**
 * Bounded capture of a command's output: the head and the tail are kept, the middle is
 * counted and dropped. A command that prints gigabytes must not take the agent's memory
 * with it, and the end of the output (where the error usually is) must survive.
 */
import type { UnitOutput } from './unit';

export const DEFAULT_OUTPUT_LIMIT = 64 * 1024;

export class BoundedOutput {
  private head = '';
  private tail = '';
  private dropped = 0;
  private readonly half: number;

  constructor(limit = DEFAULT_OUTPUT_LIMIT) {
    this.half = Math.max(1, Math.floor(limit / 2));
  }

  push(chunk: string): void {
    if (this.head.length < this.half) {
      const room = this.half - this.head.length;
      this.head += chunk.slice(0, room);
      chunk = chunk.slice(room);
      if (chunk.length === 0) return;
    }
    this.tail += chunk;
    if (this.tail.length > this.half) {
      this.dropped += this.tail.length - this.half;
      this.tail = this.tail.slice(this.tail.length - this.half);
    }
  }

  result(): UnitOutput {
    if (this.dropped === 0) return { text: this.head + this.tail, truncated: false };
    return { text: `${this.head}\n[... ${this.dropped} characters omitted ...]\n${this.tail}`, truncated: true };
  }
}
