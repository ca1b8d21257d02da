/**
 * The manager's own settings (Contiv's `clusterctl config get|set`): stored in etcd, read by the
 * coordinators at every decision (no restart). `config get` prints every setting with its
 * default; `config set NAME=VALUE ...` changes some (NAME= resets one to its default).
 */
import type { ManagerConfig__Output } from '../../generated/cluster/v1/ManagerConfig';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, orDash } from '../output';
import { printResult } from './print';

export function managerConfigObject(c: ManagerConfig__Output): Record<string, unknown> {
  return {
    settings: c.settings.map((s) => ({ name: s.name, value: s.value, default: s.defaultValue, set: s.isSet, description: s.description })),
    updatedAt: c.updatedAt, revision: c.revision,
  };
}

function table(c: ManagerConfig__Output, wide: boolean): string {
  return formatTable(
    wide ? ['NAME', 'VALUE', 'DEFAULT', 'SOURCE', 'DESCRIPTION'] : ['NAME', 'VALUE', 'SOURCE', 'DESCRIPTION'],
    c.settings.map((s) => [s.name, s.value, ...(wide ? [s.defaultValue] : []), s.isSet ? 'set' : 'default', s.description]),
  ) + `updated ${orDash(c.updatedAt)} (revision ${c.revision})\n`;
}

export const configGet = defineCommand<CliContext, Record<string, never>>({
  name: 'get',
  aliases: ['show', 'list'],
  summary: 'Show the manager\'s settings, each with its default',
  usage: 'config get [NAME] [-o table|wide|json|yaml]',
  example: 'clusterctl config get\nclusterctl config get repairPolicy\nclusterctl config get -o json | jq \'.settings[] | select(.set)\'',
  maxPositionals: 1,
  async run({ positionals, context }) {
    const c = await context.client.getManagerConfig();
    const name = positionals[0];
    if (name !== undefined) {
      const s = c.settings.find((x) => x.name === name);
      if (!s) throw new InvalidArgumentError(`unknown setting ${JSON.stringify(name)} (settings: ${c.settings.map((x) => x.name).join(', ')})`);
      printResult(context, { name: s.name, value: s.value, default: s.defaultValue, set: s.isSet, description: s.description }, () => `${s.value}\n`);
      return EXIT.ok;
    }
    printResult(context, managerConfigObject(c), (wide) => table(c, wide));
    return EXIT.ok;
  },
});

/** `NAME=VALUE` words into settings to set and (for `NAME=`) to reset. Pure. */
export function parseSettings(words: readonly string[]): { set: Record<string, string>; reset: string[] } {
  const set: Record<string, string> = {};
  const reset: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${JSON.stringify(w)}: use NAME=VALUE (NAME= resets it to its default; list them with clusterctl config get)`);
    const name = w.slice(0, eq);
    const value = w.slice(eq + 1);
    if (value === '') reset.push(name);
    else set[name] = value;
  }
  return { set, reset };
}

export const configSet = defineCommand<CliContext, Record<string, never>>({
  name: 'set',
  summary: 'Change the manager\'s settings (NAME=VALUE; NAME= resets to the default); admin',
  usage: 'config set NAME=VALUE... [-o table|json|yaml]',
  example: 'clusterctl config set defaultBatch=10% repairPolicy=report\nclusterctl config set autoCommission=paused\nclusterctl config set jobRetention=100 jobRetentionAge=72h\nclusterctl config set defaultBatch=   # back to the default',
  maxPositionals: 16,
  minPositionals: { count: 1, message: 'what to set? give NAME=VALUE (list the settings with: clusterctl config get)' },
  async run({ positionals, context }) {
    const { set, reset } = parseSettings(positionals);
    const c = await context.client.setManagerConfig(set, reset);
    printResult(context, managerConfigObject(c), (wide) => table(c, wide));
    return EXIT.ok;
  },
});
