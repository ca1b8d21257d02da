/**
 * shared/retry.ts, by tables: which errors `retryPolicy` runs again (the `retryable` marker),
 * how many runs `retryOnConflict` makes, and what each gives back once attempts run out.
 */
import { expect } from 'chai';
import {
  CancelledError, ClusterError, ConflictError, DeadlineExceededError, FailedPreconditionError, InternalError, InvalidArgumentError,
  NotFoundError, NotLeaderError, UnavailableError,
} from '../../shared/errors';
import { CAS_LOST, isRetryable, retryOnConflict, retryPolicy } from '../../shared/retry';
import { expectReject } from '../helpers/wait';

describe('shared/retry', () => {
  describe('retryPolicy: retried while the error says retryable, `attempts` runs at most', () => {
    const retryable = [ConflictError, UnavailableError, DeadlineExceededError, NotLeaderError];
    const notRetryable = [InvalidArgumentError, NotFoundError, FailedPreconditionError, CancelledError, InternalError, ClusterError, Error];
    // [failing runs before success, attempts, runs expected, succeeds]
    const rows: [number, number, number, boolean][] = [[0, 3, 1, true], [2, 3, 3, true], [1, 2, 2, true], [5, 3, 3, false], [1, 1, 1, false]];
    const cases = [
      ...retryable.flatMap((cls) => rows.map(([failures, attempts, runs, ok]) => ({ cls, failures, attempts, runs, ok }))),
      ...notRetryable.map((cls) => ({ cls, failures: 1, attempts: 5, runs: 1, ok: false })),
    ];
    for (const { cls, failures, attempts, runs: wantRuns, ok } of cases) {
      it(`${cls.name}: ${failures} failing run(s), ${attempts} attempt(s) → ${ok ? 'ok' : 'the error'} after ${wantRuns} run(s)`, async () => {
        let runs = 0;
        const call = retryPolicy({ attempts }).execute(async () => {
          if (++runs <= failures) throw new cls(`failure ${runs}`);
          return 'ok';
        });
        if (ok) {
          expect(await call).to.equal('ok');
        } else {
          const err = await expectReject(call);
          expect(err).to.be.instanceOf(cls);
          expect(err.message).to.equal(`failure ${wantRuns}`);
          expect(isRetryable(err)).to.equal(retryable.some((r) => err instanceof r));
        }
        expect(runs).to.equal(wantRuns);
      });
    }
  });

  describe('retryOnConflict: runs again while the body says CAS_LOST', () => {
    // [lost runs before a result, attempts, runs expected, result or the exhausted error]
    const rows: [number, number, number, string][] = [
      [0, 3, 1, 'done'],
      [1, 3, 2, 'done'],
      [2, 3, 3, 'done'],
      [3, 3, 3, 'ConflictError: gave up after 3'],
      [9, 5, 5, 'ConflictError: gave up after 5'],
      [1, 1, 1, 'ConflictError: gave up after 1'],
    ];
    for (const [lost, attempts, wantRuns, want] of rows) {
      it(`${lost} lost run(s), ${attempts} attempt(s) → ${want} after ${wantRuns} run(s)`, async () => {
        const seen: number[] = [];
        const call = retryOnConflict(attempts, async (attempt) => {
          seen.push(attempt);
          return seen.length <= lost ? CAS_LOST : 'done';
        }, () => new ConflictError(`gave up after ${attempts}`));
        const got = await call.then((v) => v, (err: unknown) => (err instanceof ConflictError ? `ConflictError: ${err.message}` : `other: ${String(err)}`));
        expect(got).to.equal(want);
        expect(seen).to.deep.equal(Array.from({ length: wantRuns }, (_, i) => i));
      });
    }

    it('an error thrown by the body ends the loop at once, even a retryable one', async () => {
      for (const err of [new NotLeaderError('fence lost'), new ConflictError('counter kept moving'), new NotFoundError('gone')]) {
        let runs = 0;
        const got = await expectReject(retryOnConflict(5, async () => {
          runs++;
          throw err;
        }, () => new ConflictError('exhausted')));
        expect(got).to.equal(err);
        expect(runs).to.equal(1);
      }
    });

    it('refuses attempts below 1', async () => {
      for (const attempts of [0, -1, 1.5]) {
        const err = await expectReject(retryOnConflict(attempts, async () => 'x', () => new ConflictError('never')));
        expect(err).to.be.instanceOf(RangeError);
      }
    });
  });
});
