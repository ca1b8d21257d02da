/**
 * ConfigService: bundles (immutable versions) and groups, served by EVERY replica straight from
 * etcd (writes are not leader-only: like a job request, a bundle or a group is data the leader
 * acts on later). Errors are shared/errors classes, mapped to a gRPC status once in `unary`.
 */
import { InvalidArgumentError, type Logger } from '../../shared';
import type { ConfigServiceHandlers } from '../../generated/cluster/v1/ConfigService';
import type { BundleInfo } from '../../generated/cluster/v1/BundleInfo';
import type { Group } from '../../generated/cluster/v1/Group';
import type { Group__Output } from '../../generated/cluster/v1/Group';
import type { BundleStore, StoredBundle } from './bundle-store';
import type { GroupStore, VersionedGroup } from './group-store';
import type { GlobalsStore, VersionedGlobals } from './globals-store';
import type { ManagerConfigStore, VersionedManagerConfig } from './manager-config-store';
import { defaultOf, effectiveConfig, MANAGER_SETTINGS, type ManagerSettingName, type RetentionSettings } from '../../shared/manager-config';
import type { ManagerConfig } from '../../generated/cluster/v1/ManagerConfig';
import type { FileStore } from '../files/file-store';
import { sourceNames } from './source-pins';
import { canonicalJson, type Bundle } from '../../shared/bundle';
import { parseBundleOffLoop } from '../../shared/parse-worker';
import { unary } from '../unary-handler';
import { actorName, actorOf, authorizeAction } from '../caller';
import type { SecretKeyring } from '../secrets/secret-keyring';
import { sealVariables, secretVariableNames } from '../secrets/secret-variables';
import { hasSecretUnits, redactedBundle } from '../secrets/secret-content';

export interface ConfigServiceOptions {
  bundles: BundleStore;
  groups: GroupStore;
  globals: GlobalsStore;
  managerConfig: ManagerConfigStore;
  /** This replica's retention options: the defaults `config get` shows for the retention settings. */
  retention: RetentionSettings;
  /** Deletes the unused file editions a deleted bundle version leaves. */
  files: FileStore;
  /** Seals secret group variables; without it they are refused. */
  keyring?: SecretKeyring;
  logger: Logger;
}

export function toBundleInfo(b: StoredBundle): BundleInfo {
  return {
    name: b.name, version: b.version, digest: b.digest, createdAt: b.createdAt, units: b.bundle.units.length,
    // A secret unit's content is shown as [secret], never its envelope (which a push would refuse).
    bundleJson: canonicalJson(redactedBundle(b.bundle)),
  };
}

export function toGroupView(g: VersionedGroup): Group {
  const r = g.record;
  return {
    name: r.name, bundle: r.bundle, version: r.version, variables: { ...r.variables }, minSize: r.minSize ?? 0,
    dependsOn: r.dependsOn ?? [], verifySchedule: r.verifySchedule ?? '', repairPolicy: r.repairPolicy ?? 'report',
    autoCommission: (r.autoCommission ?? []).map((a) => ({ selector: a.selector })), updatedAt: r.updatedAt ?? '', revision: g.modRevision,
    soakMs: r.soakMs ?? 0,
    secretVariables: secretVariableNames(r.variables),
    allowedPaths: r.allowedPaths ?? [],
  };
}

export function toGlobalsView(g: VersionedGlobals): { variables: Record<string, string>; updatedAt: string; revision: string } {
  return { variables: { ...g.record.variables }, updatedAt: g.record.updatedAt ?? '', revision: g.modRevision };
}

export function toManagerConfigView(c: VersionedManagerConfig, retention?: RetentionSettings): ManagerConfig {
  const effective = effectiveConfig(c.record, retention);
  return {
    settings: MANAGER_SETTINGS.map((s) => ({
      name: s.name, value: effective[s.name as ManagerSettingName], defaultValue: defaultOf(s, retention),
      isSet: c.record.values[s.name as ManagerSettingName] !== undefined, description: s.description,
    })),
    updatedAt: c.record.updatedAt ?? '', revision: c.modRevision,
  };
}

/** Whether a bundle runs commands of its own (which needs the admin role to push). */
export function hasCommandUnits(bundle: Pick<Bundle, 'units'>): boolean {
  return bundle.units.some((u) => u.kind === 'command');
}

export function createConfigServiceHandlers(options: ConfigServiceOptions): ConfigServiceHandlers {
  const { bundles, groups } = options;
  const log = options.logger.child({ component: 'config-service' });

  return {
    PushBundle: unary(async (req: { yaml: string }, call) => {
      // Command units run arbitrary commands on nodes, secret units store a secret: pushing one needs admin. An unparsable
      // bundle is left to push(), which lists every problem.
      // Parsed once: the parse is what a large bundle costs the event loop (bench/edge-bench.ts).
      let parsed: Bundle | undefined;
      let parseError: unknown;
      try {
        parsed = await parseBundleOffLoop(req.yaml, 'bundle');
      } catch (err) {
        parseError = err;
      }
      const peer = authorizeAction(call, { method: 'ConfigService/PushBundle', commandUnits: parsed ? hasCommandUnits(parsed) : false, secret: parsed ? hasSecretUnits(parsed) : false });
      // An empty text gets push()'s own message; anything else unparsable the parser's refusal.
      if (!parsed && req.yaml.trim() !== '') throw parseError;
      const { stored, created } = await bundles.push(parsed ?? req.yaml, actorName(peer));
      log.info(created ? 'bundle stored' : 'bundle push: identical version already stored', { bundle: `${stored.name}@${stored.version}` });
      return toBundleInfo(stored);
    }),
    ListBundles: unary(async (req: { name: string }) => ({ bundles: (await bundles.list(req.name.trim())).map(toBundleInfo) })),
    GetBundle: unary(async (req: { name: string; version: string }) => {
      const name = req.name.trim();
      if (!name) throw new InvalidArgumentError('GetBundle needs a bundle name (list them with `clusterctl bundle list`)');
      return toBundleInfo(await bundles.get(name, req.version.trim()));
    }),
    SetGroup: unary(async (req: { group: Group__Output | null; expectedRevision: string }, call) => {
      const g = req.group;
      if (!g) throw new InvalidArgumentError('SetGroup needs a group (name, bundle, version)');
      // Secret values are sealed before anything else sees them; a new one needs admin.
      const stored = g.name.trim() ? await groups.get(g.name.trim()).catch(() => undefined) : undefined;
      const sealed = await sealVariables(options.keyring, g.variables, g.secretVariables ?? [], stored?.record.variables ?? {});
      authorizeAction(call, { method: 'ConfigService/SetGroup', secret: sealed.newSecret });
      const saved = await groups.set(
        {
          name: g.name, bundle: g.bundle, version: g.version, variables: sealed.variables, minSize: g.minSize, dependsOn: g.dependsOn,
          verifySchedule: g.verifySchedule, repairPolicy: g.repairPolicy, autoCommission: g.autoCommission, soakMs: g.soakMs, allowedPaths: g.allowedPaths,
        },
        req.expectedRevision,
        actorOf(call),
      );
      log.info('group set', { group: saved.record.name, revision: saved.modRevision });
      return toGroupView(saved);
    }),
    GetGroup: unary(async (req: { name: string }) => {
      const name = req.name.trim();
      if (!name) throw new InvalidArgumentError('GetGroup needs a group name (list them with `clusterctl group list`)');
      return toGroupView(await groups.require(name));
    }),
    ListGroups: unary(async () => ({ groups: (await groups.list()).map(toGroupView) })),
    DeleteBundle: unary(async (req: { name: string; version: string }, call) => {
      const name = req.name.trim();
      if (!name) throw new InvalidArgumentError('DeleteBundle needs NAME and VERSION (list them with `clusterctl bundle list`)');
      // Like a push: removing a bundle that runs commands on nodes needs admin.
      const version = req.version.trim();
      const target = version ? await bundles.get(name, version) : undefined;
      const peer = authorizeAction(call, { method: 'ConfigService/DeleteBundle', commandUnits: target ? hasCommandUnits(target.bundle) : false });
      const actor = actorName(peer);
      const deleted = await bundles.delete(name, version, actor);
      const prunedEditions = await options.files.prune(sourceNames(deleted.bundle), actor);
      log.info('bundle deleted', { bundle: `${deleted.name}@${deleted.version}`, prunedEditions });
      return { bundle: toBundleInfo(deleted), prunedEditions };
    }),
    GetGlobals: unary(async () => toGlobalsView(await options.globals.get())),
    SetGlobals: unary(async (req: { variablesJson: string }, call) => {
      const saved = await options.globals.set(req.variablesJson, actorOf(call));
      log.info('globals set', { revision: saved.modRevision });
      return toGlobalsView(saved);
    }),
    GetManagerConfig: unary(async () => toManagerConfigView(await options.managerConfig.get(), options.retention)),
    SetManagerConfig: unary(async (req: { set: Record<string, string>; reset: string[] }, call) => {
      const saved = await options.managerConfig.set(req.set, req.reset, actorOf(call));
      log.info('manager config set', { revision: saved.modRevision });
      return toManagerConfigView(saved, options.retention);
    }),
    DeleteGroup: unary(async (req: { name: string; force: boolean }, call) => {
      const name = req.name.trim();
      if (!name) throw new InvalidArgumentError('DeleteGroup needs a group name (list them with `clusterctl group list`)');
      const { group, nodes } = await groups.delete(name, { force: req.force }, actorOf(call));
      log.info('group deleted', { group: name, nodes });
      return { group: toGroupView(group), nodes };
    }),
  };
}
