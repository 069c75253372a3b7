// Error types of the public API. Native errors carry a `code` too (ERR_DISPOSED, ERR_BUSY,
// ERR_CONTEXT_FULL, ERR_PENDING_DRAFT, ERR_NO_DRAFT); these classes cover the TypeScript side.

/** A call on a model or context after dispose(). */
export class DisposedError extends Error {
  readonly code = 'ERR_DISPOSED';
  constructor(what: string) {
    super(`${what}: the object is disposed`);
    this.name = 'DisposedError';
  }
}

/** A second operation on a context while one is running. */
export class BusyError extends Error {
  readonly code = 'ERR_BUSY';
  constructor(what: string) {
    super(`${what}: the context is busy with another generation or decode`);
    this.name = 'BusyError';
  }
}

/** The context has no room for the prompt (or the prompt plus one token). */
export class ContextFullError extends Error {
  readonly code = 'ERR_CONTEXT_FULL';
  constructor(message: string) {
    super(message);
    this.name = 'ContextFullError';
  }
}

/** The abort reason of a signal, as an Error (DOMException AbortError by default). */
export function abortReason(signal: AbortSignal): Error {
  const r = signal.reason;
  if (r instanceof Error) return r;
  return new DOMException(typeof r === 'string' ? r : 'The generation was aborted', 'AbortError');
}

export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a number in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/** A boolean option, or undefined when absent: a string such as 'no' is an error, not "on". */
export function checkBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be true or false, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  return value;
}

/** One of a fixed set of values, or undefined when absent. */
export function checkEnum<T extends string | number | boolean>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) {
    throw new RangeError(`${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  }
  return value as T;
}
