/**
 * The unit kinds this agent knows, by kind (systemd-unit.ts and package-unit.ts are written
 * alongside, by the systemd/packages side). One registry per agent is enough (handlers are
 * stateless); `extra` lets a test or a later kind add to or replace the defaults.
 */
import type { UnitKind } from '../../shared/bundle/types';
import { commandUnit } from './command-unit';
import { directoryUnit } from './directory-unit';
import type { HandlerRegistry } from './executor';
import { fileUnit } from './file-unit';
import { packageUnitHandler } from './package-unit';
import { systemdUnitHandler } from './systemd-unit';
import type { UnitHandler } from './unit';

export function createHandlerRegistry(extra: readonly UnitHandler[] = []): HandlerRegistry {
  const map = new Map<UnitKind, UnitHandler>();
  for (const h of [fileUnit, directoryUnit, commandUnit, systemdUnitHandler, packageUnitHandler] as UnitHandler[]) map.set(h.kind, h);
  for (const h of extra) map.set(h.kind, h);
  return map;
}
