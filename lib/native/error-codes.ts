// The error codes of this library's errors (`error.code`): the native ones mirror
// native/error-codes.h (test/error-codes.test.ts checks that the two agree), the rest come from
// TypeScript. `nativeError()` turns an addon error into its error class, so that `instanceof`
// works whichever side found the condition.
import { AbortedError, BusyError, ContextFullError, DisposedError, RpcError } from './errors.js';
import type { KeysOf } from '../util/option-keys.js';

/** Every code, with where it comes from and what it means. */
export const ERROR_CODES = {
  ERR_ABORTED: { from: 'native', meaning: 'abort() or dispose() stopped the operation' },
  ERR_BUSY: { from: 'native', meaning: 'another operation runs on the context' },
  ERR_CONTEXT_FULL: { from: 'native', meaning: 'no KV cells left for the tokens asked for' },
  ERR_DISPOSED: { from: 'native', meaning: 'the object was disposed' },
  ERR_NO_DRAFT: { from: 'native', meaning: 'a verification without pending drafts' },
  ERR_PENDING_DRAFT: { from: 'native', meaning: 'a full decode while drafts await verification' },
  ERR_RPC: { from: 'native', meaning: 'an RPC server was lost or timed out' },
  ERR_RPC_SERVER: { from: 'native', meaning: 'the RPC server could not start' },
  ERR_SAVE: { from: 'native', meaning: 'writing a model file failed' },
  ERR_SPLIT_DECODED: { from: 'native', meaning: 'positions split-decoded from another layer' },
  ERR_TOKEN_RANGE: { from: 'native', meaning: 'a token id outside the vocabulary' },
  ERR_TRAIN_MODEL: { from: 'native', meaning: 'the model cannot be trained as asked' },
  ERR_UNSUPPORTED_TEMPLATE: { from: 'native', meaning: "llama.cpp's built-in renderer does not know the chat template" },
  ERR_ARCHITECTURE: { from: 'typescript', meaning: "the model's architecture does not support what was asked" },
  ERR_CHAT_TEMPLATE: { from: 'typescript', meaning: 'the chat template is missing or rejected the messages' },
  ERR_MODEL_FILE: { from: 'typescript', meaning: 'the model file is malformed (checked before llama.cpp reads it)' },
  ERR_MODEL_LOAD: { from: 'typescript', meaning: 'llama.cpp could not load the model' },
  ERR_LAYERSKIP_NO_BINARY: { from: 'typescript', meaning: 'no native binary for this platform' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An addon error as this library's error class: ERR_CONTEXT_FULL a ContextFullError, ERR_BUSY a
 * BusyError, ERR_DISPOSED a DisposedError, ERR_ABORTED an AbortedError, ERR_RPC and ERR_RPC_SERVER
 * an RpcError (same message and code); any other error unchanged.
 */
export function nativeError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  const mapped =
    code === 'ERR_CONTEXT_FULL'
      ? new ContextFullError(e.message)
      : code === 'ERR_BUSY'
        ? BusyError.withMessage(e.message)
        : code === 'ERR_DISPOSED'
          ? DisposedError.withMessage(e.message)
          : code === 'ERR_ABORTED'
            ? new AbortedError(e.message)
            : code === 'ERR_RPC' || code === 'ERR_RPC_SERVER'
              ? new RpcError(e.message, code)
              : null;
  if (!mapped) return e;
  mapped.stack = e.stack;
  return mapped;
}

/**
 * A native object whose methods throw and reject with nativeError(): a plain object of wrappers,
 * one per method named in `methods` (every method of T: the type says so), never passed back to
 * the addon.
 */
export function withNativeErrors<T extends object>(target: T, methods: KeysOf<T>): T {
  const out = {} as T;
  for (const name of Object.keys(methods) as (keyof T)[]) {
    const method = target[name];
    if (typeof method !== 'function') continue;
    (out as Record<keyof T, unknown>)[name] = (...args: unknown[]) => {
      let r: unknown;
      try {
        r = (method as (...a: unknown[]) => unknown).apply(target, args);
      } catch (e) {
        throw nativeError(e);
      }
      return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(nativeError(e))) : r;
    };
  }
  return out;
}
