/**
 * `cluster-agent apply|verify|remove|plan ...`: config units run locally, without etcd or a
 * coordinator (first commissioning by hand, debugging a bundle, a simulated node under test).
 * The agent's main dynamically imports this module for those subcommands.
 *
 * Exit codes: 0 converged (or nothing to do), 2 changes found by plan / --dry-run or drift found
 * by verify, 1 error (invalid bundle, a unit failed, cancelled).
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from '../shared/errors';
import { createLogger, isLogLevel, type Logger } from '../shared/logger';
import { formatHelp, parseOptions, type OptionSpecs } from '../shared/options';
import { BundleValidationError, inlineSources, loadBundleFile, renderBundle, TemplateError, type Bundle } from '../shared/bundle';
import { applyAndRecord, clearAppliedRecord, readAppliedRecord, runWithRecord, type AppliedRecord } from './applied-record';
import { createUnitContext } from './unit-context';
import { type RunMode, type RunReport, type UnitProgress, type UnitResult } from './units/executor';
import { createHandlerRegistry } from './units/handlers';
import { removeWithLeftovers } from './dropped-units';

const COMMANDS = ['apply', 'verify', 'remove', 'plan'] as const;
type LocalCommand = (typeof COMMANDS)[number];

export const LOCAL_OPTIONS = {
  bundle: { kind: 'string', short: 'b', placeholder: 'FILE', description: 'bundle YAML file (verify and remove default to the applied record\'s bundle)' },
  dryRun: { kind: 'boolean', description: 'apply: only show what would change (same as plan)' },
  vars: { kind: 'list', placeholder: 'NAME=VALUE', description: 'set a template variable (repeatable), overriding the bundle\'s' },
  facts: { kind: 'string', placeholder: 'FILE', description: 'facts JSON/YAML for {{ facts.* }} (default: collect this machine\'s when a template needs them)' },
  filesDir: { kind: 'string', placeholder: 'DIR', description: 'directory holding the distributed files that file units name with source:' },
  root: { kind: 'string', env: 'CLUSTER_ROOT', default: '/', placeholder: 'DIR', description: 'node root that unit paths resolve under (sandbox mode)' },
  stateDir: { kind: 'string', env: 'CLUSTER_STATE_DIR', default: '/var/lib/cluster-agent', placeholder: 'DIR', description: 'where the applied record is kept' },
  systemdBus: { kind: 'string', env: 'CLUSTER_SYSTEMD_BUS', default: 'system', choices: ['system', 'session'], placeholder: 'system|session', description: 'D-Bus bus of the systemd manager' },
  systemdUnitDir: { kind: 'string', env: 'CLUSTER_SYSTEMD_UNIT_DIR', default: '/etc/systemd/system', placeholder: 'DIR', description: 'where systemd unit files are written' },
  packageBackend: { kind: 'string', env: 'CLUSTER_PACKAGE_BACKEND', default: 'auto', choices: ['auto', 'dnf', 'apt', 'rpm'], placeholder: 'auto|dnf|apt|rpm', description: 'package manager for package units' },
  unitTimeout: { kind: 'duration', default: '5m', min: 1, placeholder: 'DURATION', description: 'timeout of a unit that sets none' },
  probes: { kind: 'boolean', default: true, description: 'run the bundle\'s verify probes (--no-probes to skip)' },
  output: { kind: 'string', short: 'o', default: 'text', choices: ['text', 'json'], placeholder: 'text|json', description: 'output format' },
  logLevel: { kind: 'string', env: 'CLUSTER_LOG_LEVEL', default: 'warn', choices: ['debug', 'info', 'warn', 'error', 'silent'], placeholder: 'LEVEL', description: 'log level (logs go to stderr)' },
} as const satisfies OptionSpecs;

const USAGE = `Usage: cluster-agent apply  --bundle FILE [--dry-run] [--vars NAME=VALUE]... [--facts FILE] [options]
       cluster-agent plan   --bundle FILE [options]
       cluster-agent verify [--bundle FILE] [options]    (default: the applied record)
       cluster-agent remove [--bundle FILE] [options]    (default: the applied record)
apply also removes the units the applied record (--state-dir) has and the bundle no longer has
(in reverse order, after the bundle applied); plan and --dry-run list them as "remove".
Exit status: 0 converged, 2 changes (plan, --dry-run) or drift (verify) found, 1 error.`;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function parseVars(items: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--vars ${JSON.stringify(item)}: use NAME=VALUE`);
    const name = item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InvalidArgumentError(`--vars ${JSON.stringify(item)}: ${JSON.stringify(name)} is not a variable name`);
    vars[name] = item.slice(eq + 1);
  }
  return vars;
}

function readFactsFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read --facts ${path}: ${(err as Error).message}`);
  }
  try {
    const doc: unknown = parseYaml(text);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('must hold a mapping');
    return doc;
  } catch (err) {
    throw new InvalidArgumentError(`--facts ${path} is not a JSON/YAML mapping: ${(err as Error).message}`);
  }
}

function usesFacts(bundle: Bundle): boolean {
  return JSON.stringify([bundle.units, bundle.verify]).includes('{{') && /\{\{\s*facts\./.test(JSON.stringify([bundle.units, bundle.verify]));
}

async function collectLocalFacts(logger: Logger): Promise<unknown> {
  // As the daemon does: systeminformation runs in a child process (agent/facts-provider.ts).
  const { collectFactsInChild } = await import('./facts-provider');
  return collectFactsInChild({ hostname: hostname(), logger });
}

function filesLookup(dir: string | undefined): ((name: string) => string | undefined) | undefined {
  if (dir === undefined) return undefined;
  return (name) => {
    // A source name is a flat name (files/<name> in etcd), never a path.
    if (name.includes('/') || name.startsWith('.')) return undefined;
    const path = join(dir, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  };
}

const SYMBOL: Record<string, string> = { create: '+', update: '~', unchanged: '=', remove: '-', skip: '=' };

function unitLine(r: UnitResult | UnitProgress): string {
  if (r.state === 'failed') return `! ${r.unitId}: FAILED: ${r.error ?? 'unknown error'}`;
  if (r.state === 'skipped' && !r.plan) return `  ${r.unitId}: skipped (${r.error ?? 'not run'})`;
  const action = r.plan?.action ?? 'unchanged';
  return `${SYMBOL[action] ?? '?'} ${r.unitId}: ${r.plan?.summary ?? action}`;
}

function outputTail(r: UnitResult): string {
  if (!r.output || r.output.text.trim() === '') return '';
  const lines = r.output.text.trimEnd().split('\n').slice(-10);
  return `${lines.map((l) => `    | ${l}`).join('\n')}\n`;
}

function summaryLine(mode: RunMode, report: RunReport, dryRun: boolean): string {
  const name = `${report.bundle.name}@${report.bundle.version}`;
  const count = (s: string): number => report.units.filter((u) => u.state === s).length;
  const secs = `${(report.durationMs / 1000).toFixed(2)}s`;
  if (report.cancelled) return `cancelled ${name}${report.failure?.unitId ? ` during unit ${report.failure.unitId}` : ''}; already changed: ${report.failure?.alreadyChanged.join(', ') || 'nothing'} (${secs})`;
  if (report.failure && mode !== 'verify') {
    const at = report.failure.unitId ? `unit ${report.failure.unitId}` : `probe ${report.failure.probeId ?? '?'}`;
    return `FAILED ${mode} of ${name} at ${at}: ${report.failure.reason}; already changed: ${report.failure.alreadyChanged.join(', ') || 'nothing'} (${secs})`;
  }
  const changed = report.changed.length;
  const unchanged = count('unchanged') + count('skipped');
  switch (mode) {
    case 'apply':
      return changed === 0
        ? `nothing to change: ${name} already applied (${unchanged} units unchanged, ${secs})`
        : `applied ${name}: ${changed - count('removed')} changed${count('removed') ? `, ${count('removed')} dropped unit(s) removed` : ''}, ${unchanged} unchanged (${secs})`;
    case 'plan':
      return changed === 0 ? `no changes: ${name} is applied (${unchanged} units unchanged${dryRun ? ', dry run' : ''})` : `plan for ${name}: ${changed} to change, ${unchanged} unchanged${dryRun ? ' (dry run: nothing changed)' : ''}`;
    case 'verify': {
      const failedProbes = report.probes.filter((p) => !p.ok).length;
      const failed = count('failed');
      if (report.ok) return `verified ${name}: ${report.units.length} units as specified${report.probes.length ? `, ${report.probes.length} probes passed` : ''} (${secs})`;
      return `drift in ${name}: ${changed} unit(s) differ${failed ? `, ${failed} could not be checked` : ''}${failedProbes ? `, ${failedProbes} probe(s) failed` : ''} (${secs})`;
    }
    case 'remove':
      return changed === 0 ? `nothing to remove: ${name} is not on this node` : `removed ${name}: ${changed} units removed, ${unchanged} unchanged (${secs})`;
  }
}

function exitCode(mode: RunMode, report: RunReport): number {
  if (report.cancelled) return 1;
  if (mode === 'verify') return report.units.some((u) => u.state === 'failed') && report.changed.length === 0 && report.probes.every((p) => p.ok) ? 1 : report.ok ? 0 : 2;
  if (!report.ok) return 1;
  if (mode === 'plan') return report.changed.length > 0 ? 2 : 0;
  return 0;
}

function printError(io: Io, err: unknown): void {
  if (err instanceof BundleValidationError || err instanceof TemplateError) {
    const head = err instanceof TemplateError ? `bundle ${err.bundleName} cannot be rendered` : `invalid bundle${err.bundleName ? ` ${err.bundleName}` : ''}`;
    io.err(`cluster-agent: ${head}; nothing was changed (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}):\n${err.problems.map((p) => `  ${p}\n`).join('')}`);
    return;
  }
  io.err(`cluster-agent: ${err instanceof Error ? err.message : String(err)}\n`);
}

export async function runLocalCli(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const sub = argv[0] ?? '';
  if (!(COMMANDS as readonly string[]).includes(sub)) {
    io.err(`cluster-agent: unknown command ${JSON.stringify(sub)} (use apply, plan, verify or remove; --help for options)\n`);
    return 1;
  }
  const command = sub as LocalCommand;
  try {
    const parsed = parseOptions(LOCAL_OPTIONS, { argv: argv.slice(1), env, allowPositionals: false });
    if (parsed.help) {
      io.out(formatHelp(USAGE, LOCAL_OPTIONS));
      return 0;
    }
    const o = parsed.values;
    const level = isLogLevel(o.logLevel) ? o.logLevel : 'warn';
    const logger = createLogger({ level, fields: { component: 'local-cli' } });
    const root = resolve(o.root);
    const stateDir = resolve(o.stateDir);
    const mode: RunMode = command === 'apply' && o.dryRun ? 'plan' : command;
    const json = o.output === 'json';

    // The bundle: from the file (validated, sources inlined, rendered), or the applied record's.
    let bundle: Bundle;
    let record: AppliedRecord | undefined;
    if (o.bundle !== undefined) {
      const loaded = inlineSources(loadBundleFile(o.bundle), filesLookup(o.filesDir), 'pass --files-dir DIR holding them');
      const extraVars = parseVars(o.vars);
      const facts = o.facts !== undefined ? readFactsFile(o.facts) : usesFacts(loaded) ? await collectLocalFacts(logger) : undefined;
      bundle = renderBundle(loaded, { facts, extraVars });
    } else if (command === 'verify' || command === 'remove') {
      record = await readAppliedRecord(stateDir);
      if (!record) throw new InvalidArgumentError(`nothing applied on this node (no record in ${stateDir}); pass --bundle FILE`);
      bundle = record.bundle;
    } else {
      throw new InvalidArgumentError(`${command} needs --bundle FILE`);
    }

    const ctx = createUnitContext({
      root, logger, env,
      systemdBus: o.systemdBus === 'session' ? 'session' : 'system',
      systemdUnitDir: o.systemdUnitDir,
      packageBackend: o.packageBackend,
    });
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    if (!json) io.out(`${mode === 'plan' ? 'plan' : command} ${bundle.name}@${bundle.version}${root !== '/' ? ` (root ${root})` : ''}\n`);
    const onProgress = json ? undefined : (p: UnitProgress): void => {
      if (p.state === 'running') return;
      io.out(`${unitLine(p)}\n`);
      if (p.state === 'failed' && 'output' in p && p.output) io.out(outputTail(p as UnitResult));
    };
    const common = {
      context: ctx,
      handlers: createHandlerRegistry(),
      signal: controller.signal,
      defaultTimeoutMs: o.unitTimeout,
      runProbes: o.probes,
      onProgress,
    };
    let report: RunReport;
    let digest: string | undefined;
    try {
      if (mode === 'apply') {
        const r = await applyAndRecord(stateDir, bundle, common);
        report = r.report;
        digest = r.record.digest;
      } else if (mode === 'remove') {
        const current = record ?? (await readAppliedRecord(stateDir));
        // Units earlier versions left behind go too when this is the applied bundle (its record is cleared).
        report = await removeWithLeftovers(bundle, current?.bundleName === bundle.name ? current.pendingRemoval : undefined, common);
        if (report.ok && current?.bundleName === bundle.name) await clearAppliedRecord(stateDir);
      } else {
        report = await runWithRecord(stateDir, bundle, mode, common);
      }
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      ctx.close();
    }

    if (json) {
      io.out(`${JSON.stringify({ ...report, ...(digest !== undefined ? { appliedDigest: digest } : {}) }, null, 2)}\n`);
    } else {
      for (const p of report.probes) io.out(`${p.ok ? '✓' : '✗'} probe ${p.id}: ${p.detail}\n`);
      io.out(`${summaryLine(mode, report, command === 'apply' && o.dryRun)}\n`);
    }
    return exitCode(mode, report);
  } catch (err) {
    printError(io, err);
    return 1;
  }
}
