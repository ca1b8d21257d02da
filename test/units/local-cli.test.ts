import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAppliedRecord, reverifyApplied } from '../../agent/applied-record';
import { createUnitContext } from '../../agent/unit-context';
import { createLogger } from '../../shared/logger';
import { BIN, run, spawnNode, waitFor, type ManagedProcess } from '../helpers';
import { snapshot } from './fs-snapshot';
import { isAlive } from './proc-alive';

/** Every path under `dir` (recursively). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

describe('cluster-agent apply|plan|verify|remove (real processes on a sandbox root)', function () {
  this.timeout(120_000);
  let dir: string;
  let root: string;
  let state: string;
  const procs: ManagedProcess[] = [];
  const strays: number[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'local-cli-'));
    root = join(dir, 'root');
    state = join(dir, 'state');
    mkdirSync(root);
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill();
    for (const pid of strays.splice(0)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const agent = (args: string[]) => run(process.execPath, [BIN.agent, ...args, '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  const GOOD = `
name: web
version: 2
variables: { port: "8080" }
units:
  - { id: app-dir, kind: directory, path: /opt/web, mode: "0755" }
  - id: conf
    kind: file
    path: /opt/web/web.conf
    mode: "0640"
    content: |
      listen {{ vars.port }}
      workers {{ facts.cpu.cores }}
  - { id: init, kind: command, run: 'touch "$NODE_ROOT/opt/web/.init"', creates: /opt/web/.init, undo: 'rm -f "$NODE_ROOT/opt/web/.init"' }
verify:
  - { id: conf-there, command: "test -s opt/web/web.conf" }
`;

  it('apply removes the units the applied record has and the new bundle dropped; plan lists them as remove', async () => {
    const v = (version: number, units: string): string => write(`v${version}.yaml`, `name: drop\nversion: ${version}\nunits:\n${units}`);
    const a = '  - { id: a, kind: file, path: /opt/a.conf, content: "a" }\n';
    const b = '  - { id: b, kind: file, path: /opt/b.conf, content: "b" }\n';
    expect((await agent(['apply', '--bundle', v(1, a + b)])).code).to.equal(0);
    const plan = await agent(['plan', '--bundle', v(2, a)]);
    expect(plan.code, plan.stderr).to.equal(2);
    expect(plan.stdout).to.contain('- b: remove file /opt/b.conf (from drop@1: not in drop@2)');
    expect(existsSync(join(root, 'opt/b.conf')), 'plan changes nothing').to.equal(true);
    const up = await agent(['apply', '--bundle', v(2, a)]);
    expect(up.code, up.stderr).to.equal(0);
    expect(up.stdout).to.contain('- b: remove /opt/b.conf');
    expect(up.stdout).to.match(/applied drop@2: 0 changed, 1 dropped unit\(s\) removed, 1 unchanged/);
    expect(existsSync(join(root, 'opt/b.conf'))).to.equal(false);
    expect(readFileSync(join(root, 'opt/a.conf'), 'utf8')).to.equal('a');
    expect((await readAppliedRecord(state))?.units.map((u) => u.id)).to.deep.equal(['a']);
  });

  it('a removal that fails exits 1 and keeps the unit pending; cluster-agent remove removes it with the applied bundle', async () => {
    const v = (version: number, units: string): string => write(`p${version}.yaml`, `name: pend\nversion: ${version}\nunits:\n${units}`);
    const a = '  - { id: a, kind: file, path: /opt/a.conf, content: "a" }\n';
    const m = `  - { id: m, kind: command, run: 'touch "$NODE_ROOT/opt/m"', creates: /opt/m, undo: 'test ! -f "$NODE_ROOT/block" && rm -f "$NODE_ROOT/opt/m"' }\n`;
    expect((await agent(['apply', '--bundle', v(1, a + m)])).code).to.equal(0);
    writeFileSync(join(root, 'block'), '');
    const up = await agent(['apply', '--bundle', v(2, a)]);
    expect(up.code).to.equal(1);
    expect(up.stdout).to.match(/FAILED apply of pend@2 at unit m: removing what pend@2 dropped failed: .*still on the node: m/);
    expect((await readAppliedRecord(state))?.pendingRemoval?.map((p) => p.spec.id)).to.deep.equal(['m']);
    rmSync(join(root, 'block'));
    const rm = await agent(['remove']);
    expect(rm.code, rm.stderr).to.equal(0);
    expect(existsSync(join(root, 'opt/m')), 'the pending unit was undone').to.equal(false);
    expect(existsSync(join(root, 'opt/a.conf'))).to.equal(false);
    expect(await readAppliedRecord(state)).to.equal(undefined);
  });

  it('plan exits 2 and changes nothing; apply exits 0; a second apply says nothing changed; verify exits 0, then 2 on drift', async () => {
    const bundle = write('web.yaml', GOOD);
    const facts = write('facts.json', JSON.stringify({ cpu: { cores: 6 } }));
    const before = snapshot(root);
    const plan = await agent(['plan', '--bundle', bundle, '--facts', facts]);
    expect(plan.code, plan.stderr).to.equal(2);
    expect(plan.stdout).to.contain('+ conf: create /opt/web/web.conf (2 lines');
    expect(plan.stdout).to.contain('plan for web@2: 3 to change, 0 unchanged');
    expect(snapshot(root)).to.deep.equal(before);
    expect(existsSync(state)).to.equal(false);

    const dry = await agent(['apply', '--dry-run', '--bundle', bundle, '--facts', facts]);
    expect(dry.code).to.equal(2);
    expect(snapshot(root)).to.deep.equal(before);

    const apply = await agent(['apply', '--bundle', bundle, '--facts', facts, '--vars', 'port=9090']);
    expect(apply.code, apply.stdout + apply.stderr).to.equal(0);
    expect(readFileSync(join(root, 'opt/web/web.conf'), 'utf8')).to.equal('listen 9090\nworkers 6\n');
    expect(apply.stdout).to.contain('applied web@2: 3 changed, 0 unchanged');

    const again = await agent(['apply', '--bundle', bundle, '--facts', facts, '--vars', 'port=9090']);
    expect(again.code).to.equal(0);
    expect(again.stdout).to.match(/= conf: \/opt\/web\/web\.conf is up to date/);
    expect(again.stdout).to.match(/nothing to change: web@2 already applied \(3 units unchanged/);

    const verify = await agent(['verify']);
    expect(verify.code, verify.stdout).to.equal(0);

    writeFileSync(join(root, 'opt/web/web.conf'), 'listen 1\n');
    const drift = await agent(['verify', '-o', 'json']);
    expect(drift.code).to.equal(2);
    const report = JSON.parse(drift.stdout) as { changed: string[]; units: { unitId: string; plan?: { summary: string } }[] };
    expect(report.changed).to.deep.equal(['conf']);
    expect(report.units[1].plan?.summary).to.equal('update /opt/web/web.conf: content 1→2 lines (+2 -1)');

    const removed = await agent(['remove']);
    expect(removed.code, removed.stdout).to.equal(0);
    expect(existsSync(join(root, 'opt/web'))).to.equal(false);
    expect(await readAppliedRecord(state)).to.equal(undefined);
  });

  it('an invalid bundle is refused with every problem listed and changes nothing', async () => {
    mkdirSync(join(root, 'opt'));
    const before = snapshot(root);
    const bad = write('bad.yaml', `
name: web
version: 1
units:
  - { id: a, kind: directory, path: /opt/a }
  - { id: b, kind: file, path: /opt/b, content: x, mode: 644 }
  - { id: a, kind: file, path: /opt/c, content: x, source: y }
  - { id: s, kind: systemd, unit: x.service, restartWhenChanged: [zz] }
`);
    const r = await agent(['apply', '--bundle', bad]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal([
      'cluster-agent: invalid bundle web; nothing was changed (4 problems):',
      '  units[1].mode: must be an octal string like "0644" (quote it: YAML reads 0644 as a decimal number)',
      '  units[2]: exactly one of content or source is required (both given)',
      '  units[2].id: duplicate id "a" (first used by units[0])',
      '  units[3].restartWhenChanged[0]: unknown unit id "zz"',
      '',
    ].join('\n'));
    expect(snapshot(root)).to.deep.equal(before);
    expect(existsSync(state)).to.equal(false);

    const missingVar = write('tpl.yaml', 'name: t\nversion: 1\nunits:\n  - { id: a, kind: directory, path: /opt/a }\n  - { id: f, kind: file, path: /opt/f, content: "{{ vars.nope }}" }\n');
    const t = await agent(['apply', '--bundle', missingVar]);
    expect(t.code).to.equal(1);
    expect(t.stderr).to.contain('unit f, field content: undefined variable vars.nope (defined: none)');
    expect(snapshot(root)).to.deep.equal(before);

    const flag = await agent(['apply', '--bundle', missingVar, '--bogus']);
    expect(flag.code).to.equal(1);
    expect(flag.stderr).to.equal('cluster-agent: unknown flag --bogus (run with --help to list the flags)\n');
  });

  it('source: is refused without --files-dir, and read from it with', async () => {
    const b = write('src.yaml', 'name: s\nversion: 1\nunits:\n  - { id: f, kind: file, path: /etc/motd, source: motd }\n');
    const r = await agent(['apply', '--bundle', b]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('unit f: source file "motd" not found (pass --files-dir DIR holding them)');
    mkdirSync(join(dir, 'files'));
    writeFileSync(join(dir, 'files', 'motd'), 'welcome\n');
    const ok = await agent(['apply', '--bundle', b, '--files-dir', join(dir, 'files')]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(readFileSync(join(root, 'etc/motd'), 'utf8')).to.equal('welcome\n');
  });

  it('SIGKILL in the middle of a run, then a re-run: converges, no half-written file, no temporaries left', async () => {
    const N = 150;
    // Under the agent's 512 KiB bundle bound (300 files of ~1.3 KB): the kill lands in the slow unit.
    const body = (i: number): string => `${new Array<string>(150).fill(`file ${i}`).join(' ')}\n`;
    const units: string[] = [];
    for (let i = 0; i < N; i++) units.push(`  - { id: f${i}, kind: file, path: /data/a/f${i}.txt, content: "${body(i).trimEnd()}\\n" }`);
    units.push(`  - { id: slow, kind: command, run: 'echo $$ >> "$NODE_ROOT/slow.pids"; sleep 2; touch "$NODE_ROOT/data/slow.done"', creates: /data/slow.done }`);
    for (let i = 0; i < N; i++) units.push(`  - { id: g${i}, kind: file, path: /data/b/g${i}.txt, content: "${body(i).trimEnd()}\\n" }`);
    const bundle = write('big.yaml', `name: big\nversion: 1\nunits:\n${units.join('\n')}\n`);

    const check = (): void => {
      for (const p of walk(root)) {
        expect(p, 'no temporary file is visible under its real name').to.not.match(/\.cluster-tmp-[^/]*\.txt$/);
        const m = /\/([fg])(\d+)\.txt$/.exec(p);
        if (m) expect(readFileSync(p, 'utf8') === body(Number(m[2])), `${p} is complete`).to.equal(true);
      }
    };

    // First kill: while the slow command runs (half the files written, half not).
    let p = spawnNode('apply-1', BIN.agent, ['apply', '--bundle', bundle, '--root', root, '--state-dir', state]);
    procs.push(p);
    await p.waitForLog(`+ f${N - 1}:`, 60_000);
    await waitFor('the slow command to start', () => existsSync(join(root, 'slow.pids')));
    await p.kill('SIGKILL');
    strays.push(...readFileSync(join(root, 'slow.pids'), 'utf8').trim().split('\n').map(Number));
    expect(existsSync(join(root, 'data/b')), 'the units after the slow one had not run').to.equal(false);
    check();

    // Second kill: at an arbitrary moment while files are being written.
    p = spawnNode('apply-2', BIN.agent, ['apply', '--bundle', bundle, '--root', root, '--state-dir', state]);
    procs.push(p);
    await p.waitForLog('+ g', 60_000).catch(() => undefined);
    await p.kill('SIGKILL');
    if (existsSync(join(root, 'slow.pids'))) strays.push(...readFileSync(join(root, 'slow.pids'), 'utf8').trim().split('\n').map(Number));
    check();

    const rerun = await agent(['apply', '--bundle', bundle]);
    expect(rerun.code, rerun.stdout.slice(-2000) + rerun.stderr).to.equal(0);
    check();
    expect(walk(root).filter((f) => f.includes('.cluster-tmp-')), 'temporaries of killed runs are swept').to.deep.equal([]);
    expect(readdirSync(join(root, 'data/a'))).to.have.length(N);
    expect(readdirSync(join(root, 'data/b'))).to.have.length(N);
    const verify = await agent(['verify']);
    expect(verify.code, verify.stdout.slice(-2000)).to.equal(0);
  });

  it('SIGTERM cancels the run: the running command is killed and the report says what had changed', async () => {
    const bundle = write('c.yaml', `name: c
version: 1
units:
  - { id: d, kind: directory, path: /x }
  - { id: slow, kind: command, run: 'echo $$ > "$NODE_ROOT/pid"; exec sleep 60', creates: /x/done }
  - { id: after, kind: directory, path: /y }
`);
    const p = spawnNode('apply-c', BIN.agent, ['apply', '--bundle', bundle, '--root', root, '--state-dir', state]);
    procs.push(p);
    await waitFor('the slow command to start', () => existsSync(join(root, 'pid')) && readFileSync(join(root, 'pid'), 'utf8').trim() !== '');
    const pid = Number(readFileSync(join(root, 'pid'), 'utf8'));
    strays.push(pid);
    p.proc.kill('SIGTERM');
    const exit = await p.exited;
    expect(exit.code).to.equal(1);
    expect(p.logs).to.contain('cancelled c@1 during unit slow; already changed: d');
    await waitFor('the command to be gone', () => !isAlive(pid), { timeoutMs: 5000 });
    expect(existsSync(join(root, 'y'))).to.equal(false);
  });

  it('the applied record survives the process; reverifyApplied reports drift by unit and field', async () => {
    const bundle = write('web.yaml', GOOD);
    const facts = write('facts.json', JSON.stringify({ cpu: { cores: 2 } }));
    expect((await agent(['apply', '--bundle', bundle, '--facts', facts])).code).to.equal(0);
    const record = await readAppliedRecord(state);
    expect(record?.bundleName).to.equal('web');
    expect(record?.status).to.equal('complete');
    expect(record?.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(statSync(join(state, 'applied.json')).mode & 0o777).to.equal(0o600);

    const ctx = createUnitContext({ root, logger: createLogger({ level: 'silent' }) });
    try {
      const clean = await reverifyApplied(state, ctx);
      expect(clean?.drifted).to.equal(false);
      expect(clean?.appliedDigest).to.equal(record?.digest);

      writeFileSync(join(root, 'opt/web/web.conf'), 'listen 8080\nworkers 2\nextra\n', { mode: 0o666 });
      const { chmodSync } = await import('node:fs');
      chmodSync(join(root, 'opt/web/web.conf'), 0o666);
      rmSync(join(root, 'opt/web/.init'));
      const drift = await reverifyApplied(state, ctx);
      expect(drift?.drifted).to.equal(true);
      expect(drift?.units.map((u) => u.unitId)).to.deep.equal(['conf', 'init']);
      expect(drift?.units[0].changes.map((c) => `${c.field}:${c.before ?? ''}→${c.after ?? ''}`)).to.include('mode:0666→0640');
      expect(drift?.summary).to.match(/^2 of 3 units drifted: conf \(update \/opt\/web\/web\.conf: content 3→2 lines \(\+0 -1\), mode 0666→0640\); init \(drift: \/opt\/web\/\.init missing/);
    } finally {
      ctx.close();
    }
    // Nothing was applied on this node: no report.
    expect(await reverifyApplied(join(dir, 'empty-state'), createUnitContext({ root, logger: createLogger({ level: 'silent' }) }))).to.equal(undefined);
  });
});
