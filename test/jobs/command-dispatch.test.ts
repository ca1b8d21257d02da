/**
 * Command dispatch timers driven by a ManualClock: the connect timeout, the cancel grace and the
 * command deadline pass in no real time. AgentStreams is the real registry; an agent's stream is
 * the narrow AgentStream interface that records what the coordinator sent it.
 */
import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import { createLogger, ManualClock, type ClusterError } from '../../shared';
import { AgentStreams, type AgentStream } from '../../coordinator/agent-streams';
import { CommandRouter, dispatchCommand, Halted, type DispatchContext } from '../../coordinator/jobs/command-dispatch';
import { CANCELLED_BY_OPERATOR, type CommandOutcome } from '../../coordinator/jobs/job-outcome';
import type { JobNodeRecord } from '../../coordinator/jobs/job-record';
import type { Command } from '../../generated/cluster/v1/Command';
import type { CoordinatorMessage } from '../../generated/cluster/v1/CoordinatorMessage';

const logger = createLogger({ level: 'silent' });

class RecordingStream implements AgentStream {
  readonly sent: CoordinatorMessage[] = [];
  readonly instanceId = 'i1';
  readonly connectedAt = '2026-01-01T00:00:00.000Z';
  open = true;
  constructor(readonly nodeId: string, readonly bootId: string) {}
  send(message: CoordinatorMessage): boolean {
    if (this.open) this.sent.push(message);
    return this.open;
  }
  close(_error?: ClusterError): void {
    this.open = false;
  }
}

describe('command dispatch (timers on the injected clock)', () => {
  let clock: ManualClock;
  let streams: AgentStreams;
  let router: CommandRouter;
  let cancel: AbortController;
  let halted: AbortController;
  let written: JobNodeRecord[];
  const command: Command = { id: 'j1/n1/1', jobId: 'j1', kind: 'COMMAND_KIND_APPLY', bundleJson: '{}', timeoutMs: 600_000 };
  const rec: JobNodeRecord = { nodeId: 'n1', state: 'running', batch: 0, attempt: 1, commandId: 'j1/n1/1', units: [] };

  beforeEach(() => {
    clock = new ManualClock();
    streams = new AgentStreams();
    router = new CommandRouter(streams);
    router.attach();
    cancel = new AbortController();
    halted = new AbortController();
    written = [];
  });
  afterEach(() => router.detach());

  function dispatch(r: JobNodeRecord = rec, cmd: Command = command, bootIdBeforeSend = false): { outcome: Promise<CommandOutcome>; settled: () => CommandOutcome | Error | undefined } {
    const c: DispatchContext = {
      streams, router, clock, log: logger, cancel: cancel.signal, halted: halted.signal,
      timings: { connectTimeoutMs: 60_000, commandTimeoutMs: 3_600_000, resultGraceMs: 30_000, cancelGraceMs: 15_000, progressFlushMs: 250, progressWritesPerSecond: 200 },
      remember: () => undefined,
      write: (x) => { written.push(x); return Promise.resolve(); },
      ...(bootIdBeforeSend ? { bootIdBeforeSend } : {}),
    };
    let done: CommandOutcome | Error | undefined;
    const outcome = dispatchCommand(c, 'n1', cmd, r);
    outcome.then((o) => { done = o; }, (err: Error) => { done = err; });
    return { outcome, settled: () => done };
  }

  /** `n` other commands (nodes `<prefix>0`...) waiting for their results through the router; returns their unsubscribes. */
  function waitingCommands(prefix: string, n: number): (() => void)[] {
    const ignore = (): void => undefined;
    return Array.from({ length: n }, (_, i) => router.listen(`j1/${prefix}${i}/1`, {
      nodeId: `${prefix}${i}`, onResult: ignore, onProgress: ignore, onConnected: ignore, onDisconnected: ignore, onUnreachable: ignore,
    }));
  }

  function result(outcome: string, error = ''): void {
    streams.emit('result', 'n1', { commandId: 'j1/n1/1', outcome, error, report: null, appliedDigest: 'd', exitCode: 0, output: '' });
  }

  it('an agent that never connects fails the node after the 60 s connect timeout, not before', async () => {
    const d = dispatch();
    await clock.advance(59_999);
    expect(d.settled()).to.equal(undefined);
    await clock.advance(1);
    expect(await d.outcome).to.deep.include({ outcome: 'failed', error: 'agent of node n1 is not connected and did not reconnect within 60 s' });
    expect(clock.pending(), 'every timer cancelled').to.equal(0);
  });

  it('an agent that connects within the timeout gets the command, its boot id is recorded, and its result ends the wait', async () => {
    const d = dispatch();
    await clock.advance(30_000);
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    expect(s.sent).to.deep.equal([{ command }]);
    expect(written.map((w) => w.bootId)).to.deep.equal(['b1']);
    await clock.advance(40_000);
    expect(d.settled(), 'the connect timeout was cancelled').to.equal(undefined);
    result('succeeded');
    expect(await d.outcome).to.deep.include({ outcome: 'succeeded', appliedDigest: 'd' });
  });

  it('a disconnect mid-command: the same command id is re-sent on reconnect; no reconnect within 60 s fails the node', async () => {
    const s1 = new RecordingStream('n1', 'b1');
    streams.register(s1);
    const d = dispatch();
    streams.unregister(s1);
    await clock.advance(59_000);
    const s2 = new RecordingStream('n1', 'b1');
    streams.register(s2);
    expect(s2.sent).to.deep.equal([{ command }]);
    streams.unregister(s2);
    await clock.advance(59_999);
    expect(d.settled()).to.equal(undefined);
    await clock.advance(1);
    expect(await d.outcome).to.deep.include({ outcome: 'failed', error: 'agent of node n1 went unreachable mid-command and did not reconnect within 60 s' });
  });

  it('an agent back with another boot id is not sent the command again: the node fails', async () => {
    const d = dispatch({ ...rec, bootId: 'b1' });
    const s = new RecordingStream('n1', 'b2');
    streams.register(s);
    expect(s.sent).to.deep.equal([]);
    expect(await d.outcome).to.deep.include({ outcome: 'failed', error: 'agent of node n1 rebooted while the command ran (boot id b1 → b2); not re-sent' });
  });

  it('a boot id written with the "running" record (the agent was attached as the job started it): sent, and nothing more written', async () => {
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    const d = dispatch({ ...rec, bootId: 'b1' }, command, true);
    expect(s.sent).to.deep.equal([{ command }]);
    expect(written, 'writes for the send').to.deep.equal([]);
    result('succeeded');
    expect(await d.outcome).to.deep.include({ outcome: 'succeeded' });
  });

  it('the agent restarted after the "running" record took its boot id but before the first send: sent to the new boot, which is recorded', async () => {
    const d = dispatch({ ...rec, bootId: 'b1' }, command, true);
    const s = new RecordingStream('n1', 'b2');
    streams.register(s);
    expect(s.sent).to.deep.equal([{ command }]);
    expect(written.map((w) => w.bootId)).to.deep.equal(['b2']);
    // Once sent, another boot is a reboot while it ran: not re-sent.
    streams.unregister(s);
    const s3 = new RecordingStream('n1', 'b3');
    streams.register(s3);
    expect(s3.sent).to.deep.equal([]);
    expect(await d.outcome).to.deep.include({ outcome: 'failed', error: 'agent of node n1 rebooted while the command ran (boot id b2 → b3); not re-sent' });
  });

  it('a cancel sends CancelCommand and, unconfirmed, ends the node cancelled after the 15 s grace', async () => {
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    const d = dispatch();
    cancel.abort();
    expect(s.sent[1]).to.deep.equal({ cancel: { commandId: 'j1/n1/1', reason: CANCELLED_BY_OPERATOR } });
    await clock.advance(14_999);
    expect(d.settled()).to.equal(undefined);
    await clock.advance(1);
    expect(await d.outcome).to.deep.include({ outcome: 'cancelled', error: `${CANCELLED_BY_OPERATOR} (the agent did not confirm within 15000 ms)` });
  });

  it('no result by the command deadline plus 30 s: timed out, and the agent is told to stop', async () => {
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    const d = dispatch(rec, { ...command, timeoutMs: 1000 });
    await clock.advance(30_999);
    expect(d.settled()).to.equal(undefined);
    await clock.advance(1);
    expect(await d.outcome).to.deep.include({ outcome: 'timed_out', error: 'no result within 1000 ms' });
    expect(s.sent[1]).to.deep.equal({ cancel: { commandId: 'j1/n1/1', reason: 'command deadline passed' } });
  });

  it('progress is written at most once per flush interval', async () => {
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    const d = dispatch();
    written = [];
    for (const unitId of ['a', 'b', 'c']) streams.emit('progress', 'n1', { commandId: 'j1/n1/1', unitId, status: 'done', message: '', output: `${unitId}\n` });
    await clock.advance(249);
    expect(written).to.deep.equal([]);
    await clock.advance(1);
    expect(written).to.have.length(1);
    expect(written[0].units.map((u) => u.unitId)).to.deep.equal(['a', 'b', 'c']);
    expect(written[0].output).to.equal('a\nb\nc\n');
    result('succeeded');
    await d.outcome;
  });

  it('with more commands in flight than 200 writes a second allow, a node\'s progress is written less often: 1,000 in flight, every 5 s, and never less often than that', async () => {
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    // 999 other commands (other nodes) waiting for their results through the same router.
    const others = waitingCommands('o', 999);
    const d = dispatch();
    written = [];
    streams.emit('progress', 'n1', { commandId: 'j1/n1/1', unitId: 'a', status: 'changed', message: '', output: '' });
    await clock.advance(4999);
    expect(written, 'not at the 250 ms flush interval').to.deep.equal([]);
    await clock.advance(1);
    expect(written.map((w) => w.units.map((u) => `${u.unitId}:${u.status}`))).to.deep.equal([['a:changed']]);
    // Never staler than 5 s, however many are in flight (here 4,999 more: 25 s by the rate alone).
    const more = waitingCommands('m', 4000);
    streams.emit('progress', 'n1', { commandId: 'j1/n1/1', unitId: 'a', status: 'changed', message: 'again', output: '' });
    await clock.advance(5000);
    expect(written).to.have.length(2);
    for (const off of more) off();
    // Fewer in flight: back to the flush interval.
    for (const off of others) off();
    streams.emit('progress', 'n1', { commandId: 'j1/n1/1', unitId: 'b', status: 'changed', message: '', output: '' });
    await clock.advance(250);
    expect(written).to.have.length(3);
    result('succeeded');
    await d.outcome;
  });

  it('a halt that came before the dispatch (its run was awaiting a write) rejects at once: it does not wait out the connect timeout', async () => {
    halted.abort();
    const d = dispatch();
    await new Promise((r) => setImmediate(r));
    expect(d.settled(), 'settled without the clock moving').to.be.instanceOf(Halted);
    expect(clock.pending(), 'no timer started').to.equal(0);
  });

  it('1,000 commands in flight wait on the job\'s two signals through one listener each; a halt still reaches every one', async () => {
    const c: DispatchContext = {
      streams, router, clock, log: logger, cancel: cancel.signal, halted: halted.signal,
      timings: { connectTimeoutMs: 60_000, commandTimeoutMs: 3_600_000, resultGraceMs: 30_000, cancelGraceMs: 15_000, progressFlushMs: 250, progressWritesPerSecond: 200 },
      remember: () => undefined, write: () => Promise.resolve(),
    };
    const outcomes = Array.from({ length: 1000 }, (_, i) => dispatchCommand(c, `d${i}`, { ...command, id: `j1/d${i}/1` }, { ...rec, nodeId: `d${i}`, commandId: `j1/d${i}/1` })
      .then(() => 'settled', (err: unknown) => err));
    expect(getEventListeners(cancel.signal, 'abort'), 'cancel').to.have.length(1);
    expect(getEventListeners(halted.signal, 'abort'), 'halted').to.have.length(1);
    halted.abort();
    const all = await Promise.all(outcomes);
    expect(all.every((o) => o instanceof Halted)).to.equal(true);
    expect(clock.pending(), 'every command\'s timers cancelled').to.equal(0);
  });

  it('a command that has its result is out of the job\'s signals: a later cancel sends it nothing and starts no timer', async () => {
    const d = dispatch();
    const s = new RecordingStream('n1', 'b1');
    streams.register(s);
    result('succeeded');
    expect(await d.outcome).to.deep.include({ outcome: 'succeeded' });
    cancel.abort();
    halted.abort();
    expect(s.sent).to.deep.equal([{ command }]);
    expect(clock.pending()).to.equal(0);
  });

  it('a halt rejects with Halted and leaves no timer behind', async () => {
    const d = dispatch();
    halted.abort();
    expect(await d.outcome.then(() => undefined, (err: unknown) => err)).to.be.instanceOf(Halted);
    expect(clock.pending()).to.equal(0);
  });
});
