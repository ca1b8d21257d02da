/** systemd unit names accepted by the systemd unit and manager, by table. */
import { expect } from 'chai';
import { isValidUnitName } from '../../agent/systemd';

describe('systemd unit names', () => {
  it('validates systemd unit names', () => {
    const table: Array<[string, boolean]> = [
      ['chronyd.service', true], ['getty@tty1.service', true], ['getty@.service', true], ['sys-fs.mount', true],
      ['foo', false], ['../x.service', false], ['a/b.service', false], ['-rf.service', false], ['.hidden.service', false],
      ['x.unknown', false], ['', false], [`${'a'.repeat(300)}.service`, false],
    ];
    for (const [name, want] of table) expect(isValidUnitName(name), name).to.equal(want);
  });

});
