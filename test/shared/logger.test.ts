/**
 * The default log sink: lines of one event-loop turn go to stderr in one write, in order, and
 * nothing pending is lost when the process exits (process.exit, an uncaught error).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createLogger } from '../../shared/logger';

const LOGGER = join(__dirname, '..', '..', 'shared', 'logger.js');

describe('logger: the stderr sink', () => {
  it('writes the lines of one turn of the event loop in one write, in order', async () => {
    const writes: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => { writes.push(String(chunk)); return true; });
    try {
      const log = createLogger({ fields: { test: 'sink' } });
      log.info('one');
      log.warn('two', { n: 2 });
      log.error('three');
      log.debug('not at info');
      expect(writes, 'nothing before the turn ends').to.deep.equal([]);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.stderr.write = original;
    }
    expect(writes).to.have.length(1);
    const lines = writes[0].split('\n');
    expect(lines.pop()).to.equal('');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).to.deep.equal(['one', 'two', 'three']);
    expect(JSON.parse(lines[1])).to.deep.include({ level: 'warn', test: 'sink', n: 2 });
  });

  for (const [how, ending] of [['process.exit()', 'process.exit(3);'], ['an uncaught error', 'throw new Error("boom");']] as const) {
    it(`loses nothing logged just before ${how}`, () => {
      const script = `const { createLogger } = require(${JSON.stringify(LOGGER)});
        const log = createLogger();
        for (let i = 0; i < 500; i++) log.info('line', { i });
        ${ending}`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('{'));
      expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).to.deep.equal(Array.from({ length: 500 }, (_, i) => i));
      expect(r.status).to.equal(how === 'process.exit()' ? 3 : 1);
    });
  }
});
