/**
 * A problem in one option's argument, as QEMU words it but without the `prog: -opt arg:`
 * location. It never leaves src/cli: parse-args wraps it into an OptionError.
 */
export class OptsSyntaxError extends Error {
  /** Further error lines QEMU reports at the same location (each gets the prefix too). */
  readonly more: readonly string[];
  constructor(message: string, more: readonly string[] = []) {
    super(message);
    this.name = 'OptsSyntaxError';
    this.more = more;
  }
}
