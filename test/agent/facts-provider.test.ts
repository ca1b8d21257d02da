/**
 * The agent collects its facts in a child process (agent/facts-provider.ts, agent/facts-child.ts):
 * the real child, on this machine, against an in-process collection; its log lines reaching the
 * agent's logger; and what happens when the child cannot answer (dies, hangs, is missing).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectFacts } from '../../agent/facts-collector';
import { FACTS_CHILD_SCRIPT, childFactsProvider, collectFactsInChild, emptyFacts, factsFingerprint } from '../../agent/facts-provider';
import { createLogger } from '../../shared/logger';
import { expectReject } from '../helpers';

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { logger: createLogger({ level: 'debug', fields: { nodeId: 'n1' }, sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }), lines };
}

describe('facts provider: collection in a child process', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'facts-provider-')); });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  /** A child program written for the test: `body` is its JavaScript. */
  function script(name: string, body: string): string {
    const path = join(dir, name);
    writeFileSync(path, body);
    return path;
  }

  it('the child collects the same facts as an in-process collection on this machine', async () => {
    const [child, local] = await Promise.all([
      collectFactsInChild({ hostname: 'facts-child-test', probeTimeoutMs: 20_000 }),
      collectFacts({ hostname: 'facts-child-test', probeTimeoutMs: 20_000 }),
    ]);
    expect(child.hostname).to.equal('facts-child-test');
    expect(child.memory.totalBytes).to.be.greaterThan(0);
    expect(child.disks.length).to.be.greaterThan(0);
    expect(factsFingerprint(child)).to.equal(factsFingerprint(local));
  });

  it('the child\'s log lines (a probe past its time box) reach the agent\'s logger with its fields', async () => {
    const { logger, lines } = capturingLogger();
    // 1 ms: every probe that shells out or reads /proc times out, and says so.
    const f = await collectFactsInChild({ hostname: 'h', probeTimeoutMs: 1, logger });
    expect(f.hostname).to.equal('h');
    const timedOut = lines.filter((l) => l.msg === 'facts probe timed out');
    expect(timedOut.length).to.be.greaterThan(0);
    expect(timedOut[0]).to.include({ level: 'warn', nodeId: 'n1', timeoutMs: 1 });
  });

  it('a child that dies rejects with its exit code and the end of its stderr', async () => {
    const dies = script('dies.js', "process.stderr.write('disk probe exploded\\n'); process.exit(3);\n");
    await expectReject(collectFactsInChild({ hostname: 'h', script: dies }), /exited with code 3 without facts: disk probe exploded/);
  });

  it('a child that hangs is killed at the deadline', async () => {
    const hangs = script('hangs.js', 'process.on("message", () => undefined); setInterval(() => undefined, 1000);\n');
    const t0 = Date.now();
    await expectReject(collectFactsInChild({ hostname: 'h', script: hangs, deadlineMs: 1500 }), /gave no answer within 1500 ms \(killed\)/);
    expect(Date.now() - t0).to.be.lessThan(10_000);
  });

  it('a missing program rejects', async () => {
    await expectReject(collectFactsInChild({ hostname: 'h', script: join(dir, 'no-such-child.js') }), /facts collection process .*(exited with code 1|failed).*/);
  });

  it('the provider reports empty facts until a collection succeeds, then keeps failures as errors', async () => {
    const { logger, lines } = capturingLogger();
    const marker = join(dir, 'broken');
    writeFileSync(marker, '');
    // The real child, unless the marker file says it is broken.
    const flaky = script('flaky.js', `if (require('node:fs').existsSync(${JSON.stringify(marker)})) process.exit(4);\nrequire(${JSON.stringify(FACTS_CHILD_SCRIPT)});\n`);
    const provide = childFactsProvider({ hostname: 'flaky', probeTimeoutMs: 20_000, script: flaky, logger });
    const first = await provide();
    expect(factsFingerprint(first)).to.equal(factsFingerprint(emptyFacts('flaky')));
    expect(lines.find((l) => l.msg === 'facts collection failed; reporting empty facts until one succeeds')?.error).to.match(/exited with code 4/);
    rmSync(marker);
    const second = await provide();
    expect(second.memory.totalBytes).to.be.greaterThan(0);
    writeFileSync(marker, '');
    await expectReject(provide(), /exited with code 4/);
  });

  it('run by hand, the child says what it is and exits 2', () => {
    const r = spawnSync(process.execPath, [FACTS_CHILD_SCRIPT], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.match(/started by cluster-agent to collect hardware facts, not a command/);
  });
});
