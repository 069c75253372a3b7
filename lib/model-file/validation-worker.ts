// The worker thread behind validateModelFileAsync (lib/validation-thread.ts): reads and checks model
// file headers, one message per file, and answers with the outcome.
import { parentPort } from 'node:worker_threads';
import { ModelFileError, validateModelFile } from './validation.js';

parentPort!.on('message', ({ id, path }: { id: number; path: string }) => {
  try {
    validateModelFile(path);
    parentPort!.postMessage({ id, ok: true });
  } catch (e) {
    if (e instanceof ModelFileError) parentPort!.postMessage({ id, ok: false, fault: e.fault, path: e.path, detail: e.detail });
    else parentPort!.postMessage({ id, ok: false, message: e instanceof Error ? e.message : String(e) });
  }
});
