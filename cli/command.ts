/**
 * clusterctl's command tree: each command is a plain object (name, aliases, summary, usage,
 * example, option specs, handler), groups hold subcommands, and one resolver walks argv to the
 * command it names. Option values come from shared/options.ts (flags, then environment, then
 * the config file, then defaults), so every command's flags behave the same. Adding a command
 * is adding an object to a group: nothing here changes.
 */
import { kebab, parseOptions, type OptionSpecs, type OptionValues } from '../shared/options';
import { InvalidArgumentError } from '../shared/errors';

/** Exit codes: 0 ok, 1 error, 2 the command found changes or drift (plan, verify; later). */
export const EXIT = { ok: 0, error: 1, changes: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface CommandInput<S extends OptionSpecs, C> {
  /** Command options merged with the global ones. */
  values: OptionValues<S>;
  positionals: string[];
  /** Arguments after `--` (exec). */
  rest: string[];
  /** Options given on the command line, even as an empty value (`--depends-on ""` clears; absent keeps). */
  given: ReadonlySet<string>;
  /** What main.ts provides: output, clients, clock (injected so tests can drive them). */
  context: C;
}

export interface Command<C, S extends OptionSpecs = OptionSpecs> {
  name: string;
  aliases?: readonly string[];
  /** One line, shown in the parent's command list. */
  summary: string;
  /** Synopsis after `clusterctl`, e.g. `node describe ID [flags]`. */
  usage: string;
  /** One or more example lines shown in --help. */
  example: string;
  /** Longer explanation for --help (optional). */
  description?: string;
  options?: S;
  /** For groups: the commands under this one. */
  subcommands?: readonly Command<C>[];
  /** For groups: run this subcommand when none is named (`nodes` = `nodes list`). */
  defaultSubcommand?: string;
  /** Most positionals the command takes (default 0: a stray word is an error, not ignored). */
  maxPositionals?: number;
  /** Fewest positionals the command needs, with what to say when they are missing. */
  minPositionals?: { count: number; message: string };
  run?: (input: CommandInput<S, C>) => Promise<ExitCode | void>;
  /** Not listed in help or completion (a helper the completion scripts call). */
  hidden?: boolean;
}

/**
 * Erases a command's option type so commands with different options live in one list.
 * Safe because the resolver always parses argv against that same command's `options`.
 */
export function defineCommand<C, S extends OptionSpecs>(cmd: Command<C, S>): Command<C> {
  return cmd as unknown as Command<C>;
}

export function findSubcommand<C>(group: Command<C>, word: string): Command<C> | undefined {
  return group.subcommands?.find((c) => c.name === word || (c.aliases ?? []).includes(word));
}

export interface Resolved<C> {
  /** Root first, the command to run last. */
  path: Command<C>[];
  /** argv without the words that named the commands. */
  argv: string[];
  /** All option specs along the path, the globals first. */
  specs: OptionSpecs;
  /** How many commands at the end of `path` were added as a group's default, not named. */
  implied: number;
}

function takesValue(specs: OptionSpecs, arg: string): boolean {
  if (arg.includes('=')) return false;
  if (arg === '--config') return true;
  if (arg.startsWith('--')) {
    const name = arg.slice(2);
    const spec = Object.entries(specs).find(([key, s]) => (s.flag ?? kebab(key)) === name)?.[1];
    return spec !== undefined && spec.kind !== 'boolean';
  }
  // `-ojson` carries its value; `-o json` takes the next word.
  if (arg.length > 2) return false;
  const spec = Object.values(specs).find((s) => s.short === arg.slice(1));
  return spec !== undefined && spec.kind !== 'boolean';
}

/**
 * Walks argv from the root: a word that names a subcommand of the current group descends,
 * flags (and their values) are kept for the parser wherever they appear, so
 * `clusterctl -o json nodes` and `clusterctl nodes -o json` mean the same.
 */
export function resolveCommand<C>(root: Command<C>, argv: readonly string[]): Resolved<C> {
  const path: Command<C>[] = [root];
  const rest: string[] = [];
  let specs: OptionSpecs = { ...(root.options ?? {}) };
  let descending = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { rest.push(...argv.slice(i)); break; }
    if (arg.startsWith('-') && arg !== '-') {
      rest.push(arg);
      // The default subcommand's flags count too: in `nodes -l role=worker`, `role=worker` is
      // the value of `nodes list -l`, not a command word.
      const group = path[path.length - 1];
      const def = group.defaultSubcommand ? findSubcommand(group, group.defaultSubcommand) : undefined;
      if (takesValue({ ...specs, ...(def?.options ?? {}) }, arg) && i + 1 < argv.length) rest.push(argv[++i]);
      continue;
    }
    const current = path[path.length - 1];
    const sub = descending && current.subcommands ? findSubcommand(current, arg) : undefined;
    if (sub) {
      path.push(sub);
      specs = { ...specs, ...(sub.options ?? {}) };
      continue;
    }
    if (descending && current.subcommands && !current.run) {
      const known = current.subcommands.filter((c) => !c.hidden).map((c) => c.name).join(', ');
      const where = path.length === 1 ? 'clusterctl' : `clusterctl ${path.slice(1).map((c) => c.name).join(' ')}`;
      throw new InvalidArgumentError(`unknown command ${JSON.stringify(arg)} for ${where} (commands: ${known}; see ${where} --help)`);
    }
    descending = false;
    rest.push(arg);
  }
  // A group with a default runs it: `nodes -l role=worker` is `nodes list -l role=worker`.
  let leaf = path[path.length - 1];
  let implied = 0;
  while (!leaf.run && leaf.defaultSubcommand) {
    const def = findSubcommand(leaf, leaf.defaultSubcommand);
    if (!def) break;
    path.push(def);
    specs = { ...specs, ...(def.options ?? {}) };
    leaf = def;
    implied++;
  }
  return { path, argv: rest, specs, implied };
}

export function commandLine<C>(path: readonly Command<C>[]): string {
  return ['clusterctl', ...path.slice(1).map((c) => c.name)].join(' ');
}

/** `--help` for the command at the end of `path`: usage, what it does, options, example, subcommands. */
export function helpText<C>(path: readonly Command<C>[], globalSpecs: OptionSpecs): string {
  const cmd = path[path.length - 1];
  const own: OptionSpecs = { ...(cmd.options ?? {}) };
  const lines: string[] = [];
  lines.push(`Usage: ${path.length === 1 ? cmd.usage : `clusterctl ${cmd.usage}`}`);
  lines.push('');
  lines.push(cmd.summary);
  if (cmd.description) lines.push('', cmd.description);
  if (cmd.aliases?.length) lines.push('', `Aliases: ${[cmd.name, ...cmd.aliases].join(', ')}`);
  if (cmd.subcommands?.length) {
    const listed = cmd.subcommands.filter((c) => !c.hidden);
    const width = Math.max(...listed.map((c) => c.name.length)) + 2;
    lines.push('', 'Commands:');
    for (const c of listed) {
      const alias = c.aliases?.length ? ` (also: ${c.aliases.join(', ')})` : '';
      const def = cmd.defaultSubcommand === c.name ? ' [default]' : '';
      lines.push(`  ${c.name.padEnd(width)}${c.summary}${alias}${def}`);
    }
  }
  lines.push('', 'Example:', ...cmd.example.split('\n').map((l) => `  ${l}`));
  if (path.length > 1 && Object.keys(own).length > 0) lines.push('', 'Options:', ...optionRows(own));
  // A group run without a command runs its default: show the default's flags too.
  const def = cmd.defaultSubcommand ? findSubcommand(cmd, cmd.defaultSubcommand) : undefined;
  if (def?.options && Object.keys(def.options).length > 0) {
    lines.push('', `Options of ${commandLine([...path, def])} (the default):`, ...optionRows(def.options));
  }
  lines.push('', 'Global options:', ...optionRows(globalSpecs, true));
  if (cmd.subcommands?.length) lines.push('', `Run '${commandLine(path)} COMMAND --help' for a command's flags.`);
  return lines.join('\n') + '\n';
}

/** One line per option: flags, what it does, env var, default, choices. */
export function optionRows(specs: OptionSpecs, withBuiltins = false): string[] {
  const rows: [string, string][] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const value = spec.kind === 'boolean' ? '' : ` ${spec.placeholder ?? spec.kind.toUpperCase()}`;
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${spec.flag ?? kebab(key)}${value}`;
    const notes: string[] = [];
    if (spec.env) notes.push(`env ${spec.env}`);
    if (spec.default !== undefined && spec.default !== '' && spec.default !== false) {
      notes.push(`default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`);
    }
    rows.push([flag, `${spec.description}${notes.length ? ` [${notes.join('; ')}]` : ''}`]);
  }
  if (withBuiltins) {
    rows.push(['    --config FILE', 'YAML file of option: value (default ~/.config/clusterctl/config.yaml) [env CLUSTERCTL_CONFIG]']);
    rows.push(['-h, --help', 'show help for a command']);
  }
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`);
}

export interface Invocation<C> {
  path: Command<C>[];
  /** True for --help, and for a group named without a subcommand to run. */
  help: boolean;
  /** Global and command options together; each handler reads its own through its specs' type. */
  values: OptionValues<OptionSpecs>;
  positionals: string[];
  rest: string[];
  given: ReadonlySet<string>;
}

/** Resolves and parses argv; throws InvalidArgumentError (one line) on any bad input. */
export function parseInvocation<C>(
  root: Command<C>,
  argv: readonly string[],
  parse: { env: NodeJS.ProcessEnv; configEnv?: string; defaultConfigPath?: string },
): Invocation<C> {
  const resolved = resolveCommand(root, argv);
  const parsed = parseOptions(resolved.specs, {
    argv: resolved.argv,
    env: parse.env,
    configEnv: parse.configEnv,
    defaultConfigPath: parse.defaultConfigPath,
  });
  const cmd = resolved.path[resolved.path.length - 1];
  if (!parsed.help && cmd.run) {
    const max = cmd.maxPositionals ?? 0;
    if (parsed.positionals.length > max) {
      throw new InvalidArgumentError(
        `unexpected argument ${JSON.stringify(parsed.positionals[max])} for ${commandLine(resolved.path)} (usage: clusterctl ${cmd.usage})`,
      );
    }
    if (cmd.minPositionals && parsed.positionals.length < cmd.minPositionals.count) {
      throw new InvalidArgumentError(`${cmd.minPositionals.message} (usage: clusterctl ${cmd.usage})`);
    }
  }
  return {
    // `nodes --help` is help for the group (every subcommand), not for its default alone.
    path: parsed.help && resolved.implied > 0 ? resolved.path.slice(0, resolved.path.length - resolved.implied) : resolved.path,
    help: parsed.help || !cmd.run,
    values: parsed.values,
    positionals: parsed.positionals,
    rest: parsed.rest,
    given: new Set(Object.entries(parsed.sources).filter(([, src]) => src === 'flag').map(([k]) => k)),
  };
}

/** Runs the parsed command with the context main.ts built (options typed by the command's specs). */
export async function runInvocation<C>(inv: Invocation<C>, context: C): Promise<ExitCode> {
  const cmd = inv.path[inv.path.length - 1];
  if (!cmd.run) throw new InvalidArgumentError(`${commandLine(inv.path)} needs a command (see --help)`);
  const code = await cmd.run({ values: inv.values, positionals: inv.positionals, rest: inv.rest, given: inv.given, context });
  return code ?? EXIT.ok;
}
