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
    // [error thrown by every run but the last `failures`, attempts, runs expected, succeeds]
    const rows: [string, () => Error, number, number, number, boolean][] = [
      ['ConflictError, 2 failures, 3 attempts', () => new ConflictError('cas'), 2, 3, 3, true],
      ['UnavailableError, 1 failure, 3 attempts', () => new UnavailableError('down'), 1, 3, 2, true],
      ['DeadlineExceededError, 1 failure, 2 attempts', () => new DeadlineExceededError('slow'), 1, 2, 2, true],
      ['NotLeaderError, 1 failure, 2 attempts', () => new NotLeaderError('elsewhere'), 1, 2, 2, true],
      ['ConflictError, attempts exhausted', () => new ConflictError('cas'), 5, 3, 3, false],
      ['UnavailableError, 1 attempt = no retry', () => new UnavailableError('down'), 1, 1, 1, false],
      ['InvalidArgumentError: not retryable', () => new InvalidArgumentError('bad'), 1, 5, 1, false],
      ['NotFoundError: not retryable', () => new NotFoundError('gone'), 1, 5, 1, false],
      ['FailedPreconditionError: not retryable', () => new FailedPreconditionError('no'), 1, 5, 1, false],
      ['CancelledError: not retryable', () => new CancelledError('stop'), 1, 5, 1, false],
      ['InternalError: not retryable', () => new InternalError('bug'), 1, 5, 1, false],
      ['plain Error: not retryable', () => new Error('boom'), 1, 5, 1, false],
    ];
    for (const [name, make, failures, attempts, wantRuns, succeeds] of rows) {
      it(name, async () => {
        let runs = 0;
        const call = retryPolicy({ attempts }).execute(async () => {
          runs++;
          if (runs <= failures) throw make();
          return 'ok';
        });
        if (succeeds) {
          expect(await call).to.equal('ok');
        } else {
          const err = await expectReject(call);
          expect(err.message).to.equal(make().message);
          expect(isRetryable(err)).to.equal(make() instanceof ClusterError && (make() as ClusterError).retryable);
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
