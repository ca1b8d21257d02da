/**
 * Where clusterctl reads a secret value from: a file or stdin, so the value never has to be on
 * the command line, where every user of the machine can read it (`ps`, /proc/PID/cmdline) and
 * the shell keeps it in its history. `--secret-var NAME=VALUE` still takes a literal value for
 * throwaway labs; `NAME=@FILE` and `NAME=@-` (stdin) are the forms to use.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../shared/errors';

/** Reads a file, or stdin for "-". */
export function readSecretFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${what} from ${path === '-' ? 'stdin' : path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** "VALUE", "@FILE" or "@-" → the value as text (one trailing newline of a file or stdin dropped). */
export function secretVarValue(spec: string, what: string): string {
  if (!spec.startsWith('@')) return spec;
  return readSecretFile(spec.slice(1) || '-', what).toString('utf8').replace(/\r?\n$/, '');
}

/** `NAME=VALUE|@FILE|@-` items of --secret-var into a map. */
export function parseSecretVars(items: readonly string[], flag = '--secret-var'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${flag} ${JSON.stringify(item.slice(0, Math.max(eq, 0)) || '…')}: use NAME=@FILE, NAME=@- (stdin) or NAME=VALUE`);
    const name = item.slice(0, eq);
    out[name] = secretVarValue(item.slice(eq + 1), `secret variable ${name}`);
  }
  return out;
}
