/**
 * nodevisor's QMP command for introspection (QEMU 7.2 has none; the x- prefix marks it as
 * nodevisor's own): detach the tool of an `-object introspection`, which is sent UNHOOK and
 * given the unhook timeout to remove its hooks, after which the VM runs uninspected.
 */
import { defineCommand, type CommandTable } from './dispatcher.js';
import { genericError } from './errors.js';

export interface QmpIntrospection {
  /** Unhooks the tool of object `id`; false when there is no such object. */
  unhook(id: string): Promise<boolean>;
}

export function introspectionCommands(introspection: QmpIntrospection): CommandTable {
  return {
    'x-introspection-unhook': defineCommand({
      args: { id: { type: 'str' } },
      handler: async (args) => {
        if (!(await introspection.unhook(args.id))) throw genericError(`Introspection object '${args.id}' not found`);
      },
    }),
  };
}
