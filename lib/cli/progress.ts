// A progress bar on stderr: redrawn in place on a terminal, one line per stage otherwise (logs, CI).
export function progressBar(): { update: (stage: string, done: number, total: number, extra?: string) => void; end: () => void } {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    update(stage, done, total, extra = '') {
      const width = 30;
      const filled = Math.min(width, Math.round((width * done) / Math.max(total, 1)));
      if (tty) process.stderr.write(`\r\x1b[K${stage} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total} ${extra}`);
      else if (stage !== last) process.stderr.write(`${stage}...\n`);
      last = stage;
    },
    end() {
      if (tty && last) process.stderr.write('\r\x1b[K');
      last = '';
    },
  };
}
