// Commands of the CLI beyond generate/info/quantize (benchmark sweep, analysis).
import { analyzeCommand, analyzeUsage } from './layer-analysis-cli.js';
import { calibrateCommand, calibrateUsage } from './calibrate-cli.js';
import { sweepCommand, sweepUsage } from './sweep-cli.js';

export const commands: Record<string, (argv: string[]) => Promise<void>> = { analyze: analyzeCommand, sweep: sweepCommand, calibrate: calibrateCommand };
export const usage = analyzeUsage + sweepUsage + calibrateUsage;
