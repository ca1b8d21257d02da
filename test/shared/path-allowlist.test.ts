/**
 * A group's allowed paths (shared/path-allowlist.ts), by table: normalisation of the list,
 * matching by whole segments, what each unit kind writes, and templated paths judged by their
 * fixed directory.
 */
import { expect } from 'chai';
import { firstViolation, normaliseAllowedPaths, pathAllowed, unitWrites } from '../../shared/path-allowlist';
import type { UnitSpec } from '../../shared/bundle';

describe('path allowlist (tables)', () => {
  it('normalises the list: sorted, without duplicates or trailing slashes; refuses relative, "..", NUL, templates', () => {
    expect(normaliseAllowedPaths(['/opt//myapp/', '/etc/myapp', ' /etc/myapp ', '', '/etc/./x'])).to.deep.equal(['/etc/myapp', '/etc/x', '/opt/myapp']);
    const bad: [string, RegExp][] = [
      ['etc/myapp', /must be absolute/], ['/etc/myapp/../shadow', /must not contain "\.\." segments/],
      ['/etc/\0x', /NUL byte/], ['/etc/{{ vars.x }}', /must not be a template/], [`/${'a'.repeat(1100)}`, /longer than 1024/],
    ];
    for (const [entry, want] of bad) expect(() => normaliseAllowedPaths([entry]), entry).to.throw(want);
    expect(() => normaliseAllowedPaths(Array.from({ length: 65 }, (_, i) => `/p${i}`))).to.throw(/at most 64 paths/);
  });

  it('matches by whole segments, after normalisation; an empty list allows all', () => {
    const rows: [string, string[], boolean][] = [
      ['/etc/myapp', ['/etc/myapp'], true],
      ['/etc/myapp/conf.d/x', ['/etc/myapp'], true],
      ['/etc//myapp/./x', ['/etc/myapp'], true],
      ['/etc/myapp2/x', ['/etc/myapp'], false],
      ['/etc/shadow', ['/etc/myapp', '/opt'], false],
      ['/anything', ['/'], true],
      ['/anything', [], true],
    ];
    for (const [path, allowed, want] of rows) expect(pathAllowed(path, allowed), `${path} in ${allowed.join(',')}`).to.equal(want);
  });

  it('what each kind writes: file and directory paths, a systemd unit file only with content; package and command nothing', () => {
    const rows: [UnitSpec, string[]][] = [
      [{ id: 'f', kind: 'file', path: '/etc/a', content: 'x' }, ['/etc/a']],
      [{ id: 'd', kind: 'directory', path: '/opt/a' }, ['/opt/a']],
      [{ id: 's', kind: 'systemd', unit: 'a.service', content: '[Service]' }, ['/etc/systemd/system/a.service']],
      [{ id: 's2', kind: 'systemd', unit: 'a.service', enabled: true }, []],
      [{ id: 'p', kind: 'package', name: 'chrony' }, []],
      [{ id: 'c', kind: 'command', run: 'touch /etc/shadow' }, []],
    ];
    for (const [unit, want] of rows) expect(unitWrites(unit), unit.id).to.deep.equal(want);
  });

  it('templated paths are judged by their fixed directory', () => {
    const rows: [string, string | undefined][] = [
      ['/opt/myapp/{{ vars.x }}.conf', undefined],
      ['/opt/myapp/{{ vars.x }}/{{ vars.y }}', undefined],
      ['/opt/myapp{{ vars.x }}/y', 'c'],
      ['/opt/{{ vars.x }}', 'c'],
      ['{{ vars.x }}', 'c'],
    ];
    for (const [path, want] of rows) {
      const v = firstViolation({ units: [{ id: 'c', kind: 'file', path, content: 'x' }] }, ['/opt/myapp']);
      expect(v?.unitId, path).to.equal(want);
    }
  });
});
