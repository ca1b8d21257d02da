import { expect } from 'chai';
import {
  CommandResults, UnsupportedCommandHandler, runCommand, commandKindName, cancelReason,
  type CommandHandler, type CommandResultBody,
} from '../../agent/command-handler';
import type { Command__Output } from '../../generated/cluster/v1/Command';

function command(id: string, kind: Command__Output['kind'] = 'COMMAND_KIND_APPLY', timeoutMs = 0): Command__Output {
  return { id, jobId: 'j1', kind, bundleJson: '', variables: {}, argv: [], timeoutMs, health: null, secretVariables: [], allowedPaths: [] };
}

/** A handler that waits for its signal (or `ms`) and then returns `body`. */
function waiting(body: CommandResultBody, ms = 60_000): CommandHandler {
  return {
    execute: (_cmd, _progress, signal) => new Promise((resolve) => {
      const t = setTimeout(() => resolve(body), ms);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve({ outcome: 'failed', error: 'stopped' }); }, { once: true });
    }),
  };
}

describe('agent command results', () => {
  it('kind names', () => {
    const table: [string, string][] = [['COMMAND_KIND_APPLY', 'apply'], ['COMMAND_KIND_EXEC', 'exec'], ['COMMAND_KIND_UNSPECIFIED', 'unspecified']];
    for (const [kind, name] of table) expect(commandKindName(kind)).to.equal(name);
  });

  it('the default handler fails honestly', async () => {
    for (const kind of ['COMMAND_KIND_APPLY', 'COMMAND_KIND_VERIFY', 'COMMAND_KIND_EXEC'] as const) {
      const r = await runCommand(new UnsupportedCommandHandler(), command('c1', kind), () => undefined, new AbortController());
      expect(r).to.deep.include({ commandId: 'c1', outcome: 'failed', error: `this agent cannot run ${commandKindName(kind)} commands yet` });
    }
  });

  it('runCommand maps throw, cancel and timeout to outcomes', async () => {
    const thrower: CommandHandler = { execute: () => Promise.reject(new Error('disk full')) };
    expect(await runCommand(thrower, command('t'), () => undefined, new AbortController())).to.deep.include({ outcome: 'failed', error: 'disk full' });

    const c = new AbortController();
    const cancelled = runCommand(waiting({ outcome: 'succeeded' }), command('c'), () => undefined, c);
    c.abort(cancelReason('operator said so'));
    expect(await cancelled).to.deep.include({ commandId: 'c', outcome: 'cancelled', error: 'cancelled: operator said so' });

    const timedOut = await runCommand(waiting({ outcome: 'succeeded' }), command('d', 'COMMAND_KIND_EXEC', 50), () => undefined, new AbortController());
    expect(timedOut).to.deep.include({ commandId: 'd', outcome: 'timed_out', error: 'command timed out after 50 ms' });

    // A handler that finished successfully before its timeout keeps its outcome.
    const quick = await runCommand(waiting({ outcome: 'succeeded', output: 'ok' }, 5), command('e', 'COMMAND_KIND_EXEC', 5000), () => undefined, new AbortController());
    expect(quick).to.deep.include({ commandId: 'e', outcome: 'succeeded', output: 'ok' });
  });

  it('remembers results by id, bounded, oldest forgotten first', () => {
    const store = new CommandResults(3);
    for (const id of ['a', 'b', 'c', 'd']) store.record({ commandId: id, outcome: 'succeeded' });
    expect(store.size).to.equal(3);
    expect(store.has('a')).to.equal(false);
    expect(store.get('d')).to.deep.equal({ commandId: 'd', outcome: 'succeeded' });
    // Re-recording refreshes the position.
    store.record({ commandId: 'b', outcome: 'failed', error: 'x' });
    store.record({ commandId: 'e', outcome: 'succeeded' });
    expect(store.has('c')).to.equal(false);
    expect(store.get('b')?.outcome).to.equal('failed');
  });

  it('lists unacknowledged results until acknowledged', () => {
    const store = new CommandResults();
    store.record({ commandId: 'a', outcome: 'succeeded' });
    store.record({ commandId: 'b', outcome: 'failed' });
    expect(store.unacknowledged().map((r) => r.commandId)).to.deep.equal(['a', 'b']);
    store.acknowledge('a');
    store.acknowledge('zzz');
    expect(store.unacknowledged().map((r) => r.commandId)).to.deep.equal(['b']);
    expect(store.isAcknowledged('a')).to.equal(true);
    // A duplicate still gets the recorded answer after acknowledgement.
    expect(store.get('a')?.outcome).to.equal('succeeded');
  });

  it('refuses a capacity below 1', () => {
    expect(() => new CommandResults(0)).to.throw(/at least 1/);
  });
});
