// The fuzz harness: writes one mutated model file per case seed, runs it in one of `jobs` forked
// workers (worker.mjs), and classifies every case:
//   ok        every stage passed
//   rejected  some stage threw an error (a clean rejection; its cause is counted)
//   crash     the worker died during the case (signal or exit code, with the stage it was in;
//             'after-done' when it died right after reporting the case finished)
//   hang      the case did not finish within timeoutMs (the worker is killed)
//   unusable  the case finished but the worker's unmutated probe model no longer generates the
//             same tokens (corrupted process state)
// Workers that crash, hang or become unusable are replaced, and the run goes on.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSeedModel, mutateModel, type Mutation, type SeedModel } from './mutate.js';

export type Outcome = 'ok' | 'rejected' | 'crash' | 'hang' | 'unusable';

/** An error a stage threw, as the worker reports it. */
export interface CaseError {
  stage: string;
  code?: string;
  reason?: string;
  name?: string;
  message: string;
}

export interface CaseResult {
  seed: number;
  kind: string;
  detail: string;
  outcome: Outcome;
  /**
   * The stage that rejected first, or the stage the worker was in when it crashed or hung:
   * load, tokenize, context, generate-plain, generate-speculative, generate-sampled, dispose,
   * probe, after-done ('send': it died before entering the case's first stage).
   */
  stage?: string;
  /** The normalised cause of a rejection (see causeOf). */
  cause?: string;
  /** Every error the case's stages threw (a case can reject in several generations). */
  errors?: CaseError[];
  /** How a crashed worker ended. */
  signal?: string | null;
  exitCode?: number | null;
  /** A short signature of the failure for grouping: the signal and the assertion line the worker printed. */
  signature?: string;
  /** The worker's last output during the case (crash, hang, unusable). */
  output?: string;
  ms: number;
}

export interface CauseCount {
  cause: string;
  count: number;
  stages: string[];
  kinds: string[];
  /** The first case seed with this cause, to reproduce it. */
  exampleSeed: number;
  /** The distinct messages under this cause (paths and numbers normalised), most frequent first. */
  messages: { message: string; count: number; exampleSeed: number }[];
}

export interface FailureGroup {
  outcome: Outcome;
  kind: string;
  stage: string;
  signature: string;
  count: number;
  seeds: number[];
  detail: string;
}

export interface FuzzReport {
  seedModel: string;
  cases: number;
  firstSeed: number;
  totals: Record<Outcome, number>;
  /** Rejections by normalised cause, most frequent first. */
  rejectionsByCause: CauseCount[];
  /** Outcomes per mutation kind. */
  byKind: Record<string, Record<Outcome, number>>;
  /** Every crash, hang and unusable case. */
  failures: CaseResult[];
  /** The failures grouped by outcome, mutation kind, stage and signature. */
  failureGroups: FailureGroup[];
  /** Rejections whose cause says nothing specific (e.g. "failed to load model" without a reason). */
  vagueRejections: CaseResult[];
  /** Every case, by seed. */
  results: CaseResult[];
  workerStarts: number;
  elapsedMs: number;
}

export interface FuzzOptions {
  /** The GGUF file every case mutates. */
  seedModel: string;
  cases: number;
  /** Seed of the first case; case i has seed firstSeed + i (default 1). */
  firstSeed?: number;
  /** Worker processes (default 2). */
  jobs?: number;
  /** Per-case limit before the case counts as a hang (default 30 s). */
  timeoutMs?: number;
  /** Where the temporary case folder goes (default the OS temp folder); it is deleted afterwards. */
  workDir?: string;
  /** Write the files of crashing, hanging and unusable cases here (case-SEED-KIND.gguf). */
  keepFailuresDir?: string;
  /**
   * Load with the library's model-file validation (default true). false passes `validate: false`
   * to loadModel, to check that the mutations still reach the faults the validation guards against.
   */
  validate?: boolean;
  /** The worker script (default test/fuzz/worker.mjs); the harness's own test swaps in a faulty one. */
  workerPath?: string;
  onCase?: (result: CaseResult, done: number, total: number) => void;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * The repository root: the nearest folder above this file with the package's package.json.
 * Found by walking up because this module runs both from test/fuzz (vitest) and compiled from
 * .cache/fuzz/test/fuzz (npm run fuzz).
 */
function repositoryRoot(): string {
  for (let dir = HERE; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'fuzz', 'worker.mjs'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root above ${HERE}`);
  }
}

/** The repository the harness belongs to (its models/, dist/ and test/fuzz/). */
export const REPOSITORY_ROOT = repositoryRoot();
export const WORKER_PATH = join(REPOSITORY_ROOT, 'test', 'fuzz', 'worker.mjs');
export const DIST_ENTRY = join(REPOSITORY_ROOT, 'dist', 'index.js');

/** True when a lib/ source is newer than the built dist/ the workers load (then the run tests old code). */
export function distIsStale(): boolean {
  if (!existsSync(DIST_ENTRY)) return true;
  const built = statSync(DIST_ENTRY).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? newer(join(dir, e.name)) : e.name.endsWith('.ts') && statSync(join(dir, e.name)).mtimeMs > built,
    );
  return newer(join(REPOSITORY_ROOT, 'lib'));
}

/**
 * The cause of a rejection: the error's `reason` when it has one, else its `code`, else its message
 * with paths and numbers replaced, so that the same fault in different files counts once.
 */
export function causeOf(e: CaseError): string {
  if (e.reason?.trim()) return clip(e.reason.trim());
  if (e.code?.trim()) return e.code.trim();
  return clip(normaliseText(`${e.message}`));
}

function normaliseText(s: string): string {
  return s
    .replace(/(?:[A-Za-z]:)?(?:\/[^\s:'"()]+)+/g, '<path>')
    .replace(/-?\b0x[0-9a-f]+\b/gi, 'N')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/gi, 'N')
    .replace(/\s+/g, ' ')
    .trim();
}

function clip(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}

/** Message parts that say nothing about the fault: the path, generic phrases, bare function names. */
const GENERIC_PART =
  /^(?:<path>|error|unknown error|native error|tokenize failed|loadModel|(?:invalid model file|failed to load model|model load failed)(?: <path>)?|[a-z][a-z0-9]*_[a-z0-9_]+)$/i;

/**
 * A rejection that does not say what is wrong with the file: no cause, or a message made only of
 * generic parts, e.g. "failed to load model <path>: llama_model_load_from_file_impl: failed to load model".
 */
export function isVagueRejection(e: CaseError): boolean {
  if (!causeOf(e)) return true;
  return normaliseText(e.message)
    .split(':')
    .map((part) => part.trim())
    .every((part) => part === '' || GENERIC_PART.test(part));
}

/** The most telling line of a dead worker's output: llama.cpp/ggml assertions, C++ exceptions, JS errors. */
function signatureOf(signal: string | null | undefined, exitCode: number | null | undefined, output: string): string {
  const how = signal ?? (exitCode === undefined || exitCode === null ? '' : `exit ${exitCode}`);
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  // else the last line: ggml's own aborts print their reason without a keyword ("binary_op: unsupported types: ...")
  const telling = lines.find((l) => /GGML_ASSERT|GGML_ABORT|assertion|terminate called|what\(\)|segmentation|error|abort/i.test(l)) ?? lines.at(-1);
  return clip([how, telling ? normaliseText(telling) : ''].filter(Boolean).join(': '), 160);
}

/** Writes the file of case `seed` to `outPath` (to reproduce a crash outside the harness). */
export function reproduce(seedModel: string | SeedModel, seed: number, outPath: string): Mutation {
  const m = mutateModel(typeof seedModel === 'string' ? loadSeedModel(seedModel) : seedModel, seed);
  writeFileSync(outPath, m.bytes);
  return m;
}

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'stage'; id: number; stage: string }
  | ({ type: 'done'; id: number; outcome: 'ok' | 'rejected'; errors: CaseError[]; usable: boolean; probeError?: string } & Partial<CaseError>);

type RunEnd =
  | { end: 'done'; message: Extract<WorkerMessage, { type: 'done' }>; stage: string }
  | { end: 'exit'; code: number | null; signal: string | null; stage: string }
  | { end: 'timeout'; stage: string };

const OUTPUT_LIMIT = 4000;

/** One worker process; it runs one case at a time. */
class FuzzWorker {
  private readonly child: ChildProcess;
  private output = '';
  private stage = 'start';
  private exited: { code: number | null; signal: string | null } | null = null;
  private listener: ((m: WorkerMessage) => void) | null = null;
  private exitListener: (() => void) | null = null;

  private constructor(workerPath: string, args: string[], cwd: string) {
    // cwd: the case folder, so that core dumps of crashing workers (where enabled) go away with it
    this.child = fork(workerPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json' });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.on('message', (m: WorkerMessage) => {
      if (m.type === 'stage') this.stage = m.stage;
      this.listener?.(m);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      this.exitListener?.();
    });
    this.child.on('error', () => {}); // a failed send to a dying child: its exit event says the rest
  }

  /** Starts a worker and waits until it has loaded the library and its probe model. */
  static async start(workerPath: string, args: string[], cwd: string, timeoutMs: number): Promise<FuzzWorker> {
    const w = new FuzzWorker(workerPath, args, cwd);
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        w.kill();
        reject(new Error(`fuzz worker ${why}; its output:\n${w.output}`));
      };
      w.listener = (m) => {
        if (m.type !== 'ready') return;
        clearTimeout(timer);
        w.listener = null;
        w.exitListener = null;
        resolveReady();
      };
      w.exitListener = () => fail(`exited at start (code ${w.exited?.code}, signal ${w.exited?.signal})`);
    });
    return w;
  }

  /** Runs one case file; resolves when the worker reports it done, dies, or runs out of time. */
  run(id: number, path: string, timeoutMs: number): Promise<RunEnd & { output: string }> {
    this.output = '';
    this.stage = 'send';
    return new Promise((resolveRun) => {
      const finish = (end: RunEnd) => {
        clearTimeout(timer);
        this.listener = null;
        this.exitListener = null;
        resolveRun({ ...end, output: this.output });
      };
      const timer = setTimeout(() => {
        const stage = this.stage;
        this.kill();
        finish({ end: 'timeout', stage });
      }, timeoutMs);
      this.listener = (m) => {
        if (m.type === 'done' && m.id === id) finish({ end: 'done', message: m, stage: this.stage });
      };
      this.exitListener = () => finish({ end: 'exit', code: this.exited!.code, signal: this.exited!.signal, stage: this.stage });
      if (this.exited) return this.exitListener();
      this.child.send({ type: 'case', id, path });
    });
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** How the worker ended, if it has. */
  get exit(): { code: number | null; signal: string | null; output: string } | null {
    return this.exited && { ...this.exited, output: this.output };
  }

  /** Ends an idle worker (it exits when its IPC channel closes) and says how it ended. */
  async stop(): Promise<{ code: number | null; signal: string | null; output: string }> {
    if (!this.exited) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      const timer = setTimeout(() => this.kill(), 5000);
      this.child.disconnect();
      await gone;
      clearTimeout(timer);
    }
    return this.exit!;
  }
}

function emptyTotals(): Record<Outcome, number> {
  return { ok: 0, rejected: 0, crash: 0, hang: 0, unusable: 0 };
}

/** Runs `cases` mutated models through the library in worker processes and reports the outcomes. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const seedPath = resolve(options.seedModel);
  const firstSeed = options.firstSeed ?? 1;
  const jobs = Math.max(1, Math.min(options.jobs ?? 2, options.cases || 1));
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!existsSync(DIST_ENTRY)) throw new Error(`${DIST_ENTRY} is missing: run npm run build`);
  const seed = loadSeedModel(seedPath);
  const dir = mkdtempSync(join(options.workDir ?? tmpdir(), 'layerskip-fuzz-'));
  if (options.keepFailuresDir) mkdirSync(options.keepFailuresDir, { recursive: true });

  const results: CaseResult[] = [];
  let next = 0;
  let workerStarts = 0;
  const live = new Set<FuzzWorker>();
  const startWorker = async () => {
    workerStarts++;
    const w = await FuzzWorker.start(
      resolve(options.workerPath ?? WORKER_PATH),
      [seedPath, options.validate === false ? 'no-validate' : 'validate'],
      dir,
      Math.max(60_000, timeoutMs),
    );
    live.add(w);
    return w;
  };

  /** Writes a failing case's file into keepFailuresDir (regenerated from its seed). */
  const keepCase = (r: CaseResult) => {
    if (options.keepFailuresDir) reproduce(seed, r.seed, join(options.keepFailuresDir, `case-${r.seed}-${r.kind.replace(/\W+/g, '-')}.gguf`));
  };

  const runOne = async (w: FuzzWorker, caseSeed: number): Promise<CaseResult> => {
    const m = mutateModel(seed, caseSeed);
    const file = join(dir, `case-${caseSeed}.gguf`);
    writeFileSync(file, m.bytes);
    const started = performance.now();
    const end = await w.run(caseSeed, file, timeoutMs);
    rmSync(file, { force: true });
    const base = { seed: caseSeed, kind: m.kind, detail: m.detail, ms: Math.round(performance.now() - started) };
    if (end.end === 'exit') {
      return {
        ...base,
        outcome: 'crash',
        stage: end.stage,
        signal: end.signal,
        exitCode: end.code,
        signature: signatureOf(end.signal, end.code, end.output),
        output: end.output,
      };
    }
    if (end.end === 'timeout') return { ...base, outcome: 'hang', stage: end.stage, signature: `no answer in ${timeoutMs} ms`, output: end.output };
    const msg = end.message;
    const first = msg.errors[0];
    if (!msg.usable) {
      return {
        ...base,
        outcome: 'unusable',
        stage: 'probe',
        errors: msg.errors,
        signature: clip(normaliseText(msg.probeError ?? ''), 160),
        output: `${msg.probeError}\n${end.output}`,
      };
    }
    if (first) return { ...base, outcome: 'rejected', stage: first.stage, cause: causeOf(first), errors: msg.errors };
    return { ...base, outcome: 'ok' };
  };

  /** Turns a finished case into a crash: its worker died right after reporting it done. */
  const diedAfter = (r: CaseResult, how: { code: number | null; signal: string | null; output: string }) => {
    Object.assign(r, {
      outcome: 'crash',
      stage: 'after-done',
      signal: how.signal,
      exitCode: how.code,
      signature: signatureOf(how.signal, how.code, how.output),
      output: how.output,
    });
    keepCase(r);
  };

  let failed = false;
  const lane = async () => {
    let w: FuzzWorker | undefined;
    let previous: CaseResult | undefined; // the last case w finished (ok or rejected)
    let retry: number | undefined;
    while ((retry !== undefined || next < options.cases) && !failed) {
      w ??= await startWorker();
      const caseSeed = retry ?? firstSeed + next++;
      retry = undefined;
      const result = await runOne(w, caseSeed);
      if (result.outcome !== 'ok' && result.outcome !== 'rejected') {
        // a dead, killed or corrupted worker is replaced (lazily: not after the last case)
        w.kill();
        live.delete(w);
        w = undefined;
      }
      if (result.outcome === 'crash' && result.stage === 'send' && previous) {
        // it died before it began this case, after it reported the previous one done (a
        // finalizer, a late use of freed memory): the previous case is the crash; this one runs again
        diedAfter(previous, { code: result.exitCode ?? null, signal: result.signal ?? null, output: result.output ?? '' });
        previous = undefined;
        retry = caseSeed;
        continue;
      }
      if (result.outcome !== 'ok' && result.outcome !== 'rejected') keepCase(result);
      results.push(result);
      previous = w ? result : undefined;
      options.onCase?.(result, results.length, options.cases);
    }
    if (w) {
      live.delete(w);
      const end = await w.stop();
      if (previous && (end.signal || end.code)) diedAfter(previous, end);
    }
  };

  try {
    // a lane that cannot start a worker ends the run (and stops the other lanes)
    await Promise.all(
      Array.from({ length: jobs }, () =>
        lane().catch((e: unknown) => {
          failed = true;
          throw e;
        }),
      ),
    );
  } finally {
    for (const w of live) w.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  results.sort((a, b) => a.seed - b.seed);
  return summarise(results, { seedModel: seedPath, firstSeed, workerStarts, elapsedMs: performance.now() - t0 });
}

function summarise(results: CaseResult[], meta: Pick<FuzzReport, 'seedModel' | 'firstSeed' | 'workerStarts' | 'elapsedMs'>): FuzzReport {
  const totals = emptyTotals();
  const byKind: Record<string, Record<Outcome, number>> = {};
  const causes = new Map<string, CauseCount>();
  const groups = new Map<string, FailureGroup>();
  for (const r of results) {
    totals[r.outcome]++;
    (byKind[r.kind] ??= emptyTotals())[r.outcome]++;
    if (r.outcome === 'rejected') {
      const c = causes.get(r.cause!) ?? { cause: r.cause!, count: 0, stages: [], kinds: [], exampleSeed: r.seed, messages: [] };
      c.count++;
      const message = clip(normaliseText(r.errors![0].message), 120);
      const m = c.messages.find((x) => x.message === message);
      if (m) m.count++;
      else c.messages.push({ message, count: 1, exampleSeed: r.seed });
      if (!c.stages.includes(r.stage!)) c.stages.push(r.stage!);
      if (!c.kinds.includes(r.kind)) c.kinds.push(r.kind);
      causes.set(r.cause!, c);
    } else if (r.outcome !== 'ok') {
      const key = [r.outcome, r.kind, r.stage, r.signature].join('\u0000');
      const g = groups.get(key) ?? {
        outcome: r.outcome,
        kind: r.kind,
        stage: r.stage ?? '?',
        signature: r.signature ?? '',
        count: 0,
        seeds: [],
        detail: r.detail,
      };
      g.count++;
      g.seeds.push(r.seed);
      groups.set(key, g);
    }
  }
  return {
    ...meta,
    cases: results.length,
    totals,
    rejectionsByCause: [...causes.values()]
      .map((c) => ({ ...c, messages: c.messages.sort((a, b) => b.count - a.count || a.message.localeCompare(b.message)) }))
      .sort((a, b) => b.count - a.count || a.cause.localeCompare(b.cause)),
    byKind: Object.fromEntries(Object.entries(byKind).sort(([a], [b]) => a.localeCompare(b))),
    failures: results.filter((r) => r.outcome !== 'ok' && r.outcome !== 'rejected'),
    failureGroups: [...groups.values()].sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind)),
    vagueRejections: results.filter((r) => r.outcome === 'rejected' && isVagueRejection(r.errors![0])),
    results,
  };
}

/** The report as plain-text tables (what `npm run fuzz` prints). */
export function formatReport(r: FuzzReport): string {
  const table = (head: string[], rows: (string | number)[][]): string => {
    const cells = [head, ...rows.map((row) => row.map(String))];
    const widths = head.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
    const line = (row: string[]) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd();
    return [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
  };
  const out: string[] = [];
  const t = r.totals;
  out.push(
    `fuzz: ${r.cases} cases (seeds ${r.firstSeed}..${r.firstSeed + r.cases - 1}) of ${r.seedModel} in ${(r.elapsedMs / 1000).toFixed(1)} s, ${r.workerStarts} worker starts`,
  );
  out.push(`ok ${t.ok}, rejected ${t.rejected}, crash ${t.crash}, hang ${t.hang}, unusable ${t.unusable}`);
  out.push('', 'Rejections by cause');
  out.push(
    table(
      ['count', 'example seed', 'stages', 'cause'],
      r.rejectionsByCause.map((c) => [c.count, c.exampleSeed, c.stages.join(','), c.cause]),
    ),
  );
  out.push('', 'Rejection messages under each cause (paths and numbers as <path> and N)');
  out.push(
    table(
      ['count', 'example seed', 'cause', 'message'],
      r.rejectionsByCause.flatMap((c) => c.messages.map((m) => [m.count, m.exampleSeed, c.cause, m.message])),
    ),
  );
  out.push('', 'Outcomes by mutation kind');
  out.push(
    table(
      ['kind', 'ok', 'rejected', 'crash', 'hang', 'unusable'],
      Object.entries(r.byKind).map(([k, v]) => [k, v.ok, v.rejected, v.crash, v.hang, v.unusable]),
    ),
  );
  if (r.failureGroups.length > 0) {
    out.push('', 'Crashes, hangs and unusable workers, grouped (reproduce a seed with --reproduce SEED --out FILE)');
    out.push(
      table(
        ['count', 'outcome', 'kind', 'stage', 'seeds', 'signature'],
        r.failureGroups.map((g) => [g.count, g.outcome, g.kind, g.stage, g.seeds.slice(0, 5).join(',') + (g.seeds.length > 5 ? ',...' : ''), g.signature]),
      ),
    );
  }
  if (r.vagueRejections.length > 0) {
    out.push('', `Rejections whose message names no reason: ${r.vagueRejections.length}, by mutation kind`);
    const byKind = new Map<string, CaseResult[]>();
    for (const v of r.vagueRejections) byKind.set(v.kind, [...(byKind.get(v.kind) ?? []), v]);
    out.push(
      table(
        ['count', 'kind', 'seeds', 'message'],
        [...byKind]
          .sort((a, b) => b[1].length - a[1].length)
          .map(([kind, list]) => [
            list.length,
            kind,
            list
              .slice(0, 5)
              .map((v) => v.seed)
              .join(',') + (list.length > 5 ? ',...' : ''),
            clip(normaliseText(list[0].errors![0].message), 100),
          ]),
      ),
    );
  }
  return out.join('\n');
}
