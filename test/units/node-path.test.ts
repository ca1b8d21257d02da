/**
 * A unit's path under the node root, on a real file system: `..` and NUL are refused, and a
 * symlink made under a sandbox root (as an earlier unit could, `ln -sfn OUTSIDE escape`)
 * cannot lead a path outside the root, whether it is the path's parent or the path itself.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveUnderRoot } from '../../agent/units/node-path';

describe('units: paths under the node root', () => {
  let base: string;
  let root: string;
  let outside: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'node-path-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(join(root, 'etc'), { recursive: true });
    mkdirSync(outside);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('joins an absolute path under the root, existing or not', () => {
    expect(resolveUnderRoot(root, '/etc/motd')).to.equal(join(root, 'etc/motd'));
    expect(resolveUnderRoot(root, '/opt/app/new/file')).to.equal(join(root, 'opt/app/new/file'));
    expect(resolveUnderRoot('/', '/etc/motd')).to.equal('/etc/motd');
  });

  it('refuses .. segments and NUL bytes, also on a real root', () => {
    for (const r of [root, '/']) {
      expect(() => resolveUnderRoot(r, '/../etc/shadow')).to.throw(/must not contain "\.\." segments/);
      expect(() => resolveUnderRoot(r, '/opt/../../etc')).to.throw(/"\.\." segments/);
      expect(() => resolveUnderRoot(r, '/etc/a\0b')).to.throw(/NUL byte/);
      expect(() => resolveUnderRoot(r, 'etc/motd')).to.throw(/must be absolute/);
    }
  });

  it('refuses a path that a symlink under the root leads outside it', () => {
    symlinkSync(outside, join(root, 'escape'));
    symlinkSync(join(outside, 'target'), join(root, 'etc', 'link'));
    symlinkSync('../../outside', join(root, 'etc', 'relative'));
    expect(() => resolveUnderRoot(root, '/escape/x')).to.throw(/through a symbolic link/);
    expect(() => resolveUnderRoot(root, '/escape')).to.throw(/through a symbolic link/);
    expect(() => resolveUnderRoot(root, '/etc/relative/deep/x')).to.throw(/through a symbolic link/);
    // A dangling link to outside: a write through it would create its target out there.
    expect(() => resolveUnderRoot(root, '/etc/link')).to.throw(/through a symbolic link/);
    // A link that stays inside the root is fine.
    symlinkSync(join(root, 'etc'), join(root, 'etc2'));
    expect(resolveUnderRoot(root, '/etc2/motd')).to.equal(join(root, 'etc2/motd'));
  });
});
