/**
 * The `package` unit kind: a package present (optionally at a version, or from a local .rpm
 * file) or absent, through the node's PackageBackend (dnf, apt or rpm). Plan shows the installed
 * version → the wanted one; apply re-queries afterwards, so a package manager that exits 0
 * without doing what was asked is reported, not believed.
 */
import { isAbsolute, join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../shared';
import type { PackageUnitSpec } from '../../shared/bundle/types';
import { checkPackageName, checkPackageVersion, versionSatisfies } from '../packages/package-version';
import { readRpmFile } from '../packages/rpm-database';
import type { InstalledPackage, PackageBackend } from '../packages/backend';
import type { UnitContext, UnitHandler, UnitOutput, UnitPlan } from './unit';

interface Wanted {
  present: boolean;
  /** Version to compare with (from the spec, or from the .rpm file's header). */
  version?: string;
  /** Resolved .rpm path (under the node root). */
  file?: string;
}

interface Inspection {
  backend: PackageBackend;
  installed: InstalledPackage | undefined;
  wanted: Wanted;
  action: 'install' | 'remove' | undefined;
}

function resolveRpmPath(spec: PackageUnitSpec, root: string): string {
  const p = spec.rpm ?? '';
  if (!isAbsolute(p)) throw new InvalidArgumentError(`package ${spec.id}: rpm path ${JSON.stringify(p)} must be absolute`);
  return root === '/' ? p : join(root, p);
}

async function inspect(spec: PackageUnitSpec, ctx: UnitContext): Promise<Inspection> {
  checkPackageName(spec.name);
  if (spec.version !== undefined) checkPackageVersion(spec.version);
  const present = (spec.ensure ?? 'present') === 'present';
  const backend = await ctx.packages();
  const wanted: Wanted = { present, version: spec.version };
  if (present && spec.rpm !== undefined) {
    const file = resolveRpmPath(spec, ctx.root);
    const header = await readRpmFile(file, { env: ctx.env }, ctx.signal);
    if (header.name !== spec.name) {
      throw new InvalidArgumentError(`package ${spec.id}: ${spec.rpm} contains ${header.name}, not ${spec.name}`);
    }
    if (spec.version !== undefined && !versionSatisfies(header.version, spec.version)) {
      throw new InvalidArgumentError(`package ${spec.id}: ${spec.rpm} is version ${header.version}, not ${spec.version}`);
    }
    wanted.version = header.version;
    wanted.file = file;
  }
  const installed = await backend.query(spec.name, ctx.signal);
  let action: Inspection['action'];
  if (!present) action = installed ? 'remove' : undefined;
  else if (!installed) action = 'install';
  else if (wanted.version !== undefined && !versionSatisfies(installed.version, wanted.version)) action = 'install';
  return { backend, installed, wanted, action };
}

function describeWanted(w: Wanted): string | null {
  if (!w.present) return null;
  return w.version ?? 'any version';
}

function planFrom(spec: PackageUnitSpec, ins: Inspection, verifying = false): UnitPlan {
  const before = ins.installed?.version ?? null;
  if (ins.action === undefined) {
    return {
      unitId: spec.id, kind: 'package', action: 'unchanged', changes: [],
      summary: `${spec.name}: unchanged, ${before === null ? 'not installed' : before}`,
    };
  }
  const after = describeWanted(ins.wanted);
  const action = verifying ? 'update' : ins.action === 'remove' ? 'remove' : before === null ? 'create' : 'update';
  const verb = verifying ? 'drift' : ins.action === 'remove' ? 'remove' : before === null ? 'install' : 'change';
  return {
    unitId: spec.id, kind: 'package', action,
    changes: [{ field: 'version', before, after }],
    summary: `${verb} ${spec.name}: ${before ?? 'not installed'}→${after ?? 'not installed'}${ins.wanted.file ? ` (from ${spec.rpm ?? ''})` : ''} [${ins.backend.name}]`,
  };
}

async function doInstall(spec: PackageUnitSpec, ctx: UnitContext, ins: Inspection): Promise<UnitOutput> {
  if (ins.wanted.file !== undefined) {
    if (!ins.backend.installFile) {
      throw new FailedPreconditionError(`package ${spec.id}: the ${ins.backend.name} backend cannot install .rpm files`);
    }
    return ins.backend.installFile(ins.wanted.file, ctx.signal);
  }
  return ins.backend.install(spec.name, spec.version, ctx.signal);
}

export const packageUnitHandler: UnitHandler<PackageUnitSpec> = {
  kind: 'package',

  async plan(spec, ctx) {
    return planFrom(spec, await inspect(spec, ctx));
  },

  async apply(spec, ctx) {
    const ins = await inspect(spec, ctx);
    const plan = planFrom(spec, ins);
    if (ins.action === undefined) return plan;
    const output = ins.action === 'install' ? await doInstall(spec, ctx, ins) : await ins.backend.removePackage(spec.name, ctx.signal);
    const now = await ins.backend.query(spec.name, ctx.signal);
    const ok = ins.action === 'remove' ? now === undefined : now !== undefined && (ins.wanted.version === undefined || versionSatisfies(now.version, ins.wanted.version));
    if (!ok) {
      throw new FailedPreconditionError(
        `package ${spec.name}: ${ins.backend.name} reported success, but ${now ? `version ${now.version} is installed` : 'it is not installed'} (wanted ${describeWanted(ins.wanted) ?? 'absent'})`,
      );
    }
    return { ...plan, output };
  },

  async verify(spec, ctx) {
    return planFrom(spec, await inspect(spec, ctx), true);
  },

  async remove(spec, ctx) {
    checkPackageName(spec.name);
    const backend = await ctx.packages();
    const installed = await backend.query(spec.name, ctx.signal);
    if (!installed) {
      return { unitId: spec.id, kind: 'package', action: 'unchanged', changes: [], summary: `${spec.name}: not installed, nothing to remove` };
    }
    const output = await backend.removePackage(spec.name, ctx.signal);
    if (await backend.query(spec.name, ctx.signal)) {
      throw new FailedPreconditionError(`package ${spec.name}: ${backend.name} reported success, but it is still installed`);
    }
    return {
      unitId: spec.id, kind: 'package', action: 'remove', output,
      changes: [{ field: 'version', before: installed.version, after: null }],
      summary: `remove ${spec.name}: ${installed.version}→not installed [${backend.name}]`,
    };
  },
};
