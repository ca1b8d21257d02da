/**
 * Bundles: `clusterctl bundles` (list), `bundle push -f FILE`, `bundle show NAME[@VERSION]`.
 * A push is validated HERE first with the coordinator's own code (shared/bundle), so a bad
 * bundle prints every problem by path, one per line, exits 1 and sends nothing.
 */
import { readFileSync } from 'node:fs';
import type { BundleInfo__Output } from '../../generated/cluster/v1/BundleInfo';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { ageSince, formatTable, formatYaml } from '../output';
import { parseJsonField } from './job-view';
import { printResult } from './print';

export function bundleObject(b: BundleInfo__Output, withContent = false): Record<string, unknown> {
  return {
    name: b.name, version: b.version, digest: b.digest, createdAt: b.createdAt, units: b.units,
    ...(withContent ? { bundle: parseJsonField(b.bundleJson) } : {}),
  };
}

/** `name@version` or `name` (newest); one-line error otherwise. Pure. */
export function parseBundleArg(text: string): { name: string; version: string } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._:-]*)(?:@([A-Za-z0-9][A-Za-z0-9._:-]*))?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`cannot read bundle ${JSON.stringify(text)}: use NAME or NAME@VERSION (e.g. base@3)`);
  return { name: m[1], version: m[2] ?? '' };
}

export const BUNDLES_LIST_OPTIONS = {
  name: { kind: 'string', description: 'only versions of this bundle', placeholder: 'NAME' },
} as const;

export const bundlesList = defineCommand<CliContext, typeof BUNDLES_LIST_OPTIONS>({
  name: 'list',
  aliases: ['ls', 'get'],
  summary: 'List stored bundle versions',
  usage: 'bundles [list] [--name NAME] [-o table|wide|json|yaml]',
  example: 'clusterctl bundles\nclusterctl bundles --name base -o json',
  options: BUNDLES_LIST_OPTIONS,
  async run({ values, context }) {
    const list = await context.client.listBundles(values.name ?? '');
    if (list.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note(values.name ? `no versions of bundle ${values.name}` : 'no bundles yet (push one with: clusterctl bundle push -f FILE)');
      return EXIT.ok;
    }
    const now = context.clock.now();
    printResult(context, list.map((b) => bundleObject(b)), (wide) => formatTable(
      wide ? ['NAME', 'VERSION', 'UNITS', 'AGE', 'DIGEST'] : ['NAME', 'VERSION', 'UNITS', 'AGE'],
      list.map((b) => [b.name, b.version, String(b.units), ageSince(b.createdAt, now), ...(wide ? [b.digest] : [])]),
    ));
    return EXIT.ok;
  },
});

export const BUNDLE_PUSH_OPTIONS = {
  file: { kind: 'string', short: 'f', description: 'the bundle YAML (or JSON) file; - reads stdin', placeholder: 'FILE' },
} as const;

export const bundlePush = defineCommand<CliContext, typeof BUNDLE_PUSH_OPTIONS>({
  name: 'push',
  aliases: ['create', 'apply'],
  summary: 'Validate and store a bundle version (immutable; pushing the same content again is a no-op)',
  usage: 'bundle push -f FILE',
  example: 'clusterctl bundle push -f base.yaml\nclusterctl bundle push -f - < base.yaml',
  options: BUNDLE_PUSH_OPTIONS,
  maxPositionals: 1,
  async run({ values, positionals, context }) {
    const path = values.file ?? positionals[0];
    if (!path) throw new InvalidArgumentError('which file? give -f FILE (usage: clusterctl bundle push -f FILE)');
    let text: string;
    try {
      text = readFileSync(path === '-' ? 0 : path, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`cannot read bundle file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    // Loaded only here: the validator (ajv + schema) is the heaviest module clusterctl has.
    const { parseBundle, BundleValidationError } = await import('../../shared/bundle');
    try {
      parseBundle(text, path === '-' ? 'stdin' : path);
    } catch (err) {
      if (err instanceof BundleValidationError) {
        context.note(`error: invalid bundle ${path} (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}; nothing was stored):`);
        for (const p of err.problems) context.note(`  ${p}`);
        return EXIT.error;
      }
      throw err;
    }
    const info = await context.client.pushBundle(text);
    printResult(context, bundleObject(info), () => `bundle ${info.name}@${info.version} stored (${info.units} unit${info.units === 1 ? '' : 's'}, digest ${info.digest})\n`);
    return EXIT.ok;
  },
});

export const bundleShow = defineCommand<CliContext, Record<string, never>>({
  name: 'show',
  aliases: ['describe', 'get'],
  summary: 'Show a stored bundle version (the newest when no version is given)',
  usage: 'bundle show NAME[@VERSION] [-o yaml|json]',
  example: 'clusterctl bundle show base@3\nclusterctl bundle show base -o json | jq .bundle.units',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which bundle? give NAME or NAME@VERSION (list them with: clusterctl bundles)' },
  async run({ positionals, context }) {
    const { name, version } = parseBundleArg(positionals[0]);
    const info = await context.client.getBundle(name, version);
    printResult(context, bundleObject(info, true), () =>
      `# bundle ${info.name}@${info.version}, ${info.units} unit(s), digest ${info.digest}, stored ${info.createdAt}\n` +
      formatYaml(parseJsonField(info.bundleJson)));
    return EXIT.ok;
  },
});

export const bundleDelete = defineCommand<CliContext, Record<string, never>>({
  name: 'delete',
  aliases: ['rm'],
  summary: 'Delete one bundle version (refused while a group runs it or a node has it desired or applied)',
  usage: 'bundle delete NAME@VERSION',
  example: 'clusterctl bundle delete ntp@1\n# in use? move the group and upgrade its nodes first:\nclusterctl group set time --bundle ntp@2 && clusterctl node upgrade -g time --wait && clusterctl bundle delete ntp@1',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which version? give NAME@VERSION (list them with: clusterctl bundles)' },
  async run({ positionals, context }) {
    const { name, version } = parseBundleArg(positionals[0]);
    if (!version) throw new InvalidArgumentError(`bundle delete deletes one version: give ${name}@VERSION (list them with: clusterctl bundles ${name})`);
    const res = await context.client.deleteBundle(name, version);
    printResult(context, { bundle: res.bundle ? bundleObject(res.bundle) : null, prunedEditions: res.prunedEditions }, () =>
      `bundle ${name}@${version} deleted\n` + res.prunedEditions.map((e) => `  unused file edition deleted: ${e}\n`).join(''));
    return EXIT.ok;
  },
});
