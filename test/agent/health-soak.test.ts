/**
 * The agent's soak of a health-gated apply (agent/units/health-soak.ts): the round schedule as a
 * table, and the soak against a real HTTP listener in this process that turns unhealthy after
 * a few answers (the case a soak exists for: healthy right after the apply, not for long), and
 * through the CommandExecutor: a real APPLY whose gate fails is a failed command naming the
 * probe, with the applied record still saying what is on the node.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandExecutor } from '../../agent/command-executor';
import { FileAppliedStore } from '../../agent/applied-store';
import { createUnitContext } from '../../agent/unit-context';
import { createHandlerRegistry } from '../../agent/units/handlers';
import { runHealthSoak, soakRoundOffsets } from '../../agent/units/health-soak';
import { createLogger } from '../../shared';

const quiet = createLogger({ level: 'silent' });

describe('agent health soak', function () {
  this.timeout(30_000);

  // [soak, interval, offsets]
  const rows: [number, number, number[]][] = [
    [0, 1000, [0]],
    [3000, 1000, [0, 1000, 2000, 3000]],
    [2500, 1000, [0, 1000, 2000, 2500]],
    [1000, 5000, [0, 1000]],
    [10_000, 10_000, [0, 10_000]],
  ];
  for (const [soak, interval, want] of rows) {
    it(`rounds of a ${soak} ms soak every ${interval} ms: ${want.join(', ')}`, () => {
      expect(soakRoundOffsets(soak, interval)).to.deep.equal(want);
    });
  }

  let server: Server | undefined;
  let dir = '';
  let answers = 0;
  /** Answers 200 to the first `healthy` requests, 503 after. */
  async function listener(healthy: number): Promise<string> {
    answers = 0;
    server = createServer((_req, res) => {
      answers++;
      res.statusCode = answers <= healthy ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const addr = server.address();
    if (!addr || typeof addr !== 'object') throw new Error('no address');
    return `http://127.0.0.1:${addr.port}/healthz`;
  }

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'soak-')); });
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function ctx(signal = new AbortController().signal): Parameters<typeof runHealthSoak>[1] {
    return { ...createUnitContext({ root: dir, logger: quiet }), signal, changedUnits: new Set() };
  }

  it('passes when every round passes (first, middle and last)', async () => {
    const url = await listener(100);
    const r = await runHealthSoak([{ id: 'h', http: url, expectStatus: 200 }], ctx(), { soakMs: 2000, intervalMs: 1000 });
    expect(r).to.deep.include({ ok: true, rounds: 3, cancelled: false });
    expect(answers).to.equal(3);
  });

  it('fails at the round where the listener turned unhealthy, naming the probe and what it found', async () => {
    const url = await listener(2);
    const r = await runHealthSoak([{ id: 'h', http: url, expectStatus: 200 }], ctx(), { soakMs: 4000, intervalMs: 1000 });
    expect(r.ok).to.equal(false);
    expect(r.rounds).to.equal(3);
    expect(r.failure?.probe.id).to.equal('h');
    expect(r.failure?.probe.detail).to.match(/status 503 \(want 200\)/);
    expect(answers, 'no round after the failing one').to.equal(3);
  });

  it('stops when the command is cancelled', async () => {
    const url = await listener(100);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await runHealthSoak([{ id: 'h', http: url }], ctx(ac.signal), { soakMs: 20_000, intervalMs: 1000 });
    expect(r).to.deep.include({ ok: false, cancelled: true });
  });

  it('an APPLY with a failing gate fails the command naming the probe; the applied record keeps the new version', async () => {
    const url = await listener(1);
    const context = createUnitContext({ root: join(dir, 'root'), logger: quiet });
    const applied = await FileAppliedStore.open(join(dir, 'state'), quiet);
    const executor = new CommandExecutor({ handlers: createHandlerRegistry(), context, applied, logger: quiet });
    const bundle = { name: 'web', version: '2', variables: {}, units: [{ id: 'd', kind: 'directory', path: '/opt/web', mode: '0755' }], verify: [] };
    const result = await executor.execute({
      id: 'j1/n1/1', jobId: 'j1', kind: 'COMMAND_KIND_APPLY', bundleJson: JSON.stringify(bundle), variables: {}, argv: [], timeoutMs: 0, secretVariables: [], allowedPaths: [],
      health: { soakMs: 2000, intervalMs: 1000, probes: [{ id: 'listener', tcp: '', http: url, expectStatus: 200, command: '', expectExit: 0, timeoutMs: 0 }] },
    }, () => undefined, new AbortController().signal);
    expect(result.outcome).to.equal('failed');
    expect(result.error).to.match(/health probe listener failed \d+ s into the soak \(round 2\): http .*status 503/);
    expect(applied.current()?.bundle).to.deep.include({ name: 'web', version: '2' });
  });
});
