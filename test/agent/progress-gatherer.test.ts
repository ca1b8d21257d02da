/**
 * The agent's progress gathering (agent/progress-gatherer.ts) on a ManualClock: what is sent,
 * when, and that the coordinator's view of the units (first-appearance order, latest state,
 * output in print order) is the same as if every update had been sent.
 */
import { expect } from 'chai';
import { ManualClock } from '../../shared';
import { ProgressGatherer } from '../../agent/progress-gatherer';
import type { CommandProgress } from '../../generated/cluster/v1/CommandProgress';

/** What the coordinator keeps of a stream of progress (command-dispatch.ts onProgress). */
function coordinatorView(messages: readonly CommandProgress[]): { units: string[]; output: string } {
  const units: { unitId: string; status: string }[] = [];
  let output = '';
  for (const p of messages) {
    const idx = units.findIndex((u) => u.unitId === p.unitId);
    if (idx >= 0) units[idx] = { unitId: p.unitId ?? '', status: p.status ?? '' };
    else units.push({ unitId: p.unitId ?? '', status: p.status ?? '' });
    output += p.output ?? '';
  }
  return { units: units.map((u) => `${u.unitId}:${u.status}`), output };
}

describe('agent progress gathering', () => {
  let clock: ManualClock;
  let sent: CommandProgress[];
  let g: ProgressGatherer;
  const up = (unitId: string, status: string, output = ''): CommandProgress => ({ commandId: 'c1', unitId, status, message: `${unitId} ${status}`, ...(output ? { output } : {}) });

  beforeEach(() => {
    clock = new ManualClock();
    sent = [];
    g = new ProgressGatherer({ clock, send: (p) => { sent.push(p); }, outputFlushBytes: 100 });
  });

  it('sends nothing for 250 ms, then one message per unit with its latest state', async () => {
    for (const u of ['a', 'b', 'c']) {
      g.push(up(u, 'running'));
      g.push(up(u, 'changed'));
    }
    await clock.advance(249);
    expect(sent).to.deep.equal([]);
    await clock.advance(1);
    expect(sent.map((p) => `${p.unitId}:${p.status}:${p.message}`)).to.deep.equal(['a:changed:a changed', 'b:changed:b changed', 'c:changed:c changed']);
    expect(clock.pending(), 'no timer left').to.equal(0);
  });

  it('a command that ends within the period sends no progress at all, and nothing it pushes later', async () => {
    g.push(up('a', 'running'));
    g.push(up('a', 'unchanged'));
    g.discard();
    g.push(up('b', 'running'));
    await clock.advance(1000);
    expect(sent).to.deep.equal([]);
    expect(clock.pending()).to.equal(0);
  });

  it('the coordinator sees the same units, states and output as if every update had been sent', async () => {
    const updates = [
      up('a', 'running'), up('a', 'running', 'a1\n'), up('b', 'running'), up('a', 'running', 'a2\n'),
      up('b', 'running', 'b1\n'), up('a', 'changed'), up('b', 'failed'), up('c', 'running'), up('c', 'unchanged'),
    ];
    for (const u of updates) g.push(u);
    await clock.advance(250);
    expect(coordinatorView(sent)).to.deep.equal(coordinatorView(updates));
    expect(coordinatorView(sent)).to.deep.equal({ units: ['a:changed', 'b:failed', 'c:unchanged'], output: 'a1\na2\nb1\n' });
    expect(sent.length, 'fewer messages than updates').to.be.lessThan(updates.length);
  });

  it('output past the byte limit is sent at once, in order', async () => {
    g.push(up('cmd', 'running', 'x'.repeat(60)));
    expect(sent).to.deep.equal([]);
    g.push(up('cmd', 'running', 'y'.repeat(60)));
    expect(sent.map((p) => p.output)).to.deep.equal([`${'x'.repeat(60)}${'y'.repeat(60)}`]);
    g.push(up('cmd', 'running', 'z'));
    await clock.advance(250);
    expect(sent.map((p) => p.output)).to.deep.equal([`${'x'.repeat(60)}${'y'.repeat(60)}`, 'z']);
  });

  it('gathers again after each send', async () => {
    g.push(up('a', 'running'));
    await clock.advance(250);
    g.push(up('a', 'changed'));
    g.push(up('b', 'running'));
    await clock.advance(250);
    expect(sent.map((p) => `${p.unitId}:${p.status}`)).to.deep.equal(['a:running', 'a:changed', 'b:running']);
  });
});
