/**
 * Tiny RPMs built by the test itself (../../../shared/TESTBED.md, "Packages"): `cm-hello` 1.0
 * and 2.0, noarch, each installing /usr/share/cm-hello/version; a local repository indexed with
 * createrepo_c; and throw-away install roots whose only repository is that one (file://, no
 * network), for `dnf --installroot` and `rpm --root`. No host package or rpm database is touched:
 * rpmbuild's database and temp paths are pointed into the fixture directory too.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './processes';

export const FIXTURE_PACKAGE = 'cm-hello';
export const FIXTURE_VERSIONS = ['1.0', '2.0'] as const;
export type FixtureVersion = (typeof FIXTURE_VERSIONS)[number];

export interface RpmFixtures {
  dir: string;
  /** file:// repository with both versions. */
  repoDir: string;
  /** Path of each built .rpm. */
  rpms: Record<FixtureVersion, string>;
  /**
   * A fresh install root: etc/os-release (Rocky 9, so detection says dnf and dnf gets its
   * releasever), etc/dnf/dnf.conf and etc/yum.repos.d/cm-local.repo pointing at repoDir only.
   */
  makeRoot(name: string): Promise<string>;
  /** Removes everything (roots included). */
  destroy(): Promise<void>;
}

function spec(version: string): string {
  return [
    `Name: ${FIXTURE_PACKAGE}`,
    `Version: ${version}`,
    'Release: 1',
    'Summary: cluster manager test package',
    'License: MIT',
    'BuildArch: noarch',
    '%description',
    'A file that says which version is installed.',
    '%install',
    'mkdir -p %{buildroot}/usr/share/cm-hello',
    `echo "hello ${version}" > %{buildroot}/usr/share/cm-hello/version`,
    '%files',
    '/usr/share/cm-hello/version',
    '',
  ].join('\n');
}

async function must(what: string, command: string, args: string[], cwd: string): Promise<void> {
  const r = await run(command, args, { cwd, timeoutMs: 120_000, env: { LC_ALL: 'C' } });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${String(r.code)}): ${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`);
}

export async function buildRpmFixtures(): Promise<RpmFixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'rpm-fixtures-'));
  try {
    const top = join(dir, 'build');
    const repoDir = join(dir, 'repo');
    await mkdir(join(top, 'SPECS'), { recursive: true });
    await mkdir(repoDir);
    const rpms = {} as Record<FixtureVersion, string>;
    for (const version of FIXTURE_VERSIONS) {
      const specFile = join(top, 'SPECS', `${FIXTURE_PACKAGE}-${version}.spec`);
      await writeFile(specFile, spec(version));
      await must(`rpmbuild ${FIXTURE_PACKAGE}-${version}`, 'rpmbuild', [
        '--define', `_topdir ${top}`,
        '--define', `_rpmdir ${repoDir}`,
        '--define', `_tmppath ${join(top, 'tmp')}`,
        '--define', `_dbpath ${join(dir, 'build-rpmdb')}`,
        '--define', '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm',
        '-bb', specFile,
      ], dir);
      rpms[version] = join(repoDir, `${FIXTURE_PACKAGE}-${version}-1.noarch.rpm`);
    }
    await must('createrepo_c', 'createrepo_c', ['--quiet', repoDir], dir);

    const makeRoot = async (name: string): Promise<string> => {
      const root = await mkdtemp(join(dir, `root-${name}-`));
      await mkdir(join(root, 'etc/dnf'), { recursive: true });
      await mkdir(join(root, 'etc/yum.repos.d'), { recursive: true });
      await writeFile(join(root, 'etc/os-release'), 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9"\n');
      // gpgcheck off: the fixtures are unsigned. skip_if_unavailable off: a broken fixture repo must fail loudly.
      await writeFile(join(root, 'etc/dnf/dnf.conf'), [
        '[main]', 'gpgcheck=0', 'installonly_limit=3', 'clean_requirements_on_remove=True', 'best=True',
        'skip_if_unavailable=False', 'install_weak_deps=False', 'keepcache=False', 'metadata_expire=0', '',
      ].join('\n'));
      await writeFile(join(root, 'etc/yum.repos.d/cm-local.repo'), [
        '[cm-local]', 'name=cluster manager test packages', `baseurl=file://${repoDir}`, 'enabled=1', 'gpgcheck=0', 'metadata_expire=0', '',
      ].join('\n'));
      return root;
    };

    return {
      dir, repoDir, rpms, makeRoot,
      destroy: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Copies a fixture .rpm into a node root (units resolve `rpm:` paths under the root). */
export async function copyIntoRoot(rpmPath: string, root: string, relative: string): Promise<void> {
  await mkdir(join(root, relative, '..'), { recursive: true });
  await copyFile(rpmPath, join(root, relative));
}
