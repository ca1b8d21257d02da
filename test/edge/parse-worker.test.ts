/**
 * shared/parse-worker.ts with the real coordinator program as its worker (dist/coordinator/main.js
 * started as a worker thread serves parse requests instead of running): the answers are the
 * calling thread's, errors keep their class and every problem, and a parse past the time limit
 * is refused with INVALID_ARGUMENT and its worker stopped.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { BundleValidationError, parseBundle } from '../../shared/bundle';
import { parseClusterFile } from '../../shared/cluster-file';
import { InvalidArgumentError } from '../../shared';
import { parseBundleOffLoop, parseClusterFileOffLoop, startParseWorker, stopParseWorker } from '../../shared/parse-worker';
import { DIST } from '../helpers';

const PROGRAM = join(DIST, 'coordinator/main.js');
const GOOD = 'name: web\nversion: 3\nvariables: { port: "80" }\nunits:\n  - { id: conf, kind: file, path: /etc/web.conf, content: "port {{ vars.port }}\\n" }\n';
const BAD = 'name: web\nversion: 3\nunits:\n  - { id: conf, kind: file, path: relative/path }\n  - { id: conf, kind: nosuch }\n';
const CLUSTER = `bundles:\n  - ${GOOD.trim().split('\n').join('\n    ')}\ngroups:\n  web:\n    bundle: web@3\n`;
const big = (units: number): string => `name: big\nversion: 1\nunits:\n${Array.from({ length: units }, (_, i) => `  - { id: u${i}, kind: file, path: /etc/u${i}.conf, content: "value ${i}" }`).join('\n')}\n`;

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('parse worker: bundles and cluster files parsed off the event loop', function () {
  this.timeout(60_000);
  afterEach(() => stopParseWorker());

  it('answers what the calling thread would: the bundle, the cluster file, and errors with their class and every problem', async () => {
    startParseWorker(PROGRAM);
    expect(await parseBundleOffLoop(GOOD, 'web.yaml')).to.deep.equal(parseBundle(GOOD, 'web.yaml'));
    expect(await parseClusterFileOffLoop(CLUSTER, 'c.yaml')).to.deep.equal(parseClusterFile(CLUSTER, { source: 'c.yaml' }));
    const here = (() => {
      try {
        parseBundle(BAD, 'bad.yaml');
      } catch (err) {
        return err as BundleValidationError;
      }
      throw new Error('BAD parsed');
    })();
    const there = await rejection(parseBundleOffLoop(BAD, 'bad.yaml'));
    expect(there).to.be.instanceOf(BundleValidationError);
    expect((there as BundleValidationError).problems).to.deep.equal(here.problems);
    expect(there.message).to.equal(here.message);
    const syntax = await rejection(parseBundleOffLoop('units: [a, b', 'broken.yaml'));
    expect(syntax).to.be.instanceOf(InvalidArgumentError);
    expect(syntax.message).to.match(/^broken\.yaml is not valid YAML: /);
  });

  it('a parse past the time limit is refused with INVALID_ARGUMENT; a new worker answers the next request', async () => {
    startParseWorker(PROGRAM, 1);
    const slow = await rejection(parseBundleOffLoop(big(500), 'big.yaml'));
    expect(slow).to.be.instanceOf(InvalidArgumentError);
    expect(slow.message).to.equal('the big.yaml took more than 0.001 s to parse and was refused: make it smaller or simpler');
    startParseWorker(PROGRAM);
    expect((await parseBundleOffLoop(big(3), 'small.yaml')).units).to.have.length(3);
  });
});
