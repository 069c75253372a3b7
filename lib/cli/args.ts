// The CLI's one argument parser (node:util parseArgs, strict: unknown flags are errors) and its
// value checkers. A UsageError ends the command with its message, the usage and exit status 2.
import { readFileSync } from 'node:fs';
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
    const r = parseArgs({ args: joinNegativeValues(args, options), allowPositionals: true as const, strict: true as const, options });
    if (!positionals && r.positionals.length > 0) throw new UsageError(`unexpected argument ${r.positionals[0]}`);
    return r;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}

/**
 * `--temp -1` as `--temp=-1`: parseArgs takes a value that starts with '-' for an option of its own
 * ("argument is ambiguous"), so a string flag followed by a negative number gets it joined, and the
 * value check then says what is wrong with it.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const takesValue = (arg: string): boolean => {
    if (arg.startsWith('--')) return options[arg.slice(2)]?.type === 'string';
    if (/^-[A-Za-z]$/.test(arg)) return Object.values(options).some((o) => o.short === arg[1] && o.type === 'string');
    return false;
  };
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (takesValue(args[i]) && next !== undefined && /^-\d|^-\.\d/.test(next)) {
      out.push(`${args[i]}=${next}`.replace(/^(-[A-Za-z])=/, '$1'));
      i++;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

/** Reads a text file named by a flag; a missing or unreadable file is a usage error naming the flag. */
export function readFlagFile(command: string, flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${command}: --${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
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
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} needs a comma-separated list of integers, e.g. 1,2,3`);
  return items.map((s) => intFlag(name, s, min)!);
}

/** A required flag. */
export function required<T>(command: string, flag: string, v: T | undefined): T {
  if (v === undefined || v === '') throw new UsageError(`${command} needs ${flag}`);
  return v;
}
