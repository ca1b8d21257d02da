/** BatchLoader: lookups of one turn of the event loop go out together, in chunks, each caller gets its key's value. */
import { expect } from 'chai';
import { BatchLoader } from '../../coordinator/jobs/batch-loader';

function recordingLoader(maxKeys: number, fail?: (keys: string[]) => boolean): { loader: BatchLoader<string, string>; calls: string[][] } {
  const calls: string[][] = [];
  const loader = new BatchLoader<string, string>((keys) => {
    calls.push(keys);
    if (fail?.(keys)) return Promise.reject(new Error(`read of ${keys.join(',')} failed`));
    // Keys starting with "x" have no value.
    return Promise.resolve(new Map(keys.filter((k) => !k.startsWith('x')).map((k) => [k, `v:${k}`])));
  }, maxKeys);
  return { loader, calls };
}

describe('jobs: BatchLoader', () => {
  it('loads the lookups of one turn in one call, each caller getting its own value (or undefined)', async () => {
    const { loader, calls } = recordingLoader(128);
    const got = await Promise.all(['a', 'b', 'xmissing', 'c'].map((k) => loader.load(k)));
    expect(got).to.deep.equal(['v:a', 'v:b', undefined, 'v:c']);
    expect(calls).to.deep.equal([['a', 'b', 'xmissing', 'c']]);
  });

  it('splits a turn into chunks of at most maxKeys', async () => {
    const { loader, calls } = recordingLoader(3);
    const keys = Array.from({ length: 7 }, (_, i) => `k${i}`);
    const got = await Promise.all(keys.map((k) => loader.load(k)));
    expect(got).to.deep.equal(keys.map((k) => `v:${k}`));
    expect(calls.map((c) => c.length)).to.deep.equal([3, 3, 1]);
  });

  it('asks once for a key looked up twice in one turn, and answers both', async () => {
    const { loader, calls } = recordingLoader(128);
    const got = await Promise.all([loader.load('a'), loader.load('a'), loader.load('b')]);
    expect(got).to.deep.equal(['v:a', 'v:a', 'v:b']);
    expect(calls).to.deep.equal([['a', 'b']]);
  });

  it('lookups of a later turn make a new call', async () => {
    const { loader, calls } = recordingLoader(128);
    expect(await loader.load('a')).to.equal('v:a');
    expect(await loader.load('b')).to.equal('v:b');
    expect(calls).to.deep.equal([['a'], ['b']]);
  });

  it('a failed call rejects the lookups of its chunk only', async () => {
    const { loader } = recordingLoader(2, (keys) => keys.includes('bad'));
    const got = await Promise.allSettled(['a', 'bad', 'c', 'd'].map((k) => loader.load(k)));
    expect(got.map((g) => g.status)).to.deep.equal(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    expect((got[0] as PromiseRejectedResult).reason).to.be.an('error').with.property('message', 'read of a,bad failed');
  });
});
