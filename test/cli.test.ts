// The command line (dist/cli/index.js, built by `npm ci` / `npm run build`): the demo model without
// -m, one parser for every command (unknown flags and bad values exit 2 with the usage), runtime
// failures exit 1, and calibrate → generate --draft-head end to end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DraftHead } from '../lib/index.js';
import { STORIES } from './helpers.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'index.js');
if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
const work = mkdtempSync(join(tmpdir(), 'layerskip-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('layerskip CLI', () => {
  it('--version prints the package version', () => {
    const r = run('--version');
    expect(r.status).toBe(0);
    const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout).toBe(`layerskip ${pkg.version}\n`);
  });

  it('generate without -m runs the demo model and says so', () => {
    const r = run('generate', '-p', 'Once upon a time', '-n', '24');
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith('Once upon a time, there was a little girl named Lily')).toBe(true);
    expect(r.stderr).toMatch(/demo model .*stories260K\.gguf/);
  });

  it.each([
    [['generate', '-p', 'x', '--bogus'], /Unknown option '--bogus'/],
    [['generate', '-p', 'x', '-n', 'abc'], /--max-tokens must be an integer >= 1, got "abc"/],
    [['generate', '-p', 'x', '--top-p', '2'], /--top-p must be a number >= 0 <= 1/],
    [['generate', '-p', 'x', '--draft', '3'], /need --exit-layer/],
    [['generate', '-p', 'x', '--exit-layer', '3', '--verify', 'maybe'], /--verify must be cached or full/],
    [['generate', '-p', 'x', '--exit-layer', '3', '--overlap', 'yes'], /--overlap must be on or off/],
    [['generate', '-p', 'x', '--overlap', 'on'], /need --exit-layer/],
    [['generate', '-p', 'x', '--lookup', 'maybe'], /--lookup must be on or off/],
    [['generate', '-p', 'x', '--temp', '-1'], /--temp must be a number >= 0, got "-1"/],
    [['generate', '-p', 'x', '--exit-layer', '5'], /--exit-layer must be in \[1, 4\] for this model \(5 layers\), got 5/],
    [['generate', '-p', 'x', '--threads', '4096'], /--threads 4096 is more than this machine's \d+ cores.*use --threads \d+ or fewer/],
    [
      ['calibrate', '-m', STORIES, '--exit-layer', '2', '--text', '/nonexistent/calibration.txt'],
      /--text: cannot read \/nonexistent\/calibration.txt \(ENOENT\)/,
    ],
    [['chat', '--template', '/nonexistent/template.jinja'], /--template: cannot read/],
    [['generate', '-p', 'x', '--prediction', '/nonexistent/prediction.txt'], /--prediction: cannot read \/nonexistent\/prediction.txt \(ENOENT\)/],
    [['generate', '-p', 'x', '--exit-layer', '3', '--overlap', 'on', '--lookup', 'on'], /--overlap on cannot be combined/],
    [['generate'], /generate needs -p PROMPT/],
    [['analyze', '-m', 'x.gguf', '--layers', '1,x'], /--layers must be an integer >= 1, got "x"/],
    [['sweep', '-m', 'x.gguf', '--tokens', '0'], /--tokens must be an integer >= 1/],
    [['calibrate', '-m', 'x.gguf'], /calibrate needs --exit-layer E/],
    [['calibrate', '-m', 'x.gguf', '--exit-layer', '2', '--vocab', '150%'], /--vocab must be a number/],
    [['info'], /info needs -m MODEL/],
    [['quantize', 'a'], /quantize needs SOURCE DESTINATION TYPE/],
    [['frobnicate'], /unknown command frobnicate/],
  ])('%j exits 2 with a clear message and the usage', (args, message) => {
    const r = run(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr).toContain('Usage:');
  });

  it('generate --json-schema and --grammar constrain the output; bad files are usage errors', () => {
    const schemaFile = join(work, 'schema.json');
    writeFileSync(schemaFile, JSON.stringify({ type: 'object', properties: { name: { type: 'string', maxLength: 8 } }, required: ['name'] }));
    const r = run('generate', '-p', 'Once upon a time', '-n', '80', '--json-schema', schemaFile, '--exit-layer', '3');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.slice('Once upon a time'.length))).toMatchObject({ name: expect.any(String) });
    const grammarFile = join(work, 'words.gbnf');
    writeFileSync(grammarFile, 'root ::= [a-z ]+ "."\n');
    const g = run('generate', '-p', 'Once upon a time', '-n', '40', '--grammar', grammarFile);
    expect(g.status, g.stderr).toBe(0);
    expect(g.stdout.slice('Once upon a time'.length).trimEnd()).toMatch(/^[a-z ]+\.?$/);
    writeFileSync(join(work, 'bad.json'), '{ not json');
    expect(run('generate', '-p', 'x', '--json-schema', join(work, 'bad.json')).status).toBe(2);
    expect(run('generate', '-p', 'x', '--json-schema', schemaFile, '--grammar', grammarFile).status).toBe(2);
  });

  it('generate --lookup and --prediction give the text of --lookup off, and report each source', () => {
    const args = ['generate', '-p', 'Once upon a time', '-n', '64'];
    const off = run(...args, '--lookup', 'off');
    expect(off.status).toBe(0);
    const predictionFile = join(work, 'prediction.txt');
    writeFileSync(predictionFile, off.stdout.slice('Once upon a time'.length).trim());
    const on = run(...args);
    expect(on.stdout).toBe(off.stdout);
    expect(on.stderr).toMatch(/lookup: \d+ rounds, drafted \d+/);
    const predicted = run(...args, '--prediction', predictionFile, '--exit-layer', '3');
    expect(predicted.status).toBe(0);
    expect(predicted.stdout).toBe(off.stdout);
    const accepted = Number(/prediction: \d+ rounds, drafted \d+, accepted (\d+)/.exec(predicted.stderr)?.[1]);
    expect(accepted).toBeGreaterThan(20);
  });

  it("the README's CLI section is the --help text", () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    const usage = r.stdout
      .replace(/^Usage:\n/, '')
      .split('\n')
      .map((l) => l.replace(/^ {2}/, ''))
      .join('\n')
      .trimEnd();
    const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8');
    const block = /## CLI\n[^\n]*\n```\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block?.trimEnd()).toBe(usage);
  });

  it('--help on a command prints the usage and exits 0', () => {
    for (const cmd of ['generate', 'calibrate', 'analyze', 'sweep', 'info']) {
      const r = run(cmd, '--help');
      expect(r.status, cmd).toBe(0);
      expect(r.stdout).toContain('Usage:');
    }
  });

  it('a failure that is not a usage error exits 1 without the usage', () => {
    const r = run('generate', '-m', join(work, 'missing.gguf'), '-p', 'x');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/model file not found/);
    expect(r.stderr).not.toContain('Usage:');
    const h = run('generate', '-m', STORIES, '-p', 'x', '--exit-layer', '2', '--draft-head', join(work, 'missing.gguf'));
    expect(h.status).toBe(1);
    expect(h.stderr).toMatch(/draft head/);
  });

  it('calibrate writes a head that generate --draft-head uses, with the same text', () => {
    const text = join(work, 'calibration.txt');
    writeFileSync(text, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. '.repeat(30));
    const out = join(work, 'head.gguf');
    const c = run('calibrate', '-m', STORIES, '--exit-layer', '4', '--text', text, '--steps', '20', '--out', out);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/held-out agreement .* \(plain exit\) -> .* \(ridge/);
    expect(DraftHead.load(out).exitLayer).toBe(4);
    const plain = run('generate', '-m', STORIES, '-p', 'Once upon a time', '-n', '40');
    const spec = run('generate', '-m', STORIES, '-p', 'Once upon a time', '-n', '40', '--exit-layer', '4', '--draft', '3', '--draft-head', out);
    expect(spec.status, spec.stderr).toBe(0);
    expect(spec.stdout).toBe(plain.stdout);
    expect(spec.stderr).toMatch(/self-speculative: exit layer 4\/5/);
    // the head file stores its exit layer: --draft-head alone is enough
    const headOnly = run('generate', '-m', STORIES, '-p', 'Once upon a time', '-n', '40', '--draft-head', out);
    expect(headOnly.status, headOnly.stderr).toBe(0);
    expect(headOnly.stdout).toBe(plain.stdout);
    expect(headOnly.stderr).toMatch(/self-speculative: exit layer 4\/5/);
    // info on a head file describes the head
    const info = run('info', '-m', out);
    expect(info.status, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/a draft head, not a model/);
    expect(info.stdout).toMatch(/exitLayer +4/);
  }, 120_000);
});

describe('layerskip chat (driven through its streams)', () => {
  it('two turns, an answer stopped with Ctrl-C (SIGINT), another turn, then end of input', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [cli, 'chat', '-n', '400', '--ctx', '2048'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const prompts = () => out.split('> ').length - 1;
    const until = async (cond: () => boolean, what: string) => {
      const t0 = Date.now();
      while (!cond()) {
        if (Date.now() - t0 > 60_000) throw new Error(`timed out waiting for ${what}; stdout: ${out}; stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until(() => prompts() >= 1, 'the first prompt');
    child.stdin.write('Once upon a time\n');
    await until(() => prompts() >= 2, 'the first answer');
    child.stdin.write('What did Lily do next?\n');
    await until(() => prompts() >= 3, 'the second answer');
    expect(err.match(/\[\d+ tokens, .* reused\)\]/g)).toHaveLength(2);
    expect(err).toMatch(/prompt \d+ \([1-9]\d* reused\)/); // the second turn kept the first in the KV cache
    // a third turn, interrupted as soon as its answer starts streaming
    const before = out.length;
    child.stdin.write('Tell me a long story about a dog\n');
    await until(() => out.length > before, 'the third answer to start');
    child.kill('SIGINT');
    await until(() => prompts() >= 4, 'the prompt after the stopped answer');
    expect(out.slice(before)).toMatch(/\[answer stopped\]/);
    child.stdin.write('Thank you\n');
    await until(() => prompts() >= 5, 'the answer after the stopped one');
    child.stdin.end(); // Ctrl-D
    expect(await exited).toBe(0);
    expect(err.match(/\[\d+ tokens, /g)).toHaveLength(3); // the stopped answer reports no statistics
  }, 120_000);

  it('rejects bad flags', () => {
    expect(run('chat', '--draft', '2').stderr).toMatch(/needs? --exit-layer/);
    const t = run('chat', '--template', join(work, 'missing.jinja'));
    expect(t.status).toBe(2); // a usage error naming the flag, not a raw ENOENT
    expect(t.stderr).toMatch(/--template: cannot read .*missing\.jinja \(ENOENT\)/);
  });
});

describe('layerskip rpc-server and generate --rpc', () => {
  it('the two-command set-up gives the local output; SIGTERM stops the server', async () => {
    const { spawn } = await import('node:child_process');
    const net = await import('node:net');
    const { freePort } = await import('../lib/native/rpc-server.js');
    const port = await freePort();
    const server = spawn(process.execPath, [cli, 'rpc-server', '--port', String(port), '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    server.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<string | null>((resolve) => server.on('exit', (_code, signal) => resolve(signal)));
    try {
      for (let i = 0; ; i++) {
        const up = await new Promise<boolean>((resolve) => {
          const s = net.createConnection({ host: '127.0.0.1', port }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
        if (up) break;
        if (i > 500) throw new Error(`the server did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(err).toMatch(new RegExp(`serving 127\\.0\\.0\\.1:${port}`));
      const local = run('generate', '-p', 'Once upon a time', '-n', '24');
      const remote = run('generate', '-p', 'Once upon a time', '-n', '24', '--rpc', `127.0.0.1:${port}`, '--remote-layers', '2', '--exit-layer', '3');
      expect(remote.status).toBe(0);
      expect(remote.stdout).toBe(local.stdout);
      expect(remote.stderr).toMatch(/layers 0:CPU.*3:RPC\d+ 127\.0\.0\.1.*output head CPU/);
    } finally {
      server.kill('SIGTERM');
    }
    expect(await exited).toBe('SIGTERM');
  });

  it('rejects bad flags', () => {
    expect(run('generate', '-p', 'x', '--remote-layers', '2').stderr).toMatch(/--remote-layers needs --rpc/);
    expect(run('rpc-server', '--port', '70000').stderr).toMatch(/--port must be an integer >= 1 <= 65535/);
    expect(run('generate', '-p', 'x', '--rpc', 'nohost').stderr).toMatch(/rpcServers\[0\] must be "host:port"/);
  });
});
