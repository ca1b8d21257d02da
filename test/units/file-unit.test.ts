import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileUnit } from '../../agent/units/file-unit';
import type { FileUnitSpec } from '../../shared/bundle/types';
import { expectReject } from '../helpers';
import { tempNode, type TempNode } from './unit-test-context';

describe('file unit (real files under a node root)', () => {
  let node: TempNode;
  beforeEach(() => { node = tempNode('file-unit'); });
  afterEach(() => node.cleanup());

  const spec = (over: Partial<FileUnitSpec> = {}): FileUnitSpec => ({ id: 'conf', kind: 'file', path: '/etc/app/app.conf', content: 'a=1\nb=2\n', mode: '0640', ...over });

  it('create → no-op → update → verify → drift → remove', async () => {
    const full = join(node.root, 'etc/app/app.conf');
    const plan = await fileUnit.plan(spec(), node.ctx());
    expect(plan.action).to.equal('create');
    expect(existsSync(full), 'plan writes nothing').to.equal(false);

    const created = await fileUnit.apply(spec(), node.ctx());
    expect(created.action).to.equal('create');
    expect(readFileSync(full, 'utf8')).to.equal('a=1\nb=2\n');
    expect(statSync(full).mode & 0o7777).to.equal(0o640);

    const again = await fileUnit.apply(spec(), node.ctx());
    expect(again.action).to.equal('unchanged');
    expect(again.summary).to.equal('/etc/app/app.conf is up to date');

    const updated = await fileUnit.apply(spec({ content: 'a=1\nb=3\nc=4\n', mode: '0644' }), node.ctx());
    expect(updated.action).to.equal('update');
    expect(updated.summary).to.equal('update /etc/app/app.conf: content 2→3 lines (+2 -1), mode 0640→0644');
    expect(updated.changes.find((c) => c.field === 'content')?.before).to.match(/^2 lines sha256:[0-9a-f]{12}$/);
    expect(readFileSync(full, 'utf8')).to.equal('a=1\nb=3\nc=4\n');
    expect((await fileUnit.verify(spec({ content: 'a=1\nb=3\nc=4\n', mode: '0644' }), node.ctx())).action).to.equal('unchanged');

    // Drift behind the agent's back: content and mode.
    writeFileSync(full, 'tampered\n');
    chmodSync(full, 0o600);
    const drift = await fileUnit.verify(spec({ content: 'a=1\nb=3\nc=4\n', mode: '0644' }), node.ctx());
    expect(drift.action).to.equal('update');
    expect(drift.changes.map((c) => c.field)).to.deep.equal(['content', 'mode']);
    expect(readFileSync(full, 'utf8'), 'verify repairs nothing').to.equal('tampered\n');

    const removed = await fileUnit.remove(spec(), node.ctx());
    expect(removed.action).to.equal('remove');
    expect(existsSync(full)).to.equal(false);
    expect((await fileUnit.remove(spec(), node.ctx())).action).to.equal('unchanged');
  });

  it('sets owner and group under a sandbox root (we are root) and reports them as drift', async () => {
    const s = spec({ owner: 'nobody', group: 'nogroup' });
    await fileUnit.apply(s, node.ctx());
    const full = join(node.root, 'etc/app/app.conf');
    const st = statSync(full);
    expect(st.uid).to.equal(65534);
    expect(st.gid).to.equal(65534);
    chownSync(full, 0, 0);
    const drift = await fileUnit.verify(s, node.ctx());
    expect(drift.summary).to.equal('update /etc/app/app.conf: owner root→nobody, group root→nogroup');
    await fileUnit.apply(s, node.ctx());
    expect(statSync(full).uid).to.equal(65534);
    await expectReject(fileUnit.plan(spec({ owner: 'no-such-user' }), node.ctx()), /unknown user "no-such-user"/);
  });

  it('keeps an existing file\'s owner and mode when the unit names none; ensure: absent removes', async () => {
    const full = join(node.root, 'etc/keep');
    mkdirSync(join(node.root, 'etc'));
    writeFileSync(full, 'old\n', { mode: 0o600 });
    chownSync(full, 65534, 65534);
    await fileUnit.apply({ id: 'k', kind: 'file', path: '/etc/keep', content: 'new\n' }, node.ctx());
    const st = statSync(full);
    expect([st.mode & 0o7777, st.uid, st.gid]).to.deep.equal([0o600, 65534, 65534]);
    const absent: FileUnitSpec = { id: 'k', kind: 'file', path: '/etc/keep', ensure: 'absent' };
    expect((await fileUnit.plan(absent, node.ctx())).action).to.equal('remove');
    await fileUnit.apply(absent, node.ctx());
    expect(existsSync(full)).to.equal(false);
    expect((await fileUnit.apply(absent, node.ctx())).action).to.equal('unchanged');
  });

  it('writes atomically: replaces a symlink with a file, leaves no temporaries, sweeps stale ones', async () => {
    mkdirSync(join(node.root, 'etc/app'), { recursive: true });
    writeFileSync(join(node.root, 'etc/app/target'), 'untouched\n');
    symlinkSync('target', join(node.root, 'etc/app/app.conf'));
    // Temporaries left by writers killed mid-write: of this file and of another one in the
    // directory (4194305 is past Linux's largest pid: never alive), and of this process's pid
    // (an agent restarted in a container gets its predecessor's) that it is not writing.
    const dir = join(node.root, 'etc/app');
    for (const name of ['.app.conf.cluster-tmp-4194305-deadbeef', '.other.conf.cluster-tmp-4194305-0a1b2c3d', `.x.cluster-tmp-${process.pid}-00ff00ff`]) writeFileSync(join(dir, name), 'half');
    // Kept: a live writer's (the process that started this test: \`cluster-agent apply\` beside
    // the agent), names not of writeFileAtomic's form, and a directory of that form.
    const kept = [`.other.conf.cluster-tmp-${process.ppid}-cd34cd34`, '.notes.cluster-tmp-todo', 'a.cluster-tmp-1-deadbeef', '.d.cluster-tmp-4194305-deadbeef'];
    for (const name of kept.slice(0, 3)) writeFileSync(join(dir, name), 'keep');
    mkdirSync(join(dir, kept[3]));
    const r = await fileUnit.apply(spec(), node.ctx());
    expect(r.summary).to.match(/replace symlink with a file/);
    expect(readFileSync(join(node.root, 'etc/app/target'), 'utf8'), 'the link target is not written through').to.equal('untouched\n');
    expect(readdirSync(dir).sort(), 'the dead writers\' temporaries swept, nothing else').to.deep.equal([...kept, 'app.conf', 'target'].sort());
  });

  it('keeps paths inside the root; refuses directories in the way and an un-inlined source', async () => {
    const hostPasswd = readFileSync('/etc/passwd', 'utf8');
    // A traversal is refused, not normalised into the root: it is a mistake or an attack.
    await expectReject(fileUnit.apply(spec({ path: '/../../etc/passwd', content: 'sandboxed\n' }), node.ctx()), /must not contain "\.\." segments/);
    expect(existsSync(join(node.root, 'etc/passwd'))).to.equal(false);
    expect(readFileSync('/etc/passwd', 'utf8')).to.equal(hostPasswd);
    mkdirSync(join(node.root, 'etc/app/app.conf'), { recursive: true });
    await expectReject(fileUnit.apply(spec(), node.ctx()), /is a directory/);
    await expectReject(fileUnit.plan(spec({ path: '/x', content: undefined, source: 'big.bin' }), node.ctx()), /source "big.bin" was not inlined .*--files-dir/);
  });

  it('compares content byte for byte whatever the sizes (same size, multibyte, empty) and does not hang on a FIFO', async () => {
    const full = join(node.root, 'etc/app/app.conf');
    const rows: { content: string; onDisk: string | Buffer; action: 'unchanged' | 'update' }[] = [
      { content: 'a=1\nb=2\n', onDisk: 'a=1\nb=3\n', action: 'update' }, // same size, one byte differs
      { content: 'a=1\nb=2\n', onDisk: 'a=1\nb=2\n', action: 'unchanged' },
      { content: 'naïve=é\n', onDisk: 'naïve=é\n', action: 'unchanged' }, // sizes in bytes, not characters
      { content: 'naïve=é\n', onDisk: Buffer.from('naïve=e\n\0', 'utf8'), action: 'update' }, // same byte length as the UTF-8 content
      { content: '', onDisk: '', action: 'unchanged' },
      { content: '', onDisk: 'x', action: 'update' },
      { content: 'a=1\n', onDisk: 'a=1\nb=2\n', action: 'update' },
    ];
    for (const row of rows) {
      mkdirSync(join(node.root, 'etc/app'), { recursive: true });
      writeFileSync(full, row.onDisk);
      chmodSync(full, 0o640);
      const plan = await fileUnit.verify(spec({ content: row.content }), node.ctx());
      expect(plan.action, JSON.stringify(row)).to.equal(row.action);
      if (row.action === 'update') expect(plan.changes.map((c) => c.field), JSON.stringify(row)).to.deep.equal(['content']);
    }
    // A FIFO is not a regular file: reported as a type change at once, never opened for reading.
    unlinkSync(full);
    execFileSync('mkfifo', [full]);
    const fifo = await fileUnit.verify(spec(), node.ctx());
    expect(fifo.changes.map((c) => c.field)).to.include('type');
  });
});
