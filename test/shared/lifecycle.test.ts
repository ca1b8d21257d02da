/**
 * The whole lifecycle transition table (shared/lifecycle.ts), cell by cell: every legal move
 * is accepted, every illegal one is refused with a reason naming the moves that are allowed,
 * and the graph has no dead ends (Contiv #114, #158): from every state some path leads back
 * to Commissioned.
 */
import { expect } from 'chai';
import { LIFECYCLE_STATES, TRANSITIONS, canTransition, checkTransition, isLifecycleState, isBusyState, BUSY_STATES, type LifecycleState } from '../../shared/lifecycle';
import { FailedPreconditionError } from '../../shared/errors';

/**
 * The table as the design document draws it (../../shared/DESIGN.md, "Node lifecycle"),
 * written out independently so a change to TRANSITIONS must be made twice, on purpose.
 */
const EXPECTED: Record<LifecycleState, LifecycleState[]> = {
  New: ['Discovered'],
  Discovered: ['Commissioning'],
  Commissioning: ['Commissioned', 'Failed', 'Cancelled'],
  Commissioned: ['Upgrading', 'Decommissioning'],
  Upgrading: ['Upgraded', 'Failed', 'Cancelled', 'Commissioned'],
  Upgraded: ['Upgrading', 'Decommissioning'],
  Decommissioning: ['Decommissioned', 'Failed', 'Cancelled'],
  Decommissioned: ['Commissioning'],
  Failed: ['Commissioning', 'Upgrading', 'Decommissioning'],
  Cancelled: ['Commissioning', 'Upgrading', 'Decommissioning'],
};

function shortestPath(from: LifecycleState, to: LifecycleState): LifecycleState[] | undefined {
  // Breadth-first over the table; a path of at least one move (so from === to needs a cycle).
  const queue: LifecycleState[][] = TRANSITIONS[from].map((s) => [from, s]);
  const seen = new Set<LifecycleState>();
  while (queue.length > 0) {
    const path = queue.shift() as LifecycleState[];
    const last = path[path.length - 1];
    if (last === to) return path;
    if (seen.has(last)) continue;
    seen.add(last);
    for (const next of TRANSITIONS[last]) queue.push([...path, next]);
  }
  return undefined;
}

describe('shared/lifecycle', () => {
  it('the table matches the design document', () => {
    expect(TRANSITIONS).to.deep.equal(EXPECTED);
    expect([...LIFECYCLE_STATES].sort()).to.deep.equal(Object.keys(EXPECTED).sort());
  });

  describe('every cell of the table', () => {
    for (const from of LIFECYCLE_STATES) {
      for (const to of LIFECYCLE_STATES) {
        const legal = EXPECTED[from].includes(to);
        it(`${from} → ${to}: ${legal ? 'accepted' : 'refused'}`, () => {
          expect(canTransition(from, to)).to.equal(legal);
          if (legal) {
            expect(() => checkTransition('n1', from, to)).not.to.throw();
            return;
          }
          let err: unknown;
          try {
            checkTransition('n1', from, to);
          } catch (e) {
            err = e;
          }
          expect(err).to.be.instanceOf(FailedPreconditionError);
          const message = (err as Error).message;
          expect(message).to.contain(`node n1 is ${from}; it cannot move to ${to}`);
          // The reason names the allowed moves, so the operator knows what to do instead.
          expect(message).to.contain(`(from ${from} it can move to ${EXPECTED[from].join(', ')})`);
          expect(message).not.to.contain('\n');
        });
      }
    }
  });

  describe('no dead ends: from every state a path leads back to Commissioned', () => {
    for (const from of LIFECYCLE_STATES) {
      it(from, () => {
        expect(TRANSITIONS[from].length, `${from} has no way out`).to.be.greaterThan(0);
        const path = shortestPath(from, 'Commissioned');
        expect(path, `no path from ${from} to Commissioned`).not.to.equal(undefined);
        // Every step of the path is itself legal.
        const p = path as LifecycleState[];
        for (let i = 1; i < p.length; i++) expect(() => checkTransition('n1', p[i - 1], p[i])).not.to.throw();
      });
    }
  });

  describe('every busy (*-ing) state can fail, and Failed can leave by every busy state', () => {
    for (const busy of BUSY_STATES) {
      it(busy, () => {
        expect(isBusyState(busy)).to.equal(true);
        expect(canTransition(busy, 'Failed')).to.equal(true);
        expect(canTransition('Failed', busy)).to.equal(true);
      });
    }
    for (const busy of BUSY_STATES) {
      it(`${busy} can be cancelled by the operator, and Cancelled can leave by ${busy}`, () => {
        expect(canTransition(busy, 'Cancelled')).to.equal(true);
        expect(canTransition('Cancelled', busy)).to.equal(true);
      });
    }
    it('exactly the *-ing states are busy', () => {
      expect(LIFECYCLE_STATES.filter(isBusyState)).to.deep.equal(LIFECYCLE_STATES.filter((s) => s.endsWith('ing')));
    });
  });

  describe('isLifecycleState', () => {
    for (const s of LIFECYCLE_STATES) it(`${s} is a state`, () => expect(isLifecycleState(s)).to.equal(true));
    for (const s of ['', 'new', 'NEW', 'Ready', 'Unreachable', 'toString', 'Commissioned ']) {
      it(`${JSON.stringify(s)} is not a state`, () => expect(isLifecycleState(s)).to.equal(false));
    }
  });
});
