// The CLI's one argument parser (node:util parseArgs, strict: unknown flags are errors) and its
// value checkers. A UsageError ends the command with its message, the usage and exit status 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export class UsageError extends Error {}

/** `--help` (or `-h`) on a command: print the usage and exit 0. */
export class HelpRequested extends Error {}

/** Parses `args` against `options` (no positionals unless `positionals`); errors become UsageErrors. */
export function parse<const O extends Options>(command: string, args: string[], options: O, positionals = false): Parsed<O> {
  if (args.includes('--help') || (args.includes('-h') && !Object.values(options).some((o) => o.short === 'h'))) throw new HelpRequested(command);
  try {
    const r = parseArgs({ args, options, allowPositionals: true as const, strict: true as const });
    if (!positionals && r.positionals.length > 0) throw new UsageError(`unexpected argument ${r.positionals[0]}`);
    return r;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}

/** A number flag's value (undefined when absent), checked to be finite, in [min, max], and whole if `integer`. */
export function numberFlag(name: string, v: string | undefined, { min = -Infinity, max = Infinity, integer = false } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? Number.NaN : Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    const range = `${Number.isFinite(min) ? ` >= ${min}` : ''}${Number.isFinite(max) ? ` <= ${max}` : ''}`;
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}${range}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export const intFlag = (name: string, v: string | undefined, min = 0, max = Infinity) => numberFlag(name, v, { min, max, integer: true });

/** A comma-separated list of integers, e.g. --layers 1,2,3. */
export function intListFlag(name: string, v: string | undefined, min = 0): number[] | undefined {
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} needs a comma-separated list of integers, e.g. 1,2,3`);
  return items.map((s) => intFlag(name, s, min)!);
}

/** A required flag. */
export function required<T>(command: string, flag: string, v: T | undefined): T {
  if (v === undefined || v === '') throw new UsageError(`${command} needs ${flag}`);
  return v;
}
