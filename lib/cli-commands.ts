// Commands of the CLI beyond generate/info/quantize (benchmark sweep, analysis).
export const commands: Record<string, (argv: string[]) => Promise<void>> = {};
export const usage = '';
