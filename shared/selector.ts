/**
 * Label selectors (kubectl's syntax, shared/selector-syntax.ts): what the coordinator and
 * clusterctl import. A selector that does not parse is an InvalidArgumentError (INVALID_ARGUMENT
 * on the wire) with the syntax module's message.
 */
import { InvalidArgumentError } from './errors';
import { parseSelector as parseSyntax, SelectorSyntaxError, type Selector } from './selector-syntax';

export { matchesSelector, formatSelector, type Requirement, type Selector } from './selector-syntax';

export function parseSelector(text: string): Selector {
  try {
    return parseSyntax(text);
  } catch (err) {
    if (err instanceof SelectorSyntaxError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}
