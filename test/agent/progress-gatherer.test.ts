/**
 * The agent's progress gathering (agent/progress-gatherer.ts) on a ManualClock: what is sent,
 * when, and that the coordinator's view of the units (first-appearance order, latest state,
 * output in print order) is the same as if every update had been sent.
 */
import { expect } from 'chai';
import { ManualClock } from '../../shared';
import { ProgressGatherer } from '../../agent/progress-gatherer';
import type { CommandProgress } from '../../generated/cluster/v1/CommandProgress';
import type { CommandResult } from '../../generated/cluster/v1/CommandResult';

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

  const report = (mode: string): CommandResult['report'] => ({ mode, bundle: { name: 'b', version: '1' }, ok: true, changed: [], units: [], probes: [], failure: null });

  it('an apply, remove or plan that ends within the period sends no progress: its report lists every unit that ran', async () => {
    for (const mode of ['apply', 'remove', 'plan']) {
      const gm = new ProgressGatherer({ clock, send: (p) => { sent.push(p); } });
      gm.push(up('a', 'running'));
      gm.push(up('a', 'unchanged'));
      gm.end({ report: report(mode) });
      gm.push(up('b', 'running'));
    }
    await clock.advance(1000);
    expect(sent).to.deep.equal([]);
    expect(clock.pending()).to.equal(0);
  });

  it('a verify (its report keeps only the drift), an exec and a failed handler (no report) send what is pending at once as they end', async () => {
    for (const r of [{ report: report('verify') }, { report: null }, {}]) {
      const gm = new ProgressGatherer({ clock, send: (p) => { sent.push(p); } });
      gm.push(up('a', 'running'));
      gm.push(up('a', 'unchanged'));
      gm.end(r);
      gm.push(up('b', 'running'));
    }
    expect(sent.map((p) => `${p.unitId}:${p.status}`), 'sent before the result, no timer').to.deep.equal(['a:unchanged', 'a:unchanged', 'a:unchanged']);
    await clock.advance(1000);
    expect(sent).to.have.length(3);
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

  it('output past the byte limit (bytes, not characters) is sent at once, in order', async () => {
    g.push(up('cmd', 'running', 'é'.repeat(30)));
    expect(sent).to.deep.equal([]);
    g.push(up('cmd', 'running', 'y'.repeat(40)));
    expect(sent.map((p) => p.output), '60 + 40 bytes (70 characters)').to.deep.equal([`${'é'.repeat(30)}${'y'.repeat(40)}`]);
    g.push(up('cmd', 'running', 'z'));
    await clock.advance(250);
    expect(sent.map((p) => p.output)).to.deep.equal([`${'é'.repeat(30)}${'y'.repeat(40)}`, 'z']);
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
