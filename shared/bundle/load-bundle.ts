/**
 * Reading a bundle from YAML text or a file: parse, then validate (validate-bundle.ts). YAML
 * syntax errors keep the parser's line and column so the operator can find them.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { InvalidArgumentError } from '../errors';
import type { Bundle } from './types';
import { validateBundle } from './validate-bundle';

/** Parses YAML (JSON is YAML too) and validates it. `origin` names the source in errors. */
export function parseBundle(text: string, origin = 'bundle'): Bundle {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => e.message.split('\n')[0]);
    throw new InvalidArgumentError(`${origin} is not valid YAML: ${lines.join('; ')}`);
  }
  return validateBundle(doc.toJS({ maxAliasCount: 100 }));
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
