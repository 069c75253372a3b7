// validateModelFileAsync: validateModelFile's header check on a worker thread. Reading and checking a
// 128k-token vocabulary takes 40-75 ms, a visible stall of an Electron UI when it runs on the main
// thread. One worker serves every check: started on first use, referenced only while a check is
// pending (it never keeps the process alive), stopped after IDLE_MS without one (a running worker
// added 11 MB of RSS), started again when needed. Where no worker can start (no compiled worker
// script, a host without worker threads, a packaged app whose archive a worker cannot load from)
// the check runs on this thread, as validateModelFile does; so do the checks that a
// dying worker leaves unanswered.
import { Worker } from 'node:worker_threads';
import { builtScript } from '../util/built-script.js';
import { ModelFileError, validateModelFile, type ModelFileFault } from './validation.js';

type Reply = { id: number; ok: true } | { id: number; ok: false; fault?: ModelFileFault; path?: string; detail?: string; message?: string };

interface Pending {
  path: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const ENTRY = builtScript('./validation-worker.js', import.meta.url);
const IDLE_MS = 5000;
let worker: Worker | null = null;
let workerUnusable = false; // one started and died before its first answer: not again
let idleTimer: NodeJS.Timeout | undefined;
let nextId = 0;
const pending = new Map<number, Pending>();

/** The check on this thread, settling `p`. */
function checkHere(p: Pending): void {
  try {
    validateModelFile(p.path);
    p.resolve();
  } catch (e) {
    p.reject(e);
  }
}

function validationWorker(): Worker | null {
  if (worker) return worker;
  if (workerUnusable || ENTRY === undefined) return null;
  let w: Worker;
  try {
    w = new Worker(ENTRY, { execArgv: [] }); // the host's flags (--input-type, loaders) are not for this module
  } catch {
    workerUnusable = true;
    return null;
  }
  let answered = false;
  const died = () => {
    if (worker !== w) return; // 'error' and then 'exit': once
    worker = null;
    if (!answered) workerUnusable = true;
    const left = [...pending.values()];
    pending.clear();
    for (const p of left) checkHere(p);
  };
  w.on('message', (r: Reply) => {
    answered = true;
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (pending.size === 0) {
      w.unref();
      idleTimer = setTimeout(() => {
        if (worker !== w || pending.size > 0) return;
        worker = null; // before terminate(): its 'exit' is then not a death
        void w.terminate();
      }, IDLE_MS).unref();
    }
    if (r.ok) p.resolve();
    else p.reject(r.fault !== undefined ? new ModelFileError(r.fault, r.path!, r.detail!) : new Error(r.message));
  });
  w.on('error', died);
  w.on('exit', died);
  w.unref();
  worker = w;
  return w;
}

/**
 * The checks of `validateModelFile` on a worker thread: resolves when the header is sound, rejects
 * with `ModelFileError` (code ERR_MODEL_FILE) naming the fault otherwise.
 */
export function validateModelFileAsync(path: string): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) return Promise.reject(new TypeError('validateModelFileAsync: path must be a non-empty string'));
  const w = validationWorker();
  if (!w) return Promise.resolve().then(() => void validateModelFile(path));
  clearTimeout(idleTimer);
  return new Promise<void>((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { path, resolve, reject });
    w.ref(); // a pending check keeps the process alive
    w.postMessage({ id, path });
  });
}
