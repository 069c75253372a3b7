// Error types of the public API. Every error of this library carries a `code` (the table is
// lib/native/error-codes.ts); the addon's ERR_DISPOSED, ERR_BUSY, ERR_CONTEXT_FULL, ERR_ABORTED,
// ERR_RPC and ERR_RPC_SERVER reach callers as these classes too (nativeError()), so `instanceof`
// works whichever side found the condition.

/** A call on a model or context after dispose(). */
export class DisposedError extends Error {
  readonly code = 'ERR_DISPOSED';
  constructor(what: string) {
    super(`${what}: the object is disposed`);
    this.name = 'DisposedError';
  }

  /** With the addon's own message (error-codes.ts, nativeError()). */
  static withMessage(message: string): DisposedError {
    const e = new DisposedError('');
    e.message = message;
    return e;
  }
}

/** A second operation on a context while one is running. */
export class BusyError extends Error {
  readonly code = 'ERR_BUSY';
  constructor(what: string) {
    super(`${what}: the context is busy with another generation or decode`);
    this.name = 'BusyError';
  }

  /** With the addon's own message (error-codes.ts, nativeError()). */
  static withMessage(message: string): BusyError {
    const e = new BusyError('');
    e.message = message;
    return e;
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

/**
 * An operation stopped by abort(): an AbortSignal, `generation.abort()`, a dispose() during a
 * decode, or a cancelled model load. Its name is 'AbortError', as DOMException's is, so code that
 * checks `e.name === 'AbortError'` keeps working. An abort with a reason of your own (an Error)
 * rejects with that reason instead.
 */
export class AbortedError extends Error {
  readonly code = 'ERR_ABORTED';
  constructor(message = 'the operation was aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

/**
 * An RPC server failed: lost or timed out during a call (ERR_RPC), or one that could not start
 * (ERR_RPC_SERVER).
 */
export class RpcError extends Error {
  constructor(
    message: string,
    readonly code: 'ERR_RPC' | 'ERR_RPC_SERVER' = 'ERR_RPC',
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** The model's architecture does not support what was asked (layer ranges, training); plain decoding still works. */
export class UnsupportedArchitectureError extends Error {
  readonly code = 'ERR_ARCHITECTURE';
  constructor(
    message: string,
    readonly architecture: string,
  ) {
    super(message);
    this.name = 'UnsupportedArchitectureError';
  }
}

/**
 * The error an aborted signal rejects with: the caller's own reason when it is an Error, else (the
 * default DOMException of `controller.abort()`, a string, nothing) an AbortedError.
 */
export function abortReason(signal: AbortSignal): Error {
  const r = signal.reason;
  if (r instanceof Error && !(r instanceof DOMException && r.name === 'AbortError')) return r;
  return new AbortedError(typeof r === 'string' ? r : r instanceof Error ? r.message : 'the operation was aborted');
}

/** Type and range predicates for option checks (after sharp's `is` helpers). */
export const is = {
  bool: (v: unknown): v is boolean => typeof v === 'boolean',
  number: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  integer: (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v),
  inRange: (v: number, min: number, max: number): boolean => v >= min && v <= max,
  inArray: <T>(v: unknown, list: readonly T[]): v is T => list.includes(v as T),
};

/** How a received value is named in an error: strings quoted, the rest as String() gives them. */
function describeActual(actual: unknown): string {
  return typeof actual === 'string' ? JSON.stringify(actual) : String(actual);
}

/**
 * The error for an option that is not what it must be (sharp's invalidParameterError): a TypeError
 * when its type is wrong, a RangeError when only its value is. "threads must be an integer in [1, 2], got 16".
 */
export function invalidParameterError(name: string, expected: string, actual: unknown, kind: 'type' | 'range' = 'type'): TypeError | RangeError {
  const message = `${name} must be ${expected}, got ${describeActual(actual)}`;
  return kind === 'range' ? new RangeError(message) : new TypeError(message);
}

export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (!is.integer(value) || !is.inRange(value, min, max)) {
    throw invalidParameterError(name, `an integer in [${min}, ${max}]`, value, 'range');
  }
  return value;
}

export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (!is.number(value) || !is.inRange(value, min, max)) {
    throw invalidParameterError(name, `a number in [${min}, ${max}]`, value, 'range');
  }
  return value;
}

/** A boolean option, or undefined when absent: a string such as 'no' is an error, not "on". */
export function checkBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (!is.bool(value)) throw invalidParameterError(name, 'true or false', value);
  return value;
}

/** One of a fixed set of values, or undefined when absent. */
export function checkEnum<T extends string | number | boolean>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!is.inArray(value, allowed)) throw invalidParameterError(name, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value, 'range');
  return value;
}
