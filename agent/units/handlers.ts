/**
 * The unit kinds this agent knows, by kind. One registry per agent is enough (handlers are
 * stateless); `extra` lets a test or a later kind add to or replace the defaults.
 */
import type { UnitKind } from '../../shared/bundle/types';
import { commandUnit } from './command-unit';
import { directoryUnit } from './directory-unit';
import type { HandlerRegistry } from './executor';
import { fileUnit } from './file-unit';
import type { UnitHandler } from './unit';

export function createHandlerRegistry(extra: readonly UnitHandler[] = []): HandlerRegistry {
  const map = new Map<UnitKind, UnitHandler>();
  for (const h of [fileUnit, directoryUnit, commandUnit] as UnitHandler[]) map.set(h.kind, h);
  for (const h of extra) map.set(h.kind, h);
  return map;
}
