import { expect } from 'chai';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { directoryUnit } from '../../agent/units/directory-unit';
import type { DirectoryUnitSpec } from '../../shared/bundle/types';
import { expectReject } from '../helpers';
import { tempNode, type TempNode } from './unit-test-context';

describe('directory unit (real directories under a node root)', () => {
  let node: TempNode;
  beforeEach(() => { node = tempNode('dir-unit'); });
  afterEach(() => node.cleanup());

  const spec = (over: Partial<DirectoryUnitSpec> = {}): DirectoryUnitSpec => ({ id: 'd', kind: 'directory', path: '/opt/app/data', mode: '0750', ...over });

  it('create → no-op → update → drift → remove (only when empty)', async () => {
    const full = join(node.root, 'opt/app/data');
    expect((await directoryUnit.plan(spec(), node.ctx())).action).to.equal('create');
    expect(existsSync(full)).to.equal(false);
    expect((await directoryUnit.apply(spec(), node.ctx())).action).to.equal('create');
    // Exact mode despite the umask.
    expect(statSync(full).mode & 0o7777).to.equal(0o750);
    expect((await directoryUnit.apply(spec(), node.ctx())).action).to.equal('unchanged');

    const upd = await directoryUnit.apply(spec({ mode: '2770', owner: 'nobody', group: 'nogroup' }), node.ctx());
    expect(upd.summary).to.equal('update /opt/app/data: mode 0750→2770, owner root→nobody, group root→nogroup');
    const st = statSync(full);
    expect([st.mode & 0o7777, st.uid, st.gid], 'setgid survives the chown').to.deep.equal([0o2770, 65534, 65534]);

    chmodSync(full, 0o777);
    const drift = await directoryUnit.verify(spec({ mode: '2770', owner: 'nobody', group: 'nogroup' }), node.ctx());
    expect(drift.action).to.equal('update');
    expect(drift.changes).to.deep.equal([{ field: 'mode', before: '0777', after: '2770' }]);

    writeFileSync(join(full, 'someone-elses'), 'x');
    const kept = await directoryUnit.remove(spec(), node.ctx());
    expect(kept.action).to.equal('unchanged');
    expect(kept.summary).to.match(/kept \/opt\/app\/data: not empty \(1 entry/);
    expect(existsSync(full)).to.equal(true);
    const { rmSync } = await import('node:fs');
    rmSync(join(full, 'someone-elses'));
    expect((await directoryUnit.remove(spec(), node.ctx())).action).to.equal('remove');
    expect(existsSync(full)).to.equal(false);
  });

  it('ensure: absent removes the tree; a file in the way is an error', async () => {
    mkdirSync(join(node.root, 'opt/app/data/sub'), { recursive: true });
    writeFileSync(join(node.root, 'opt/app/data/sub/f'), 'x');
    expect((await directoryUnit.apply(spec({ ensure: 'absent' }), node.ctx())).action).to.equal('remove');
    expect(existsSync(join(node.root, 'opt/app/data'))).to.equal(false);
    writeFileSync(join(node.root, 'opt/app/data'), 'file');
    await expectReject(directoryUnit.apply(spec(), node.ctx()), /exists and is not a directory/);
  });
});
