import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandUnit, CommandFailedError } from '../../agent/units/command-unit';
import { runBundle } from '../../agent/units/executor';
import { createHandlerRegistry } from '../../agent/units/handlers';
import type { CommandUnitSpec } from '../../shared/bundle/types';
import { expectReject, waitFor } from '../helpers';
import { isAlive } from './proc-alive';
import { tempNode, type TempNode } from './unit-test-context';

describe('command unit (real /bin/sh processes)', () => {
  let node: TempNode;
  beforeEach(() => { node = tempNode('cmd-unit'); });
  afterEach(() => node.cleanup());

  const marker: CommandUnitSpec = {
    id: 'init', kind: 'command',
    run: 'mkdir -p "$NODE_ROOT/opt" && echo "$GREETING from $(pwd)" > "$NODE_ROOT/opt/.initialised"',
    creates: '/opt/.initialised',
    undo: 'rm -f "$NODE_ROOT/opt/.initialised"',
    env: { GREETING: 'hello' },
  };

  it('creates guard: run → no-op → verify → drift (marker deleted) → remove via undo', async () => {
    const full = join(node.root, 'opt/.initialised');
    expect((await commandUnit.plan(marker, node.ctx())).summary).to.match(/^run ".*" \(\/opt\/\.initialised missing\)$/);
    expect(existsSync(full), 'plan runs nothing').to.equal(false);
    const ran = await commandUnit.apply(marker, node.ctx());
    expect(ran.action).to.equal('create');
    // env, NODE_ROOT and cwd (the node root) reach the command.
    expect(readFileSync(full, 'utf8')).to.equal(`hello from ${node.root}\n`);
    const again = await commandUnit.apply(marker, node.ctx());
    expect(again.action).to.equal('unchanged');
    expect(again.summary).to.match(/\/opt\/\.initialised exists/);
    expect((await commandUnit.verify(marker, node.ctx())).action).to.equal('unchanged');
    rmSync(full);
    const drift = await commandUnit.verify(marker, node.ctx());
    expect(drift.action).to.equal('create');
    expect(drift.summary).to.match(/^drift: \/opt\/\.initialised missing/);
    await commandUnit.apply(marker, node.ctx());
    const removed = await commandUnit.remove(marker, node.ctx());
    expect(removed.action).to.equal('remove');
    expect(existsSync(full)).to.equal(false);
    expect((await commandUnit.remove(marker, node.ctx())).summary).to.match(/nothing to undo/);
  });

  it('unless and onlyIf guards decide, evaluated on the node', async () => {
    const flag = join(node.root, 'flag');
    const unless: CommandUnitSpec = { id: 'u', kind: 'command', run: 'echo x >> "$NODE_ROOT/count"', unless: 'test -f "$NODE_ROOT/flag"' };
    expect((await commandUnit.apply(unless, node.ctx())).action).to.equal('create');
    writeFileSync(flag, '');
    expect((await commandUnit.apply(unless, node.ctx())).action).to.equal('unchanged');
    expect(readFileSync(join(node.root, 'count'), 'utf8')).to.equal('x\n');

    const onlyIf: CommandUnitSpec = { id: 'o', kind: 'command', run: 'echo y >> "$NODE_ROOT/count"', onlyIf: 'test -f "$NODE_ROOT/go"' };
    const skipped = await commandUnit.apply(onlyIf, node.ctx());
    expect(skipped.action).to.equal('skip');
    writeFileSync(join(node.root, 'go'), '');
    expect((await commandUnit.apply(onlyIf, node.ctx())).action).to.equal('create');
    expect(readFileSync(join(node.root, 'count'), 'utf8')).to.equal('x\ny\n');
  });

  it('a failing command reports its exit status and output tail; output is bounded (head and tail kept)', async () => {
    const fail: CommandUnitSpec = { id: 'f', kind: 'command', run: 'echo starting; echo "disk full" >&2; exit 3' };
    const err = await expectReject(commandUnit.apply(fail, node.ctx()), /exited with status 3: disk full/);
    expect(err).to.be.instanceOf(CommandFailedError);
    expect((err as CommandFailedError).output.text).to.equal('starting\ndisk full\n');

    const chatty: CommandUnitSpec = { id: 'c', kind: 'command', run: 'echo FIRST; seq 1 200000; echo LAST' };
    const r = await commandUnit.apply(chatty, node.ctx());
    expect(r.output?.truncated).to.equal(true);
    expect(r.output?.text.startsWith('FIRST\n1\n')).to.equal(true);
    expect(r.output?.text.endsWith('200000\nLAST\n')).to.equal(true);
    expect(r.output?.text.length).to.be.below(70 * 1024);
  });

  it('a command that succeeds without creating its `creates` path is a failure (it would run forever)', async () => {
    await expectReject(commandUnit.apply({ id: 'n', kind: 'command', run: 'true', creates: '/never' }, node.ctx()), /did not create \/never/);
  });

  it('a unit timeout kills the whole process group (SIGTERM, then SIGKILL) and reports the timeout', async () => {
    mkdirSync(join(node.root, 'run'));
    // The child ignores SIGTERM: only the SIGKILL after the grace stops it.
    const slow: CommandUnitSpec = {
      id: 'slow', kind: 'command', timeoutMs: 800,
      run: 'sh -c \'trap "" TERM; echo $$ > "$NODE_ROOT/run/child.pid"; exec sleep 60\' & wait',
    };
    const started = Date.now();
    const report = await runBundle({ name: 'b', version: '1', variables: {}, units: [slow], verify: [] }, 'apply', {
      handlers: createHandlerRegistry(), context: node.base,
    });
    expect(report.ok).to.equal(false);
    expect(report.failure?.unitId).to.equal('slow');
    expect(report.failure?.reason).to.equal('unit slow timed out after 800ms');
    expect(Date.now() - started).to.be.below(8000);
    const pid = Number(readFileSync(join(node.root, 'run/child.pid'), 'utf8'));
    await waitFor('the timed-out command\'s child to be gone', () => !isAlive(pid), { timeoutMs: 5000 });
  });
});
