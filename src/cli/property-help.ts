/**
 * A property list as QEMU prints one for `-device DRIVER,help` and `-object TYPE,help`: a
 * heading, then one line per property, `  name=<type>` padded to 24 columns, ` - what`.
 */

/** One line of a property list; without `what`, QEMU prints the name and type alone. */
export function propertyLine(name: string, type: string, what?: string): string {
  const head = `  ${name}=<${type}>`;
  return what === undefined ? `${head}\n` : `${head.padEnd(24)} - ${what}\n`;
}
