// lib/native/binding: without a binary that loads, the error names the platform, the prebuilt
// platforms and both ways out, carries its code, and the CLI prints it with one "layerskip:" prefix.
// Run in child processes of the built package (a loaded addon is cached per process).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, LAYERSKIP_BINARY: join(root, 'no-such-binary.node') };

describe('a missing native binary', () => {
  it('is an error with the platform, the prebuilt platforms and both ways out', () => {
    const code = `import(${JSON.stringify(join(root, 'dist', 'index.js'))}).then((m) => m.loadModel(m.DEMO_MODEL_PATH)).then(
      () => console.log('loaded'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
    const r = spawnSync(process.execPath, ['-e', code], { env, encoding: 'utf8' });
    const { code: errCode, message } = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(errCode).toBe('ERR_LAYERSKIP_NO_BINARY');
    expect(message).toContain(`${process.platform}-${process.arch}`);
    expect(message).toContain('prebuilt binaries ship for linux-x64');
    expect(message).toContain('npm install-scripts approve layerskip');
    expect(message).toContain('LAYERSKIP_BUILD_FROM_SOURCE=1 npm rebuild layerskip');
    expect(message).not.toMatch(/^layerskip:/);
  });

  it('reaches the CLI user with one prefix', () => {
    const r = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'index.js'), 'generate', '-p', 'x', '-n', '1'], { env, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^layerskip: no native binary of layerskip for /m);
    expect(r.stderr).not.toContain('layerskip: layerskip:');
  });
});
