#!/usr/bin/env node
/**
 * The `nodevisor` program: QEMU's command line in, a running machine out. A thin adapter:
 * parse argv, open COM1's host end, build the machine, run it, exit with its status.
 */
import type { Chardev } from '../chardev/chardev.js';
import { openChardev } from '../chardev/open.js';
import { NodevisorError, OptionError } from '../errors.js';
import { Machine } from '../machine/machine.js';
import type { QmpServer } from '../qmp/server.js';
import { parseArgs, type ParsedCommand } from './parse-args.js';
import { loadSecretFiles } from './secret-file.js';

const PROGRAM = 'nodevisor';

function say(line: string): void {
  process.stderr.write(`${PROGRAM}: ${line}\n`);
}

async function run(argv: readonly string[]): Promise<number> {
  let parsed: ParsedCommand;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
  switch (parsed.kind) {
    case 'help':
      (parsed.stream === 'stderr' ? process.stderr : process.stdout).write(parsed.text);
      return parsed.exitStatus;
    case 'version':
    case 'accel-help':
      process.stdout.write(parsed.text);
      return 0;
    case 'accel-props-help':
      // QEMU 7.2 has no such list (it refuses `-accel kvm,help`); a help text exits 0.
      process.stdout.write(`${parsed.text}\n${(await import('./accel-report.js')).hostCapabilityLines().join('\n')}\n`);
      return 0;
    case 'run':
      break;
  }
  const { config, options } = parsed;
  for (const w of options.warnings) process.stderr.write(`${w}\n`);
  try {
    // The parser reads no files: `-object secret,file=` is read here, before the machine.
    loadSecretFiles(config, options.secretFiles, options.introspectionKeyFile);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }

  let machine: Machine | undefined;
  let serial: Chardev;
  try {
    serial = await openChardev(config.serial, {
      mux: options.serialMux,
      // Ctrl-A x is the user at the console: cause host-ui, not a QMP quit.
      onQuit: () => { void (machine ? machine.quit('host-ui') : process.exit(0)); },
    });
  } catch (e) {
    if (e instanceof NodevisorError) {
      say(`${options.serialArg !== undefined ? `-serial ${options.serialArg}: ` : ''}${e.message}`);
      return 1;
    }
    throw e;
  }
  try {
    machine = await Machine.create(config, { serial, actions: options.actions });
  } catch (e) {
    await serial.close();
    if (e instanceof NodevisorError) {
      // QEMU places accelerator errors at the -accel option, on every line.
      const loc = e.code === 'ERR_ACCEL' && options.accelLoc !== undefined ? `${options.accelLoc}: ` : '';
      for (const line of e.message.split('\n')) say(`${loc}${line}`);
      return 1;
    }
    throw e;
  }
  const m = machine;
  m.events.on('warning', (w) => say(`warning: ${w}`));
  m.events.on('internal-error', ({ report }) => process.stderr.write(`${report}\n`));
  m.events.on('log', (line) => process.stderr.write(`${line}\n`));

  // -object introspection: connect to the tool; its problems are logged, never fatal to the VM.
  const intro = config.introspection;
  const introspection = intro === undefined ? null : (await import('../introspection/connect.js')).connectIntrospection(
    intro, new (await import('../introspection/machine-target.js')).MachineTarget(m),
    { ...(config.uuid !== undefined ? { uuid: config.uuid } : {}), ...(config.name !== undefined ? { name: config.name } : {}), startTime: Date.now() },
    { log: (level, message) => say(level === 'info' ? `introspection: ${message}` : `${level === 'warning' ? 'warning: ' : ''}introspection: ${message}`) },
  );
  // On quit or shutdown the tool is sent UNHOOK while the vCPUs are still there.
  if (introspection) m.beforeEnd(() => introspection.close());

  // What only some command lines need is loaded only then: start-up time is module loading.
  let qmp: QmpServer | null = null;
  try {
    if (options.qmp.length > 0) {
      const [{ QmpServer }, { machineCommands }, { nodevisorQmpVersion }, { qmpMachine }, { introspectionCommands }] = await Promise.all([
        import('../qmp/server.js'), import('../qmp/commands-machine.js'), import('../qmp/commands-core.js'),
        import('../machine/qmp-adapter.js'), import('../qmp/commands-introspection.js'),
      ]);
      const link = introspection;
      const server = new QmpServer({
        commands: {
          ...machineCommands(qmpMachine(m, { name: config.name, uuid: config.uuid }), nodevisorQmpVersion()),
          ...(link && intro ? introspectionCommands({
            unhook: async (id) => {
              if (id !== intro.id) return false;
              await link.close();
              return true;
            },
          }) : {}),
        },
        log: (line) => say(line),
      });
      qmp = server;
      m.events.on('qmp', (event, ts) => server.broadcast(event, ts));
      for (const spec of options.qmp) await server.listen(spec);
    }
  } catch (e) {
    await m.quit();
    await qmp?.close();
    if (e instanceof NodevisorError || (e instanceof Error && 'code' in e)) {
      say(`-qmp: ${e.message}`);
      return 1;
    }
    throw e;
  }

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      say(`terminating on signal ${sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1}`);
      void m.quit('host-signal');
    });
  }
  if (!options.startPaused) await m.start();
  const end = await m.waitForEnd();
  await introspection?.close();
  await qmp?.close(); // flushes every reply and event (quit's reply included), removes sockets
  if (end.reason === 'fatal' && end.message) say(end.message);
  return end.exitCode;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(`internal error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
