/** Pure job logic, by table: job state machine, claim chunks/conflicts/rollback, output bounds, ids, fact selectors. */
import { expect } from 'chai';
import {
  boundOutput, checkJobTransition, claimConflicts, commandKindFor, isActive, isFinished, isRunnable, JOB_STATES, JOB_TRANSITIONS,
  matchesFacts, newJobId, parseFactSelector, chunkToLimits, type JobState,
} from '../../coordinator/jobs';
import { FailedPreconditionError, InvalidArgumentError, type Facts } from '../../shared';

describe('jobs: pure logic', () => {
  describe('job state machine', () => {
    const table: [JobState, JobState, boolean][] = [
      ['Pending', 'Running', true], ['Pending', 'Cancelling', true], ['Pending', 'Succeeded', false],
      ['Running', 'Succeeded', true], ['Running', 'Failed', true], ['Running', 'Cancelling', true], ['Running', 'Pending', false],
      ['Cancelling', 'Cancelled', true], ['Cancelling', 'Running', false], ['Cancelling', 'Succeeded', false],
      ['Succeeded', 'Running', false], ['Failed', 'Cancelling', false], ['Cancelled', 'Running', false],
      ['Running', 'Pausing', true], ['Running', 'Paused', true], ['Pending', 'Pausing', false], ['Pending', 'Paused', false],
      ['Pausing', 'Paused', true], ['Pausing', 'Running', true], ['Pausing', 'Succeeded', true], ['Pausing', 'Cancelling', true],
      ['Paused', 'Running', true], ['Paused', 'Cancelling', true], ['Paused', 'Succeeded', false], ['Paused', 'Cancelled', false],
      ['Cancelling', 'Paused', false], ['Succeeded', 'Paused', false],
    ];
    for (const [from, to, ok] of table) {
      it(`${from} → ${to}: ${ok ? 'allowed' : 'refused'}`, () => {
        if (ok) checkJobTransition('j-1', from, to);
        else expect(() => checkJobTransition('j-1', from, to)).to.throw(FailedPreconditionError, `job j-1 is ${from}`);
      });
    }
    it('every unfinished state can be cancelled, every finished state is final', () => {
      for (const s of JOB_STATES) {
        if (isFinished(s)) expect(JOB_TRANSITIONS[s]).to.deep.equal([]);
        else expect(JOB_TRANSITIONS[s].includes('Cancelling') || JOB_TRANSITIONS[s].includes('Cancelled')).to.equal(true, s);
        expect(isActive(s)).to.equal(!isFinished(s));
        // A Paused job is unfinished but not worked on: its resume or cancel wakes the runner.
        expect(isRunnable(s)).to.equal(!isFinished(s) && s !== 'Paused', s);
      }
    });
  });

  describe('claims', () => {
    it('claim chunks fit one transaction: the op limit less the fence, and the byte limit', () => {
      const lens = (items: number[], maxOps: number, maxBytes: number): number[] => chunkToLimits(items, (b) => b, { maxOps, maxBytes }).map((c) => c.length);
      expect(lens([], 128, 1000)).to.deep.equal([]);
      expect(lens(new Array<number>(300).fill(1), 128, 1_000_000)).to.deep.equal([127, 127, 46]);
      expect(lens(new Array<number>(10).fill(300), 128, 1000)).to.deep.equal([3, 3, 3, 1]);
      // Larger than the byte limit alone: sent alone (etcd names the problem), the rest unaffected.
      expect(lens([10, 5000, 10, 10], 128, 1000)).to.deep.equal([1, 1, 2]);
      expect(chunkToLimits([1, 2, 3, 4, 5], () => 1, { maxOps: 3, maxBytes: 100 }, 0)).to.deep.equal([[1, 2, 3], [4, 5]]);
    });
    it('a claim of a live job conflicts; a finished or vanished job\'s claim is stale', () => {
      const live = (id: string): 'active' | 'finished' | 'missing' => (id === 'j-live' ? 'active' : id === 'j-done' ? 'finished' : 'missing');
      const nodes = [
        { id: 'n1' }, { id: 'n2', currentJob: 'j-live' }, { id: 'n3', currentJob: 'j-done' }, { id: 'n4', currentJob: 'j-gone' }, { id: 'n5', currentJob: 'j-me' },
      ];
      expect(claimConflicts(nodes, 'j-me', live)).to.deep.equal([{ nodeId: 'n2', jobId: 'j-live' }]);
    });
  });

  it('bounded output keeps head and tail within the limit', () => {
    const table: [number, number][] = [[10, 100], [100, 100], [1000, 200], [200_000, 65_536]];
    for (const [len, limit] of table) {
      const text = 'H' + 'x'.repeat(len - 2) + 'T';
      const out = boundOutput(text, limit);
      expect(out.length).to.be.at.most(Math.max(limit, len <= limit ? len : 0) + 0, `${len}/${limit}`);
      expect(out.startsWith('H')).to.equal(true);
      expect(out.endsWith('T')).to.equal(true);
      if (len > limit) expect(out).to.include('characters omitted');
    }
  });

  it('job ids sort by creation time', () => {
    const a = newJobId(new Date('2025-01-02T03:04:05Z'), () => Buffer.from('ffffff', 'hex'));
    const b = newJobId(new Date('2025-01-02T03:04:06Z'), () => Buffer.from('000000', 'hex'));
    expect(a).to.equal('j-20250102030405-ffffff');
    expect(a < b).to.equal(true);
  });

  it('job kind → command kind', () => {
    const table: [Parameters<typeof commandKindFor>[0], boolean, string][] = [
      ['commission', false, 'COMMAND_KIND_APPLY'], ['upgrade', false, 'COMMAND_KIND_APPLY'], ['repair', false, 'COMMAND_KIND_APPLY'],
      ['decommission', false, 'COMMAND_KIND_REMOVE'], ['verify', false, 'COMMAND_KIND_VERIFY'], ['commission', true, 'COMMAND_KIND_PLAN'],
    ];
    for (const [kind, dry, want] of table) expect(commandKindFor(kind, dry)).to.equal(want);
  });

  it('fact selectors match summary fields, values may hold spaces', () => {
    const facts = { system: { manufacturer: 'Dell Inc.', model: 'R650' }, cpu: { physicalCores: 16 } } as unknown as Partial<Facts>;
    const table: [string, boolean][] = [
      ['manufacturer=Dell Inc.', true], ['manufacturer=Dell Inc.,cpuCores=16', true], ['cpuCores=8', false], ['manufacturer!=HPE', true], ['model!=R650', false],
    ];
    for (const [sel, want] of table) expect(matchesFacts(parseFactSelector(sel), facts)).to.equal(want, sel);
    expect(() => parseFactSelector('nonsense')).to.throw(InvalidArgumentError, 'malformed fact selector');
  });
});

