/**
 * The one switch every command uses to print a result: JSON and YAML print the data object,
 * table and wide print what the command renders for a person.
 */
import type { CliContext } from '../context';
import { formatJson, formatYaml } from '../output';

export function printResult(context: CliContext, data: unknown, human: (wide: boolean) => string): void {
  switch (context.format) {
    case 'json': context.out.write(formatJson(data)); break;
    case 'yaml': context.out.write(formatYaml(data)); break;
    case 'table': context.out.write(human(false)); break;
    case 'wide': context.out.write(human(true)); break;
  }
}
