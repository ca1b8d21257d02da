/**
 * What the RPM and Debian package tests share: the version they build, a root with a real
 * /bin/sh (so the package manager runs the maintainer scripts chrooted into it), and the two
 * releases every upgrade test installs: the current tree, and a copy whose default agent.yaml
 * changed (so config-file handling on upgrade is observed).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT, run } from '../helpers';

export const PACKAGE_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const UPGRADE_VERSION = `${PACKAGE_VERSION}.1`;

/**
 * The architecture each package is built for: cluster-agent is architecture-independent;
 * cluster-coordinator ships its TCP liveness addon (native/tcp_liveness.c), built for this machine.
 */
export function packageArch(kind: 'rpm' | 'deb', name: string): string {
  if (name !== 'cluster-coordinator') return kind === 'rpm' ? 'noarch' : 'all';
  return kind === 'rpm' ? execFileSync('rpm', ['--eval', '%{_arch}'], { encoding: 'utf8' }).trim() : execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
}
/** cluster-agent_0.1.0-1_all.deb, cluster-coordinator_0.1.0-1_amd64.deb. */
export const debName = (name: string, version: string): string => `${name}_${version}-1_${packageArch('deb', name)}.deb`;
/** cluster-agent-0.1.0-1.noarch.rpm, cluster-coordinator-0.1.0-1.x86_64.rpm. */
export const rpmName = (name: string, version: string): string => `${name}-${version}-1.${packageArch('rpm', name)}.rpm`;

/** Copies /bin/sh (dash) and the libraries ldd names into `root`. */
export function copyShellInto(root: string): void {
  const shell = execFileSync('readlink', ['-f', '/bin/sh'], { encoding: 'utf8' }).trim();
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(shell, join(root, 'bin', 'sh'));
  chmodSync(join(root, 'bin', 'sh'), 0o755);
  for (const m of execFileSync('ldd', [shell], { encoding: 'utf8' }).matchAll(/(\/\S+\.so[.\d]*)/g)) {
    mkdirSync(dirname(join(root, m[1])), { recursive: true });
    copyFileSync(m[1], join(root, m[1]));
  }
}

/** A copy of the repository's packaging inputs (with node_modules linked) to build a variant from. */
function copyTree(to: string): void {
  for (const part of ['scripts', 'packaging', 'systemd', 'docs', 'proto', 'dist', 'package.json']) {
    cpSync(join(REPO_ROOT, part), join(to, part), { recursive: true });
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(to, 'node_modules'));
}

/**
 * Runs `scripts/<script>` twice: the current tree into `<tmp>/out1`, and into `<tmp>/out2` a
 * copy at UPGRADE_VERSION whose default agent.yaml changed (the next release's new default).
 */
export async function buildTwoReleases(script: 'build-rpm' | 'build-deb', tmp: string): Promise<{ out1: string; out2: string; variant: string }> {
  const build = async (cwd: string, args: string[], what: string): Promise<void> => {
    const r = await run(join(cwd, 'scripts', script), ['--no-build', ...args], { cwd, timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`scripts/${script}${what} failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  };
  const out1 = join(tmp, 'out1');
  const out2 = join(tmp, 'out2');
  await build(REPO_ROOT, ['--out', out1], '');
  const variant = join(tmp, 'variant');
  copyTree(variant);
  appendFileSync(join(variant, 'packaging', 'config', 'agent.yaml'), '\n# A default that changed in the next release.\n');
  await build(variant, ['--out', out2, '--version', UPGRADE_VERSION], ` --version ${UPGRADE_VERSION}`);
  return { out1, out2, variant };
}
