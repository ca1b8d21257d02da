/**
 * Reading a bundle from YAML text or a file: parse within the input limits (bounded-yaml.ts),
 * then validate (validate-bundle.ts). YAML syntax errors keep the parser's line and column so
 * the operator can find them.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors';
import { boundedToJS, parseBoundedYaml } from '../bounded-yaml';
import { INPUT_LIMITS } from '../input-limits';
import type { Bundle } from './types';
import { validateBundle } from './validate-bundle';

/** Parses YAML (JSON is YAML too) and validates it. `origin` names the source in errors. */
export function parseBundle(text: string, origin = 'bundle'): Bundle {
  const { doc, problems } = parseBoundedYaml(text, origin, INPUT_LIMITS.bundleBytes);
  if (problems.length > 0) {
    const lines = problems.map((p) => `${p.message}${p.line ? ` at line ${p.line}, column ${p.col ?? 0}` : ''}`);
    throw new InvalidArgumentError(`${origin} is not valid YAML: ${lines.join('; ')}`);
  }
  return validateBundle(boundedToJS(doc, origin));
}

/** Reads and validates a bundle file. */
export function loadBundleFile(path: string): Bundle {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read bundle ${path}: ${(err as Error).message}`);
  }
  return parseBundle(text, path);
}
